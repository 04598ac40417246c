"""Projection: the w+ whose picture matches an image, or the paper's free generation toward a phrase.

``livesound project IMAGE`` finds a latent a live run can start from (``livesound live --latent``), so a
performer can begin from their own picture; ``--text PHRASE`` starts from the mean latent and follows CLIP
toward the phrase (the paper's ``free_generation``: the CLIP term alone).

The loop is the offline path's machinery (`livesound.offline.optimize`): Adam on a W+ latent with the paper's
learning-rate schedule (linear ramp-up over the first 5% of steps, cosine ramp-down over the last 25%). Image
mode minimises

    mse(G(w), target) + clip_lambda * (1 - cos(CLIP(G(w)), CLIP(target)))

from the mean latent: the pixel term does the work at the generator's resolution, CLIP's image embedding is the
perceptual term (what the picture shows rather than where each pixel is; it only means something with real CLIP
weights), both images reaching it through CLIP's own preprocessing (antialiased bicubic to 224 px, CLIP's mean
and std), as for any two pictures compared in CLIP space. Only w+ is optimised: the generator's stored noise
stays as it is, because a live run renders with that noise, and a latent whose likeness lived in optimised noise
maps would not carry it into the show (so no noise regulariser is needed either). Text mode minimises
``1 - cos(CLIP(G(w)), CLIP_text(phrase))``, the image reaching CLIP the paper's way (x7 nearest upsampling,
then average pooling), as ``livesound optimize`` does.

Outputs in ``OUT/``: ``projected.png``, ``target.png`` (image mode: the image as the generator's square),
``side_by_side.png`` (target or start | projected), ``log.json`` (config, source and every step's loss terms,
PSNR in image mode) and ``latent.npy`` (float32 [1, num_ws, w_dim]), written last, so a folder holding it is
complete.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from livesound.files import write_json, write_npy
from livesound.offline.generate import to_uint8
from livesound.offline.networks import ModelOptions, load_networks
from livesound.offline.optimize import clip_image_embedding, paper_lr, source_latent, text_embedding
from livesound.offline.targets import write_png

LATENT = "latent.npy"


@dataclass
class ProjectConfig:
    steps: int = 300
    lr: float = 0.1                   # the paper's landscape rate; projection from the mean needs the larger step
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    clip_lambda: float = 0.1          # image mode: weight of the CLIP image-embedding term

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")
        if not self.lr > 0 or not self.clip_lambda >= 0:
            raise ValueError("--lr must be positive and --clip-lambda not negative")


@dataclass
class Projection:
    ws: torch.Tensor                  # [1, num_ws, w_dim], on the CPU
    image: np.ndarray                 # [R, R, 3] uint8: the latent's picture
    start: np.ndarray                 # [R, R, 3] uint8: the target image (image mode) or the mean latent's picture
    log: list[dict] = field(default_factory=list)
    psnr: float | None = None         # image mode: dB between ``image`` and ``start``


class Cancelled(Exception):
    """``should_stop`` said so (the window closed, or a newer projection replaced this one)."""


def read_image(path: str | Path):
    """An image file as an RGB PIL image, or ValueError naming the file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def load_target(image, resolution: int) -> torch.Tensor:
    """An image (a path or a PIL image) as the generator's square: centre crop, Lanczos to ``resolution``;
    [1, 3, R, R] in [-1, 1]."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else read_image(image)
    w, h = im.size
    side = min(w, h)
    im = im.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return x / 127.5 - 1


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def project(G, clip, target: torch.Tensor | None = None, text: str | None = None,
            cfg: ProjectConfig = ProjectConfig(), progress: bool = True,
            on_step: Callable[[int, dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Projection:
    """The w+ for ``target`` ([1, 3, R, R] in [-1, 1]) or toward ``text``, from the mean latent.

    ``on_step(step, row)`` hears every step's log row; ``should_stop()`` is asked before each step and ends the
    loop with ``Cancelled`` when true. The generator's weights get no gradient (only the latent does)."""
    from tqdm import tqdm

    if (target is None) == (text is None):
        raise ValueError("project an image or a phrase: give exactly one")
    device = G.synthesis.const.device
    synth = lambda ws: G.synthesis(ws, noise_mode="const")  # noqa: E731 - the noise a live run renders with
    use_clip = target is None or cfg.clip_lambda > 0
    with torch.no_grad():
        start = source_latent(G, mean=True).ws.to(device).float()            # [1, num_ws, w_dim]
        if target is not None:
            target = target.to(device).float()
            if target.shape != (1, 3, G.resolution, G.resolution):
                raise ValueError(f"target must be [1, 3, {G.resolution}, {G.resolution}], got {list(target.shape)}")
        if use_clip:
            goal = clip.encode_image(target) if target is not None else \
                text_embedding(clip, text).to(device).float()[None]          # [1, D]
    w = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=cfg.lr)
    log: list[dict] = []
    for step in tqdm(range(cfg.steps), disable=not progress, unit="step", leave=False):
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped after {step} of {cfg.steps} steps")
        lr = paper_lr(step / cfg.steps, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
        opt.param_groups[0]["lr"] = lr
        img = synth(w)                                                       # [1, 3, R, R]
        row = {"step": step, "lr": lr}
        total = torch.zeros((), device=device)
        if use_clip:
            seen = clip.encode_image(img) if target is not None else clip_image_embedding(clip, img)  # [1, D]
            clip_term = 1 - (seen * goal).sum()
            total = total + (cfg.clip_lambda if target is not None else 1.0) * clip_term
            row["clip"] = clip_term.item()
        if target is not None:
            mse = F.mse_loss(img, target)
            total = total + mse
            with torch.no_grad():  # of the picture as it will be shown: clamped to the 8-bit range
                shown = F.mse_loss(img.detach().clamp(-1, 1), target) / 4   # pixels in [0, 1]
            row |= {"mse": mse.item(), "psnr": -10 * math.log10(max(shown.item(), 1e-12))}
        row["total"] = total.item()
        opt.zero_grad(set_to_none=True)
        (grad,) = torch.autograd.grad(total, w)
        w.grad = grad
        opt.step()
        log.append(row)
        if on_step is not None:
            on_step(step, row)
    with torch.no_grad():
        image = to_uint8(synth(w.detach()))[0]
        shown_start = to_uint8(target if target is not None else synth(start))[0]
    result = Projection(w.detach().cpu(), image, shown_start, log)
    if target is not None:
        result.psnr = psnr(image, shown_start)
    return result


# ------------------------------------------------------------------------------------------------ the command

@dataclass
class ProjectOptions:
    image: str | None = None
    text: str | None = None
    models: ModelOptions = field(default_factory=ModelOptions)
    config: ProjectConfig = field(default_factory=ProjectConfig)
    out: str = "out/project"


@dataclass
class ProjectSummary:
    out: Path
    seconds: float
    steps: int
    psnr: float | None
    first_loss: float
    last_loss: float


def write_projection(out: Path, result: Projection, meta: dict) -> None:
    """Every output file of a projection; ``latent.npy`` last (see the module docstring)."""
    write_png(out / "projected.png", result.image)
    if result.psnr is not None:
        write_png(out / "target.png", result.start)
    write_png(out / "side_by_side.png", np.concatenate([result.start, result.image], axis=1))
    write_json(out / "log.json", meta | {"psnr_db": result.psnr, "steps": result.log})
    write_npy(out / LATENT, result.ws.numpy().astype(np.float32))


def project_to_folder(opts: ProjectOptions, log: Callable[[str], None] = lambda s: None) -> ProjectSummary:
    """``livesound project``: load the networks, project ``opts.image`` (or free-generate toward ``opts.text``)
    and write the outputs into ``opts.out``."""
    if (opts.image is None) == (opts.text is None):
        raise ValueError("give an IMAGE to project or --text PHRASE (one of them)")
    if opts.text is not None and not opts.text.strip():
        raise ValueError("--text is empty")
    if opts.image is not None and not Path(opts.image).is_file():
        raise ValueError(f"{opts.image}: no such image file")
    image = read_image(opts.image) if opts.image is not None else None   # told before networks are built
    nets = load_networks(opts.models, need_encoder=False, log=log)
    G = nets.G.requires_grad_(False)
    target = load_target(image, G.resolution) if image is not None else None
    what = f"image {opts.image}" if target is not None else f"text {opts.text!r}"
    log(f"projecting {what} into {nets.preset.name}'s W+ ({G.num_ws} x {G.w_dim}), {opts.config.steps} steps")
    t0 = time.perf_counter()
    result = project(G, nets.clip, target, opts.text, opts.config)
    seconds = time.perf_counter() - t0
    out = Path(opts.out)
    meta = {"mode": "image" if target is not None else "text", "target": opts.image or opts.text,
            "preset": nets.preset.name, "source": "mean latent", "clip": nets.clip.weights or nets.clip.name,
            "config": asdict(opts.config), "seconds": seconds}
    write_projection(out, result, meta)
    return ProjectSummary(out, seconds, opts.config.steps, result.psnr, result.log[0]["total"],
                          result.log[-1]["total"])
