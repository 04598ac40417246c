"""The ONNX Runtime backend: one cached ONNX graph in an InferenceSession."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class OrtBackend:
    """One ONNX graph in an ONNX Runtime session; inputs in the graph's order, returns the first output."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, providers: list[str] | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3
        # ORT's idle workers spin by default; between its calls torch runs the other stages on these cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:  # CUDA where this onnxruntime build has it (onnxruntime-gpu), else the CPU
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.path = Path(path)

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feed = {n: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                for n, t in zip(self.inputs, tensors)}
        return torch.from_numpy(self.session.run([self.output], feed)[0])
