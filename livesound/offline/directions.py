"""StyleCLIP's global directions (Patashnik et al. 2021, section 6): per style channel, where it moves CLIP.

StyleSpace is the generator's style vectors, ``s = affine(w)`` per modulated convolution (ToRGB excluded, as in
StyleCLIP). A channel's *CLIP direction* is the mean change of the CLIP image embedding when that channel alone
moves: for each of N sampled latents, the channel is set to its mean over the generator's styles, then moved by
``-sigma`` and ``+sigma`` deviations (StyleCLIP: 5); the difference of the two unit image embeddings,
normalised, is averaged over the samples and normalised again (StyleCLIP's ``fs3``, ``[channels, clip_dim]``).
Images reach CLIP through CLIP's own preprocessing (resize, centre crop, mean/std), as StyleCLIP's.

Live (`livesound.live.directions_steer`), any CLIP-space direction ``dt`` becomes an edit of the styles: per
channel ``fs3 @ dt``, channels below the disentanglement threshold beta zeroed, normalised by the largest, times
alpha and the channel's deviation. Any sound, any text, no per-anchor work.

Files: ``build_directions`` writes livesound's own safetensors (``directions`` [C, D], ``style_mean`` and
``style_std`` [C], and in its header the style layout, the settings and the generator's fingerprint, so it is
refused for another generator). ``load_directions`` also reads StyleCLIP's published files (``fs3.npy`` with
``S_mean_std`` beside it, `livesound.weights.styleclip`); without ``S_mean_std`` the means and deviations are
computed from the generator the way StyleCLIP's ``GetCode.py`` does.

Building is batched (both signs of many channels in one generator call), shows a progress bar, is resumable
(after each sample the running sums go to ``<out>.partial-<rank>of<world>.safetensors``; a rerun with the same
settings continues there) and splits under ``torchrun``: rank r takes samples r, r + world, ...; the sums are
added across ranks at the end and rank 0 writes the file.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from livesound.offline.networks import ModelOptions
from livesound.weights.checkpoint import CheckpointError, load_own, save_own
from livesound.weights.styleclip import FS3_NAME, STATS_NAME, read_fs3, read_style_stats

KIND = "directions"


@dataclass
class StyleDirections:
    """Per style channel: its unit CLIP image direction, and the channel's mean and deviation over the styles."""

    directions: torch.Tensor          # [C, D], unit rows
    mean: torch.Tensor                # [C]
    std: torch.Tensor                 # [C]
    layer_of_channel: torch.Tensor    # [C] long: the w+ index of each channel's convolution
    source: str                       # where they came from, for the start line
    meaningful: bool = True           # made with a trained CLIP (False: the demo's untrained one)

    @property
    def channels(self) -> int:
        return int(self.directions.shape[0])


def style_layout(G) -> tuple[list[int], list[int]]:
    """Every style layer's width in StyleGAN2's order (4 px: conv, torgb; then conv0, conv1, torgb per block),
    and the indices of the convolutions among them (the layers StyleCLIP's directions cover)."""
    conv = G.synthesis.style_channels
    rgb = [int(t.affine.weight.shape[0]) for t in G.synthesis.torgbs]
    widths, conv_idx = [conv[0], rgb[0]], [0]
    for b in range(1, len(rgb)):
        conv_idx += [len(widths), len(widths) + 1]
        widths += [conv[2 * b - 1], conv[2 * b], rgb[b]]
    return widths, conv_idx


def layer_of_channel(G) -> torch.Tensor:
    """[C]: for each style channel, the w+ index its convolution reads (convolution j reads ws[:, j])."""
    return torch.cat([torch.full((n,), j, dtype=torch.long) for j, n in enumerate(G.synthesis.style_channels)])


def generator_fingerprint(G) -> str:
    from livesound.live.backends.cache import fingerprint

    return fingerprint(G)


@torch.no_grad()
def style_stats(G, samples: int = 20_000, truncation: float = 0.7, seed: int = 5, chunk: int = 2_000
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and deviation of every convolution style channel over ``samples`` mapped latents at ``truncation``
    (StyleCLIP's ``GetCode.py``: 100,000 latents at 0.7; its seed 5)."""
    gen = torch.Generator().manual_seed(seed)
    device = G.synthesis.const.device
    total = sq = None
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        z = torch.randn(n, G.z_dim, generator=gen).to(device)
        s = G.synthesis.styles(G.mapping(z, truncation_psi=truncation)).double()   # [n, C]
        total = s.sum(0) if total is None else total + s.sum(0)
        sq = (s * s).sum(0) if sq is None else sq + (s * s).sum(0)
        done += n
    mean = total / samples
    std = (sq / samples - mean * mean).clamp_min(0).sqrt()
    return mean.float().cpu(), std.float().cpu()


# ---------------------------------------------------------------------------------------------- loading

def load_directions(path: str | Path, G, clip_dim: int, log: Callable[[str], None] = lambda s: None
                    ) -> StyleDirections:
    """Directions for ``G`` from livesound's safetensors, or StyleCLIP's ``fs3.npy`` (a file, or a folder
    holding it), checked against the generator's style layout; a mismatch raises CheckpointError."""
    path = Path(path)
    if path.is_dir():
        path = path / FS3_NAME
    if not path.is_file():
        raise CheckpointError(path, "no such directions file (build one with `livesound directions build`)")
    channels = sum(G.synthesis.style_channels)
    if path.suffix == ".npy":
        fs3 = torch.from_numpy(read_fs3(path, channels, clip_dim))
        stats = path.with_name(STATS_NAME)
        if stats.is_file():
            widths, conv = style_layout(G)
            mean, std = (torch.from_numpy(a) for a in read_style_stats(stats, widths, conv))
        else:
            log(f"no {STATS_NAME} beside {path.name}: computing the style means and deviations from the generator")
            mean, std = style_stats(G)
        return StyleDirections(fs3, mean, std, layer_of_channel(G), f"StyleCLIP {path.name}")
    config, state = load_own(path, KIND)
    want = {"directions": (channels, clip_dim), "style_mean": (channels,), "style_std": (channels,)}
    for name, shape in want.items():
        if name not in state or tuple(state[name].shape) != shape:
            found = list(state[name].shape) if name in state else "missing"
            raise CheckpointError(path, f"{name} is {found}; this generator and CLIP need {list(shape)}")
    if config.get("style_channels") != G.synthesis.style_channels:
        raise CheckpointError(path, "built for a generator with another style layout; rebuild it for this one")
    if config.get("generator") != generator_fingerprint(G):
        raise CheckpointError(path, "built for another generator (its fingerprint differs); rebuild it with "
                                    "`livesound directions build` for this one")
    if not all(torch.isfinite(t).all() for t in state.values()):
        raise CheckpointError(path, "holds NaN or inf")
    return StyleDirections(F.normalize(state["directions"].float(), dim=-1), state["style_mean"].float(),
                           state["style_std"].float(), layer_of_channel(G), f"{path.name}, {config['samples']} samples",
                           meaningful=not str(config.get("clip", "")).startswith("tiny"))


# --------------------------------------------------------------------------------------------- building

@dataclass
class DirectionsOptions:
    """``livesound directions build``."""

    models: ModelOptions = field(default_factory=ModelOptions)
    out: str = "directions.safetensors"
    samples: int = 100                # latents each channel's direction is averaged over (StyleCLIP: 100)
    sigma: float = 5.0                # how far each channel moves, in deviations (StyleCLIP: 5)
    batch: int = 32                   # channels per generator call (each gives two images)
    stats_samples: int = 20_000       # latents for the style means and deviations (StyleCLIP: 100,000)
    seed: int = 0                     # the samples are the seeds seed .. seed + samples - 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch < 1 or self.stats_samples < 2:
            raise ValueError("samples and batch must be at least 1, stats_samples at least 2")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if not str(self.out).endswith(".safetensors"):
            raise ValueError(f"{self.out}: the output must be a .safetensors file")


def build_directions(opts: DirectionsOptions, log: Callable[[str], None] = print) -> Path | None:
    """Compute the directions (module docstring) and write ``opts.out``; returns its path (None on ranks > 0)."""
    from livesound.models.fast_paths import apply_fast_paths
    from livesound.offline.networks import load_networks
    from livesound.train.loop import cleanup_distributed, setup_distributed

    dist = setup_distributed(opts.models.device)
    try:
        nets = load_networks(ModelOptions(**{**asdict(opts.models), "device": str(dist.device)}),
                             need_encoder=False, log=log if dist.main else lambda s: None)
        G, clip = apply_fast_paths(nets.G.eval().requires_grad_(False)), nets.clip  # parity-tested, ~2x on CPUs
        truncation = nets.preset.truncation_psi
        mean, std = style_stats(G, opts.stats_samples, truncation)
        settings = {"samples": opts.samples, "sigma": opts.sigma, "seed": opts.seed,
                    "stats_samples": opts.stats_samples, "truncation": truncation,
                    "clip": f"{clip.name}:{clip.weights}", "clip_dim": clip.embed_dim,
                    "style_channels": G.synthesis.style_channels, "generator": generator_fingerprint(G)}
        mine = list(range(opts.seed + dist.rank, opts.seed + opts.samples, dist.world))
        partial = Path(f"{opts.out}.partial-{dist.rank}of{dist.world}.safetensors")
        acc, done = _resume(partial, settings, sum(G.synthesis.style_channels), clip.embed_dim, log)
        todo = [s for s in mine if s not in done]
        if dist.main and done:
            log(f"resuming {partial.name}: {len(done)} of {len(mine)} samples done")
        _accumulate(G, clip, mean.to(dist.device), std.to(dist.device), todo, acc, done, opts, truncation,
                    lambda: _save_partial(partial, settings, acc, done), show=opts.progress and dist.main)
        if dist.world > 1:
            acc = acc.to(dist.device)
            torch.distributed.all_reduce(acc)
            acc = acc.cpu()
        if not dist.main:
            partial.unlink(missing_ok=True)
            return None
        out = save_own(opts.out, KIND, settings, {"directions": F.normalize(acc, dim=-1), "style_mean": mean,
                                                  "style_std": std})
        partial.unlink(missing_ok=True)
        return out
    finally:
        cleanup_distributed()


def _accumulate(G, clip, mean, std, seeds, acc, done, opts, truncation, checkpoint, show) -> None:
    """Add each sample's normalised embedding differences per channel into ``acc`` [C, D] (on the CPU)."""
    from tqdm import tqdm

    C = mean.numel()
    starts = list(range(0, C, opts.batch))
    bar = tqdm(total=len(seeds) * len(starts), disable=not show, unit="batch", desc="directions", file=sys.stderr)
    sigma_std = opts.sigma * std
    for seed in seeds:
        with torch.no_grad():
            ws = G.mapping(G.z_from_seeds([seed]), truncation_psi=truncation)          # [1, num_ws, w_dim]
            to_mean = mean - G.synthesis.styles(ws)[0]                                 # [C]
            for a in starts:
                idx = torch.arange(a, min(a + opts.batch, C), device=mean.device)
                n = idx.numel()
                delta = torch.zeros(2 * n, C, device=mean.device)                     # minus rows, then plus rows
                rows = torch.arange(n, device=mean.device)
                delta[rows, idx] = to_mean[idx] - sigma_std[idx]
                delta[rows + n, idx] = to_mean[idx] + sigma_std[idx]
                img = G.synthesis(ws.expand(2 * n, -1, -1), noise_mode="const", style_delta=delta)
                f = clip.encode_image(img)                                             # [2n, D] unit
                acc[idx.cpu()] += F.normalize(f[n:] - f[:n], dim=-1).float().cpu()
                bar.update(1)
        done.append(seed)
        checkpoint()
    bar.close()


def _resume(partial: Path, settings: dict, channels: int, clip_dim: int, log) -> tuple[torch.Tensor, list[int]]:
    if not partial.is_file():
        return torch.zeros(channels, clip_dim), []
    config, state = load_own(partial, KIND + "-partial")
    if config.get("settings") != json.loads(json.dumps(settings)):
        raise CheckpointError(partial, "a build with other settings or another generator was interrupted here; "
                                       "delete it, or rerun with that build's settings")
    acc = state.get("sums")
    if acc is None or tuple(acc.shape) != (channels, clip_dim):
        raise CheckpointError(partial, "sums of the wrong shape; delete it to start again")
    return acc.float().clone(), [int(s) for s in config.get("done", [])]


def _save_partial(partial: Path, settings: dict, acc: torch.Tensor, done: list[int]) -> None:
    save_own(partial, KIND + "-partial", {"settings": settings, "done": done}, {"sums": acc})
