"""The direction bank: anchors optimised once offline, blended live by how close the sound is to each.

A bank holds K anchors. Each is a sound or a text with its unit CLIP-space embedding ``e_k`` and the w+ offset
``o_k`` that the paper's latent optimisation found for it from the preset's source latent (``livesound bank
build``, `livesound.offline.bank`). Live, the offset for the current embedding ``e`` blends the top-k anchors,

    offset(e) = sum_k softmax(cos(e, e_k) / temperature) * o_k       (over the ``top_k`` nearest anchors)
    w+        = ws_src + strength * offset(e)

so strength 1 on an anchor's own sound reaches the picture its optimisation reached. Training-free and instant:
a matrix product with K rows and a blend of ``top_k`` offsets per frame.

The file is one safetensors file (no pickle): tensors ``embeddings`` [K, D] and ``offsets`` [K, num_ws, w_dim],
float32; the header's ``livesound_config`` names the anchors (labels, kinds, sources), the generator's
fingerprint (`livesound.live.backends.fingerprint` of its weights: offsets mean nothing on another generator), the
calibrated temperature and how the bank was built. A bank file is untrusted input: ``load_bank`` checks every
tensor, shape, dtype and field before anything uses it and names the file and the field when one is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from livesound.live.steering import Steerer
from livesound.models.mapper import GROUPS, MapperConfig
from livesound.weights.checkpoint import CheckpointError, load_own, save_own

KIND = "bank"
ANCHOR_KINDS = ("sound", "text")
MAX_ANCHORS = 1_000_000
DEFAULT_TOP_K = 3


@dataclass
class Bank:
    embeddings: torch.Tensor          # [K, D] unit rows
    offsets: torch.Tensor             # [K, num_ws, w_dim]: optimised w+ minus the source w+
    labels: list[str]                 # file stem, synth kind or text
    kinds: list[str]                  # "sound" or "text"
    sources: list[str]                # file path, "synth:<kind>" or the text
    generator: str                    # fingerprint of the generator's weights
    temperature: float                # the calibrated default (``calibrated_temperature``)
    settings: dict = field(default_factory=dict)  # how it was built: preset, steps, lr, l2, seed, fingerprints

    @property
    def size(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(num_ws, w_dim, clip_dim)."""
        return int(self.offsets.shape[1]), int(self.offsets.shape[2]), int(self.embeddings.shape[1])


def calibrated_temperature(embeddings: torch.Tensor) -> float:
    """A quarter of the median distance (1 - cos) from an anchor to its nearest other anchor.

    Embedding spaces differ in spread (an untrained encoder puts every sound within cos 0.9 of every other; a
    trained one spreads them out), so no one temperature fits all. With this one, an anchor whose own sound plays
    outweighs a typical nearest neighbour by e^4 (~55x) in the softmax, and sounds between anchors blend them.
    """
    e = F.normalize(embeddings.float(), dim=-1)
    if e.shape[0] < 2:
        return 0.05
    d = 1.0 - e @ e.T
    d.fill_diagonal_(float("inf"))
    nearest = d.min(dim=1).values.clamp_min(1e-4)
    return float(nearest.median()) / 4.0


def save_bank(path: str | Path, bank: Bank) -> Path:
    num_ws, w_dim, clip_dim = bank.shape
    config = {"labels": list(bank.labels), "kinds": list(bank.kinds), "sources": list(bank.sources),
              "generator": bank.generator, "temperature": float(bank.temperature), "num_ws": num_ws,
              "w_dim": w_dim, "clip_dim": clip_dim, "settings": bank.settings}
    return save_own(path, KIND, config, {"embeddings": bank.embeddings.float(), "offsets": bank.offsets.float()})


def load_bank(path: str | Path) -> Bank:
    """Read and check a bank file; ``CheckpointError`` names the file and the field at fault."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such bank file (build one with `livesound bank build`)")
    config, state = load_own(path, KIND)
    if not isinstance(config, dict):
        raise CheckpointError(path, "livesound_config: not a JSON object")
    if set(state) != {"embeddings", "offsets"}:
        raise CheckpointError(path, f"tensors: expected embeddings and offsets, found {sorted(state)[:6]}")
    emb, off = state["embeddings"], state["offsets"]
    for name, t, dims in (("embeddings", emb, 2), ("offsets", off, 3)):
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise CheckpointError(path, f"{name}: dtype {t.dtype}, expected float32")
        if t.ndim != dims:
            raise CheckpointError(path, f"{name}: shape {list(t.shape)}, expected {dims} dimensions")
        if not torch.isfinite(t).all():
            raise CheckpointError(path, f"{name}: holds NaN or infinite values")
    K = emb.shape[0]
    if not 0 < K <= MAX_ANCHORS or off.shape[0] != K:
        raise CheckpointError(path, f"offsets: {off.shape[0]} anchors but embeddings has {K} (at least 1, at most "
                                    f"{MAX_ANCHORS})")
    for name, expected in (("num_ws", off.shape[1]), ("w_dim", off.shape[2]), ("clip_dim", emb.shape[1])):
        if config.get(name) != expected:
            raise CheckpointError(path, f"{name}: header says {config.get(name)!r}, tensors have {expected}")
    if min(emb.shape[1], off.shape[1], off.shape[2]) < 1:
        raise CheckpointError(path, f"embeddings/offsets: empty dimension in {list(emb.shape)} / {list(off.shape)}")
    norms = emb.float().norm(dim=-1)
    bad = (norms - 1).abs() > 1e-3
    if bad.any():
        i = int(bad.nonzero()[0])
        raise CheckpointError(path, f"embeddings: row {i} has norm {float(norms[i]):.4g}, expected unit vectors")
    names = {}
    for name in ("labels", "kinds", "sources"):
        items = config.get(name)
        if not isinstance(items, list) or len(items) != K or not all(isinstance(x, str) for x in items):
            count = len(items) if isinstance(items, list) else type(items).__name__
            raise CheckpointError(path, f"{name}: expected {K} strings (one per anchor), found {count}")
        names[name] = items
    odd = sorted(set(names["kinds"]) - set(ANCHOR_KINDS))
    if odd:
        raise CheckpointError(path, f"kinds: unknown anchor kinds {odd[:3]}; expected {ANCHOR_KINDS}")
    generator, temperature = config.get("generator"), config.get("temperature")
    if not isinstance(generator, str) or not generator:
        raise CheckpointError(path, "generator: missing the generator's fingerprint")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise CheckpointError(path, f"temperature: {temperature!r}, expected a positive number")
    settings = config.get("settings", {})
    if not isinstance(settings, dict):
        raise CheckpointError(path, "settings: not a JSON object")
    return Bank(emb.float(), off.float(), names["labels"], names["kinds"], names["sources"], generator,
                float(temperature), settings)


def check_generator(bank: Bank, G, where: str | Path) -> None:
    """Refuse a bank built for another generator (its offsets would move this one's latents anywhere)."""
    from livesound.live.backends import fingerprint

    mine = fingerprint(G)
    if bank.generator != mine:
        built = bank.settings.get("preset", "another generator")
        raise CheckpointError(where, f"generator: this bank was built for another generator ({built}, fingerprint "
                                     f"{bank.generator}, this one is {mine}); build one for it with "
                                     "`livesound bank build`")
    if (bank.shape[0], bank.shape[1]) != (G.num_ws, G.w_dim):
        raise CheckpointError(where, f"offsets: w+ [{bank.shape[0]}, {bank.shape[1]}], the generator takes "
                                     f"[{G.num_ws}, {G.w_dim}]")


class BankSteer(Steerer):
    """w+ = ws_src + strength x (the softmax blend of the nearest anchors' offsets); see the module docstring.

    ``temperature`` and ``top_k`` are plain attributes (a control may change them between frames). ``network``
    is None: the blend is a [D] x [D, K] product and a sum of ``top_k`` offsets, too small to gain from an
    accelerated backend, so the ``map`` stage runs it in torch.
    """

    kind = "bank"

    def __init__(self, bank: Bank, temperature: float | None = None, top_k: int | None = None, name: str = ""):
        super().__init__(trained=True)
        if temperature is not None and not temperature > 0:
            raise ValueError(f"--bank-temperature must be positive, got {temperature}")
        top_k = DEFAULT_TOP_K if top_k is None else int(top_k)
        if top_k < 1:
            raise ValueError(f"--bank-top-k must be at least 1, got {top_k}")
        self.num_ws, self.w_dim, self.clip_dim = bank.shape
        self.register_buffer("embeddings", F.normalize(bank.embeddings.float(), dim=-1))  # [K, D]
        self.register_buffer("offsets", bank.offsets.float())                             # [K, num_ws, w_dim]
        self.labels, self.kinds, self.sources = list(bank.labels), list(bank.kinds), list(bank.sources)
        self.generator = bank.generator  # the fingerprint of the generator the offsets were optimised on
        self.temperature = float(bank.temperature if temperature is None else temperature)
        self.top_k = min(top_k, bank.size)
        self.name = name
        self._groups = MapperConfig(num_ws=self.num_ws).group_slices

    def describe(self) -> str:
        where = f" {self.name}" if self.name else ""
        return (f"bank{where} ({len(self.labels)} anchors, top {self.top_k}, temperature "
                f"{self.temperature:.3g})")

    def check_generator(self, G) -> None:
        from livesound.live.backends import fingerprint

        if fingerprint(G) != self.generator:
            raise ValueError(f"the running bank{' ' + self.name if self.name else ''} was built for another "
                             "generator: its offsets would mean nothing on this one (build a bank for it)")

    def weights(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchors blended for unit embeddings ``e`` [B, D]: (indices [B, k], softmax weights [B, k])."""
        sims = F.normalize(e.float(), dim=-1) @ self.embeddings.T              # [B, K] cosines
        top = torch.topk(sims, self.top_k, dim=-1)
        return top.indices, torch.softmax(top.values / self.temperature, dim=-1)

    def offset(self, e: torch.Tensor) -> torch.Tensor:
        idx, w = self.weights(e)
        return torch.einsum("bk,bkld->bld", w, self.offsets[idx])               # [B, num_ws, w_dim]

    def forward(self, ws: torch.Tensor, e: torch.Tensor | dict[str, torch.Tensor],
                strength: torch.Tensor) -> torch.Tensor:
        k = torch.as_tensor(strength, dtype=ws.dtype, device=ws.device).reshape(-1, 1, 1)
        if not isinstance(e, dict):
            return ws + k * self.offset(e)                                      # [B, num_ws, w_dim]
        unknown = set(e) - set(GROUPS)
        if unknown:
            raise ValueError(f"embeddings for unknown layer groups {sorted(unknown)}; groups are {GROUPS}")
        out = ws.clone()
        for group, emb in e.items():  # each group's layers follow their own embedding (text or sound)
            a, b = self._groups[group]
            if b > a:
                out[:, a:b] += k * self.offset(emb)[:, a:b]
        return out

    def labels_for(self, e: torch.Tensor) -> list[tuple[str, float]]:
        idx, w = self.weights(e[:1] if e.ndim == 2 else e[None])
        return [(self.labels[int(i)], float(v)) for i, v in zip(idx[0], w[0])]
