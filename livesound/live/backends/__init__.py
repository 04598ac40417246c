"""Stage backends: one call, ``backend(*tensors) -> tensor``, on torch, ONNX Runtime, OpenVINO or TensorRT.

Three stages of a frame run a network and can be accelerated: ``encode`` (audio encoder), ``map`` (the
steerer's network) and ``synthesize`` (the generator), and a fourth where an output size asks for it:
``upscale`` (a Real-ESRGAN network, `livesound.live.output`). Each runs on one backend chosen by name; the
pipeline never knows which. Every backend object has ``name``, is called with torch tensors on any device and
returns a torch tensor on the pipeline's device, so backends mix freely from one stage to the next. A name without
a precision suffix runs fp32.

- ``torch`` (`torch_stage`): the module itself, in inference mode; the reference every other backend is
  checked against. ``torch-bf16`` (CPU autocast) and ``torch-fp16`` (CUDA autocast in a CUDA graph):
  `torch_lowp`.
- ``onnxruntime`` (`ort_stage`): the stage's ONNX graph, exported once and cached on disk (`cache`); on a GPU
  the CUDA execution provider with I/O binding. ``onnxruntime-tensorrt[-fp16]``: ORT's TensorRT provider.
- ``openvino``, ``openvino-bf16`` (`ov_stage`): the same cached graph compiled by OpenVINO for the CPU.
- ``tensorrt[-fp16]`` (`trt_stage`): an engine built from that graph by `exporters.tensorrt`.
- ``auto`` (`auto`): per stage, the fastest backend within tolerance of fp32 (`parity`), measured once.

What can run where, and why not: `capability`.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from livesound.live.backends.cache import cached_onnx, engines_dir, fingerprint
from livesound.live.backends.capability import Unavailable, unavailable_reason
from livesound.live.backends.torch_stage import TorchBackend

BACKENDS = ("torch", "torch-bf16", "torch-fp16", "onnxruntime", "onnxruntime-tensorrt", "onnxruntime-tensorrt-fp16",
            "openvino", "openvino-bf16", "tensorrt", "tensorrt-fp16")
AUTO = "auto"
REDUCED_PRECISION = ("-bf16", "-fp16")
ACCELERATED_STAGES = ("encode", "map", "synthesize", "upscale")  # features, smooth, resize, to_rgb8: torch
GRAPH_NAMES = {"encode": "encoder", "map": "mapper", "synthesize": "generator", "upscale": "upscaler"}

__all__ = ["ACCELERATED_STAGES", "AUTO", "BACKENDS", "TorchBackend", "Unavailable", "cached_onnx", "engines_dir",
           "fingerprint", "make_backend", "parse_backend_choice", "unavailable_reason"]


def parse_backend_choice(text: str | None) -> dict[str, str]:
    """'onnxruntime' (every accelerated stage) or 'encode=onnxruntime,synthesize=auto' -> {stage: backend}."""
    choice = dict.fromkeys(ACCELERATED_STAGES, "torch")
    if not text:
        return choice
    for part in text.split(","):
        part = part.strip()
        stage, _, name = part.rpartition("=")
        if name not in BACKENDS and name != AUTO:
            raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS + (AUTO,))}")
        if not stage:
            choice = dict.fromkeys(ACCELERATED_STAGES, name)
        elif stage in ACCELERATED_STAGES:
            choice[stage] = name
        else:
            raise ValueError(f"stage {stage!r} has no accelerated backend; stages: {', '.join(ACCELERATED_STAGES)}")
    return choice


def make_backend(stage: str, backend: str, module: nn.Module, threads: int = 1, device=None, check: bool = True,
                 styles: bool = False):
    """A backend running ``module`` (the generator, the steerer's network, the encoder or the upscaler) as ``stage`` on
    ``device`` (default the CPU); ``Unavailable`` (one line, why) where it cannot run here.

    ``check``: compare one seeded call with the fp32 torch module (`parity`) before handing it over: an fp32
    backend outside tolerance is an error, a reduced-precision one a warning (ONNX Runtime's graph was already
    checked when it was exported). ``styles``: the synthesize stage with a second input, a style offset
    (``generator_styles``, for StyleCLIP's global directions; its graph is checked at export like every other).
    """
    if stage not in GRAPH_NAMES:
        raise ValueError(f"stage {stage!r} has no accelerated backend; stages: {', '.join(ACCELERATED_STAGES)}")
    if backend == AUTO:
        from livesound.live.backends.auto import choose_backend

        runner = choose_backend(stage, module, threads, device)
        if not styles:
            return runner
        # auto measured the plain generator; the styled one is the same arithmetic plus one add per layer
        return make_backend(stage, runner.name, module, threads, device, check=False, styles=True)
    device = torch.device(device or "cpu")
    reason = unavailable_reason(backend, device)
    if reason:
        raise Unavailable(f"backend {backend} for {stage}: unavailable here: {reason}")
    runner = _build(stage, backend, module, threads, device, styles)
    if check and backend not in ("torch", "onnxruntime") and not styles:
        check_backend(stage, runner, module, device)
    return runner


def _build(stage: str, backend: str, module: nn.Module, threads: int, device: torch.device, styles: bool = False):
    from livesound.live.backends import torch_lowp

    if backend == "torch":
        return TorchBackend(torch_lowp.stage_call(stage, module, styles), device)
    if backend == "torch-bf16":
        return torch_lowp.torch_bf16(stage, module, device, styles)
    if backend == "torch-fp16":
        return torch_lowp.torch_fp16(stage, module, device, styles)
    graph = cached_onnx("generator_styles" if styles else GRAPH_NAMES[stage], module)
    if backend.startswith("onnxruntime"):
        from livesound.live.backends.ort_stage import OrtBackend

        return OrtBackend(graph, threads=threads, device=device, tensorrt="tensorrt" in backend,
                          fp16=backend.endswith("-fp16"))
    if backend.startswith("openvino"):
        from livesound.live.backends.ov_stage import OpenVinoBackend

        return OpenVinoBackend(graph, threads, "bf16" if backend.endswith("-bf16") else "fp32",
                               cache_dir=engines_dir() / "openvino", device=device)
    from livesound.live.backends.trt_stage import tensorrt_backend

    return tensorrt_backend(graph, precision="fp16" if backend.endswith("-fp16") else "fp32", device=device)


def check_backend(stage: str, runner, module: nn.Module, device) -> dict:
    """One seeded call of ``runner`` against the fp32 torch module (`parity`); returns the comparison."""
    from livesound.live.backends import parity

    result = parity.compare_with_torch(stage, runner, module, device)
    if not result["ok"]:
        text = (f"backend {runner.name} for {stage} differs from fp32 torch: {parity.describe(result)} "
                f"(tolerance {parity.TOLERANCE[stage]})")
        if not runner.name.endswith(REDUCED_PRECISION):
            raise RuntimeError(text)
        print(f"livesound: warning: {text}; auto would not choose it", file=sys.stderr)
    return result
