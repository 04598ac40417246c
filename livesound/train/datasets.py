"""Labelled audio datasets by layout, and the on-disk cache of their spectrograms.

Layouts (``load_dataset(root, layout="auto")`` tells them apart by their metadata files):

- ``folder``: ``root/<label>/<clip>.wav|flac|ogg`` (nested folders are fine; the label is the parent folder).
- ``csv``: a CSV of ``file,label[,frame]`` rows (a header ``file,label[,frame]`` is skipped; paths relative to
  the CSV's folder). ``frame`` is an image of the clip's video (JPEG/PNG), used by ``train-encoder`` as a
  CLIP image target. An optional fourth column ``fold`` groups rows for the fold-wise evaluations.
- ``vggsound``: VGGSound's own ``vggsound.csv``, no header, rows ``youtube_id,start_seconds,label,split``.
  Clips are looked for as ``<youtube_id>_<start_seconds:06d>.<wav|flac|ogg>`` (the naming of VGGSound's
  released archive and of the usual download scripts, e.g. ``---g-f_I2yQ_000001.flac``) in the CSV's folder
  or its ``audio/`` subfolder, with a frame ``<same name>.jpg`` in ``frames/`` when present. The split
  (train/test) is the fold. VGGSound's YouTube clips vanish over time, so ``skip_missing`` drops the rows
  without a file (with a count) instead of refusing the dataset.
- ``esc50``: ESC-50's ``meta/esc50.csv`` (``filename,fold,target,category,esc10,src_file,take``), audio in
  ``audio/``, folds 1-5; the label is ``category``.
- ``us8k``: UrbanSound8K's ``metadata/UrbanSound8K.csv``
  (``slice_file_name,fsID,start,end,salience,fold,classID,class``), audio in ``audio/fold<N>/``, folds 1-10;
  the label is ``class``.

Every problem (no such folder, a missing clip, a row without a label, an unknown label asked for, an empty
fold) raises ``DatasetError`` with one line naming the file and the problem.

Spectrogram cache: ``SpecCache`` keeps each clip's paper log-mel (``unit_db`` over the whole clip, before any
crop; [128, frames] float16) in ``<cache>/<key>.npy``, the key hashing the file's resolved path, mtime, size
and every preprocessing parameter, so an edited file or a changed setting is recomputed, never served stale.
Entries are written atomically; the value a clip gets is the float16 one on the first epoch too, so every
epoch sees the same numbers.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from livesound.audio.features import PaperLogMel, unit_db
from livesound.audio.io import load_audio
from livesound.files import atomic_write

log = logging.getLogger("livesound")

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
LAYOUTS = ("auto", "folder", "csv", "vggsound", "esc50", "us8k")
ESC50_CSV, US8K_CSV = Path("meta/esc50.csv"), Path("metadata/UrbanSound8K.csv")
CACHE_VERSION = "1"


class DatasetError(ValueError):
    """A dataset that cannot be used; the message is one line naming the file and the problem."""


@dataclass
class Clip:
    path: Path
    label: str
    fold: str | None = None           # "1".."5" (ESC-50), "1".."10" (US8K), "train"/"test" (VGGSound), or None
    frame: Path | None = None         # an image of the clip's video, if the dataset has one


@dataclass
class Dataset:
    clips: list[Clip]
    layout: str
    source: Path                      # the folder or metadata file the clips came from
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = sorted({c.label for c in self.clips})

    @property
    def folds(self) -> list[str]:
        """Fold names in natural order (numbers by value), empty when the dataset has none."""
        names = {c.fold for c in self.clips if c.fold is not None}
        return sorted(names, key=lambda f: (0, int(f), "") if f.isdigit() else (1, 0, f))

    def targets(self) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[c.label] for c in self.clips]

    def select(self, folds: Sequence[str] | None = None, labels: Sequence[str] | None = None) -> "Dataset":
        """The clips in ``folds`` (all if None) with one of ``labels`` (all if None); errors name what is empty."""
        clips = self.clips
        if folds is not None:
            known = set(self.folds)
            unknown = [f for f in folds if f not in known]
            if unknown:
                raise DatasetError(f"{self.source}: no fold {', '.join(unknown)} (folds: "
                                   f"{', '.join(self.folds) or 'none'})")
            clips = [c for c in clips if c.fold in set(folds)]
        if labels is not None:
            unknown = sorted(set(labels) - set(self.classes))
            if unknown:
                raise DatasetError(f"{self.source}: unknown label(s) {', '.join(unknown[:5])} (labels: "
                                   f"{', '.join(self.classes[:8])}{', ...' if len(self.classes) > 8 else ''})")
            clips = [c for c in clips if c.label in set(labels)]
        if not clips:
            raise DatasetError(f"{self.source}: no clips in folds {list(folds or [])} with labels "
                               f"{list(labels or [])}")
        return Dataset(clips, self.layout, self.source, classes=list(labels) if labels else list(self.classes))

    def summary(self) -> str:
        counts = Counter(c.fold for c in self.clips)
        folds = "" if None in counts else f", {len(counts)} folds"
        return f"{len(self.clips)} clips, {len(self.classes)} labels{folds} ({self.layout}: {self.source})"


def label_text(label: str) -> str:
    """A class name as text: ``dog_bark`` -> ``dog bark`` (ESC-50 and US8K write labels with _ and -)."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


# ----------------------------------------------------------------------------------------------- loading

def load_dataset(root: str | Path, layout: str = "auto", csv_path: str | Path | None = None,
                 skip_missing: bool = False) -> Dataset:
    """The clips of the dataset at ``root`` (see the module docstring); every file is checked to exist."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if csv_path is not None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise DatasetError(f"{csv_path}: no such CSV file")
    elif not root.exists():
        raise DatasetError(f"{root}: no such dataset folder")
    if layout == "auto":
        layout = _detect(root, csv_path)
    if layout == "esc50":
        clips = _esc50(root)
    elif layout == "us8k":
        clips = _us8k(root)
    elif layout in ("csv", "vggsound"):
        if csv_path is None:
            raise DatasetError(f"{root}: the {layout} layout needs --csv FILE")
        clips = _vggsound(csv_path) if layout == "vggsound" else _csv(csv_path)
    else:
        clips = _folder(root)
    source = csv_path if layout in ("csv", "vggsound") else root
    clips = _check_files(clips, source, skip_missing)
    return Dataset(clips, layout, source)


def _detect(root: Path, csv_path: Path | None) -> str:
    if csv_path is not None:
        with open(csv_path, newline="") as f:
            first = next((r for r in csv.reader(f) if r), [])
        looks_vgg = len(first) == 4 and _is_number(first[1]) and first[3].strip() in ("train", "test")
        return "vggsound" if looks_vgg else "csv"
    if (root / ESC50_CSV).is_file():
        return "esc50"
    if (root / US8K_CSV).is_file():
        return "us8k"
    return "folder"


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _rows(path: Path, header: Sequence[str]) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such metadata file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [h for h in header if h not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)} (has {reader.fieldnames})")
        rows = list(reader)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def _esc50(root: Path) -> list[Clip]:
    rows = _rows(root / ESC50_CSV, ("filename", "fold", "category"))
    return [Clip(root / "audio" / r["filename"], r["category"], str(int(r["fold"]))) for r in rows]


def _us8k(root: Path) -> list[Clip]:
    rows = _rows(root / US8K_CSV, ("slice_file_name", "fold", "class"))
    return [Clip(root / "audio" / f"fold{int(r['fold'])}" / r["slice_file_name"], r["class"], str(int(r["fold"])))
            for r in rows]


def _csv(path: Path) -> list[Clip]:
    clips = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            row = [c.strip() for c in row]
            if not row or not any(row) or [c.lower() for c in row[:2]] == ["file", "label"]:
                continue
            if len(row) < 2 or not row[0] or not row[1]:
                raise DatasetError(f"{path}: line {n}: rows must be file,label[,frame[,fold]]; got {row}")
            frame = _under(path.parent, row[2]) if len(row) > 2 and row[2] else None
            fold = row[3] if len(row) > 3 and row[3] else None
            clips.append(Clip(_under(path.parent, row[0]), row[1], fold, frame))
    if not clips:
        raise DatasetError(f"{path}: no file,label rows")
    return clips


def vggsound_name(youtube_id: str, start: str) -> str:
    """VGGSound's clip name: ``<youtube_id>_<start seconds, 6 digits>`` (no suffix)."""
    return f"{youtube_id}_{int(float(start)):06d}"


def _vggsound(path: Path) -> list[Clip]:
    clips = []
    folders = [path.parent, path.parent / "audio"]
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 4 or not _is_number(row[1]):
                raise DatasetError(f"{path}: line {n}: VGGSound rows are youtube_id,start_seconds,label,split; "
                                   f"got {row}")
            name = vggsound_name(row[0], row[1])
            found = next((d / f"{name}{s}" for d in folders for s in AUDIO_SUFFIXES if (d / f"{name}{s}").is_file()),
                         folders[0] / f"{name}.flac")
            frame = path.parent / "frames" / f"{name}.jpg"
            clips.append(Clip(found, row[2].strip(), row[3].strip(), frame if frame.is_file() else None))
    if not clips:
        raise DatasetError(f"{path}: no rows")
    return clips


def _folder(root: Path) -> list[Clip]:
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (pass --csv for a CSV of file,label rows)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DatasetError(f"{root}: no {'/'.join(AUDIO_SUFFIXES)} files in label folders")
    loose = [p for p in files if p.parent == root]
    if loose:
        raise DatasetError(f"{loose[0]}: audio directly in the dataset folder has no label folder")
    return [Clip(p, p.parent.name) for p in files]


def _under(base: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def _check_files(clips: list[Clip], source: Path, skip_missing: bool) -> list[Clip]:
    missing = [c for c in clips if not c.path.is_file()]
    if missing and not skip_missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{missing[0].path}: listed in {source} but not found{more}")
    if missing:
        log.warning("%s: skipped %d of %d clips whose files are missing", source, len(missing), len(clips))
        clips = [c for c in clips if c.path.is_file()]
    no_frame = [c.frame for c in clips if c.frame is not None and not c.frame.is_file()]
    if no_frame:
        raise DatasetError(f"{no_frame[0]}: frame listed in {source} but not found")
    if not clips:
        raise DatasetError(f"{source}: none of its clips were found")
    return clips


def assign_folds(dataset: Dataset, k: int, seed: int = 0) -> Dataset:
    """A copy with ``k`` stratified folds "1".."k" for a dataset without folds: per label, a seeded shuffle
    dealt round-robin. Datasets with folds are returned unchanged."""
    if dataset.folds:
        return dataset
    if k < 2:
        raise DatasetError(f"{dataset.source}: has no folds; need at least 2 to make some, got {k}")
    rng = np.random.default_rng(seed)
    fold = [""] * len(dataset.clips)
    for label in dataset.classes:
        mine = [i for i, c in enumerate(dataset.clips) if c.label == label]
        for n, j in enumerate(rng.permutation(len(mine))):
            fold[mine[j]] = str(n % k + 1)
    clips = [Clip(c.path, c.label, f, c.frame) for c, f in zip(dataset.clips, fold)]
    return Dataset(clips, dataset.layout, dataset.source, classes=list(dataset.classes))


# ------------------------------------------------------------------------------------------ spectrograms

class SpecCache:
    """The paper log-mel of each clip, [n_mels, frames] in [0, 1], computed once and kept on disk as float16.

    ``folder`` None keeps nothing: every call computes, and returns the exact float32 values (what
    evaluations use by default). See the module docstring for the key.
    """

    def __init__(self, folder: str | Path | None, pad_mode: str = "reflect"):
        self.folder = Path(folder) if folder is not None else None
        self.features = PaperLogMel(pad_mode=pad_mode)
        self.params = f"v{CACHE_VERSION}:sr44100:nfft2048:hop512:mels128:{pad_mode}:unit_db80:float16"

    def key(self, path: Path) -> str:
        st = path.stat()
        text = f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.params}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, path: Path) -> torch.Tensor:
        """[n_mels, frames] float32 (values rounded through float16)."""
        entry = self.folder / f"{self.key(path)}.npy" if self.folder is not None else None
        if entry is not None and entry.is_file():
            try:
                return torch.from_numpy(np.load(entry, allow_pickle=False).astype(np.float32))
            except (OSError, ValueError) as e:  # a damaged entry is recomputed, not trusted
                log.warning("%s: unreadable cache entry, recomputing (%s)", entry, e)
        spec = self._compute(path)
        if entry is None:
            return torch.from_numpy(spec)

        half = spec.astype(np.float16)
        atomic_write(entry, lambda tmp: np.save(open(tmp, "wb"), half))
        return torch.from_numpy(half.astype(np.float32))

    def _compute(self, path: Path) -> np.ndarray:
        wave = torch.from_numpy(load_audio(path))[None]
        with torch.no_grad():
            spec = unit_db(self.features.mel_power(wave))[0]  # [128, frames]
        return spec.numpy()
