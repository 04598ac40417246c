"""Paths between two w+ latents and their rendering: what ``livesound interpolate`` does, as library functions.

Any two latents of one generator will do, whatever guided them (a text result and an audio result, a seed
and an optimised latent): the path lives in W+ and knows nothing of modalities.

``linear``: ``(1 - t) a + t b``, t evenly spaced in [0, 1].
``slerp``: per layer, spherical interpolation of the raw w vectors about the origin,
``sin((1 - t) O) / sin O * a + sin(t O) / sin O * b`` with O the angle between that layer's a and b; a layer
whose two vectors are (nearly) parallel, or one of them zero, falls back to linear. Both paths return the
inputs exactly at their ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from livesound.files import save_png, write_npy
from livesound.models.presets import generator_from_preset, load_preset
from livesound.offline.generate import load_latents, render
from livesound.recording import Recorder

MODES = ("linear", "slerp")
PARALLEL_EPS = 1e-6  # sin of the angle below which two layers count as parallel


@dataclass
class InterpolateOptions:
    a: str                            # start latent (.npy or .pt; the first row)
    b: str                            # end latent
    steps: int = 32                   # frames on the path, both ends included
    mode: str = "linear"
    out: str = "out/interpolate"
    video: str | None = None          # also a video (.mp4/.mkv/.mov)
    fps: float = 24
    preset: str = "demo"
    generator: str | None = None      # checkpoint overriding the preset's
    device: str = "cpu"


def _as_ws(ws: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    ws = torch.as_tensor(np.asarray(ws) if isinstance(ws, np.ndarray) else ws).float()
    if ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.ndim != 2:
        raise ValueError(f"{name}: expected one w+ [num_ws, w_dim] (or [1, num_ws, w_dim]), got {list(ws.shape)}")
    return ws


def interpolate(ws_a, ws_b, steps: int, mode: str = "linear") -> torch.Tensor:
    """[steps, num_ws, w_dim] from ``ws_a`` to ``ws_b``; the first row equals ``ws_a``, the last ``ws_b``."""
    a, b = _as_ws(ws_a, "first latent"), _as_ws(ws_b, "second latent")
    if a.shape != b.shape:
        raise ValueError(f"the latents differ in shape: {list(a.shape)} vs {list(b.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two ends), got {steps}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    a64, b64 = a.double(), b.double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None, None]   # [S, 1, 1]
    path = (1 - t) * a64 + t * b64                                         # [S, L, D]
    if mode == "slerp":
        na, nb = a64.norm(dim=-1), b64.norm(dim=-1)                        # [L]
        cos = ((a64 * b64).sum(-1) / (na * nb).clamp_min(1e-30)).clamp(-1, 1)
        omega = torch.arccos(cos)                                          # [L]
        sin = torch.sin(omega)
        curved = (sin > PARALLEL_EPS) & (na > 0) & (nb > 0)                # [L]
        s = torch.where(curved, sin, torch.ones_like(sin))[None, :, None]
        om = omega[None, :, None]
        spherical = (torch.sin((1 - t) * om) * a64 + torch.sin(t * om) * b64) / s
        path = torch.where(curved[None, :, None], spherical, path)
    path = path.float()
    path[0], path[-1] = a, b  # exact ends, whatever the rounding in between
    return path


def render_path(G, ws_path: torch.Tensor, out_dir: str | Path, video: str | Path | None = None, fps: float = 24,
                noise_mode: str = "const", batch: int = 8) -> list[Path]:
    """Render each w+ of ``ws_path`` [S, num_ws, w_dim] to ``out_dir/frame_XXXX.png`` and, if given, a video.

    The video goes through ``livesound.recording.Recorder`` (.mp4/.mkv/.mov via PyAV), whose queue here
    holds the whole path so that no frame is ever dropped (memory: S frames at worst).
    """

    if ws_path.ndim != 3 or ws_path.shape[1:] != (G.num_ws, G.w_dim):
        raise ValueError(f"path of shape {list(ws_path.shape)}; this generator takes [S, {G.num_ws}, {G.w_dim}]")
    out_dir = Path(out_dir)
    recorder = Recorder(video, fps=fps, queue_frames=ws_path.shape[0] + 1) if video else None
    written = []
    try:
        for i, img in enumerate(render(G, ws_path, batch=batch, noise_mode=noise_mode)):
            path = out_dir / f"frame_{i:04d}.png"
            save_png(img, path)
            written.append(path)
            if recorder is not None:
                recorder.write(img)
    finally:
        if recorder is not None:
            recorder.close()
    return written


def interpolate_files(opts: InterpolateOptions) -> list[Path]:
    """Render the path from latent file ``a`` to ``b``: ``out/frame_XXXX.png``, ``out/path.npy`` (float32
    [steps, num_ws, w_dim]) and the optional video. Returns the frames written."""
    preset = load_preset(opts.preset)
    G = generator_from_preset(preset, opts.generator, device=opts.device)
    a, b = (load_latents(p, G.num_ws, G.w_dim)[0] for p in (opts.a, opts.b))
    path = interpolate(a, b, opts.steps, opts.mode)
    out = Path(opts.out)
    frames = render_path(G, path.to(opts.device), out, video=opts.video, fps=opts.fps, noise_mode=preset.noise_mode)
    write_npy(out / "path.npy", path.numpy())
    return frames
