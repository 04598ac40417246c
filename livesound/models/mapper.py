"""Conditional latent mapper: (source w+, CLIP-space embedding e) -> offset for StyleGAN2's w+.

Shaped after StyleCLIP's mapper (docs/design.md), not equal to it: the w+ layers fall into three groups,
coarse ``[0, 4)``, medium ``[4, 8)`` and fine ``[8, num_ws)``, and each group has its own sub-mapper: pixel
norm of every w, then 4 equalised-lr linear layers of width ``w_dim`` (lr multiplier 0.01, leaky ReLU 0.2 x
sqrt(2) after the first three, the last layer linear). StyleCLIP trains one mapper per text prompt; here one
mapper serves any sound, so each sub-mapper also sees e. The edit is ``w + strength * M(w, e)``; StyleCLIP's
fixed step is 0.1, which its users found too small on some generators, so ``strength`` is an argument.

Where it differs from StyleCLIP's (``mapper/latent_mappers.py``: ``PixelNorm`` then four
``EqualLinear(512, 512, lr_mul=0.01, activation='fused_lrelu')``), exactly:
- StyleCLIP's **fourth layer has the activation too**: its offset is ``leaky_relu(x @ W4' + b4, 0.2) *
  sqrt(2)``, so every negative component of its edit is scaled by 0.2 (the edit leans positive). Here the
  fourth layer is linear, ``x @ W4' + b4``: the edit is free in sign. A StyleCLIP checkpoint therefore does
  not load here as is, and this mapper with StyleCLIP's weights would give other offsets.
- the **FiLM modulation** by e (below), which StyleCLIP does not have (its mapper sees no embedding).
- the **initial scale** of the last layer's weights, ``out_init`` (0.5; StyleCLIP's are N(0, 1) like its
  other layers) and of the FiLM weights, ``film_init``.
With ``film_init=0`` and ``out_init=1`` a sub-mapper has StyleCLIP's form and initial distribution except
for the fourth layer's missing activation.

How e enters: feature-wise modulation (FiLM), not concatenation. Before each of the 4 linear layers the
features are scaled and shifted, ``x * (1 + gamma_l(e)) + beta_l(e)``, with gamma and beta for all layers of
a group produced by one EqualLinear from the pixel-normed e. Why FiLM:
- e steers every layer, not only the first; concatenated e is one input among w_dim + clip_dim that the
  first layer may learn to drown out, and the w part (512 normalised features) outweighs it at init.
- the layer width stays ``w_dim`` (StyleCLIP's), so the body keeps StyleCLIP's layer sizes, and zero FiLM
  weights are an exact identity modulation (leaving the body, which still differs from StyleCLIP's in its
  fourth layer's activation, above).
- gamma and beta depend on e only: for a batch of source latents and one sound they are computed once.

Layer groups by generator size: the groups follow resolution (coarse = 4-8 px, medium = 16-32 px, fine =
64 px and up), so ``group_bounds`` are clipped at ``num_ws``. A 128 px generator (12 ws, the demo) has all
three groups; a 32 px one (8 ws) has no fine layers and one with 4 ws or fewer only coarse ones. An empty
group has no sub-mapper and no weights; enable flags and embeddings given for it are accepted and unused,
so one call (e.g. text for coarse, audio for fine) works with any generator.

Initialisation (``build_mapper``): every weight is seeded. The hidden layers use the usual equalised-lr
N(0, 1) weights. The last layer's weights are scaled by ``out_init`` (0.5) rather than zeroed, and the FiLM
weights are small random (each gamma and beta has std ``film_init`` = 0.5 over sounds; biases zero, so the
modulation is the identity on average). An untrained seeded mapper then gives an offset whose RMS per entry
is about ``out_init * (1 + 2 * film_init**2) ** (num_layers / 2)`` ~ 1.1, about the RMS of a w itself, and
bounded whatever the input (w is pixel-normed, e is unit-normed, every layer is a fixed map). Offsets
for two random sounds have cosine ~ 0.3, so different sounds move the picture differently even untrained,
which is what the untrained ``demo`` preset shows. (Measured on the demo generator, 128 px: strength 0.1
changes the image by ~11% of its pixel std, 0.3 by ~35%, 1.0 as much as switching seeds.) Zero-initialised
FiLM or last layers would make every sound look the same, or nothing move, until trained; for training
from scratch ``film_init=0`` gives an exact identity modulation if preferred.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights import fields
from livesound.weights.checkpoint import (
    CheckpointError,
    load_own,
    load_state_checked,
    save_own,
)
from livesound.weights.untrusted import check_shapes_before_building

GROUPS = ("coarse", "medium", "fine")
SQRT2 = math.sqrt(2.0)

# One embedding for all groups, or one per group (dict by name, or a sequence in GROUPS order; None allowed
# for a group that is disabled or absent).
Embedding = Union[torch.Tensor, Mapping[str, torch.Tensor], Sequence[Union[torch.Tensor, None]]]
GroupMask = Union[Mapping[str, bool], Sequence[bool]]


@dataclass
class MapperConfig:
    num_ws: int = 18                  # the generator's w+ length (18 at 1024 px, 12 at 128 px)
    w_dim: int = 512
    clip_dim: int = 512
    num_layers: int = 4               # linear layers per sub-mapper (StyleCLIP: 4)
    lr_mul: float = 0.01
    group_bounds: list[int] = field(default_factory=lambda: [4, 8])  # coarse | medium | fine split points
    enabled: list[bool] = field(default_factory=lambda: [True, True, True])  # default mask, GROUPS order
    film_init: float = 0.5            # std of each FiLM gamma/beta at init (0 = exact identity)
    out_init: float = 0.5             # scale of the last layer's initial weights (0 = zero offset)

    def __post_init__(self) -> None:
        self.group_bounds = [int(b) for b in self.group_bounds]
        self.enabled = [bool(x) for x in self.enabled]
        if self.num_ws < 1 or self.w_dim < 1 or self.clip_dim < 1 or self.num_layers < 1:
            raise ValueError(f"num_ws, w_dim, clip_dim and num_layers must be positive, got {self}")
        b = self.group_bounds
        if len(b) != 2 or not 0 < b[0] < b[1]:
            raise ValueError(f"group_bounds must be two increasing positive layer indices, got {b}")
        if len(self.enabled) != len(GROUPS):
            raise ValueError(f"enabled needs one flag per group {GROUPS}, got {self.enabled}")
        if self.lr_mul <= 0 or self.film_init < 0 or self.out_init < 0:
            raise ValueError("lr_mul must be positive, film_init and out_init non-negative")

    @property
    def group_slices(self) -> dict[str, tuple[int, int]]:
        """Layer range [start, stop) of each group, clipped at num_ws (an absent group has start == stop)."""
        edges = [0, *(min(b, self.num_ws) for b in self.group_bounds), self.num_ws]
        return {name: (edges[i], edges[i + 1]) for i, name in enumerate(GROUPS)}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MapperConfig":
        """From a file's JSON, types and ranges checked (``livesound.fields``)."""
        return fields.from_dict(cls, d, _MAPPER_BOUNDS, "mapper config")


_MAPPER_BOUNDS = {
    "num_ws": fields.Bounds(1, 64), "w_dim": fields.Bounds(1, 8192), "clip_dim": fields.Bounds(1, 8192),
    "num_layers": fields.Bounds(1, 64), "lr_mul": fields.Bounds(0, 1000, above=True),
    "group_bounds": fields.Bounds(1, 64, items=(2, 2)), "enabled": fields.Bounds(items=(3, 3)),
    "film_init": fields.Bounds(0, 100), "out_init": fields.Bounds(0, 100),
}


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Unit second moment over the last (feature) dimension."""
    return x * (x.square().mean(dim=-1, keepdim=True) + eps).rsqrt()


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: y = x @ (W * lr_mul / sqrt(in)).T + b * lr_mul.

    ``init_gain`` scales the initial N(0, 1) effective weights (the stored weight is N(0, 1) / lr_mul).
    The gain multiplies the output rather than the weight: at batch 1 rescaling the weight every call
    costs more than the product itself (the FiLM weights are the mapper's largest tensors).
    """

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0, activation: bool = False,
                 init_gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (init_gain / lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight) * self.weight_gain + self.bias * self.lr_mul
        if self.activation:
            x = F.leaky_relu(x, 0.2) * SQRT2
        return x


class SubMapper(nn.Module):
    """One layer group: w [N, L, w_dim], e [N, clip_dim] -> offset [N, L, w_dim]."""
    def __init__(self, cfg: MapperConfig):
        super().__init__()
        n, d = cfg.num_layers, cfg.w_dim
        self.layers = nn.ModuleList(
            EqualLinear(d, d, lr_mul=cfg.lr_mul, activation=i < n - 1, init_gain=cfg.out_init if i == n - 1 else 1.0)
            for i in range(n))
        # gamma and beta for every layer of the group in one product: [N, n * 2 * w_dim].
        self.film = EqualLinear(cfg.clip_dim, n * 2 * d, init_gain=cfg.film_init)

    def forward(self, w: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        n, d = len(self.layers), w.shape[-1]
        film = self.film(pixel_norm(e)).reshape(e.shape[0], n, 2, 1, d)  # [N, layer, gamma|beta, 1, w_dim]
        x = pixel_norm(w)
        for i, layer in enumerate(self.layers):
            x = layer(x * (1.0 + film[:, i, 0]) + film[:, i, 1])
        return x


class Mapper(nn.Module):
    """``mapper(ws [N, num_ws, w_dim], e) -> delta [N, num_ws, w_dim]``; ``edit`` adds it to ws.

    ``e`` is one embedding [N, clip_dim] (or [1, clip_dim], shared by the batch) for all groups, or one per
    group: a dict keyed by ``GROUPS`` names or a sequence in that order. ``enabled`` (a dict or sequence of
    three flags; default ``cfg.enabled``, changeable through ``mapper.enabled``) switches groups off: a
    disabled group's offset is exactly zero and its embedding may be omitted.
    """

    def __init__(self, cfg: MapperConfig):
        super().__init__()
        self.cfg = cfg
        self.slices = cfg.group_slices
        self.enabled = dict(zip(GROUPS, cfg.enabled))
        self.mappers = nn.ModuleDict({g: SubMapper(cfg) for g, (a, b) in self.slices.items() if b > a})

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    @property
    def w_dim(self) -> int:
        return self.cfg.w_dim

    @property
    def clip_dim(self) -> int:
        return self.cfg.clip_dim

    def forward(self, ws: torch.Tensor, e: Embedding, enabled: GroupMask | None = None) -> torch.Tensor:
        torch._assert(ws.ndim == 3 and ws.shape[1] == self.num_ws and ws.shape[2] == self.w_dim,
                      f"ws must be [N, {self.num_ws}, {self.w_dim}]")
        ws = ws.to(self._dtype)
        on = self._mask(enabled)
        embeds = self._embeddings(e, ws.shape[0], on)
        parts = []
        for g, (a, b) in self.slices.items():
            if b == a:
                continue
            if on[g]:
                parts.append(self.mappers[g](ws[:, a:b], embeds[g]))  # [N, b - a, w_dim]
            else:
                parts.append(ws.new_zeros(ws.shape[0], b - a, self.w_dim))
        return torch.cat(parts, dim=1)  # [N, num_ws, w_dim]

    def edit(self, ws: torch.Tensor, e: Embedding, strength: float | torch.Tensor = 0.1,
             enabled: GroupMask | None = None) -> torch.Tensor:
        """``ws + strength * M(ws, e)``; ``strength`` is a number or a tensor [N] (one per sample).

        Named ``edit``, not ``apply``: ``nn.Module.apply(fn)`` (recursive init) must keep working.
        """
        strength = torch.as_tensor(strength, dtype=self._dtype, device=ws.device)
        if strength.ndim == 1:
            strength = strength.view(-1, 1, 1)
        return ws.to(self._dtype) + strength * self(ws, e, enabled)

    @property
    def _dtype(self) -> torch.dtype:
        """float32, or float16 for a half-precision export."""
        return next(self.parameters()).dtype

    def _mask(self, enabled: GroupMask | None) -> dict[str, bool]:
        if enabled is None:
            return dict(self.enabled)
        if isinstance(enabled, Mapping):
            unknown = set(enabled) - set(GROUPS)
            if unknown:
                raise ValueError(f"unknown layer groups {sorted(unknown)}; groups are {GROUPS}")
            return {g: bool(enabled.get(g, self.enabled[g])) for g in GROUPS}
        flags = list(enabled)
        if len(flags) != len(GROUPS):
            raise ValueError(f"enabled needs one flag per group {GROUPS}, got {flags}")
        return {g: bool(f) for g, f in zip(GROUPS, flags)}

    def _embeddings(self, e: Embedding, n: int, on: dict[str, bool]) -> dict[str, torch.Tensor]:
        if isinstance(e, torch.Tensor):
            given = dict.fromkeys(GROUPS, e)
        elif isinstance(e, Mapping):
            unknown = set(e) - set(GROUPS)
            if unknown:
                raise ValueError(f"embeddings for unknown layer groups {sorted(unknown)}; groups are {GROUPS}")
            given = dict(e)
        else:
            seq = list(e)
            if len(seq) != len(GROUPS):
                raise ValueError(f"give one embedding per group {GROUPS} (None for unused), got {len(seq)}")
            given = dict(zip(GROUPS, seq))
        out = {}
        for g, (a, b) in self.slices.items():
            if b == a or not on[g]:
                continue
            x = given.get(g)
            if x is None:
                raise ValueError(f"no embedding for the enabled {g!r} layers")
            torch._assert(x.ndim == 2 and x.shape[1] == self.clip_dim and (x.shape[0] == n or x.shape[0] == 1),
                          f"embedding for {g} must be [{n} or 1, {self.clip_dim}]")
            out[g] = x.to(self._dtype).expand(n, -1)  # [N, clip_dim]
        return out


def build_mapper(cfg: MapperConfig, seed: int | None = None) -> Mapper:
    """A freshly initialised mapper (see the module docstring); with ``seed`` every weight is reproducible."""
    if seed is None:
        return Mapper(cfg).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Mapper(cfg).eval()


def save_mapper(mapper: Mapper, path: str | Path) -> Path:
    """Write the mapper in livesound's own format (safetensors, kind ``mapper``, config in the header)."""
    return save_own(path, "mapper", mapper.cfg.to_dict(), mapper.state_dict())


def load_mapper(path: str | Path, device: str | torch.device = "cpu") -> Mapper:
    """The one door for mapper weights; checks every tensor's name and shape, raises ``CheckpointError``."""
    config, state = load_own(path, "mapper")
    try:
        cfg = MapperConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"bad mapper config ({e})") from None

    check_shapes_before_building(lambda: Mapper(cfg), state, path)  # no huge model from a config
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten; leave the caller's RNG alone
        mapper = Mapper(cfg)
    load_state_checked(mapper, state, source=path)
    return mapper.eval().to(device)
