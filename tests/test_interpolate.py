"""Interpolation between w+ latents: exact ends, monotone linear paths, slerp, rendering to PNGs and video."""

import argparse

import numpy as np
import pytest
import torch

from livesound.offline.interpolate import interpolate, render_path


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 6, 16, generator=g), torch.randn(1, 6, 16, generator=g) * 3


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_endpoints_equal_inputs(pair, mode):
    a, b = pair
    path = interpolate(a, b, 7, mode)
    assert path.shape == (7, 6, 16)
    assert torch.equal(path[0], a[0]) and torch.equal(path[-1], b[0])
    assert torch.isfinite(path).all()


def test_linear_path_is_monotone_in_distance(pair):
    a, b = pair
    path = interpolate(a, b, 12, "linear")
    from_a = (path - a).flatten(1).norm(dim=1)
    to_b = (path - b).flatten(1).norm(dim=1)
    assert (from_a.diff() > 0).all() and (to_b.diff() < 0).all()


def test_slerp_keeps_norm_and_falls_back_when_parallel():
    a = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    path = interpolate(a, b, 9, "slerp")
    assert torch.allclose(path.norm(dim=-1), torch.ones(9, 4), atol=1e-5)   # stays on the sphere
    par = interpolate(a, 2 * a, 5, "slerp")                                  # parallel: linear
    assert torch.allclose(par, interpolate(a, 2 * a, 5, "linear"))


def test_bad_inputs(pair):
    a, b = pair
    with pytest.raises(ValueError, match="at least 2"):
        interpolate(a, b, 1)
    with pytest.raises(ValueError, match="differ in shape"):
        interpolate(a, b[:, :5], 4)
    with pytest.raises(ValueError, match="mode"):
        interpolate(a, b, 4, "cubic")


def test_render_path_writes_frames_and_video(tmp_path, tiny_generator):
    av = pytest.importorskip("av")
    G = tiny_generator
    with torch.no_grad():
        ws = G.mapping(G.z_from_seeds([0, 1]), truncation_psi=0.7)
    path = interpolate(ws[:1], ws[1:], 5, "slerp")
    frames = render_path(G, path, tmp_path / "frames", video=tmp_path / "path.mp4", fps=10)
    assert [p.name for p in frames] == [f"frame_{i:04d}.png" for i in range(5)]
    with av.open(str(tmp_path / "path.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_cli_interpolate_across_files(tmp_path, tiny_generator):
    from PIL import Image

    from livesound.cli.offline import add_parsers, run_interpolate
    from livesound.weights.checkpoint import save_own

    G = tiny_generator
    ckpt = save_own(tmp_path / "g.safetensors", "generator", G.cfg.to_dict(), G.state_dict())
    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((1, G.num_ws, G.w_dim)).astype(np.float32))
    np.save(tmp_path / "b.npy", np.random.default_rng(1).standard_normal((G.num_ws, G.w_dim)).astype(np.float32))
    p = argparse.ArgumentParser()
    add_parsers(p.add_subparsers(dest="command"))
    args = p.parse_args(["interpolate", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--steps", "4",
                         "--generator", str(ckpt), "--out", str(tmp_path / "out")])
    assert run_interpolate(args) == 0
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == 4
    assert Image.open(tmp_path / "out" / "frame_0000.png").size == (32, 32)
    saved = np.load(tmp_path / "out" / "path.npy")
    assert np.array_equal(saved[0], np.load(tmp_path / "a.npy")[0])
