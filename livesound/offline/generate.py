"""Render images from seeds or saved latents: what ``livesound generate`` does, as library functions."""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from livesound.files import save_png
from livesound.live.backends import make_backend
from livesound.live.device import resolve_device
from livesound.models.fast_paths import apply_fast_paths
from livesound.models.presets import generator_from_preset, load_preset
from livesound.weights.untrusted import TENSOR_SLACK_BYTES, check_loaded_tensors


@dataclass
class GenerateOptions:
    preset: str = "demo"
    generator: str | None = None      # checkpoint overriding the preset's
    seeds: str = "0-7"                # used when no ``latents`` file is given
    latents: str | None = None        # w+ array [N, num_ws, w_dim] (.npy or .pt)
    trunc: float | None = None        # None: the preset's truncation
    noise_mode: str | None = None     # None: the preset's noise mode
    out: str = "out/generate"
    grid: bool = False                # also write grid.png
    grid_only: bool = False           # write only grid.png
    batch: int = 8
    device: str = "auto"              # auto | cpu | cuda | cuda:N (livesound.live.device)
    backend: str = "torch"            # a stage backend of livesound.live.backends, or auto
    threads: int = 0                  # CPU threads of torch, ONNX Runtime and OpenVINO (0: all cores)


@dataclass
class GenerateSummary:
    images: int
    written: int                      # files written (images and/or grid.png)
    seconds: float


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if m := re.fullmatch(r"(\d+)\s*-\s*(\d+)", part):
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ValueError(f"seed range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            seeds.append(int(part))
        else:
            raise ValueError(f"bad seed list {text!r}: use forms like 0-7 or 1,5,9")
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def load_latents(path: str | Path, num_ws: int, w_dim: int) -> torch.Tensor:
    """A w+ array [N, num_ws, w_dim] (or [N, w_dim], or one [num_ws, w_dim]) from .npy or .pt."""
    path = Path(path)
    if path.suffix == ".pt":
        arr = torch.load(path, map_location="cpu", weights_only=True)
        check_loaded_tensors(arr, path, path.stat().st_size + TENSOR_SLACK_BYTES)  # .float() would copy a giant
        if isinstance(arr, dict):
            arr = next((v for v in arr.values() if isinstance(v, torch.Tensor)), None)
        if not isinstance(arr, torch.Tensor):
            raise ValueError(f"{path}: no tensor of latents inside")
        ws = arr.detach().float()
    else:
        try:
            ws = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable .npy array ({e})") from None
    if ws.ndim == 2 and ws.shape == (num_ws, w_dim):
        ws = ws[None]
    if ws.ndim == 2 and ws.shape[1] == w_dim:
        ws = ws[:, None].repeat(1, num_ws, 1)
    if ws.ndim != 3 or ws.shape[1:] != (num_ws, w_dim):
        raise ValueError(f"{path}: latents of shape {list(ws.shape)}; this generator takes "
                         f"[N, {num_ws}, {w_dim}] (w+) or [N, {w_dim}] (w)")
    if not torch.isfinite(ws).all():
        raise ValueError(f"{path}: latents contain NaN or inf")
    return ws


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in about [-1, 1] -> [N, H, W, C] uint8."""
    x = (img.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def render(G, ws: torch.Tensor, batch: int = 8, noise_mode: str = "const", seed: int = 0, synthesize=None
           ) -> Iterator[np.ndarray]:
    """Yield uint8 images [H, W, C] one by one, computing ``batch`` at a time; ``synthesize``: a stage backend
    to draw with instead of ``G.synthesis`` (constant noise only)."""
    gen = torch.Generator(device=G.synthesis.const.device).manual_seed(seed)
    with torch.no_grad():
        for i in range(0, ws.shape[0], batch):
            chunk = ws[i:i + batch].to(G.synthesis.const.device)
            if synthesize is not None:
                yield from to_uint8(synthesize(chunk))
            else:
                yield from to_uint8(G.synthesis(chunk, noise_mode=noise_mode, generator=gen))


def grid(images: Sequence[np.ndarray], cols: int | None = None) -> np.ndarray:
    n = len(images)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w, c = images[0].shape
    out = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, cols)
        out[r * h:(r + 1) * h, q * w:(q + 1) * w] = im
    return out



def generate_images(opts: GenerateOptions, log: Callable[[str], None] = lambda s: None) -> GenerateSummary:
    """Render the seeds' (or the latents file's) images into ``opts.out``: ``seedNNNN.png``/``latentNNNN.png``
    and/or ``grid.png``. ``log`` hears the plan before the (possibly long) rendering starts."""
    if opts.batch < 1:
        raise ValueError("--batch must be at least 1")
    device = resolve_device(opts.device)
    preset = load_preset(opts.preset)
    psi = preset.truncation_psi if opts.trunc is None else opts.trunc
    noise_mode = opts.noise_mode or preset.noise_mode
    if opts.backend != "torch" and noise_mode != "const":
        raise ValueError(f"--backend {opts.backend} draws the checkpoint's constant noise: use --noise-mode const")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    G = generator_from_preset(preset, opts.generator, device=device)
    synthesize = None
    if opts.backend != "torch":
        synthesize = make_backend("synthesize", opts.backend, apply_fast_paths(G), opts.threads or os.cpu_count() or 1,
                                  device)
    if opts.latents:
        ws = load_latents(opts.latents, G.num_ws, G.w_dim)
        names = [f"latent{i:04d}.png" for i in range(ws.shape[0])]
    else:
        seeds = parse_seeds(opts.seeds)
        with torch.no_grad():
            ws = G.mapping(G.z_from_seeds(seeds), truncation_psi=psi)
        names = [f"seed{s:04d}.png" for s in seeds]
    out = Path(opts.out)
    how = f"{getattr(synthesize, 'name', 'torch')} on {device}"
    log(f"{len(names)} image(s) at {G.resolution} px, truncation {psi}, noise {noise_mode}, {how} -> {out}")
    keep = opts.grid or opts.grid_only
    images = []
    t0 = time.perf_counter()
    bar = tqdm(render(G, ws, opts.batch, noise_mode, synthesize=synthesize), total=len(names), unit="img",
               disable=len(names) < 4 or None, file=sys.stderr)
    for name, img in zip(names, bar):
        if not opts.grid_only:
            save_png(img, out / name)
        if keep:
            images.append(img)
    seconds = time.perf_counter() - t0
    if images:
        save_png(grid(images), out / "grid.png")
    written = (0 if opts.grid_only else len(names)) + (1 if images else 0)
    return GenerateSummary(images=len(names), written=written, seconds=seconds)
