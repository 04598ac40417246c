"""Audio files into CLIP-space embeddings: what ``livesound embed`` does, as library functions.

``paper`` preprocessing is the paper's pipeline (``PaperLogMel``): the whole file at 44.1 kHz mono, mel power
with reflect padding, dB against the clip's maximum, then the first 864 frames (~10 s) zero-padded at the end
or, for longer clips, the centre 864 frames (the paper's training takes a random crop; inference here is
deterministic). ``stream`` preprocessing is what the live loop sees: the file pushed through ``StreamLogMel``
and the newest 864 frames taken at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from livesound.audio.features import PaperLogMel, SAMPLE_RATE, StreamLogMel
from livesound.audio.io import load_audio

PREPROCESS = ("paper", "stream")


@dataclass
class EmbedOptions:
    files: Sequence[str]
    preprocess: str = "paper"
    normalize: bool = True
    batch: int = 8
    nonfinite: str = "reject"


def features_for(path: str | Path, preprocess: str = "paper", nonfinite: str = "reject") -> torch.Tensor:
    """One file's encoder input [1, 1, 128, 512]; raises ``AudioError`` for unusable audio."""
    if preprocess not in PREPROCESS:
        raise ValueError(f"--preprocess must be one of {PREPROCESS}, not {preprocess!r}")
    wave = load_audio(path, sr=SAMPLE_RATE, nonfinite=nonfinite)
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

    def flush() -> None:
        with torch.no_grad():
            e = encoder(torch.cat(pending)).float()
        if opts.normalize:
            e = torch.nn.functional.normalize(e, dim=-1)
        rows.append(e.numpy())
        pending.clear()

    for path in progress(opts.files):
        pending.append(features_for(path, opts.preprocess, opts.nonfinite))
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
