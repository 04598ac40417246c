"""What the training and evaluation runs read, chosen by name: a labelled dataset, a CLIP, prompt lists.

The run options (``TrainEncoderOptions``, ``ZeroShotOptions``, ...) inherit the fields of ``DatasetChoice``
and ``ClipChoice`` below, so every run names its data and its CLIP the same way, with the same flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from livesound.models.clip import (
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    PAPER_TEMPLATES,
    SOUND_TEMPLATES,
    ClipModel,
)
from livesound.models.presets import clip_from_preset, load_preset
from livesound.train.datasets import Dataset, load_dataset

Report = Callable[[str], None]
TEMPLATES = {"paper": PAPER_TEMPLATES, "sound": SOUND_TEMPLATES}


def quiet(text: str) -> None:
    """The default ``report`` of a run: its one-line notes go nowhere."""
    del text


@dataclass
class DatasetChoice:
    """Labelled clips: a dataset root read by ``livesound.train.datasets.load_dataset``."""
    data: str | Path | None = None     # label folders, ESC-50 or UrbanSound8K root; with ``csv`` the CSV's folder
    csv: str | Path | None = None      # file,label[,frame[,fold]] rows, or VGGSound's vggsound.csv
    layout: str = "auto"               # auto (from the metadata files present), folder, csv, vggsound, esc50, us8k
    skip_missing: bool = False         # drop listed clips whose files are missing instead of refusing

    def load_dataset(self, folds: str | Sequence[str] | None = None) -> Dataset:
        """The dataset, cut to ``folds`` (e.g. ``"1,2,3,4"``) when given."""
        if self.data is None:
            raise ValueError("no dataset: give --data")
        ds = load_dataset(self.data, self.layout, self.csv, skip_missing=self.skip_missing)
        chosen = names(folds)
        return ds.select(folds=chosen) if chosen else ds


@dataclass
class ClipChoice:
    """A CLIP: ``clip`` weights (file or open_clip tag) if given, else the preset's, else ViT-B-32 openai."""
    preset: str | None = None
    clip: str | Path | None = None
    clip_model: str = DEFAULT_MODEL    # open_clip model name for ``clip``

    def load_clip(self, device: str | torch.device = "cpu", report: Report = quiet) -> ClipModel:
        if self.clip is not None:
            return ClipModel.load(self.clip_model, self.clip, device=device)
        if self.preset is not None:
            clip = clip_from_preset(load_preset(self.preset), device=device)
            if clip.weights is None:
                report(f"note: preset {self.preset!r} has an untrained CLIP; pass --clip WEIGHTS for real results")
            return clip
        return ClipModel.load(DEFAULT_MODEL, DEFAULT_WEIGHTS, device=device)


def names(value: str | Sequence[str] | None) -> list[str]:
    """``"a, b,,c"`` or ``["a", "b", "c"]`` -> ``["a", "b", "c"]`` (blanks dropped)."""
    if not value:
        return []
    parts = value.split(",") if isinstance(value, str) else value
    return [p.strip() for p in parts if p.strip()]


def prompt_list(value: str | Sequence[str] | None) -> list[str]:
    """Text targets: a list, comma-separated text, or a ``.txt`` file with one prompt per line."""
    if isinstance(value, str) and Path(value).suffix == ".txt":
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{path}: no such prompt file")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names(value)


def templates_named(name: str) -> tuple[str, ...]:
    """The prompt templates ``paper`` (the bare label, as the paper tokenizes) or ``sound`` (an ensemble)."""
    if name not in TEMPLATES:
        raise ValueError(f"templates must be one of {', '.join(TEMPLATES)}, got {name!r}")
    return TEMPLATES[name]


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads for torch (0: leave torch's default)."""
    if n < 0:
        raise ValueError("--threads must not be negative")
    if n:
        torch.set_num_threads(n)
