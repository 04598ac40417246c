"""Outputs of latent optimisation on disk, and resuming an interrupted run.

Each target gets ``OUT/<name>/``:
    source.png        the source latent's image
    result.png        the optimised latent's image
    side_by_side.png  source | result
    log.json          the loss terms per step (total, clip, l2, id, lr) with the config, source and target
    steps/step_XXXX.png  every ``save_every`` steps: the image whose loss that step logs
    result.npy        the optimised w+, float32 [1, num_ws, w_dim]; written LAST
``optimize_targets`` is ``livesound optimize``: it plans one target per audio file (mixed with the text when a
mix names both) plus a text-only target, and optimises the ones not finished yet.

Every file is written to a temporary name and renamed into place, and ``result.npy`` comes after all the
others, so a folder holding ``result.npy`` is complete: a rerun skips it. A target interrupted before its
``result.npy`` is optimised again from the start (its partial files are overwritten).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from livesound.audio.io import AudioError, check_readable
from livesound.files import atomic_write, write_json, write_npy
from livesound.models.arcface import IdentityLoss, load_arcface
from livesound.offline.networks import ModelOptions, load_networks
from livesound.offline.optimize import (
    OptimizeConfig,
    OptimizeResult,
    Source,
    Target,
    TargetPart,
    audio_embedding,
    layout_key,
    mixed_parts,
    optimize,
    parse_mix,
    source_latent,
    text_embedding,
)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
RESULT = "result.npy"


def audio_files(path: str | Path) -> list[Path]:
    """One audio file, or the .wav/.flac/.ogg files directly in a folder, sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise AudioError(path, f"no {'/'.join(AUDIO_SUFFIXES)} files in this folder")
        return files
    if not path.exists():
        raise AudioError(path, "no such file or folder")
    return [path]


def slug(text: str, limit: int = 48) -> str:
    """A folder name for a text target: 'A rainy day!' -> 'a_rainy_day'."""
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_")
    return s or "text"


def is_complete(folder: Path) -> bool:
    return (folder / RESULT).is_file()


def write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"))


def write_target(folder: Path, result: OptimizeResult, b: int, target: Target, source: Source,
                 cfg: OptimizeConfig) -> None:
    """All outputs of target ``b`` of ``result``; ``result.npy`` last (see the module docstring)."""
    write_png(folder / "source.png", result.source_image)
    write_png(folder / "result.png", result.images[b])
    write_png(folder / "side_by_side.png", np.concatenate([result.source_image, result.images[b]], axis=1))
    write_json(folder / "log.json", {"name": target.name, "target": target.describe(), "source": source.label,
                                     "config": cfg.to_dict(), "steps": result.log[b]})
    write_npy(folder / RESULT, result.ws[b:b + 1].numpy().astype(np.float32))


def snapshot_writer(folders: Sequence[Path]) -> Callable[[int, np.ndarray], None]:
    def write(step: int, images: np.ndarray) -> None:
        for folder, img in zip(folders, images):
            write_png(folder / "steps" / f"step_{step:04d}.png", img)

    return write


@dataclass
class TargetSpec:
    """A target to optimise, built only when it is not already done (building may encode audio)."""
    name: str
    build: Callable[[], Target]


@dataclass
class RunSummary:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    idle: bool = False                # every target was finished already: nothing was built


def run_targets(G, clip, source: Source, specs: Sequence[TargetSpec], cfg: OptimizeConfig, out: str | Path,
                batch: int = 1, identity=None, progress: bool = True,
                report: Callable[[str], None] = lambda s: None) -> RunSummary:
    """Optimise every spec whose ``OUT/<name>/result.npy`` does not exist, ``batch`` targets at a time."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two targets would write to the same folder: {', '.join(dupes)}")
    out = Path(out)
    summary = RunSummary()
    pending: list[TargetSpec] = []
    for s in specs:
        if is_complete(out / s.name):
            summary.skipped.append(s.name)
        else:
            pending.append(s)
    if summary.skipped:
        report(f"skipping {len(summary.skipped)} finished target(s): {', '.join(summary.skipped)}")
    t0 = time.perf_counter()
    for i in range(0, len(pending), batch):
        chunk = [s.build() for s in pending[i:i + batch]]
        groups: dict[tuple, list[Target]] = {}
        for t in chunk:
            groups.setdefault(layout_key(t), []).append(t)
        for targets in groups.values():
            report(f"optimising {len(targets)} target(s): " + "; ".join(f"{t.name} ({t.describe()})"
                                                                         for t in targets))
            folders = [out / t.name for t in targets]
            result = optimize(G, clip, source, targets, cfg, identity=identity,
                              snapshot=snapshot_writer(folders) if cfg.save_every else None, progress=progress)
            for b, (t, folder) in enumerate(zip(targets, folders)):
                write_target(folder, result, b, t, source, cfg)
                summary.written.append(t.name)
    summary.seconds = time.perf_counter() - t0
    return summary


# ------------------------------------------------------------------------------------ livesound optimize

@dataclass
class OptimizeOptions:
    """The ``optimize`` command's job (the loop's hyperparameters inside it become an ``OptimizeConfig``)."""
    models: ModelOptions = field(default_factory=ModelOptions)
    audio: str | None = None          # a file, or a folder of .wav/.flac/.ogg (one target each)
    text: str | None = None
    mix: str | None = None            # layer groups per modality, e.g. "coarse=text,fine=audio"
    seed: int | None = None           # source latent: a seed (default 0), ...
    latent: str | None = None         # ... a saved w+ (first row) ...
    mean: bool = False                # ... or the mean latent (free generation)
    trunc: float | None = None        # truncation of a seed's latent; None: the preset's
    steps: int = 300
    lr: float = 0.05
    l2: float = 0.008
    id_weights: str | None = None     # IR-SE50 ArcFace weights for the identity loss
    id_lambda: float | None = None    # None: OptimizeConfig's default
    adaptive_mask: bool = False
    save_every: int = 20
    batch: int = 4
    out: str = "out/optimize"


def plan_targets(files: Sequence[Path], text: str | None, mix: dict | None) -> list[tuple[str, Path | None]]:
    """(folder name, audio file or None) per target: each file (carrying the text when ``mix`` gives audio
    layers), plus a text-only target unless the mix puts the text into every audio target."""
    if mix is not None:
        for kind, given in (("audio", bool(files)), ("text", bool(text))):
            if given and kind not in mix.values():
                raise ValueError(f"--{kind} is given but --mix gives it no layers")
    text_name = f"text-{slug(text)}" if text else None
    if mix is not None and "audio" in mix.values():
        return [(f.stem, f) for f in files]
    return [(f.stem, f) for f in files if mix is None] + ([(text_name, None)] if text_name else [])


def optimize_targets(opts: OptimizeOptions, log: Callable[[str], None] = lambda s: None) -> RunSummary:
    """Optimise every planned target not finished in ``opts.out`` (see the module docstring). Nothing is built
    when all are finished; every audio file is checked before any network is."""
    if not opts.audio and not opts.text:
        raise ValueError("give a target: --audio FILE|DIR, --text TEXT, or both with --mix")
    mix = parse_mix(opts.mix) if opts.mix else None
    files = audio_files(opts.audio) if opts.audio else []
    plan = plan_targets(files, opts.text, mix)
    if opts.id_lambda is not None and opts.id_lambda > 0 and not opts.id_weights:
        raise ValueError("--id-lambda needs --id-weights (IR-SE50 ArcFace weights, model_ir_se50.pth)")
    if opts.batch < 1:
        raise ValueError("--batch must be at least 1")
    out = Path(opts.out)
    if all(is_complete(out / name) for name, _ in plan):
        return RunSummary(skipped=[name for name, _ in plan], idle=True)
    for f in files:
        check_readable(f)

    identity = IdentityLoss(load_arcface(opts.id_weights, opts.models.device)) if opts.id_weights else None
    nets = load_networks(opts.models, need_encoder=bool(files), log=log)
    G = nets.G
    psi = nets.preset.truncation_psi if opts.trunc is None else opts.trunc
    cfg = OptimizeConfig(steps=opts.steps, lr=opts.lr, l2_lambda=opts.l2, truncation=psi,
                         id_lambda=OptimizeConfig.id_lambda if opts.id_lambda is None else opts.id_lambda,
                         mode="free" if opts.mean else "edit", adaptive_mask=opts.adaptive_mask,
                         save_every=opts.save_every, seed=opts.seed or 0, noise_mode=nets.preset.noise_mode)
    source = source_latent(G, seed=None if (opts.latent or opts.mean) else opts.seed, latent=opts.latent,
                           mean=opts.mean, truncation=psi)
    specs = [_target_spec(name, f, opts.text, mix, G, nets.clip, nets.encoder) for name, f in plan]
    log(f"{len(specs)} target(s) from {source.label}, {cfg.steps} steps at lr {cfg.lr}, {G.resolution} px -> {out}")
    return run_targets(G, nets.clip, source, specs, cfg, out, batch=opts.batch, identity=identity, report=log)


def _target_spec(name: str, audio: Path | None, text: str | None, mix, G, clip, encoder) -> TargetSpec:
    """A lazily built target: the audio is encoded only if the target is not already done."""

    def make() -> Target:
        emb, labels = {}, {}
        if text and (mix is not None or audio is None):  # a text target, or text mixed into this one
            emb["text"], labels["text"] = text_embedding(clip, text), text
        if audio is not None:
            emb["audio"], labels["audio"] = audio_embedding(encoder, audio), str(audio)
        if mix is not None:
            return Target(name, mixed_parts(mix, emb, labels, G.num_ws))
        kind = "audio" if audio is not None else "text"
        return Target(name, [TargetPart(kind, emb[kind], label=labels[kind])])

    return TargetSpec(name, make)
