"""Make (or check) golden_rosinality.npz and golden_nvidia.npz with the reference implementations themselves.

    python tests/data/make_golden.py --rosinality PATH/stylegan2-pytorch --nvidia PATH/stylegan2-ada-pytorch
    python tests/data/make_golden.py --rosinality ... --nvidia ... --check     # compare with the committed files

Needs checkouts of rosinality/stylegan2-pytorch and NVlabs/stylegan2-ada-pytorch (README.md here names the
commits). Neither is part of livesound and the tests never run this script: they read the numbers it wrote.
Only numbers are stored (state-dict tensors, inputs, outputs); the tests write checkpoint files from them.

Recipe (each file from one seeded global torch RNG, every draw in this order):

- rosinality: ``torch.manual_seed(5)``; ``Generator(64, style_dim=32, n_mlp=3)`` with its channel table
  narrowed to 32 at 4-32 px and 16 at 64 px (the constructor draws its weights in its own order); every
  parameter, in ``parameters()`` order, plus ``0.1 * randn_like`` (so biases, modulation biases and noise
  strengths are not their constant initial values); noise buffers replaced by ``make_noise()``; then
  ``latent_avg`` randn(32), ``z`` randn(3, 32), ``ws`` randn(3, 10, 32), ``w_single = randn(3, 10, 32)[:, 0]``.
  Outputs on the CPU (the reference ops' CPU paths: ``upfirdn2d_native``, leaky ReLU), eval mode:
  ``w = style(z)``, ``w_trunc = latent_avg + 0.7 (w - latent_avg)``, images of ``ws`` with the stored noise
  (``img_const``) and with zero noise (``img_none``), of ``w_single`` broadcast to every layer (``img_w``)
  and of ``z`` at truncation 0.7 (``img_z_trunc``).
- NVIDIA: ``torch.manual_seed(7)``; ``training.networks.Generator(**init_kwargs)`` (the JSON stored in the
  file: 32 px, z 24, w 32, 3 classes, 2 mapping layers, channel_base 256, channel_max 32, 2 fp16
  resolutions, conv_clamp 2, skip architecture); every parameter plus ``0.1 * randn_like``; every buffer
  but the resample filters (noise_const, w_avg) replaced by ``randn_like``; then ``z`` randn(3, 24), ``c`` the
  3 one-hot classes, ``ws`` randn(3, 8, 32). Outputs in eval mode with ``force_fp32=True``: ``mapping`` at
  truncation 1, 0.7 and (0.5, cutoff 3), ``synthesis`` with noise ``const`` and ``none``, and ``G(z, c)`` at
  truncation 0.7.

rosinality's ``op`` package compiles CUDA extensions when imported; this script never builds them: it imports
``op`` with ``torch.utils.cpp_extension.load`` replaced by a stub, and runs on the CPU, where the reference
calls its own pure-PyTorch paths instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROSINALITY_SEED, NVIDIA_SEED = 5, 7
ROSINALITY_CHANNELS = {4: 32, 8: 32, 16: 32, 32: 32, 64: 16}
NVIDIA_KWARGS = {"z_dim": 24, "w_dim": 32, "c_dim": 3, "img_resolution": 32, "img_channels": 3,
                 "mapping_kwargs": {"num_layers": 2},
                 "synthesis_kwargs": {"channel_base": 256, "channel_max": 32, "num_fp16_res": 2, "conv_clamp": 2.0,
                                      "architecture": "skip"}}


def _import_from(root: Path, module: str):
    """``module`` imported from the checkout at ``root`` (put first on sys.path)."""
    if not root.is_dir():
        raise SystemExit(f"{root}: no such folder (a checkout of the reference implementation)")
    sys.path.insert(0, str(root))
    return __import__(module, fromlist=["_"])


def _perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


def rosinality(root: Path) -> dict[str, np.ndarray]:
    import torch.utils.cpp_extension as cpp

    build = cpp.load
    cpp.load = lambda *args, **kwargs: None  # op/*.py compile their CUDA kernels at import; the CPU needs none
    try:
        model = _import_from(root, "model")
    finally:
        cpp.load = build

    class Narrow(model.Generator):
        def __setattr__(self, name, value):
            if name == "channels":  # the constructor's channel table, narrowed before any layer is built
                value = {**value, **ROSINALITY_CHANNELS}
            super().__setattr__(name, value)

    torch.manual_seed(ROSINALITY_SEED)
    G = Narrow(64, 32, 3)
    _perturb(G)
    with torch.no_grad():
        for i, noise in enumerate(G.make_noise()):
            getattr(G.noises, f"noise_{i}").copy_(noise)
        latent_avg, z, ws = torch.randn(32), torch.randn(3, 32), torch.randn(3, 10, 32)
        w_single = torch.randn(3, 10, 32)[:, 0]
        G.eval()
        w = G.style(z)
        zeros = [torch.zeros_like(getattr(G.noises, f"noise_{i}")) for i in range(G.num_layers)]
        out = {"latent_avg": latent_avg, "z": z, "ws": ws, "w": w, "w_trunc": latent_avg + 0.7 * (w - latent_avg),
               "img_const": G([ws], input_is_latent=True, randomize_noise=False)[0],
               "img_none": G([ws], input_is_latent=True, noise=zeros)[0],
               "img_z_trunc": G([z], truncation=0.7, truncation_latent=latent_avg[None], randomize_noise=False)[0],
               "w_single": w_single, "img_w": G([w_single], input_is_latent=True, randomize_noise=False)[0]}
    return _arrays(G, out)


def nvidia(root: Path) -> dict[str, np.ndarray]:
    networks = _import_from(root, "training.networks")
    torch.manual_seed(NVIDIA_SEED)
    G = networks.Generator(**NVIDIA_KWARGS)
    _perturb(G)
    with torch.no_grad():
        for name, buf in G.named_buffers():
            if not name.endswith("resample_filter"):
                buf.copy_(torch.randn_like(buf))
        z, c, ws = torch.randn(3, 24), torch.eye(3), torch.randn(3, 8, 32)
        G.eval()
        out = {"z": z, "c": c, "ws": ws, "w": G.mapping(z, c), "w_trunc": G.mapping(z, c, truncation_psi=0.7),
               "w_cut": G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=3),
               "img_const": G.synthesis(ws, noise_mode="const", force_fp32=True),
               "img_none": G.synthesis(ws, noise_mode="none", force_fp32=True),
               "img_z_trunc": G(z, c, truncation_psi=0.7, noise_mode="const", force_fp32=True)}
    arrays = _arrays(G, out)
    arrays["init_kwargs"] = np.array(json.dumps(NVIDIA_KWARGS))
    return arrays


def _arrays(G: torch.nn.Module, out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    arrays = {f"sd/{k}": v.detach().numpy().copy() for k, v in G.state_dict().items()}
    arrays.update({k: v.detach().numpy().astype(np.float32) for k, v in out.items()})
    return arrays


def compare(made: dict[str, np.ndarray], path: Path) -> float:
    """Print how ``made`` differs from the committed file at ``path``; return the largest output difference."""
    with np.load(path, allow_pickle=False) as f:
        kept = {k: f[k] for k in f.files}
    if set(made) != set(kept):
        raise SystemExit(f"{path.name}: different arrays: {sorted(set(made) ^ set(kept))}")
    worst = 0.0
    for k in sorted(kept):
        a, b = made[k], kept[k]
        if a.dtype.kind in "US":
            same = json.loads(str(a)) == json.loads(str(b))
            print(f"{path.name} {k}: {'identical' if same else 'DIFFERENT'}")
            continue
        diff = float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0
        if k.startswith("img_") or k.startswith("w"):
            worst = max(worst, diff)
        if diff or k.startswith("img_"):
            print(f"{path.name} {k}: max abs difference {diff:.3g}")
    exact = [k for k in kept if not k.startswith("img_") and np.array_equal(made[k], kept[k])]
    print(f"{path.name}: {len(exact)} of {len(kept) - sum(k.startswith('img_') for k in kept)} weight/input/latent "
          "arrays bit-identical")
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rosinality", type=Path, required=True, help="checkout of rosinality/stylegan2-pytorch")
    p.add_argument("--nvidia", type=Path, required=True, help="checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--out", type=Path, default=HERE, help="folder for the .npz files (default: beside this)")
    p.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # one summation order, the same on every machine that runs this
    for name, make, root in (("rosinality", rosinality, args.rosinality), ("nvidia", nvidia, args.nvidia)):
        arrays = make(root.resolve())
        path = args.out / f"golden_{name}.npz"
        if args.check:
            print(f"{path.name}: largest difference of a computed output {compare(arrays, path):.3g}")
        else:
            np.savez_compressed(path, **arrays)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
