"""Synthetic labelled audio written as real WAV/FLAC files in every dataset layout livesound reads.

Three classes a tiny encoder can tell apart from the spectrogram alone: a low tone (200-300 Hz, "drone"), a
high tone (3-4 kHz, "high beep") and white noise, each clip 0.6 s with a random level and frequency, at
44.1 or 22.05 kHz, so the loader's decoding and resampling are exercised too. Layouts follow the datasets'
own metadata formats (ESC-50's meta/esc50.csv, UrbanSound8K's metadata/UrbanSound8K.csv, VGGSound's
header-less CSV).

``FOUR_CLASSES`` are four textures a small encoder learns apart in a few dozen steps of the paper's loss:
the drone (a horizontal line), white noise (an even fill), a "drum roll" (12-16 hits a second: vertical
lines) and a "glissando" (upward sweeps, 300 Hz to 3 kHz twice a second: diagonal lines). They differ in
local shape, not only in pitch: a convolutional encoder that averages over the whole spectrogram hardly sees
where in frequency a line lies (the drone and the high beep start out as one class), and each is steady, so
the paper's audio-vs-augmented-audio term has nothing within a class to pull apart.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

# Names whose embeddings in the demo preset's tiny random CLIP are far apart (pairwise cosine <= 0.35), so the
# planted problem is learnable zero-shot in a few steps; "low tone" and "white noise" sit at cosine 0.67.
CLASSES = ("drone", "high_beep", "white_noise")
# Pairwise cosine <= 0.46 in that CLIP (of ~40 sound names tried, the four-name set with the lowest maximum).
FOUR_CLASSES = ("drone", "drum_roll", "glissando", "white_noise")


def clip(label: str, rng: np.random.Generator, sr: int = 22050, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    if label == "drone":
        x = np.sin(2 * np.pi * rng.uniform(200, 300) * t)
    elif label == "high_beep":
        x = np.sin(2 * np.pi * rng.uniform(3000, 4000) * t)
    elif label == "drum_roll":
        hit = np.arange(int(0.005 * sr))                                      # 5 ms noise bursts
        x = np.zeros(t.size)
        for start in np.arange(rng.uniform(0, 0.05), seconds - 0.01, 1 / rng.uniform(12, 16)):
            i = int(start * sr)
            x[i:i + hit.size] += rng.standard_normal(hit.size) * np.exp(-hit / (0.001 * sr))
        x /= np.abs(x).max()
    elif label == "glissando":
        phase = (t * 2 + rng.uniform(0, 1)) % 1                               # two sweeps a second
        freq = 300 * 10 ** phase                                              # 300 Hz -> 3 kHz, log-spaced
        x = np.sin(2 * np.pi * np.cumsum(freq) / sr)
    else:
        x = rng.standard_normal(t.size)
    return (0.3 * rng.uniform(0.5, 1.0) * x).astype(np.float32)


def _write(path: Path, label: str, rng: np.random.Generator, i: int, seconds: float = 0.6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sr = 22050 if i % 2 else 44100
    sf.write(path, clip(label, rng, sr, seconds), sr)


def write_folder(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        for i in range(per_class):
            _write(root / label / f"{label}_{i}.{'flac' if i % 3 == 0 else 'wav'}", label, rng, i)
    return root


def write_csv(root: Path, per_class: int = 4, seed: int = 1, frames: bool = False, folds: int = 0) -> Path:
    """``root/labels.csv`` with file,label[,frame[,fold]] rows; frames are small solid-colour PNGs per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = [["file", "label"] + (["frame"] if frames or folds else []) + (["fold"] if folds else [])]
    colours = {"drone": (200, 30, 30), "high_beep": (30, 200, 30), "white_noise": (30, 30, 200)}
    for label in CLASSES:
        for i in range(per_class):
            name = f"clips/{label}-{i}.wav"
            _write(root / name, label, rng, i)
            row = [name, label]
            if frames:
                frame = f"frames/{label}-{i}.png"
                (root / "frames").mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (40, 30), colours[label]).save(root / frame)
                row.append(frame)
            elif folds:
                row.append("")
            if folds:
                row.append(str(i % folds + 1))
            rows.append(row)
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root / "labels.csv"


def write_esc50(root: Path, per_fold: int = 1, seed: int = 2, classes: tuple[str, ...] = CLASSES,
                seconds: float = 0.6) -> Path:
    """ESC-50's layout: meta/esc50.csv and audio/<fold>-<src>-<take>-<target>.wav, folds 1-5 (ESC-50's own
    clips last 5 s; ``seconds``)."""
    rng = np.random.default_rng(seed)
    rows = [["filename", "fold", "target", "category", "esc10", "src_file", "take"]]
    for fold in range(1, 6):
        for target, label in enumerate(classes):
            for i in range(per_fold):
                src = 1000 * fold + 10 * target + i
                name = f"{fold}-{src}-A-{target}.wav"
                _write(root / "audio" / name, label, rng, i, seconds)
                rows.append([name, fold, target, label, "False", src, "A"])
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def write_us8k(root: Path, per_fold: int = 1, seed: int = 3) -> Path:
    """UrbanSound8K's layout: metadata/UrbanSound8K.csv and audio/fold<N>/<fsID>-<classID>-0-<i>.wav, folds 1-10."""
    rng = np.random.default_rng(seed)
    rows = [["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]]
    for fold in range(1, 11):
        for cid, label in enumerate(CLASSES):
            for i in range(per_fold):
                fs_id = 100 * fold + cid
                name = f"{fs_id}-{cid}-0-{i}.wav"
                _write(root / "audio" / f"fold{fold}" / name, label, rng, i)
                rows.append([name, fs_id, 0.0, 0.6, 1, fold, cid, label])
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def write_vggsound(root: Path, seed: int = 4) -> Path:
    """VGGSound's header-less vggsound.csv (youtube_id,start_seconds,label,split) and clips named
    <youtube_id>_<start:06d>.flac in audio/; one listed clip is missing, as in real downloads."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, label in enumerate(CLASSES):
        for i in range(2):
            yid, start = f"-{k}x{i}AbCdEf", 30 * i + k
            rows.append([yid, start, label.replace("_", " "), "train" if i == 0 else "test"])
            _write(root / "audio" / f"{yid}_{start:06d}.flac", label, rng, i)
    rows.append(["gone0000000", 10, "drone", "train"])  # deleted from YouTube: no file
    with open(root / "vggsound.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root / "vggsound.csv"
