"""How close a backend's stage output is to the fp32 torch module's, and what counts as close enough.

One tolerance per kind of output, for every backend and precision (``auto`` picks only within it, and a reduced
precision backend outside it is named in a warning):

- images (``synthesize``, ``upscale``): PSNR >= 40 dB against the fp32 image, both clamped to [-1, 1] (peak-to-peak 2, so the
  same figure as on the 8-bit frame); 40 dB is an RMS error of 1/100 of the range, about 1.3 levels of 255.
- embeddings (``encode``): cosine similarity >= 0.999 between the unit embeddings (the smoother, the mapper and
  the labels all read directions; 0.999 is an angle of 2.6 degrees).
- latents (``map``): RMS error <= 1 % of the fp32 output's RMS (w+ codes feed every layer of the generator).

The examples are seeded and fixed: the generator's is a real mapped latent (seed 0, truncation 0.7), not noise,
and the upscaler's a smooth seeded picture, since PSNR depends on the image it is measured on.
"""

from __future__ import annotations

import math

import torch

MIN_PSNR_DB = 40.0
MIN_COSINE = 0.999
MAX_REL_RMS = 0.01
TOLERANCE = {"synthesize": f"PSNR >= {MIN_PSNR_DB:g} dB", "upscale": f"PSNR >= {MIN_PSNR_DB:g} dB",
             "encode": f"cosine >= {MIN_COSINE}",
             "map": f"RMS error <= {100 * MAX_REL_RMS:g}% of the output's RMS"}


MAX_PSNR_DB = 200.0  # identical images (and float rounding) read as this, so reports stay plain JSON numbers


def psnr_db(got: torch.Tensor, want: torch.Tensor) -> float:
    """PSNR of two images in about [-1, 1], clamped there (peak-to-peak 2), at most ``MAX_PSNR_DB``."""
    got, want = got.detach().float().cpu().clamp(-1, 1), want.detach().float().cpu().clamp(-1, 1)
    mse = float((got - want).square().mean())
    return MAX_PSNR_DB if mse == 0 else min(MAX_PSNR_DB, 20 * math.log10(2.0) - 10 * math.log10(mse))


def compare(stage: str, got: torch.Tensor, want: torch.Tensor) -> dict:
    """``{"measure": value, ..., "ok": bool}`` of ``got`` against the fp32 reference ``want`` for ``stage``."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    if got.shape != want.shape:
        return {"ok": False, "error": f"shape {list(got.shape)}, expected {list(want.shape)}"}
    if not torch.isfinite(got).all():
        return {"ok": False, "error": "non-finite values"}
    if stage in ("synthesize", "upscale"):
        db = psnr_db(got, want)
        return {"psnr_db": db, "ok": db >= MIN_PSNR_DB}
    if stage == "encode":
        cos = float(torch.nn.functional.cosine_similarity(got.flatten(1), want.flatten(1)).min())
        return {"cosine": cos, "ok": cos >= MIN_COSINE}
    rel = float((got - want).square().mean().sqrt() / (want.square().mean().sqrt() + 1e-12))
    return {"rel_rms_error": rel, "ok": rel <= MAX_REL_RMS}


def describe(result: dict) -> str:
    """'PSNR 51.2 dB' / 'cosine 0.99991' / 'RMS error 0.31%' (or the error)."""
    if "error" in result:
        return result["error"]
    if "psnr_db" in result:
        return f"PSNR {result['psnr_db']:.1f} dB"
    if "cosine" in result:
        return f"cosine {result['cosine']:.5f}"
    return f"RMS error {100 * result['rel_rms_error']:.2f}%"


def example_inputs(stage: str, module: torch.nn.Module, device) -> tuple[torch.Tensor, ...]:
    """Seeded batch-1 inputs of ``stage``'s call, on ``device``."""
    gen = torch.Generator().manual_seed(0)
    if stage == "synthesize":
        with torch.inference_mode():
            ws = module.mapping(module.z_from_seeds([0]).to(module.synthesis.const.device), truncation_psi=0.7)
        return (ws.to(device),)
    if stage == "map":
        ws = torch.randn(1, module.num_ws, module.w_dim, generator=gen)
        e = torch.nn.functional.normalize(torch.randn(1, module.clip_dim, generator=gen), dim=-1)
        return ws.to(device), e.to(device), torch.full((1,), 0.5, device=device)
    if stage == "encode":
        return (torch.rand(1, 1, 128, 512, generator=gen).to(device),)
    if stage == "upscale":  # a smooth picture (PSNR on noise would say little about real frames)
        small = torch.rand(1, 3, 8, 8, generator=gen) * 2 - 1
        size = int(module.frame_size)
        return (torch.nn.functional.interpolate(small, size=(size, size), mode="bilinear").to(device),)
    raise ValueError(f"stage {stage!r} has no accelerated backend")


def compare_with_torch(stage: str, runner, module: torch.nn.Module, device) -> dict:
    """``compare`` of one call of ``runner`` on ``example_inputs`` with the fp32 torch module's."""
    from livesound.live.backends.torch_lowp import stage_call

    inputs = example_inputs(stage, module, device)
    with torch.inference_mode():
        want = stage_call(stage, module)(*inputs)
    return compare(stage, runner(*inputs), want)
