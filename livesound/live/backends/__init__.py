"""Stage backends: one call, ``backend(*tensors) -> tensor``, on torch, ONNX Runtime or TensorRT.

Three stages of a frame run a network and can be accelerated: ``encode`` (audio encoder), ``map`` (the
steerer's network) and ``synthesize`` (the generator), and a fourth where an output size asks for it:
``upscale`` (a Real-ESRGAN network, `livesound.live.output`). Each runs on one backend chosen by name; the pipeline
never knows which. Every backend object has ``name`` and is called with torch tensors and returns a torch
tensor, so backends mix freely from one stage to the next.

- ``torch`` (`torch_stage`): the module itself, in inference mode; the reference every other backend is
  checked against.
- ``onnxruntime`` (`ort_stage`): the stage's ONNX graph, exported once and cached on disk (`cache`).
- ``tensorrt`` (`trt_stage`): a TensorRT engine built from that graph (`exporters.tensorrt`); needs TensorRT
  and an NVIDIA GPU.
"""

from __future__ import annotations

from torch import nn

from livesound.live.backends.cache import cached_onnx, engines_dir, fingerprint
from livesound.live.backends.ort_stage import OrtBackend
from livesound.live.backends.torch_stage import TorchBackend
from livesound.live.backends.trt_stage import tensorrt_backend

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ACCELERATED_STAGES = ("encode", "map", "synthesize", "upscale")  # features, smooth, resize, to_rgb8: torch
GRAPH_NAMES = {"encode": "encoder", "map": "mapper", "synthesize": "generator", "upscale": "upscaler"}

__all__ = ["ACCELERATED_STAGES", "BACKENDS", "TorchBackend", "cached_onnx", "engines_dir", "fingerprint",
           "make_backend", "parse_backend_choice"]


def parse_backend_choice(text: str | None) -> dict[str, str]:
    """'onnxruntime' (every accelerated stage) or 'encode=onnxruntime,synthesize=torch' -> {stage: backend}."""
    choice = dict.fromkeys(ACCELERATED_STAGES, "torch")
    if not text:
        return choice
    for part in text.split(","):
        part = part.strip()
        stage, _, name = part.rpartition("=")
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKENDS)}")
        if not stage:
            choice = dict.fromkeys(ACCELERATED_STAGES, name)
        elif stage in ACCELERATED_STAGES:
            choice[stage] = name
        else:
            raise ValueError(f"stage {stage!r} has no accelerated backend; stages: {', '.join(ACCELERATED_STAGES)}")
    return choice


def make_backend(stage: str, backend: str, module: nn.Module, threads: int = 1):
    """An accelerated backend running ``module`` (the generator, the steerer's network, the encoder or the
    upscaler) as
    ``stage``; the torch backend is the module itself (``TorchBackend``)."""
    if stage not in GRAPH_NAMES:
        raise ValueError(f"stage {stage!r} has no accelerated backend; stages: {', '.join(ACCELERATED_STAGES)}")
    if backend == "onnxruntime":
        return OrtBackend(cached_onnx(GRAPH_NAMES[stage], module), threads=threads)
    if backend == "tensorrt":
        return tensorrt_backend(cached_onnx(GRAPH_NAMES[stage], module))
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")

