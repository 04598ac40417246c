"""``--steer directions``: StyleCLIP's global directions, live. Any sound or text becomes a style edit, per frame.

The sound's *direction* is its smoothed embedding minus a reference: the running mean of the performance's
embeddings (a plain mean over the first ``reference_frames`` frames, then an exponential one with that
horizon), so the picture answers what changed in the sound, and a sound that stays fades back to the source. A
direction ``dt`` (unit) becomes StyleCLIP's edit (section 6 of the paper; its ``GetBoundary``):

    p = fs3 @ dt                      per style channel, how much moving it moves CLIP along dt      [C]
    p[|p| < beta] = 0                 the disentanglement threshold: only channels that matter move
    delta = alpha * p / max|p| * std  normalised, scaled by the manipulation strength and each deviation

(live, the threshold is soft: see ``DirectionsSteer.edit``)
``alpha`` is ``ALPHA_PER_STRENGTH`` x the frame's strength (the performer's strength with its onset and pulse
boosts): the default strength 0.5 gives StyleCLIP's own default alpha of 3. Where fewer than ``min_channels``
channels pass beta, the threshold drops to keep the ``min_channels`` strongest (StyleCLIP's GUI lowers beta the
same way, to keep more than 20 channels on FFHQ). A change smaller than ``full_change`` is scaled down with its
size, so a steady sound (direction near zero, its angle mere noise) leaves the picture still.

The edit goes to the generator's styles (``style_delta``, `livesound.models.stylegan2`); w+ passes unchanged.
Per frame this is one [C, D] matrix-vector product: well under a millisecond even for FFHQ's 6048 channels.
Deterministic: the running mean advances once per call, so fixed-step runs give the same frames every time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from livesound.live.steering import Steerer
from livesound.models.mapper import MapperConfig
from livesound.offline.directions import StyleDirections, load_directions

ALPHA_PER_STRENGTH = 6.0


@dataclass
class DirectionsSettings:
    beta: float = 0.15                # disentanglement threshold on |fs3 @ dt| (StyleCLIP's GUI: 0.1-0.3)
    min_channels: int = 20            # at least this many channels move (the threshold drops if it must)
    reference_frames: int = 300       # horizon of the running mean the direction is taken from (~10 s)
    full_change: float = 0.1          # |e - reference| from which the edit has its full size

    def __post_init__(self) -> None:
        if self.beta < 0 or self.min_channels < 1 or self.reference_frames < 1 or not self.full_change > 0:
            raise ValueError("beta must be >= 0, min_channels and reference_frames >= 1, full_change > 0")


class DirectionsSteer(Steerer):
    """Source latent unchanged; the sound's direction as a StyleSpace edit in ``style_delta`` (module docstring)."""

    kind = "directions"
    edits_styles = True

    def __init__(self, dirs: StyleDirections, num_ws: int, w_dim: int, settings: DirectionsSettings | None = None,
                 meaningful: bool = True):
        super().__init__(trained=meaningful)
        self.s = settings or DirectionsSettings()
        self.num_ws, self.w_dim, self.clip_dim = num_ws, w_dim, int(dirs.directions.shape[1])
        self.source = dirs.source
        self.register_buffer("directions", dirs.directions.float(), persistent=False)   # [C, D]
        self.register_buffer("std", dirs.std.float(), persistent=False)                 # [C]
        # Channel masks of the layer groups (coarse/medium/fine), for a text on some groups and sound on others.
        slices = MapperConfig(num_ws=num_ws).group_slices
        layer = dirs.layer_of_channel
        self.groups = list(slices)
        self.register_buffer("group_masks", torch.stack([((layer >= a) & (layer < b)).float()
                                                         for a, b in slices.values()]), persistent=False)  # [G, C]
        self.reference: torch.Tensor | None = None   # [1, D], the running mean of the embeddings seen
        self.frames = 0
        self.channels_moved = 0                       # of the newest edit, for the overlay and tests

    def describe(self) -> str:
        meaning = "" if self.trained else "; untrained CLIP: moves the picture, not by meaning"
        return f"directions ({self.source}, beta {self.s.beta}{meaning})"

    def edit(self, direction: torch.Tensor) -> torch.Tensor:
        """The style edit at alpha 1 for a CLIP-space ``direction`` [D] (any length): [C].

        Channels under the threshold are zeroed and the rest shrink by it (a soft threshold): as the sound's
        direction turns, channels fade in and out instead of popping, where StyleCLIP's hard threshold is made
        for one still edit. The threshold is beta, or lower where fewer than ``min_channels`` would pass (then
        just under the ``min_channels``-th strongest |p|, so that many move)."""
        p = self.directions @ F.normalize(direction.float().reshape(-1), dim=0)       # [C]
        k = min(self.s.min_channels + 1, p.numel())
        below = torch.topk(p.abs(), k).values[-1]                                      # the (min_channels+1)-th
        t = torch.clamp(below, max=self.s.beta)
        p = torch.sign(p) * torch.relu(p.abs() - t)
        self.channels_moved = int((p != 0).sum())
        return p / p.abs().max().clamp_min(1e-12) * self.std

    def forward(self, ws: torch.Tensor, e: torch.Tensor | dict[str, torch.Tensor],
                strength: torch.Tensor) -> torch.Tensor:
        groups = e if isinstance(e, dict) else None
        seen = torch.stack([v.float().reshape(-1, self.clip_dim).mean(0) for v in groups.values()]).mean(0) \
            if groups is not None else e.float().reshape(-1, self.clip_dim).mean(0)              # [D]
        ref = seen if self.reference is None else self.reference
        if groups is None:
            delta = self._sized_edit(seen - ref)                                                  # [C]
        else:
            delta = sum(self.group_masks[self.groups.index(g)] *
                        self._sized_edit(v.float().reshape(-1, self.clip_dim).mean(0) - ref) for g, v in groups.items())
        self.frames += 1
        rate = 1.0 / min(self.frames, self.s.reference_frames)
        self.reference = ref + rate * (seen - ref)
        alpha = ALPHA_PER_STRENGTH * strength.float().reshape(-1, 1)                             # [B, 1]
        self.style_delta = alpha * delta[None]                                                   # [B, C]
        return ws

    def _sized_edit(self, d: torch.Tensor) -> torch.Tensor:
        size = float(d.norm())
        if size == 0.0:
            self.channels_moved = 0
            return torch.zeros_like(self.std)
        return min(1.0, size / self.s.full_change) * self.edit(d)

    def reset(self) -> None:
        """Forget the running mean (a new piece starts from here)."""
        self.reference, self.frames = None, 0


def directions_steerer(ctx) -> DirectionsSteer:
    """``--steer directions`` for a ``livesound.live.steer_choice.SteerContext``: ``--directions FILE`` (required)
    and ``--beta`` from its options."""
    opts, G = ctx.opts, ctx.G
    if not getattr(opts, "directions", None):
        raise ValueError("--steer directions needs --directions FILE: StyleCLIP's fs3.npy (with S_mean_std "
                         "beside it) or one built with `livesound directions build --preset PRESET --out FILE`")
    dirs = load_directions(opts.directions, G, ctx.encoder.embed_dim,
                           log=lambda text: print(f"livesound live: {text}", file=sys.stderr))
    settings = DirectionsSettings(beta=opts.beta) if getattr(opts, "beta", None) is not None else None
    return DirectionsSteer(dirs, G.num_ws, G.w_dim, settings, meaningful=dirs.meaningful)
