"""The OpenVINO backend: a stage's cached ONNX graph compiled for the CPU by OpenVINO, fp32 or bf16.

OpenVINO reads the same ONNX graph ONNX Runtime runs (the engine cache's, already parity-checked there), so it
needs no exporter of its own. ``precision="bf16"`` sets ``INFERENCE_PRECISION_HINT`` to bf16: convolutions
and matrix products in bf16 on CPUs with bf16 instructions (`capability.cpu_has_bf16`), accumulation in fp32.

The graph is compiled once per input shape (a static shape compiles to faster kernels than the dynamic batch
axis), and compiled models are cached on disk in ``engines_dir()/openvino`` by OpenVINO's own ``CACHE_DIR``,
keyed by the graph and the settings: a later start loads them instead of compiling. OpenVINO's threads are not
pinned by it (``ENABLE_CPU_PINNING`` off): the live engine pins its own workers (`livesound.live.affinity`).

OpenVINO's CPU plugin gives the thread that compiles a model an alternate signal stack of its own and frees it
with the plugin, leaving the thread's signal stack pointing at freed memory; CPython runs its signal handlers on
that stack (``SA_ONSTACK``), so the next Ctrl+C after two compiled models were released crashed the process
with SIGSEGV. Each compile therefore puts the thread's own signal stack back (`_thread_signal_stack_kept`).
"""

from __future__ import annotations

import ctypes
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

PRECISIONS = {"fp32": "f32", "bf16": "bf16"}
_SS_DISABLE = 2  # <signal.h> on Linux


class _StackT(ctypes.Structure):  # <signal.h>'s stack_t
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextmanager
def _thread_signal_stack_kept():
    """Run the block, then give the calling thread back the alternate signal stack it had before (Linux)."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _StackT()
    if libc.sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    before.ss_flags &= _SS_DISABLE  # SS_ONSTACK is reported, never set
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(before), None)


class OpenVinoBackend:
    """``backend(*tensors) -> tensor``: the graph's first output for the inputs in the graph's order, on the CPU
    (or moved to ``device``). Not thread-safe: one infer request per backend, used by one thread."""

    def __init__(self, path: str | Path, threads: int = 1, precision: str = "fp32", cache_dir: Path | None = None,
                 device: torch.device | str = "cpu"):
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.name = "openvino" if precision == "fp32" else f"openvino-{precision}"
        self.path, self.precision, self.device = Path(path), precision, torch.device(device)
        self.core = ov.Core()
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            self.core.set_property({"CACHE_DIR": str(cache_dir)})
        self.model = self.core.read_model(str(self.path))
        self.inputs = [p.get_any_name() for p in self.model.inputs]
        self.config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "INFERENCE_NUM_THREADS": int(threads),
                       "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        self._requests: dict[tuple, object] = {}

    def _request(self, shapes: tuple):
        if shapes not in self._requests:
            model = self.model.clone()
            model.reshape(dict(zip(self.inputs, [list(s) for s in shapes])))
            with _thread_signal_stack_kept():
                self._requests[shapes] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self._requests[shapes]

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        if len(tensors) != len(self.inputs):
            raise TypeError(f"{self.path.name} takes {len(self.inputs)} inputs {self.inputs}, got {len(tensors)}")
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32) for t in tensors]
        request = self._request(tuple(a.shape for a in arrays))
        # Inputs are read in place; outputs are copied out (share_outputs off), since the request reuses its output
        # memory on the next call and a frame may outlive that.
        out = torch.from_numpy(request.infer(dict(enumerate(arrays)), share_inputs=True, share_outputs=False)[0])
        return out if self.device.type == "cpu" else out.to(self.device)
