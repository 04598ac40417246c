"""Steering: how a sound's embedding moves the picture. One interface, several ways behind it.

A steerer is a torch module called as ``steerer(ws_src, e, strength) -> ws``:
- ``ws_src`` [B, num_ws, w_dim]: the source latent (already walked and kicked by the reactivity);
- ``e``: the smoothed unit embedding [B, clip_dim], or one per layer group ``{"coarse": .., "medium": ..,
  "fine": ..}`` when a text steers some groups and the sound the others;
- ``strength`` [B]: how far to go (the performer's strength with the onset and pulse boosts);
- returns the w+ the generator draws, [B, num_ws, w_dim].
The frame recipe (`livesound.live.pipeline`) only ever makes this call, so a new way of steering plugs in without
touching it. ``network`` is the module an accelerated backend exports for the ``map`` stage (called with a single
embedding), or None where the steerer has nothing worth exporting; the torch call stays the reference and serves
the per-group case.

A steerer may also edit the generator's styles (``edits_styles``, StyleCLIP's global directions): each call
then leaves its edit in ``style_delta`` [B, total style channels], which the ``synthesize`` stage adds to the
styles on the same thread right after. ``fixed_step`` is set by the fixed-step loop (headless files): a steerer
with background work (live optimisation) then does it inline, so the same file gives the same frames.
``close()`` ends a steerer's workers and saves what it learned, once, at the end of a show.

Implementations, chosen by name through ``make_steerer`` (``--steer``): ``MapperSteer`` (a conditional latent
mapper, `livesound.models.mapper`), ``OptimizeSteer`` (the paper's loss on a worker,
`livesound.live.optimize_steer`) and ``DirectionsSteer`` (StyleCLIP's global directions,
`livesound.live.directions_steer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from livesound.models.mapper import GROUPS, Mapper

if TYPE_CHECKING:
    from livesound.live.build import LiveOptions
    from livesound.models.presets import Preset


class Steerer(nn.Module):
    """Base of every way of steering; see the module docstring for the call."""

    kind = "none"
    edits_styles = False             # True: each call also leaves a style edit in ``style_delta``
    num_ws: int
    w_dim: int
    clip_dim: int

    def __init__(self, trained: bool):
        super().__init__()
        self.trained = bool(trained)  # False: seeded, untrained weights (they move the picture, not by meaning)
        self.style_delta: torch.Tensor | None = None  # [B, total style channels], set per call when edits_styles
        self.fixed_step = False      # set by the fixed-step loop: no background work, same input -> same frames

    @property
    def network(self) -> nn.Module | None:
        return None

    def close(self) -> None:
        """Stop any worker and save what was learned; the steerer is not called again."""

    def describe(self) -> str:
        """One line for the start message and the overlay, e.g. 'mapper (untrained, seeded)'."""
        return f"{self.kind} ({'trained' if self.trained else 'untrained, seeded'})"


class MapperSteer(Steerer):
    """w+ + strength x M(w+, e): the conditional mapper's edit (StyleCLIP's shape, conditioned on e)."""

    kind = "mapper"

    def __init__(self, mapper: Mapper, trained: bool):
        super().__init__(trained)
        self.mapper = mapper
        self.num_ws, self.w_dim, self.clip_dim = mapper.num_ws, mapper.w_dim, mapper.clip_dim

    @property
    def network(self) -> nn.Module:
        return self.mapper

    def forward(self, ws: torch.Tensor, e: torch.Tensor | dict[str, torch.Tensor],
                strength: torch.Tensor) -> torch.Tensor:
        if isinstance(e, dict):
            unknown = set(e) - set(GROUPS)
            if unknown:
                raise ValueError(f"embeddings for unknown layer groups {sorted(unknown)}; groups are {GROUPS}")
        return self.mapper.edit(ws, e, strength)  # [B, num_ws, w_dim]


# ------------------------------------------------------------------------------------------- the registry

@dataclass
class SteerContext:
    """What a steerer's builder may use: the preset, the live options, and the networks already built."""

    preset: "Preset"
    opts: "LiveOptions"
    G: nn.Module
    encoder: nn.Module
    clip: nn.Module | None            # the preset's CLIP (livesound.models.clip.ClipModel)
    window_s: float                   # the live window


def mapper_steerer(ctx: SteerContext) -> Steerer:
    from livesound.models.presets import mapper_from_preset, mapper_is_trained

    mapper = mapper_from_preset(ctx.preset, ctx.G, ctx.encoder.embed_dim, ctx.opts.mapper)
    return MapperSteer(mapper.eval(), trained=mapper_is_trained(ctx.preset, ctx.opts.mapper))


def _optimize(ctx: SteerContext) -> Steerer:
    from livesound.live.optimize_steer import optimize_steerer

    return optimize_steerer(ctx)


def _directions(ctx: SteerContext) -> Steerer:
    from livesound.live.directions_steer import directions_steerer

    return directions_steerer(ctx)


# kind -> builder(ctx); a builder imports its module when called, so a choice costs only what it needs.
STEERERS: dict[str, Callable[[SteerContext], Steerer]] = {
    "mapper": mapper_steerer, "optimize": _optimize, "directions": _directions}


def make_steerer(kind: str, ctx: SteerContext) -> Steerer:
    """The steerer ``kind`` (``--steer``) for the networks and options in ``ctx``."""
    if kind not in STEERERS:
        raise ValueError(f"unknown steering {kind!r}; choose from {', '.join(STEERERS)}")
    return STEERERS[kind](ctx)
