"""Sound-guided latent optimisation: the paper's direct latent optimisation, as library functions.

What is optimised (the paper's optimization/run_optimization.py and criteria/, read for these facts):
- A W+ latent ``w`` [B, num_ws, w_dim], one per target, from one source latent ``w_src``: a seed mapped at
  truncation 0.7, a saved w+, or the mean latent (the paper's ``free_generation`` mode).
- Loss per target, ``edit`` mode: ``clip + l2_lambda * l2 + id_lambda * id`` with
  ``clip = 1 - cos(CLIP_image(G(w)), e) * scale``; ``scale`` is the paper's ``exp(0.07)`` for audio
  targets (criteria/soundclip_loss.py: ``sim = (image @ audio.T) * math.exp(0.07); loss = 1 - sim``) and 1
  for text targets (StyleCLIP's CLIPLoss, ``1 - logits / 100``, is ``1 - cos`` for OpenAI CLIP whose logit
  scale is 100; using ``1 - cos`` directly keeps that meaning for CLIPs with another scale).
  ``l2 = ||w - w_src||^2`` summed over all layers. ``free`` mode (the paper's, from the mean latent) has
  only the CLIP term; l2 and id are still logged.
- The image reaches CLIP the paper's way: nearest upsampling x7, then average pooling with kernel H/32
  (224 px for H = 32 * k), pixels in [-1, 1] passed on without CLIP's mean/std (the paper feeds the
  generator's output straight in; ``clip_normalize`` changes that). Generators under 32 px (7*H < 224) are
  first nearest-upsampled to 32 px, so the pooling kernel is 1 and CLIP still sees 224 px.
- Adam at ``lr`` (paper 0.05; its landscape example 0.1) with the paper's ``get_lr`` schedule at
  ``t = step / steps``: cosine ramp-down over the last 25%, times a linear ramp-up over the first 5% (so the
  first step has lr 0, as in the paper).
- Adaptive layer masking (the paper's ``--adaptive_layer_masking``): each layer's L2 term is weighted by
  ``sigmoid(g_l)`` with gates ``g`` starting at 1; after each step ``g_l -= 0.1 * L_l * (1 - L_l)`` where
  ``L_l`` is that layer's gated term. The gates are updated by this rule, not by autograd, as in the paper.
  The paper gates only the first 14 layers (its 256 px landscape generator has 14; at 1024 px layers 14-17
  then get no L2 at all); here every layer is gated.
- Identity loss on faces (optional, ``id_lambda`` 0.005 in the paper): StyleCLIP's ``id_loss(img_gen,
  img_orig)``, i.e. gradient through the generated face and the source features fixed. (The paper's script
  calls ``id_loss(img_orig, img_gen)``, which detaches the generated side and so gives no gradient.)

Layer-group mixing (the paper's text/audio style mixing): a target has one or more *parts*, each with its
own embedding and its own layers (e.g. text on coarse layers 0-3, audio on fine layers 8+). Each part's CLIP
loss is computed on the one mixed image, and its gradient is applied only to its own layers; layers that no
part names get no gradient, so they stay exactly at the source. The paper's public code has no mixing
script; this is the in-place form of style mixing (one latent whose layer groups are pulled to different
embeddings), rather than splicing two separately optimised latents.

Batching: the B targets of one call share the source latent and the layer layout (which layers each part
owns); every image's loss depends on its own latent only, so a batch gives each target the result it would
get alone (up to float rounding) in fewer generator calls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livesound.models.mapper import GROUPS, MapperConfig
from livesound.models.stylegan2 import NOISE_MODES
from livesound.offline.embed import features_for
from livesound.offline.generate import load_latents, to_uint8

AUDIO_SCALE = math.exp(0.07)           # the paper's fixed similarity scale for audio embeddings
SCALES = {"audio": AUDIO_SCALE, "text": 1.0}
MODES = ("edit", "free")


@dataclass
class OptimizeConfig:
    steps: int = 300
    lr: float = 0.05                  # paper default; its landscape example uses 0.1
    lr_rampup: float = 0.05           # fraction of steps with a linear ramp-up
    lr_rampdown: float = 0.25         # fraction of steps with a cosine ramp-down
    l2_lambda: float = 0.008          # landscape example: 0.002
    id_lambda: float = 0.005          # used only when an identity model is given (faces)
    truncation: float = 0.7           # for a source latent from a seed
    mode: str = "edit"                # "edit": CLIP + L2 (+ id); "free": CLIP only (paper: from the mean latent)
    adaptive_mask: bool = False
    mask_step: float = 0.1            # the paper's gate update factor
    save_every: int = 0               # intermediate images every K steps (0: none; the paper's default is 20)
    seed: int = 0                     # seeds the noise when noise_mode is "random"
    noise_mode: str = "const"         # the paper: randomize_noise=False
    clip_normalize: bool = False      # the paper passes [-1, 1] pixels to CLIP without its mean/std

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.lr <= 0 or self.l2_lambda < 0 or self.id_lambda < 0 or self.save_every < 0:
            raise ValueError("lr must be positive; l2_lambda, id_lambda and save_every non-negative")
        if not (0 <= self.lr_rampup <= 1 and 0 < self.lr_rampdown <= 1):
            raise ValueError("lr_rampup must lie in [0, 1] and lr_rampdown in (0, 1]")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {self.noise_mode!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def paper_lr(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """The paper's (and StyleCLIP's) schedule at progress ``t`` in [0, 1)."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * (min(1.0, t / rampup) if rampup > 0 else 1.0)


# ----------------------------------------------------------------------------------------- sources, targets

@dataclass
class Source:
    ws: torch.Tensor                  # [1, num_ws, w_dim]
    kind: str                         # "seed", "latent" or "mean"
    label: str                        # e.g. "seed 3", "ws.npy[0]", "mean"


def source_latent(G, seed: int | None = None, latent: str | Path | None = None, mean: bool = False,
                  truncation: float = 0.7, index: int = 0) -> Source:
    """The starting latent: a saved w+ (``latent``, row ``index``), the mean latent, or a seed at ``truncation``."""
    if sum((seed is not None, latent is not None, bool(mean))) > 1:
        raise ValueError("give one source: a seed, a saved latent or the mean latent")
    device = G.synthesis.const.device
    if latent is not None:
        ws = load_latents(latent, G.num_ws, G.w_dim)
        if not 0 <= index < ws.shape[0]:
            raise ValueError(f"{latent}: holds {ws.shape[0]} latent(s), no row {index}")
        return Source(ws[index:index + 1].to(device), "latent", f"{Path(latent).name}[{index}]")
    if mean:
        w_avg = G.mapping.w_avg.detach().float()
        return Source(w_avg.view(1, 1, -1).repeat(1, G.num_ws, 1).to(device), "mean", "mean")
    seed = 0 if seed is None else seed
    with torch.no_grad():
        ws = G.mapping(G.z_from_seeds([seed]), truncation_psi=truncation)
    return Source(ws.detach(), "seed", f"seed {seed} (truncation {truncation})")


@dataclass
class TargetPart:
    kind: str                         # "audio" or "text": sets the similarity scale
    embedding: torch.Tensor           # [D], unit norm
    layers: tuple[int, ...] | None = None  # the w+ layers this part steers; None: all
    label: str = ""                   # file or text, for logs


@dataclass
class Target:
    name: str                         # output folder name
    parts: list[TargetPart] = field(default_factory=list)

    def describe(self) -> str:
        return " + ".join(f"{p.kind} {p.label!r}" + ("" if p.layers is None else f" on layers "
                          f"{p.layers[0]}-{p.layers[-1]}") for p in self.parts)


def audio_embedding(encoder, path: str | Path) -> torch.Tensor:
    """The paper's preprocessing of one file, through ``encoder``, unit norm: [D]."""
    device = next(encoder.parameters()).device
    with torch.no_grad():
        e = encoder(features_for(path, "paper").to(device)).float()
    return F.normalize(e, dim=-1)[0]


def text_embedding(clip, text: str) -> torch.Tensor:
    if not text.strip():
        raise ValueError("the text target is empty")
    return clip.encode_text([text])[0]


def group_layers(num_ws: int) -> dict[str, tuple[int, ...]]:
    """Layer indices of each group (coarse 0-3, medium 4-7, fine 8+), clipped at ``num_ws`` as the mapper's."""
    slices = MapperConfig(num_ws=num_ws).group_slices
    return {g: tuple(range(a, b)) for g, (a, b) in slices.items()}


def parse_mix(text: str) -> dict[str, str]:
    """'coarse=text,fine=audio' -> {'coarse': 'text', 'fine': 'audio'}."""
    mix: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        group, _, kind = (s.strip() for s in part.partition("="))
        if group not in GROUPS or kind not in SCALES:
            raise ValueError(f"bad --mix entry {part!r}: use GROUP=KIND with GROUP in {GROUPS} and KIND in "
                             f"{tuple(SCALES)}, e.g. coarse=text,fine=audio")
        if group in mix:
            raise ValueError(f"--mix names the {group} layers twice")
        mix[group] = kind
    if not mix:
        raise ValueError("--mix is empty: use e.g. coarse=text,fine=audio")
    return mix


def mixed_parts(mix: Mapping[str, str], embeddings: Mapping[str, torch.Tensor], labels: Mapping[str, str],
                num_ws: int) -> list[TargetPart]:
    """One part per kind named in ``mix``, owning the layers of the groups given to it."""
    groups = group_layers(num_ws)
    parts = []
    for kind in dict.fromkeys(mix.values()):
        if kind not in embeddings:
            raise ValueError(f"--mix gives layers to {kind}, but no {kind} target was given")
        named = [g for g, k in mix.items() if k == kind]
        empty = [g for g in named if not groups[g]]
        if empty:
            raise ValueError(f"this generator ({num_ws} ws) has no {'/'.join(empty)} layers to mix")
        layers = tuple(sorted(i for g in named for i in groups[g]))
        parts.append(TargetPart(kind, embeddings[kind], layers, labels.get(kind, "")))
    return parts


def layout_key(target: Target) -> tuple:
    """Targets with equal keys can share a batch: the same number of parts, each owning the same layers."""
    return tuple(p.layers for p in target.parts)


# --------------------------------------------------------------------------------------------- the loop

@dataclass
class OptimizeResult:
    ws: torch.Tensor                  # [B, num_ws, w_dim], on the CPU
    source_ws: torch.Tensor           # [1, num_ws, w_dim]
    log: list[list[dict]]             # per target, per step: total, clip, l2, id, lr (+ clip_<kind> when mixed)
    source_image: np.ndarray          # [H, W, 3] uint8
    images: np.ndarray                # [B, H, W, 3] uint8, the results


Snapshot = Callable[[int, np.ndarray], None]  # (step, images [B, H, W, 3] uint8)


def clip_image_embedding(clip, img: torch.Tensor, clip_normalize: bool = False) -> torch.Tensor:
    """Generator images [B, 3, H, W] -> [B, D] unit norm through the paper's x7 upsample + average pool."""
    h = img.shape[-1]
    if 7 * h < clip.image_size:  # kernel 7H/224 would be < 1: upsample to 32 px first (kernel 1)
        factor = math.ceil(clip.image_size / 7 / h)
        img = F.interpolate(img, scale_factor=factor, mode="nearest")
    return clip.encode_image(img, paper_resize=True, clip_normalize=clip_normalize)


def optimize(G, clip, source: Source, targets: Sequence[Target], cfg: OptimizeConfig = OptimizeConfig(),
             identity=None, snapshot: Snapshot | None = None, progress: bool = True) -> OptimizeResult:
    """Optimise one w+ per target from ``source`` (see the module docstring); all targets in one batch.

    ``identity``: an ``arcface.IdentityLoss`` (faces) or None. ``snapshot(step, images)`` is called every
    ``cfg.save_every`` steps with the images whose loss that step logs (before its update).
    """
    from tqdm import tqdm

    if not targets:
        raise ValueError("no targets to optimise")
    keys = {layout_key(t) for t in targets}
    if len(keys) != 1 or not targets[0].parts:
        raise ValueError("targets in one batch must have the same parts on the same layers")
    device = G.synthesis.const.device
    B, num_ws = len(targets), G.num_ws
    masks, emb, scale = _slots(targets, num_ws, device)     # [K, num_ws], [K, B, D], [K, B]
    owned = masks.any(0)                                    # [num_ws]: layers any part steers
    w_src = source.ws.to(device).float().expand(B, -1, -1).clone()  # [B, num_ws, w_dim]
    w = w_src.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=cfg.lr)
    gates = torch.ones(B, num_ws, device=device)            # adaptive mask gates (paper: ones)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    synth = lambda ws: G.synthesis(ws, noise_mode=cfg.noise_mode, generator=noise_gen)  # noqa: E731
    edit = cfg.mode == "edit"
    use_id = identity is not None and cfg.id_lambda > 0
    with torch.no_grad():
        src_img = synth(w_src[:1])
        src_id = identity.features(src_img) if use_id else None
    logs: list[list[dict]] = [[] for _ in range(B)]
    bar = tqdm(range(cfg.steps), disable=not progress, unit="step", leave=False)
    for step in bar:
        lr = paper_lr(step / cfg.steps, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
        opt.param_groups[0]["lr"] = lr
        img = synth(w)                                                   # [B, 3, H, W]
        if snapshot is not None and cfg.save_every and step % cfg.save_every == 0:
            snapshot(step, to_uint8(img))
        f = clip_image_embedding(clip, img, cfg.clip_normalize)          # [B, D]
        clip_terms = 1 - scale * torch.einsum("bd,kbd->kb", f, emb)      # [K, B]
        per_layer = ((w - w_src) ** 2).sum(-1)                           # [B, num_ws]
        if cfg.adaptive_mask:
            per_layer = torch.sigmoid(gates) * per_layer
        l2 = per_layer.sum(-1)                                           # [B]
        id_term = identity(img, src_id) if use_id else torch.zeros(B, device=device)
        reg = cfg.l2_lambda * l2 + cfg.id_lambda * id_term if edit else torch.zeros(B, device=device)
        total = clip_terms.sum(0) + reg                                  # [B]
        opt.zero_grad(set_to_none=True)
        w.grad = _masked_grad(w, clip_terms, reg, masks, owned)
        opt.step()
        if cfg.adaptive_mask:
            with torch.no_grad():
                done = per_layer.detach()
                gates -= cfg.mask_step * done * (1 - done)
        _append_log(logs, targets, step, total, clip_terms, l2, id_term, lr)
        bar.set_postfix(loss=f"{total.mean().item():.4f}", refresh=False)
    with torch.no_grad():
        result = synth(w.detach())
    return OptimizeResult(ws=w.detach().cpu(), source_ws=w_src[:1].cpu(), log=logs,
                          source_image=to_uint8(src_img)[0], images=to_uint8(result))


def _slots(targets: Sequence[Target], num_ws: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per part k: its layer mask [K, num_ws], embeddings [K, B, D] and similarity scales [K, B]."""
    K = len(targets[0].parts)
    masks = torch.zeros(K, num_ws, dtype=torch.bool, device=device)
    for k, part in enumerate(targets[0].parts):
        layers = range(num_ws) if part.layers is None else part.layers
        if any(not 0 <= i < num_ws for i in layers):
            raise ValueError(f"part {k} names layers outside 0..{num_ws - 1}")
        masks[k, list(layers)] = True
    for t in targets:
        for p in t.parts:
            if p.kind not in SCALES:
                raise ValueError(f"{t.name}: unknown target kind {p.kind!r} (use one of {tuple(SCALES)})")
    emb = torch.stack([torch.stack([F.normalize(t.parts[k].embedding.float(), dim=-1) for t in targets])
                       for k in range(K)]).to(device)
    scale = torch.tensor([[SCALES[t.parts[k].kind] for t in targets] for k in range(K)], device=device)
    return masks, emb, scale


def _masked_grad(w: torch.Tensor, clip_terms: torch.Tensor, reg: torch.Tensor, masks: torch.Tensor,
                 owned: torch.Tensor) -> torch.Tensor:
    """Each part's CLIP gradient on its own layers, the regulariser's on all owned layers, zero elsewhere."""
    K = clip_terms.shape[0]
    if K == 1:  # one part: one backward pass
        (g,) = torch.autograd.grad(clip_terms.sum() + reg.sum(), w)
        return g * owned[None, :, None]
    g = torch.zeros_like(w)
    for k in range(K):
        (gk,) = torch.autograd.grad(clip_terms[k].sum(), w, retain_graph=True)
        g += gk * masks[k][None, :, None]
    if reg.requires_grad:
        (gr,) = torch.autograd.grad(reg.sum(), w)
        g += gr * owned[None, :, None]
    return g


def _append_log(logs, targets, step, total, clip_terms, l2, id_term, lr) -> None:
    tot, cl, l2v, idv = (x.detach().cpu().tolist() for x in (total, clip_terms.sum(0), l2, id_term))
    per_part = clip_terms.detach().cpu().tolist() if clip_terms.shape[0] > 1 else None
    for b, t in enumerate(targets):
        row = {"step": step, "total": tot[b], "clip": cl[b], "l2": l2v[b], "id": idv[b], "lr": lr}
        if per_part is not None:
            for k, p in enumerate(t.parts):
                row[f"clip_{p.kind}"] = per_part[k][b]
        logs[b].append(row)
