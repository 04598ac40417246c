"""Gliding the source latent to a new one over a second or two, so a new picture arrives as motion, not a cut.

A projected image or a phrase's free generation finishes on a worker; the performer wants the picture to
travel there, not jump. ``SourceGlide`` eases from the latent on screen to the new one along a straight line in
W+ (the space the projection optimised in, where a straight path stays on the generator's manifold far better
than pixels would), with a cosine ease so it starts and lands without a jolt. Stepped on the renderer thread by
the frame's own ``dt``, so a slow frame covers more of the path instead of stretching it.
"""

from __future__ import annotations

import math

import torch

GLIDE_S = 1.5


class SourceGlide:
    """From ``start`` to ``end`` ([1, num_ws, w_dim] each) over ``seconds``; ``step(dt)`` gives the next latent."""

    def __init__(self, start: torch.Tensor, end: torch.Tensor, seconds: float = GLIDE_S):
        if start.shape != end.shape:
            raise ValueError(f"cannot glide from a latent of shape {list(start.shape)} to {list(end.shape)}")
        if not torch.isfinite(end).all():
            raise ValueError("the latent to glide to holds NaN or inf")
        self.start, self.end = start.detach().clone(), end.detach().to(start.device, start.dtype).clone()
        self.seconds = max(float(seconds), 0.0)
        self.elapsed = 0.0

    @property
    def done(self) -> bool:
        return self.elapsed >= self.seconds

    def step(self, dt: float) -> torch.Tensor:
        self.elapsed += max(float(dt), 0.0)
        if self.done:
            return self.end
        t = 0.5 - 0.5 * math.cos(math.pi * self.elapsed / self.seconds)   # ease in and out
        return torch.lerp(self.start, self.end, t)
