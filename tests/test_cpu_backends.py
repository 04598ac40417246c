"""The CPU's fast paths (OpenVINO, bf16), reduced-precision parity, ``auto``, mixed backends and the host copy.

Parity tolerances are the product's (`livesound.live.backends.parity`): PSNR >= 40 dB for images. The bf16
tests need a CPU with bf16 instructions and skip elsewhere with that reason; a CPU without them is played by
replacing the capability probe, and its bf16 backends must then be *unavailable*, not errors.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from livesound.cli import main
from livesound.live.backends import Unavailable, capability, make_backend, parity, unavailable_reason
from livesound.live.backends import auto as auto_mod
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.pipeline import run_fixed_step
from livesound.models.stylegan2 import GeneratorConfig, build_generator

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not capability.cpu_has_bf16(), reason=capability.no_bf16_reason())
needs_openvino = pytest.mark.skipif(capability.unavailable_reason("openvino", CPU) is not None,
                                    reason=str(capability.unavailable_reason("openvino", CPU)))


@pytest.fixture(scope="module")
def G():
    return build_generator(GeneratorConfig(resolution=64, z_dim=64, w_dim=64, channels=[64, 64, 32, 16, 8]), seed=3)


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(capability, "cpu_has_bf16", lambda: False)


def _ws(G, seed=0):
    with torch.inference_mode():
        return G.mapping(G.z_from_seeds([seed]), truncation_psi=0.7)


def _reference(G, ws):
    with torch.inference_mode():
        return G.synthesis(ws, noise_mode="const")


# ---------------------------------------------------------------------------------------------- parity

@needs_openvino
@pytest.mark.parametrize("backend", ["openvino", pytest.param("openvino-bf16", marks=needs_bf16),
                                     pytest.param("torch-bf16", marks=needs_bf16)])
def test_cpu_backends_keep_psnr_above_40_db(G, backend):
    run = make_backend("synthesize", backend, G)
    assert run.name == backend
    for seed in (0, 1, 2):
        ws = _ws(G, seed)
        got = run(ws)
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        db = parity.psnr_db(got, _reference(G, ws))
        assert db >= parity.MIN_PSNR_DB, f"{backend}: {db:.1f} dB"
        if backend == "openvino":
            assert db > 80  # fp32: only rounding differs


@needs_openvino
def test_openvino_runs_every_stage_and_batches(G):
    pipe = build_pipeline(LiveOptions(preset="demo", backend="openvino", device="cpu", pin_threads="off",
                                      steer="mapper"))  # the mapper: a bank's map stage stays in torch
    assert pipe.backends == {"encode": "openvino", "map": "openvino", "synthesize": "openvino"}
    for stage in ("encode", "map"):  # every stage's own tolerance, on its seeded example
        assert parity.compare_with_torch(stage, pipe.runners[stage], pipe.network(stage), CPU)["ok"], stage
    ws = torch.cat([_ws(G, s) for s in range(3)])
    run = make_backend("synthesize", "openvino", G)
    assert parity.psnr_db(run(ws), _reference(G, ws)) > 80  # a new batch size compiles its own shape


def test_fp16_matches_fp32_within_40_db_on_the_cpu(G):
    """Autocast fp16 keeps the modulation, the clamps and the image skip path in fp32 (stylegan2's docstring)."""
    ws = _ws(G)
    seen = {}
    hook = G.synthesis.torgbs[-1].register_forward_hook(lambda m, i, o: seen.update(torgb=o.dtype))
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
            got = G.synthesis(ws, noise_mode="const")
    except RuntimeError as e:  # an old torch without CPU fp16 kernels
        pytest.skip(f"this torch has no CPU fp16 autocast ({e})")
    finally:
        hook.remove()
    assert seen["torgb"] == torch.float32
    assert parity.psnr_db(got, _reference(G, ws)) >= parity.MIN_PSNR_DB


def test_fp16_does_not_overflow_where_styles_are_huge(G):
    """Styles far beyond fp16's range cancel in fp32 (demodulation) and must not become inf in fp16."""
    import copy

    big = copy.deepcopy(G)
    with torch.no_grad():
        for layer in big.synthesis.layers:
            layer.affine.weight.mul_(1e5)  # styles 1e5 x larger: x * styles would pass fp16's 65504
            layer.affine.bias.mul_(1e5)
    ws = _ws(G)
    want = _reference(big, ws)
    assert parity.psnr_db(want, _reference(G, ws)) > 60  # fp32 does not care: demodulation cancels the scale
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.float16):
        got = big.synthesis(ws, noise_mode="const")
    assert torch.isfinite(got).all()
    assert parity.psnr_db(got, want) >= parity.MIN_PSNR_DB


# ---------------------------------------------------------------------------------------------- availability

def test_a_cpu_without_bf16_reports_the_bf16_backends_unavailable(G, no_bf16):
    for name in ("torch-bf16", "openvino-bf16"):
        reason = unavailable_reason(name, CPU)
        assert reason and "bf16" in reason
        with pytest.raises(Unavailable, match="unavailable here: this CPU has no bf16"):
            make_backend("synthesize", name, G)
    assert unavailable_reason("torch", CPU) is None and unavailable_reason("onnxruntime", CPU) is None
    assert "CUDA GPU" in unavailable_reason("torch-fp16", CPU) and "CUDA GPU" in unavailable_reason("tensorrt", CPU)


def test_the_bench_contract_reports_unavailable_backends_in_its_json(tmp_path, no_bf16, monkeypatch):
    """The issue's contract command, on a CPU played without bf16: the bf16 backends are listed as unavailable
    with the reason, the others timed, and the run succeeds."""
    from conftest import rosinality_state, write_rosinality

    monkeypatch.setattr("livesound.bench.generator.measure_peak_gflops",
                        lambda threads, seconds=2.0: {"peak_gflops": 10.0, "matmul_gflops": 10.0,
                                                      "conv_gflops": 10.0})
    ckpt = write_rosinality(tmp_path / "G.pt", rosinality_state(16, 32, 2, {4: 32, 8: 16, 16: 8}))
    out = tmp_path / "out.json"
    backends = "torch,torch-bf16,onnxruntime,openvino,openvino-bf16"
    assert main(["bench", "--generator", str(ckpt), "--stages", "generator", "--backends", backends,
                 "--frames", "2", "--warmup", "0", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["unavailable"]) >= {"torch-bf16", "openvino-bf16"}
    assert all("bf16" in why for why in r["unavailable"].values())
    ran = {"torch", "onnxruntime"} | ({"openvino"} if unavailable_reason("openvino", CPU) is None else set())
    assert set(r["backends"]) == ran and not r["skipped"]
    for name in ran:
        assert r["backends"][name]["within_tolerance"] and r["backends"][name]["psnr_db"] >= 40


# ---------------------------------------------------------------------------------------------- auto

@needs_openvino
def test_auto_picks_only_within_tolerance_and_remembers(G, monkeypatch):
    """With the image tolerance raised to 80 dB the bf16 backends (about 50 dB) fall outside it: however fast,
    auto must not pick them. The second start reads the choice instead of measuring."""
    monkeypatch.setattr(parity, "MIN_PSNR_DB", 80.0)
    monkeypatch.setattr(auto_mod, "TIMED", 3)
    run = make_backend("synthesize", "auto", G)
    path = auto_mod.choice_path("synthesize", G, 1, CPU)
    report = json.loads(path.read_text())
    assert run.name == report["choice"]
    ok = {n for n, r in report["measured"].items() if r["ok"]}
    assert report["choice"] in ok and "openvino" in ok and "torch" in ok
    for name in ("torch-bf16", "openvino-bf16"):
        if name in report["measured"]:
            assert not report["measured"][name]["ok"] and report["measured"][name]["psnr_db"] < 80
            assert "p50_ms" not in report["measured"][name]  # outside tolerance: never even timed
        else:
            assert name in report["unavailable"]
    fastest = min(ok, key=lambda n: report["measured"][n]["p50_ms"])
    assert report["choice"] == fastest

    monkeypatch.setattr(auto_mod, "measure", lambda *a, **k: pytest.fail("measured again despite the cache"))
    again = make_backend("synthesize", "auto", G)
    assert again.name == report["choice"]
    ws = _ws(G)
    assert parity.psnr_db(again(ws), _reference(G, ws)) >= 80


def test_auto_falls_back_to_torch_when_nothing_else_is_within_tolerance(G, monkeypatch):
    monkeypatch.setattr(auto_mod, "candidates", lambda device: ["torch-fp16", "onnxruntime"])
    monkeypatch.setattr(parity, "MIN_PSNR_DB", 1e9)  # nothing passes
    run = make_backend("synthesize", "auto", G, threads=2)
    report = json.loads(auto_mod.choice_path("synthesize", G, 2, CPU).read_text())
    assert run.name == "torch" and report["choice"] == "torch"
    assert "torch-fp16" in report["unavailable"] and not report["measured"]["onnxruntime"]["ok"]


# ---------------------------------------------------------------------------------------------- the frame

@needs_openvino
def test_mixed_backends_per_stage_make_the_same_frames():
    audio = (0.2 * np.sin(2 * np.pi * 330 * np.arange(44100) / 44100)).astype(np.float32)
    base = build_pipeline(LiveOptions(preset="demo", backend="torch", device="cpu", pin_threads="off", steer="mapper"))
    mixed = build_pipeline(LiveOptions(preset="demo", backend="encode=openvino,map=onnxruntime,synthesize=torch",
                                       device="cpu", pin_threads="off", steer="mapper"))
    assert mixed.backends == {"encode": "openvino", "map": "onnxruntime", "synthesize": "torch"}
    want = [f.rgb for f in run_fixed_step(base, audio, 4, 1470)]
    got = [f.rgb for f in run_fixed_step(mixed, audio, 4, 1470)]
    for a, b in zip(got, want):
        assert a.shape == b.shape == (128, 128, 3) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # fp32 everywhere: rounding only


def test_one_host_copy_a_frame_and_frames_do_not_share_memory():
    pipe = build_pipeline(LiveOptions(preset="demo", backend="torch", device="cpu", pin_threads="off", steer="mapper"))
    audio = (0.2 * np.random.default_rng(0).standard_normal(44100)).astype(np.float32)
    before = pipe.host.copies
    frames = list(run_fixed_step(pipe, audio, 5, 1470))
    assert pipe.host.copies - before == 5
    for a, b in zip(frames, frames[1:]):
        assert not np.shares_memory(a.rgb, b.rgb)  # a frame the window still paints is never overwritten
    assert all(f.rgb.flags.c_contiguous and f.rgb.shape == (128, 128, 3) for f in frames)


# ---------------------------------------------------------------------------------------------- signals

RELEASED_THEN_CTRL_C = """
import gc, os, signal, sys, time
import torch
from livesound.live.backends.ov_stage import OpenVinoBackend

path = sys.argv[1]
torch.onnx.export(torch.nn.Linear(8, 4), (torch.zeros(1, 8),), path, dynamo=False)
heard = []
signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
first, second = OpenVinoBackend(path), OpenVinoBackend(path)   # two compiled models, as a swap holds
first(torch.ones(1, 8)), second(torch.ones(1, 8))
del first, second
gc.collect()
os.kill(os.getpid(), signal.SIGINT)                            # Ctrl+C, handled on the thread's signal stack
time.sleep(0.1)
print("heard", heard)
"""


@needs_openvino
def test_ctrl_c_after_released_openvino_models_is_heard_not_a_crash(tmp_path):
    """OpenVINO's CPU plugin leaves the compiling thread's signal stack pointing at memory it freed: the next
    signal CPython handled there crashed the process (SIGSEGV) until each compile put the thread's stack back."""
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-W", "ignore", "-c", RELEASED_THEN_CTRL_C,
                        str(tmp_path / "linear.onnx")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "heard [2]" in r.stdout, (r.returncode, r.stderr[-2000:])
