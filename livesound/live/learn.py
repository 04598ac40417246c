"""Where ``--learn`` puts what live optimisation learned: anchors of a direction bank, saved at the end of a show.

The optimise steerer (`livesound.live.optimize_steer`) writes through a two-call interface, ``AnchorSink``:
``add_anchor(embedding, offset, label)`` while it plays and ``save(path)`` once, at exit. ``LearnedAnchors`` is
that interface over a bank file in the direction bank's layout (`livesound bank build`; the layout of
``livesound.live.bank``): one safetensors file with ``embeddings`` [K, D] (unit rows) and ``offsets``
[K, num_ws, w_dim], and in its header the anchors' ``labels``, ``kinds`` and ``sources``, the generator's
fingerprint, a ``temperature`` and ``num_ws``/``w_dim``/``clip_dim``. An existing file is read and grown (the
instrument keeps learning across shows); a bank of another generator is refused. ``save`` writes atomically
(`livesound.files`): a kill mid-save leaves the previous file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F

from livesound.weights.checkpoint import CheckpointError, load_own, save_own

KIND = "bank"


class AnchorSink(Protocol):
    def add_anchor(self, embedding: torch.Tensor, offset: torch.Tensor, label: str) -> None:
        """One anchor: its unit embedding [D] and the w+ offset [num_ws, w_dim] that reaches it."""

    def save(self, path: str | Path) -> None:
        """Write every anchor (those there before and the new ones) to ``path``, atomically."""


class LearnedAnchors:
    """A bank's anchors plus those learned now (an ``AnchorSink``)."""

    def __init__(self, generator: str, num_ws: int, w_dim: int, clip_dim: int):
        self.generator, self.num_ws, self.w_dim, self.clip_dim = generator, num_ws, w_dim, clip_dim
        self.embeddings = torch.zeros(0, clip_dim)
        self.offsets = torch.zeros(0, num_ws, w_dim)
        self.labels: list[str] = []
        self.kinds: list[str] = []
        self.sources: list[str] = []
        self.settings: dict = {}
        self.added = 0

    @classmethod
    def open(cls, path: str | Path, generator: str, num_ws: int, w_dim: int, clip_dim: int) -> "LearnedAnchors":
        """The bank at ``path`` to grow, or an empty one where no file is yet."""
        bank = cls(generator, num_ws, w_dim, clip_dim)
        path = Path(path)
        if not path.exists():
            return bank
        config, state = load_own(path, KIND)
        emb, off = state.get("embeddings"), state.get("offsets")
        if emb is None or off is None or emb.ndim != 2 or off.ndim != 3 or emb.shape[0] != off.shape[0]:
            raise CheckpointError(path, "embeddings/offsets: not a direction bank's [K, D] and [K, num_ws, w_dim]")
        if (tuple(off.shape[1:]), emb.shape[1]) != ((num_ws, w_dim), clip_dim):
            raise CheckpointError(path, f"offsets {list(off.shape[1:])} / embeddings {emb.shape[1]}-d do not fit "
                                        f"this generator's w+ [{num_ws}, {w_dim}] and {clip_dim}-d embeddings")
        if config.get("generator") != generator:
            raise CheckpointError(path, "generator: this bank was built for another generator; learn into a new file")
        if not (torch.isfinite(emb).all() and torch.isfinite(off).all()):
            raise CheckpointError(path, "holds NaN or infinite values")
        k = emb.shape[0]
        lists = [config.get(name) for name in ("labels", "kinds", "sources")]
        if not all(isinstance(x, list) and len(x) == k and all(isinstance(v, str) for v in x) for x in lists):
            raise CheckpointError(path, f"labels/kinds/sources: expected {k} strings each (one per anchor)")
        bank.embeddings, bank.offsets = F.normalize(emb.float(), dim=-1), off.float()
        bank.labels, bank.kinds, bank.sources = lists
        bank.settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
        return bank

    @property
    def size(self) -> int:
        return len(self.labels)

    def next_label(self) -> str:
        n = 1
        while f"learned-{n}" in self.labels:
            n += 1
        return f"learned-{n}"

    def nearest(self, embedding: torch.Tensor) -> float:
        """The highest cosine between ``embedding`` [D] and any anchor (-1 when there is none)."""
        if not self.size:
            return -1.0
        return float((self.embeddings @ F.normalize(embedding.float().reshape(-1), dim=0)).max())

    def add_anchor(self, embedding: torch.Tensor, offset: torch.Tensor, label: str) -> None:
        e = F.normalize(embedding.detach().float().reshape(1, -1), dim=-1)
        o = offset.detach().float().reshape(1, self.num_ws, self.w_dim)
        self.embeddings = torch.cat([self.embeddings, e.cpu()])
        self.offsets = torch.cat([self.offsets, o.cpu()])
        self.labels.append(label)
        self.kinds.append("sound")
        self.sources.append("learned live")
        self.added += 1

    def save(self, path: str | Path) -> None:
        config = {"labels": self.labels, "kinds": self.kinds, "sources": self.sources, "generator": self.generator,
                  "temperature": temperature(self.embeddings), "num_ws": self.num_ws, "w_dim": self.w_dim,
                  "clip_dim": self.clip_dim, "settings": self.settings | {"learned_live": self.size}}
        save_own(path, KIND, config, {"embeddings": self.embeddings, "offsets": self.offsets})


def temperature(embeddings: torch.Tensor) -> float:
    """The bank's softmax temperature for these anchors: a quarter of the median distance (1 - cos) from an anchor
    to its nearest other (so an anchor's own sound outweighs a typical neighbour by e^4); 0.05 for one anchor."""
    if embeddings.shape[0] < 2:
        return 0.05
    d = 1.0 - embeddings @ embeddings.T
    d.fill_diagonal_(float("inf"))
    return float(d.min(dim=1).values.clamp_min(1e-4).median()) / 4.0
