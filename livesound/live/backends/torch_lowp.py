"""The torch backends in reduced precision: ``torch-bf16`` (CPU autocast) and ``torch-fp16`` (CUDA, the fast GPU
frame: fp16 autocast captured whole in a CUDA graph).

Both run the stage's own module under ``torch.autocast``: convolutions and matrix products in the low precision,
everything else (bias, noise, activations, the checkpoint's clamps) in fp32 by type promotion. The generator
keeps its ToRGB layers and the image skip path in fp32 (`livesound.models.stylegan2`), and divides each
sample's styles by their largest magnitude before modulating, which demodulation cancels exactly but which keeps
fp16 activations far from overflow (NVIDIA's trick in stylegan2-ada's ``modulated_conv2d``).

A CUDA graph (``CudaGraphRunner``) records every kernel of one call at a fixed input shape once and replays
them with one launch: at batch 1 the generator is hundreds of small kernels, and their launch cost, not the
arithmetic, is what a GPU frame is made of. Inputs are copied into the graph's own buffers and the output is
cloned out, so a caller may keep a result across calls. Written against torch's documented ``torch.cuda.graph``
API; it cannot be exercised on a machine without a GPU (its tests skip there).
"""

from __future__ import annotations

from typing import Callable

import torch


def stage_call(stage: str, module: torch.nn.Module, styles: bool = False) -> Callable:
    """What the stage's ONNX graph computes, as a torch callable of the same inputs (``styles``: the generator
    with a style-offset input, ``generator_styles``)."""
    if stage == "synthesize" and styles:
        return lambda ws, style_delta: module.synthesis(ws, noise_mode="const", style_delta=style_delta)
    if stage == "synthesize":
        return lambda ws: module.synthesis(ws, noise_mode="const")
    if stage == "map":
        return module.edit
    return module


class AutocastBackend:
    """``backend(*tensors) -> fp32 tensor`` on ``device``: the stage under autocast to ``dtype``."""

    def __init__(self, name: str, fn: Callable, device: torch.device, dtype: torch.dtype):
        self.name, self.fn, self.device, self.dtype = name, fn, torch.device(device), dtype

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        tensors = [t.to(self.device) for t in tensors]
        # no weight-cast cache: a CUDA graph must record the casts (torch's advice for autocast in graphs)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, cache_enabled=False):
            return self.fn(*tensors).float()


class CudaGraphRunner:
    """Replays ``fn`` as one CUDA graph per input shape, captured at the first call of that shape."""

    def __init__(self, fn: Callable, device: torch.device, name: str | None = None):
        self.fn, self.device = fn, torch.device(device)
        self.name = name or getattr(fn, "name", "torch")
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(t.shape), t.dtype) for t in tensors)
        if key not in self._graphs:
            self._graphs[key] = self._capture(tensors)
        graph, inputs, output = self._graphs[key]
        for buf, t in zip(inputs, tensors):
            buf.copy_(t, non_blocking=True)
        graph.replay()
        return output.clone()

    def _capture(self, tensors):
        inputs = [t.detach().to(self.device).clone() for t in tensors]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN's algorithm search, lazy inits
            for _ in range(3):
                self.fn(*inputs)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the listener thread keeps encoding on its own stream while the renderer captures
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            output = self.fn(*inputs)
        return graph, inputs, output


def torch_bf16(stage: str, module: torch.nn.Module, device, styles: bool = False) -> AutocastBackend:
    return AutocastBackend("torch-bf16", stage_call(stage, module, styles), device, torch.bfloat16)


def torch_fp16(stage: str, module: torch.nn.Module, device, styles: bool = False) -> CudaGraphRunner:
    return CudaGraphRunner(AutocastBackend("torch-fp16", stage_call(stage, module, styles), device, torch.float16),
                           device)
