"""Every fast path of the generator keeps parity: with the plain path, and with the reference implementations'
own numbers (the golden files of test_stylegan2_parity.py).

torch.compile is not tested here: compiling even a tiny generator takes well over 20 s on 2 cores. The
benchmark (benchmarks/bench_generator_techniques.py, variant ``compile``) checks its parity on every run.
"""

import json

import numpy as np
import pytest
import torch
from conftest import golden, state_from, write_nvidia, write_rosinality

from livesound.models.fast_paths import FastPaths, apply_fast_paths, retain_freed_memory
from livesound.models.stylegan2 import load_generator

FAST = [dict(fold_fir=True), dict(fused_act=True), dict(channels_last=True), dict(modconv="grouped"),
        dict(fold_fir=True, fused_act=True, channels_last=True)]


def _perturbed(G):
    """Noise strengths and biases are zero at init, which would hide a wrong fused epilogue."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for layer in G.synthesis.layers:
            layer.noise_strength.fill_(0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g))
    return G


@pytest.mark.parametrize("fast", FAST, ids=lambda d: "+".join(f"{k}={v}" for k, v in d.items()))
def test_fast_paths_match_the_plain_path(tiny_generator, fast):
    G = _perturbed(tiny_generator)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))).detach()
    ws = ws + 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(1))  # per-layer styles differ
    with torch.no_grad():
        want = {m: G.synthesis(ws, m, torch.Generator().manual_seed(2)) for m in ("const", "none", "random")}
        G.synthesis.set_fast_paths(**fast)
        assert G.synthesis.fast_paths == {"fold_fir": False, "fused_act": False, "channels_last": False,
                                          "modconv": "shared"} | fast
        for mode, img in want.items():
            got = G.synthesis(ws, mode, torch.Generator().manual_seed(2))
            assert got.shape == img.shape
            assert (got - img).abs().max() <= 2e-5 * img.abs().max(), mode
        G.synthesis.set_fast_paths()
        assert torch.equal(G.synthesis(ws), want["const"])  # switched off again: the plain path, bit for bit


def test_folded_upsampling_kernel_is_transposed_conv_then_fir(tiny_generator):
    """One layer alone: conv2d(folded) + pixel shuffle == conv_transpose2d(stride 2) + FIR, any input."""
    import torch.nn.functional as F

    from livesound.models.stylegan2 import _fir2d

    layer = next(l for l in tiny_generator.synthesis.layers if l.up)
    x = torch.randn(3, layer.weight.shape[1], 5, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = layer.weight * layer.weight_gain
        want = _fir2d(F.conv_transpose2d(x, w.transpose(0, 1), stride=2), layer.blur, (1, 1))
        got = F.pixel_shuffle(F.conv2d(x, layer.folded_weight(), padding=1), 2)
    assert got.shape == want.shape == (3, layer.weight.shape[0], 10, 14)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fast_paths_follow_loaded_weights(tiny_generator):
    """Derived tensors (folded kernels, fused bias and noise) are rebuilt when a state dict is loaded."""
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    G = apply_fast_paths(tiny_generator, FastPaths(fold_fir=True))
    other = _perturbed(build_generator(GeneratorConfig(**G.cfg.to_dict()), seed=11))
    ws = other.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))).detach()
    with torch.no_grad():
        want = other.synthesis(ws)
        G.load_state_dict(other.state_dict())
        torch.testing.assert_close(G.synthesis(ws), want, atol=1e-5, rtol=1e-5)
        assert G.state_dict().keys() == other.state_dict().keys()  # derived tensors are never saved
        G.double()  # ... but travel with the module (dtype, device)
        assert G.synthesis.layers[1]._folded.dtype == torch.float64
        torch.testing.assert_close(G.synthesis(ws.double()).float(), want, atol=1e-5, rtol=1e-5)


def _err(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().numpy().astype(np.float64) - b).max())


def test_fast_paths_hold_the_reference_goldens(tmp_path, marker):
    ref = golden("rosinality")
    G = load_generator(write_rosinality(tmp_path / "g.pt", state_from(ref), torch.from_numpy(ref["latent_avg"])))
    apply_fast_paths(G, FastPaths(fold_fir=True))
    ws = torch.from_numpy(ref["ws"])
    with torch.no_grad():
        assert _err(G.synthesis(ws, noise_mode="const"), ref["img_const"]) <= 1e-3
        assert _err(G.synthesis(ws, noise_mode="none"), ref["img_none"]) <= 1e-3

    ref = golden("nvidia")
    path = write_nvidia(tmp_path / "network-snapshot.pkl", state_from(ref), json.loads(str(ref["init_kwargs"])),
                        marker)
    G = apply_fast_paths(load_generator(path), FastPaths(fold_fir=True))
    assert G.cfg.conv_clamp == 2.0  # the clamp comes after the fused epilogue and still bites
    with torch.no_grad():
        assert _err(G.synthesis(torch.from_numpy(ref["ws"]), noise_mode="const"), ref["img_const"]) <= 1e-3
        assert _err(G.synthesis(torch.from_numpy(ref["ws"]), noise_mode="none"), ref["img_none"]) <= 1e-3


def test_fast_generator_exports_to_onnx_with_parity(tmp_path, tiny_generator):
    """ONNX Runtime runs the fused, folded graph (constant noise baked in) like the plain torch path."""
    from exporters.onnx import export_graph, stage_specs
    from livesound.live.backends.ort_stage import OrtBackend

    G = _perturbed(tiny_generator)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))).detach()
    with torch.no_grad():
        want = G.synthesis(ws)
    apply_fast_paths(G, FastPaths(fold_fir=True))
    export_graph(next(s for s in stage_specs(G) if s.name == "generator"), tmp_path)
    got = OrtBackend(tmp_path / "generator.onnx")(ws)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_bad_modconv_and_heap_retention():
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    G = build_generator(GeneratorConfig(resolution=8, z_dim=4, w_dim=4, mapping_layers=1, channels=[4, 4]), seed=0)
    with pytest.raises(ValueError, match="modconv must be"):
        G.synthesis.set_fast_paths(modconv="fused")
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert retain_freed_memory(128 * 1024) is True  # about glibc's own defaults: the suite stays as it was


def test_generator_bench_reports_each_size_and_backend(tmp_path):
    """`livesound bench --stages generator --sizes`: one entry per size, fraction of peak on each backend."""
    from livesound.bench.generator import (
        parse_sizes,
        plot_generator,
        run_generator_sizes,
    )

    assert parse_sizes("256:1, 256:2") == [(256, 1), (256, 2)]
    with pytest.raises(ValueError, match="RESOLUTION:CHANNEL_MULTIPLIER"):
        parse_sizes("256")
    r = run_generator_sizes([(8, 1), (8, 2)], backends=("torch", "torch-plain"), frames=2, warmup=1, threads=1,
                            log=lambda line: None, peak_seconds=0.02)
    plot_generator(r, tmp_path / "g.png")
    assert [s["generator"]["channel_multiplier"] for s in r["sizes"]] == [1, 2]
    assert r["backends"] is r["sizes"][0]["backends"]  # the first size is also the one-generator report
    for size in r["sizes"]:
        assert set(size["backends"]) == {"torch", "torch-plain"}
        for b in size["backends"].values():
            assert b["fraction_of_peak"] == pytest.approx(b["achieved_gflops"] / size["machine"]["peak_gflops"])
    assert (tmp_path / "g.png").stat().st_size > 0


def test_report_shows_the_technique_table(tmp_path, monkeypatch):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("report", REPO / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    v = {"p50_ms": 250.4, "p99_ms": 260.0, "achieved_gflops": 119.2, "fraction_of_peak": 0.611,
         "max_abs_error": 1.2e-5, "speedup_vs_grouped": 2.5}
    (tmp_path / "generator_techniques_256px_cpu.json").write_text(json.dumps({
        "machine": {"peak_gflops": 195.0, "threads": 2, "date": "2026-11-27"}, "frames": 5, "wall_s": 420,
        "sizes": [{"resolution": 256, "channel_multiplier": 2, "gflop_per_frame": 29.8, "variants": {"+fused-act": v},
                   "skipped": {"compile": "RuntimeError: no compiler"}}]}))
    text = report.render()
    assert "256 px, channel multiplier 2 (29.8 GFLOP a frame):" in text
    assert "| +fused-act | 250 | 260 | - | 119.2 | 61 % | 2.50x | 1.2e-05 |" in text
    assert "| compile | skipped: RuntimeError: no compiler |" in text
    assert "![techniques](results/generator_techniques_256px_cpu.png)" in text
