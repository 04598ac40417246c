"""Parity with the public implementations, on numbers they computed themselves.

tests/data/golden_*.npz hold a small randomly initialised (then perturbed) generator's weights and outputs
computed by rosinality's stylegan2-pytorch (CPU fallbacks of its ops) and by NVIDIA's stylegan2-ada-pytorch
(reference ops, ``force_fp32=True``). Only numbers are stored: the tests write the checkpoint files in each
format and load them through ``load_generator``. Contract tolerance: max abs error <= 1e-3.
"""

import numpy as np
import torch
from conftest import golden, state_from, write_nvidia, write_rosinality

from livesound.models.stylegan2 import load_generator

TOL = 1e-3


def _err(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape, (tuple(a.shape), b.shape)
    return float(np.abs(a.detach().numpy().astype(np.float64) - b).max())


def test_rosinality_pt_matches_rosinality(tmp_path):
    ref = golden("rosinality")
    path = write_rosinality(tmp_path / "g.pt", state_from(ref), torch.from_numpy(ref["latent_avg"]))
    G = load_generator(path)
    assert (G.resolution, G.num_ws, G.w_dim) == (64, 10, 32)
    z, ws = torch.from_numpy(ref["z"]), torch.from_numpy(ref["ws"])
    with torch.no_grad():
        assert _err(G.mapping(z)[:, 0], ref["w"]) <= 1e-5
        assert _err(G.mapping(z, truncation_psi=0.7)[:, 0], ref["w_trunc"]) <= 1e-5
        assert _err(G.synthesis(ws, noise_mode="const"), ref["img_const"]) <= TOL
        assert _err(G.synthesis(ws, noise_mode="none"), ref["img_none"]) <= TOL
        assert _err(G.synthesis(torch.from_numpy(ref["w_single"])), ref["img_w"]) <= TOL
        img = G.synthesis(G.mapping(z, truncation_psi=0.7))
        assert _err(img, ref["img_z_trunc"]) <= TOL
    assert np.abs(ref["img_const"]).max() > 1.0  # the reference is not a near-zero image


def test_nvidia_pkl_matches_stylegan2_ada(tmp_path, marker):
    import json

    ref = golden("nvidia")
    kwargs = json.loads(str(ref["init_kwargs"]))
    path = write_nvidia(tmp_path / "network-snapshot.pkl", state_from(ref), kwargs, marker)
    G = load_generator(path)
    assert not marker.exists()
    assert G.cfg.conv_clamp == 2.0 and G.cfg.c_dim == 3 and G.cfg.channels == [32, 32, 16, 8]
    z, c, ws = (torch.from_numpy(ref[k]) for k in ("z", "c", "ws"))
    with torch.no_grad():
        assert _err(G.mapping(z, c), ref["w"]) <= 1e-5
        assert _err(G.mapping(z, c, truncation_psi=0.7), ref["w_trunc"]) <= 1e-5
        assert _err(G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=3), ref["w_cut"]) <= 1e-5
        assert _err(G.synthesis(ws, noise_mode="const"), ref["img_const"]) <= TOL
        assert _err(G.synthesis(ws, noise_mode="none"), ref["img_none"]) <= TOL
        assert _err(G(z, c, truncation_psi=0.7), ref["img_z_trunc"]) <= TOL
    # the activation clamp is live in this reference: without it the numbers differ
    G.cfg.conv_clamp = None
    for m in G.modules():
        if hasattr(m, "conv_clamp"):
            m.conv_clamp = None
    with torch.no_grad():
        assert _err(G.synthesis(ws), ref["img_const"]) > TOL
