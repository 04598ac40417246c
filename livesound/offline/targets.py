"""Outputs of latent optimisation on disk, and resuming an interrupted run.

Each target gets ``OUT/<name>/``:
    source.png        the source latent's image
    result.png        the optimised latent's image
    side_by_side.png  source | result
    log.json          the loss terms per step (total, clip, l2, id, lr) with the config, source and target
    steps/step_XXXX.png  every ``save_every`` steps: the image whose loss that step logs
    result.npy        the optimised w+, float32 [1, num_ws, w_dim]; written LAST
Every file is written to a temporary name and renamed into place, and ``result.npy`` comes after all the
others, so a folder holding ``result.npy`` is complete: a rerun skips it. A target interrupted before its
``result.npy`` is optimised again from the start (its partial files are overwritten).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from livesound.audio.io import AudioError
from livesound.files import atomic_write, write_json, write_npy
from livesound.offline.optimize import OptimizeConfig, OptimizeResult, Source, Target, layout_key, optimize


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
