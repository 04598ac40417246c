"""``livesound train-mapper``: the conditional latent mapper, trained over many target embeddings at once.

``train_mapper(TrainMapperOptions(...))`` is the whole run (the command builds the options from its flags);
``MapperTask`` is its step, which ``livesound.train.loop`` drives.

StyleCLIP trains one mapper per text prompt; livesound's mapper (``livesound.models.mapper``) takes the
target embedding as an input, so one network serves any sound. One step:

1. Source latents: ``batch`` fresh z from the step's seeded generator, mapped at ``truncation`` (w+).
2. Targets: ``batch`` entries of the target pool, the epoch's order (``livesound.train.loop``) walking over the
   pool repeated to ``samples_per_epoch``. The pool holds CLIP text embeddings of a prompt list (similarity
   scale 1) and/or audio embeddings of a dataset's clips through the audio encoder (the paper's ``exp(0.07)``).
3. ``w_hat = w + strength * M(w, e)``; the image ``G(w_hat)`` goes to CLIP the paper's way
   (``optimize.clip_image_embedding``).
4. Loss: ``clip_lambda * mean(1 - scale * cos(CLIP(G(w_hat)), e)) + l2_lambda * mean((w_hat - w)^2)``
   (StyleCLIP's weights 1.0 and 0.8), plus ``id_lambda`` times the identity loss against the source image
   when ArcFace weights are given (faces; StyleCLIP 0.1), plus ``distill_lambda`` times the mean squared
   distance to latent-optimisation results (below).

Distillation: ``livesound optimize`` writes ``OUT/<target>/result.npy`` and ``log.json`` naming its target
(``text '...'`` or ``audio '...'``) and its source (``seed N (truncation p)`` or ``mean``). Each such folder
with one target part and a seed or mean source becomes a triple (w_src, e, w_opt); every step also draws
``batch`` of them and adds ``distill_lambda * mean((w_src + strength * M(w_src, e) - w_opt)^2)``. Folders of
mixed targets or of saved-latent sources are skipped with a count.

Learning rates: Adam at ``lr`` (StyleCLIP's 0.5) for the mapper body, whose equalised-lr layers scale their
weights by 0.01; the FiLM layers (lr multiplier 1) get ``lr * 0.01``, so every weight's effective step is the
same size.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from livesound.models.arcface import IdentityLoss, load_arcface
from livesound.models.mapper import MapperConfig, build_mapper, load_mapper, save_mapper
from livesound.models.presets import (
    Preset,
    encoder_from_preset,
    generator_from_preset,
    load_preset,
)
from livesound.offline.embed import EmbedOptions, embed_files
from livesound.offline.optimize import (
    AUDIO_SCALE,
    audio_embedding,
    clip_image_embedding,
)
from livesound.train import loop
from livesound.train.inputs import (
    ClipChoice,
    DatasetChoice,
    Report,
    prompt_list,
    quiet,
    set_threads,
)

log = logging.getLogger("livesound")


@dataclass
class MapperTrainConfig:
    strength: float = 0.1              # StyleCLIP's step; the live preset may play it louder
    truncation: float = 0.7
    clip_lambda: float = 1.0
    l2_lambda: float = 0.8
    id_lambda: float = 0.1             # used only with an identity model
    distill_lambda: float = 1.0        # used only with distillation targets
    samples_per_epoch: int = 1024
    noise_mode: str = "const"

    def __post_init__(self) -> None:
        if self.samples_per_epoch < 2 or self.strength <= 0 or not 0 < self.truncation <= 1:
            raise ValueError("samples_per_epoch must be >= 2, strength positive and truncation in (0, 1]")
        if min(self.clip_lambda, self.l2_lambda, self.id_lambda, self.distill_lambda) < 0:
            raise ValueError("loss weights must not be negative")


@dataclass
class TargetPool:
    embeddings: torch.Tensor           # [T, D] unit norm
    scales: torch.Tensor               # [T]: 1 for text, exp(0.07) for audio
    names: list[str]


def text_targets(clip, prompts: Sequence[str]) -> TargetPool:
    prompts = [p.strip() for p in prompts if p.strip()]
    if not prompts:
        return _empty(clip.embed_dim)
    emb = clip.encode_text(prompts).float().cpu()
    return TargetPool(emb, torch.ones(len(prompts)), [f"text:{p}" for p in prompts])


def audio_targets(encoder, paths: Sequence[Path], batch: int = 16) -> TargetPool:
    """Each clip through the paper's preprocessing (centre crop) and ``encoder``, unit norm."""
    if not paths:
        return _empty(encoder.embed_dim)
    emb = torch.from_numpy(embed_files(encoder.eval(), EmbedOptions(files=[str(p) for p in paths], batch=batch)))
    return TargetPool(emb, torch.full((len(paths),), AUDIO_SCALE), [f"audio:{p}" for p in paths])


def _empty(dim: int) -> TargetPool:
    return TargetPool(torch.zeros(0, dim), torch.zeros(0), [])


def merge(pools: Sequence[TargetPool]) -> TargetPool:
    return TargetPool(torch.cat([p.embeddings for p in pools]), torch.cat([p.scales for p in pools]),
                      [n for p in pools for n in p.names])


@dataclass
class Distill:
    w_src: torch.Tensor                # [K, num_ws, w_dim]
    embeddings: torch.Tensor           # [K, D]
    w_opt: torch.Tensor                # [K, num_ws, w_dim]


_SEED = re.compile(r"^seed (\d+) \(truncation ([0-9.eE+-]+)\)$")


def distill_targets(folder: Path, G, clip, encoder) -> Distill:
    """Triples from ``livesound optimize`` results under ``folder`` (see the module docstring)."""
    folder = Path(folder)
    results = sorted(folder.glob("*/result.npy"))
    if not results:
        raise ValueError(f"{folder}: no <target>/result.npy from `livesound optimize` here")
    src, emb, opt, skipped = [], [], [], 0
    for r in results:
        meta = json.loads((r.parent / "log.json").read_text()) if (r.parent / "log.json").is_file() else {}
        kind, _, label = str(meta.get("target", "")).partition(" ")
        w0 = _source_ws(G, str(meta.get("source", "")))
        if kind not in ("text", "audio") or " + " in label or " on layers " in label or w0 is None:
            skipped += 1
            continue
        label = ast.literal_eval(label)
        if kind == "audio" and encoder is None:
            raise ValueError(f"{r.parent}: an audio target; distilling it needs the audio encoder")
        e = clip.encode_text([label])[0] if kind == "text" else audio_embedding(encoder, label)
        w = np.load(r, allow_pickle=False)
        if w.shape != (1, G.num_ws, G.w_dim):
            raise ValueError(f"{r}: shape {w.shape}, the generator takes [1, {G.num_ws}, {G.w_dim}]")
        src.append(w0), emb.append(e.float().cpu()), opt.append(torch.from_numpy(w[0]))
    if skipped:
        log.warning("%s: skipped %d result(s) with mixed targets or saved-latent sources", folder, skipped)
    if not src:
        raise ValueError(f"{folder}: no usable results (single text/audio targets from a seed or the mean)")
    return Distill(torch.stack(src), torch.stack(emb), torch.stack(opt))


def _source_ws(G, label: str) -> torch.Tensor | None:
    if label == "mean":
        return G.mapping.w_avg.detach().float().cpu().view(1, -1).repeat(G.num_ws, 1)
    m = _SEED.match(label)
    if m is None:
        return None
    with torch.no_grad():
        return G.mapping(G.z_from_seeds([int(m.group(1))]), truncation_psi=float(m.group(2)))[0].cpu()


class MapperTask:
    """The ``Task`` of ``livesound.train.loop`` for the conditional mapper."""
    kind = "mapper"
    global_loss = False                # per-item losses: DDP's average of the ranks' means is the global mean

    def __init__(self, mapper: nn.Module, G, clip, pool: TargetPool, cfg: MapperTrainConfig,
                 device: torch.device, out: Path, identity=None, distill: Distill | None = None):
        if not pool.names:
            raise ValueError("no mapper targets: give --prompts and/or --data")
        if pool.embeddings.shape[1] != mapper.clip_dim:
            raise ValueError(f"the targets are {pool.embeddings.shape[1]}-d, the mapper takes {mapper.clip_dim}-d")
        if (mapper.num_ws, mapper.w_dim) != (G.num_ws, G.w_dim):
            raise ValueError(f"the mapper takes w+ [{mapper.num_ws}, {mapper.w_dim}], the generator has "
                             f"[{G.num_ws}, {G.w_dim}]")
        self.model, self.cfg, self.device, self.out = mapper.to(device), cfg, device, Path(out)
        self.G = G.to(device).eval().requires_grad_(False)
        self.clip = clip.to(device)
        self.pool, self.identity, self.distill = pool, identity, distill
        self.loss_names = ("loss", "clip", "l2") + (("id",) if identity else ()) + (("distill",) if distill else ())

    def num_items(self) -> int:
        return self.cfg.samples_per_epoch

    def batch_items(self, indices: list[int]) -> torch.Tensor:
        return torch.tensor([i % len(self.pool.names) for i in indices])

    def losses(self, model: nn.Module, targets: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        B, G, cfg = targets.shape[0], self.G, self.cfg
        z = torch.randn(B, G.z_dim, generator=gen).to(self.device)
        with torch.no_grad():
            w = G.mapping(z, truncation_psi=cfg.truncation)                    # [B, num_ws, w_dim]
        e = self.pool.embeddings[targets].to(self.device)                      # [B, D]
        scale = self.pool.scales[targets].to(self.device)                      # [B]
        if self.distill is not None:  # one forward for both parts: DistributedDataParallel wants one per step
            k = torch.randint(0, self.distill.w_src.shape[0], (B,), generator=gen)
            w0, ek, wk = (t[k].to(self.device) for t in (self.distill.w_src, self.distill.embeddings,
                                                         self.distill.w_opt))
            delta, delta0 = model(torch.cat([w, w0]), torch.cat([e, ek])).split(B)
        else:
            delta = model(w, e)
        w_hat = w + cfg.strength * delta
        img = G.synthesis(w_hat, noise_mode=cfg.noise_mode)                    # [B, 3, H, W]
        f = clip_image_embedding(self.clip, img)
        clip_term = (1 - scale * (f * e).sum(-1)).mean()
        l2 = ((w_hat - w) ** 2).mean()
        out = {"clip": clip_term, "l2": l2}
        loss = cfg.clip_lambda * clip_term + cfg.l2_lambda * l2
        if self.identity is not None:
            with torch.no_grad():
                src = self.identity.features(G.synthesis(w, noise_mode=cfg.noise_mode))
            out["id"] = self.identity(img, src).mean()
            loss = loss + cfg.id_lambda * out["id"]
        if self.distill is not None:
            out["distill"] = ((w0 + cfg.strength * delta0 - wk) ** 2).mean()
            loss = loss + cfg.distill_lambda * out["distill"]
        return {"loss": loss, **out}

    def save(self) -> None:
        save_mapper(self.model, self.out)


def mapper_optimizer(mapper: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam with the FiLM layers at ``lr * 0.01`` (see the module docstring)."""
    film = [p for n, p in mapper.named_parameters() if ".film." in n]
    body = [p for n, p in mapper.named_parameters() if ".film." not in n]
    return torch.optim.Adam([{"params": body, "lr": lr}, {"params": film, "lr": lr * 0.01}], lr=lr)


def fixed_loss(task: MapperTask, batches: int = 2, batch: int = 4, seed: int = 12345) -> float:
    """The mean loss of the task's mapper over fixed batches (same latents and targets every call): a
    before/after measure free of the sampling noise of the training log."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            targets = torch.randint(0, len(task.pool.names), (batch,), generator=gen)
            total += float(task.losses(task.model, targets, gen)["loss"])
    return total / batches


# ---------------------------------------------------------------------------------------------- the run

@dataclass
class TrainMapperOptions(ClipChoice, DatasetChoice):
    """One ``train-mapper`` run: targets from ``prompts`` and/or the clips of ``data``, StyleCLIP's weights."""
    preset: str | None = "demo"                # whose generator, encoder and CLIP to use
    generator: str | Path | None = None        # generator checkpoint (overrides the preset's)
    encoder: str | Path | None = None          # audio encoder for ``data`` targets (overrides the preset's)
    prompts: str | Sequence[str] | None = None  # a list, comma-separated text, or a .txt file (one per line)
    distill: str | Path | None = None          # also fit the ``livesound optimize`` results in this folder
    id_weights: str | Path | None = None       # IR-SE50 ArcFace weights: the identity loss (faces)
    init: str | Path | None = None             # start from this mapper instead of a fresh one
    out: str | Path = "mapper.safetensors"
    run_dir: str | Path | None = None          # checkpoint, log.csv, TensorBoard (default runs/train-mapper)
    resume: bool = False
    epochs: int = 10
    batch: int = 8                             # global: split over torchrun processes
    checkpoint_every: int = 200                # steps; 0: at the end only
    seed: int = 0
    device: str = "auto"
    threads: int = 0                           # torch CPU threads (0: torch's default)
    progress: bool = True
    steps_per_epoch: int = 128
    lr: float = 0.5                            # Adam, the mapper body (StyleCLIP's)
    strength: float = 0.1                      # the edit w + strength * M(w, e)
    trunc: float | None = None                 # truncation of sampled latents (default: the preset's)
    clip_lambda: float = 1.0
    l2_lambda: float = 0.8
    id_lambda: float = 0.1                     # used only with ``id_weights``
    distill_lambda: float = 1.0
    amp: bool = False                          # autocast the generator and CLIP to float16 on CUDA


def train_mapper(opts: TrainMapperOptions, report: Report = quiet) -> dict:
    """Train (or, with ``opts.resume``, continue) a mapper: writes ``opts.out`` and the run folder.

    Every ``torchrun`` process calls this; only rank 0 writes files and reports. Missing targets, an empty
    distillation folder and settings the loop cannot run are refused before any network is built. Returns
    the loop's summary (steps, epochs, steps per epoch, last losses).
    """
    set_threads(opts.threads)
    prompts = prompt_list(opts.prompts)
    clips = opts.load_dataset().clips if opts.data else []
    if not prompts and not clips:
        raise ValueError("give targets: --prompts and/or --data (audio clips)")
    if opts.steps_per_epoch < 1:
        raise ValueError("--steps-per-epoch must be at least 1")
    if opts.distill and not any(Path(opts.distill).glob("*/result.npy")):
        raise ValueError(f"{opts.distill}: no <target>/result.npy from `livesound optimize` here")
    if opts.id_weights is None and opts.id_lambda != 0.1:
        report("note: --id-lambda has no effect without --id-weights")
    preset = load_preset(opts.preset)
    cfg = loop.LoopConfig(Path(opts.run_dir or "runs/train-mapper"), opts.epochs, opts.batch, opts.seed,
                          opts.checkpoint_every, opts.resume, amp=opts.amp, progress=opts.progress,
                          identity={"targets": len(prompts) + len(clips), "strength": opts.strength})
    dist = loop.setup_distributed(opts.device)
    try:
        loop.check_plan(opts.steps_per_epoch * opts.batch, cfg, dist.world)
        task = _mapper_task(opts, preset, prompts, [c.path for c in clips], dist.device, report)
        optimizer = mapper_optimizer(task.model, opts.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        if dist.main:
            distilled = "" if task.distill is None else f", {task.distill.w_src.shape[0]} distilled"
            report(f"{len(task.pool.names)} target(s) ({len(prompts)} text, {len(clips)} audio{distilled}); "
                   f"{task.G.resolution} px generator; {dist.world} process(es) on {dist.device} -> {opts.out}")
        summary = loop.run(task, optimizer, scheduler, cfg, dist)
        if dist.main:
            last = summary["last"].get("loss", float("nan"))
            report(f"{summary['steps']} steps, last loss {last:.4f}; wrote {opts.out}")
    finally:
        loop.cleanup_distributed()
    return summary


def _mapper_task(opts: TrainMapperOptions, preset: Preset, prompts: list[str], clips: list[Path],
                 device: torch.device, report: Report) -> MapperTask:
    """The networks and targets of the run, built in the order whose first failure names the culprit."""
    G = generator_from_preset(preset, opts.generator, device=str(device))
    clip = opts.load_clip(device, report)
    encoder = encoder_from_preset(preset, opts.encoder, device=str(device)) if clips or opts.distill else None
    pools = [text_targets(clip, prompts)]
    if clips:
        pools.append(audio_targets(encoder, clips))
    distill = distill_targets(Path(opts.distill), G, clip, encoder) if opts.distill else None
    identity = IdentityLoss(load_arcface(opts.id_weights, str(device))) if opts.id_weights else None
    if opts.init:
        mapper = load_mapper(opts.init)
    else:
        mapper = build_mapper(MapperConfig(num_ws=G.num_ws, w_dim=G.w_dim, clip_dim=clip.embed_dim), seed=opts.seed)
    tcfg = MapperTrainConfig(strength=opts.strength,
                             truncation=preset.truncation_psi if opts.trunc is None else opts.trunc,
                             clip_lambda=opts.clip_lambda, l2_lambda=opts.l2_lambda, id_lambda=opts.id_lambda,
                             distill_lambda=opts.distill_lambda,
                             samples_per_epoch=opts.steps_per_epoch * opts.batch, noise_mode=preset.noise_mode)
    return MapperTask(mapper, G, clip, merge(pools), tcfg, device, Path(opts.out), identity, distill)
