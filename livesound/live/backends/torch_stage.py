"""The torch backend: a stage's module called in inference mode (the reference for every other backend)."""

from __future__ import annotations

from typing import Callable

import torch


class TorchBackend:
    """``backend(*tensors) -> tensor``: the module itself, without autograd (tensor inputs moved to ``device``
    where one is given; the module is already there)."""

    name = "torch"

    def __init__(self, module: torch.nn.Module | Callable, device: torch.device | str | None = None):
        self.module = module
        self.device = torch.device(device) if device is not None else None

    def __call__(self, *args):
        if self.device is not None:
            args = [a.to(self.device) if isinstance(a, torch.Tensor) else a for a in args]
        with torch.inference_mode():
            return self.module(*args)


def compile_synthesis(G, noise_mode: str = "const"):
    """``torch.compile`` (inductor; on the CPU it needs a C++ compiler) of ``G.synthesis`` for one noise mode.

    Compiling happens lazily on the first call, which takes minutes for a 256 px generator on 2 cores.
    """
    compiled = torch.compile(lambda ws: G.synthesis(ws, noise_mode=noise_mode), dynamic=False)

    def run(ws: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(ws)
    return run
