"""Audio files into CLIP-space embeddings: what ``livesound embed`` does, as library functions.

``paper`` preprocessing is the paper's pipeline (``PaperLogMel``): the whole file at 44.1 kHz mono, mel power
with reflect padding, dB against the clip's maximum, then the first 864 frames (~10 s) zero-padded at the end
or, for longer clips, the centre 864 frames (the paper's training takes a random crop; inference here is
deterministic). ``stream`` preprocessing is what the live loop sees: the file pushed through ``StreamLogMel``
and the newest 864 frames taken at its end.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from livesound.audio.features import SAMPLE_RATE, PaperLogMel, StreamLogMel
from livesound.audio.io import check_readable, load_audio
from livesound.files import write_npy
from livesound.live.device import resolve_device
from livesound.models.clip import ClipModel
from livesound.models.presets import clip_from_preset, encoder_from_preset, load_preset

PREPROCESS = ("paper", "stream")


@dataclass
class EmbedOptions:
    files: Sequence[str]
    preprocess: str = "paper"
    normalize: bool = True
    batch: int = 8
    nonfinite: str = "reject"
    max_audio_seconds: float | None = None   # longer files are refused (None: livesound.audio.io's default)


@dataclass
class EmbedToFileOptions:
    """``livesound embed``: files in, one ``.npy`` out, and optionally each file's best labels."""
    files: Sequence[str]
    preset: str = "demo"
    encoder: str | None = None        # checkpoint overriding the preset's encoder
    preprocess: str = "paper"
    raw: bool = False                 # raw encoder outputs instead of unit vectors
    clean_nonfinite: bool = False     # NaN/inf samples become 0 (with a warning) instead of refusing the file
    max_audio_seconds: float | None = None   # longer files are refused (None: livesound.audio.io's default)
    out: str = "embeddings.npy"
    clip: str | None = None           # CLIP weights for the labels; None: the preset's
    clip_model: str = "ViT-B-32"
    labels: Sequence[str] | None = None   # None: no labels; given but empty: an error
    top: int = 3
    batch: int = 8
    device: str = "auto"              # where the encoder runs: auto | cpu | cuda | cuda:N


@dataclass
class EmbedSummary:
    out: Path
    shape: tuple[int, int]
    kind: str                         # "unit" or "raw"
    preprocess: str
    labels: list[tuple[str, list[tuple[str, float]]]]   # (file, [(label, cosine), ...] best first)


def features_for(path: str | Path, preprocess: str = "paper", nonfinite: str = "reject",
                 max_seconds: float | None = None) -> torch.Tensor:
    """One file's encoder input [1, 1, 128, 512]; raises ``AudioError`` for unusable audio."""
    if preprocess not in PREPROCESS:
        raise ValueError(f"--preprocess must be one of {PREPROCESS}, not {preprocess!r}")
    wave = load_audio(path, sr=SAMPLE_RATE, nonfinite=nonfinite, max_seconds=max_seconds)
    with torch.no_grad():
        if preprocess == "paper":
            return PaperLogMel()(torch.from_numpy(wave)[None])
        stream = StreamLogMel()
        stream.push(wave)
        return stream.encoder_input()


def embed_files(encoder: torch.nn.Module, opts: EmbedOptions,
                progress: Callable[[Iterable], Iterable] = lambda it: it) -> np.ndarray:
    """[len(files), embed_dim] float32, one row per file in order (L2-normalised unless told otherwise)."""
    rows, pending = [], []

    device = next(encoder.parameters()).device

    def flush() -> None:
        with torch.no_grad():
            e = encoder(torch.cat(pending).to(device)).float()
        if opts.normalize:
            e = torch.nn.functional.normalize(e, dim=-1)
        rows.append(e.cpu().numpy())
        pending.clear()

    for path in progress(opts.files):
        pending.append(features_for(path, opts.preprocess, opts.nonfinite, opts.max_audio_seconds))
        if len(pending) == opts.batch:
            flush()
    if pending:
        flush()
    return np.concatenate(rows).astype(np.float32)


def top_labels(embeddings: np.ndarray, clip, labels: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
    """Each embedding's ``k`` best labels by cosine to CLIP's text embeddings of the labels."""
    text = clip.encode_text(list(labels)).float()  # [L, D], unit norm
    if text.shape[1] != embeddings.shape[1]:
        raise ValueError(f"CLIP's embeddings have {text.shape[1]} dims, the encoder's {embeddings.shape[1]}")
    e = torch.nn.functional.normalize(torch.from_numpy(embeddings), dim=-1)
    sims = (e @ text.T).numpy()
    order = np.argsort(-sims, axis=1)[:, :k]
    return [[(labels[j], float(sims[i, j])) for j in row] for i, row in enumerate(order)]


def embed_to_file(opts: EmbedToFileOptions, log: Callable[[str], None] = lambda s: None) -> EmbedSummary:
    """Encode ``opts.files`` into ``opts.out`` (float32 [files, dim], written atomically) and rank ``opts.labels``
    per file. Every file is checked, and the labels' CLIP built, before the encoder runs: a bad input fails in
    seconds, not after the encoding. ``log`` hears warnings about the audio and notes about the CLIP."""
    for f in opts.files:
        check_readable(f)
    if opts.labels is not None and not list(opts.labels):
        raise ValueError("--labels is empty")
    device = resolve_device(opts.device)
    preset = load_preset(opts.preset)
    encoder = encoder_from_preset(preset, opts.encoder, device=device).eval()
    clip = None
    if opts.labels is not None:
        if opts.clip is not None:
            clip = ClipModel.load(opts.clip_model, opts.clip)
        else:
            clip = clip_from_preset(preset)
            if preset.extra.get("clip", {}).get("seed") is not None:
                log("note: the demo preset's CLIP is untrained; its labels mean nothing. "
                    "Pass --clip WEIGHTS for real ones.")
    how = EmbedOptions(files=opts.files, preprocess=opts.preprocess, normalize=not opts.raw,
                       batch=max(1, opts.batch), nonfinite="clean" if opts.clean_nonfinite else "reject",
                       max_audio_seconds=opts.max_audio_seconds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = embed_files(encoder, how, lambda it: tqdm(it, unit="file", file=sys.stderr,
                                                        disable=len(opts.files) < 4 or None))
    for w in caught:
        log(f"warning: {w.message}")
    out = write_npy(opts.out, emb)
    best = top_labels(emb, clip, list(opts.labels), opts.top) if clip is not None else []
    return EmbedSummary(out=out, shape=(emb.shape[0], emb.shape[1]), kind="raw" if opts.raw else "unit",
                        preprocess=opts.preprocess, labels=list(zip(map(str, opts.files), best)))
