"""The GPU paths: device-consistent backends, the fast fp16 frame, CUDA graphs, I/O binding, one host copy.

Every test here needs a CUDA GPU and skips without one, saying so; those that need onnxruntime-gpu or TensorRT
skip where those are missing. ``benchmarks/gpu_check.sh`` times the same paths at real sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from livesound.live.backends import make_backend, parity, unavailable_reason
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.pipeline import run_fixed_step
from livesound.models.stylegan2 import GeneratorConfig, build_generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")
CUDA = torch.device("cuda", 0)


def _skip_unavailable(backend: str) -> None:
    reason = unavailable_reason(backend, CUDA)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def G():
    return build_generator(GeneratorConfig(resolution=64, z_dim=64, w_dim=64, channels=[64, 64, 32, 16, 8]),
                           seed=3).to(CUDA)


def _ws(G, seed=0):
    with torch.inference_mode():
        return G.mapping(G.z_from_seeds([seed]), truncation_psi=0.7)


@pytest.mark.parametrize("backend", ["torch", "torch-fp16", "onnxruntime", "onnxruntime-tensorrt",
                                     "onnxruntime-tensorrt-fp16", "tensorrt", "tensorrt-fp16"])
def test_every_gpu_backend_returns_cuda_tensors_within_tolerance(G, backend):
    _skip_unavailable(backend)
    run = make_backend("synthesize", backend, G, device=CUDA)
    ws = _ws(G)
    got = run(ws)
    assert got.device.type == "cuda" and got.dtype == torch.float32
    with torch.inference_mode():
        want = G.synthesis(ws, noise_mode="const")
    assert parity.psnr_db(got, want) >= parity.MIN_PSNR_DB
    got_from_cpu = run(ws.cpu())  # inputs on another device are moved, not refused
    assert got_from_cpu.device.type == "cuda"


def test_cuda_graph_replays_new_inputs_and_keeps_old_results(G):
    run = make_backend("synthesize", "torch-fp16", G, device=CUDA)
    a, b = _ws(G, 0), _ws(G, 1)
    img_a = run(a)
    img_b = run(b)
    assert not torch.equal(img_a, img_b)           # the replay read the new input
    assert torch.equal(run(a), img_a)               # deterministic, and img_a was not overwritten by the replay


def test_fp16_matches_fp32_on_the_gpu(G):
    ws = _ws(G)
    with torch.inference_mode():
        want = G.synthesis(ws, noise_mode="const")
        with torch.autocast("cuda", dtype=torch.float16):
            got = G.synthesis(ws, noise_mode="const")
    assert parity.psnr_db(got, want) >= parity.MIN_PSNR_DB


class _HostCopies(TorchDispatchMode):
    """Counts copies from a CUDA tensor into host memory."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in ("copy_", "_to_copy", "_copy_from", "_copy_from_and_resize"):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            src_cuda = any(t.is_cuda for t in tensors)
            dst_cpu = (name == "copy_" and not args[0].is_cuda) or (isinstance(out, torch.Tensor) and not out.is_cuda)
            if src_cuda and dst_cpu:
                self.count += 1
        return out


@pytest.mark.parametrize("backend", ["torch", "synthesize=torch-fp16", "onnxruntime"])
def test_a_gpu_frame_is_copied_to_the_host_once(backend):
    if "onnxruntime" in backend:
        _skip_unavailable("onnxruntime")
    pipe = build_pipeline(LiveOptions(preset="demo", backend=backend, device="cuda", pin_threads="off"))
    assert pipe.G.synthesis.const.is_cuda
    audio = (0.2 * np.random.default_rng(0).standard_normal(44100)).astype(np.float32)
    list(run_fixed_step(pipe, audio, 2, 1470))  # warm-up: captures, autotuning
    with _HostCopies() as copies:
        frames = list(run_fixed_step(pipe, audio, 4, 1470))
    assert copies.count == 4, copies.count
    assert all(f.rgb.shape == (128, 128, 3) for f in frames)


def test_mixed_cpu_and_gpu_backends_stay_consistent():
    _skip_unavailable("onnxruntime")
    pipe = build_pipeline(LiveOptions(preset="demo", backend="encode=onnxruntime,map=torch,synthesize=torch-fp16",
                                      device="cuda", pin_threads="off"))
    audio = (0.2 * np.random.default_rng(1).standard_normal(44100)).astype(np.float32)
    frames = list(run_fixed_step(pipe, audio, 3, 1470))
    assert len(frames) == 3 and frames[-1].rgb.std() > 1
