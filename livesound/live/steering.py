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

Implementations, chosen by name (``--steer``, `livesound.live.steer_choice`): ``MapperSteer`` (a conditional
latent mapper, `livesound.models.mapper`), ``BankSteer`` (anchors optimised offline, blended by similarity,
`livesound.live.bank`), ``OptimizeSteer`` (the paper's loss on a worker, `livesound.live.optimize_steer`) and
``DirectionsSteer`` (StyleCLIP's global directions, `livesound.live.directions_steer`).
"""

from __future__ import annotations

import torch
from torch import nn

from livesound.models.mapper import GROUPS, Mapper


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

    def check_generator(self, G) -> None:
        """Raise ValueError when this steering cannot drive ``G`` (a swap of the generator asks first)."""

    def labels_for(self, e: torch.Tensor) -> list[tuple[str, float]]:
        """What this steering blends for the unit embedding ``e`` [1, D], as (name, weight) pairs for the overlay
        and OSC out (a bank: its nearest anchors); none for a network that names nothing."""
        return []


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
