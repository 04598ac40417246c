"""What pulse and motion (`livesound.live.hpss`) do to the picture, beside the semantic path.

- Pulse boosts the mapper strength (``pulse_strength``: the multiplier added at a full pulse) and kicks the
  source latent a short way along a fixed direction (``pulse_kick``), so a drum hit jolts the picture for as
  long as the pulse envelope lasts (~0.1 s).
- Motion sets the speed of a slow walk of the source latent around a circle through it (``motion_walk``:
  radians per second at full motion, ``walk_radius``: the circle's size in units of the typical distance between
  two latents): held chords keep the picture drifting, silence and drums leave it where it is.

All gains default to 0, and then the source latent and the strength pass through untouched (the same tensor,
so frames stay bit-identical to a build without reactivity). The walk and kick directions are differences of
latents from fixed seeds, mapped by the generator itself, so they stay on its latent manifold's scale.

Runs on the renderer thread (``step`` once per frame, ``source`` inside the map stage); the gains are plain
attributes any thread may write, read once per frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

DIRECTION_SEEDS = (1_000_003, 1_000_033, 1_000_037, 1_000_039, 1_000_081, 1_000_099)


@dataclass
class ReactivityGains:
    pulse_strength: float = 0.0
    pulse_kick: float = 0.0
    motion_walk: float = 0.0
    walk_radius: float = 0.5

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReactivityGains":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown reactivity gains {sorted(unknown)} (known: {sorted(names)})")
        return cls(**{k: float(v) for k, v in d.items()})


class Reactivity:
    def __init__(self, G, truncation_psi: float, gains: ReactivityGains | None = None):
        self.gains = gains or ReactivityGains()
        self.phase = 0.0   # the walk's angle, radians
        self.pulse = 0.0
        self.use_generator(G, truncation_psi)

    def use_generator(self, G, truncation_psi: float) -> None:
        """A new generator (a checkpoint swap): its own directions, computed when first needed."""
        self._G, self._psi = G, truncation_psi
        self._dirs: torch.Tensor | None = None

    def _directions(self) -> torch.Tensor:
        if self._dirs is None:
            with torch.inference_mode():
                w = self._G.mapping(self._G.z_from_seeds(list(DIRECTION_SEEDS)), truncation_psi=self._psi)
            self._dirs = torch.stack([w[0] - w[1], w[2] - w[3], w[4] - w[5]])[:, None]  # [3, 1, num_ws, w_dim]
        return self._dirs

    def boosted(self, strength: float) -> float:
        return strength * (1.0 + self.gains.pulse_strength * self.pulse)

    def step(self, dt: float, pulse: float, motion: float) -> None:
        self.pulse = float(pulse)
        self.phase = (self.phase + self.gains.motion_walk * float(motion) * max(0.0, dt)) % (2 * math.pi)

    def source(self, ws_src: torch.Tensor) -> torch.Tensor:
        """The source latent, walked and kicked: [1, num_ws, w_dim]; ``ws_src`` itself when neither applies."""
        kick = self.gains.pulse_kick * self.pulse
        if self.phase == 0.0 and kick == 0.0:
            return ws_src
        d = self._directions()
        r = self.gains.walk_radius
        return ws_src + r * math.sin(self.phase) * d[0] + r * (1 - math.cos(self.phase)) * d[1] + kick * d[2]
