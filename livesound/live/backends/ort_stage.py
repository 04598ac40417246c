"""The ONNX Runtime backend: one cached ONNX graph in an InferenceSession, on the CPU or a CUDA GPU.

On the CPU inputs go in as NumPy views of the torch tensors (no copy for contiguous fp32). On a GPU
(``onnxruntime-gpu``: the ``livesound[gpu]`` extra) the session runs the CUDA execution provider, or the
TensorRT one in front of it (``tensorrt=True``: engines built by ONNX Runtime and cached beside the graph), and
I/O binding hands ORT the torch tensors' device pointers for inputs and a preallocated torch output: no host
copy per call, the result stays on the GPU for the next stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class OrtBackend:
    """One ONNX graph in an ONNX Runtime session; inputs in the graph's order, returns the first output (on
    ``device``)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, providers: list | None = None,
                 device: torch.device | str = "cpu", tensorrt: bool = False, fp16: bool = False):
        import onnxruntime as ort

        self.path, self.device = Path(path), torch.device(device)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3
        # ORT's idle workers spin by default; between its calls torch runs the other stages on these cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if providers is None:
            providers = self._providers(tensorrt, fp16)
        if tensorrt:
            self.name = "onnxruntime-tensorrt" + ("-fp16" if fp16 else "")
        self.session = ort.InferenceSession(str(path), opts, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        out = self.session.get_outputs()[0]
        self.output, self._out_shape = out.name, out.shape
        self._binding = self.session.io_binding() if self.device.type == "cuda" else None

    def _providers(self, tensorrt: bool, fp16: bool) -> list:
        if self.device.type != "cuda":
            return ["CPUExecutionProvider"]
        index = self.device.index or 0
        cuda = ("CUDAExecutionProvider", {"device_id": index, "do_copy_in_default_stream": True})
        if not tensorrt:
            return [cuda, "CPUExecutionProvider"]
        cache = str(self.path.parent / f"ort_tensorrt{'_fp16' if fp16 else ''}")
        trt = {"device_id": index, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": cache, "trt_timing_cache_enable": True, "trt_timing_cache_path": cache,
               **profile_shapes(self.path)}
        return [("TensorrtExecutionProvider", trt), cuda, "CPUExecutionProvider"]

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        if self._binding is not None:
            return self._run_bound(tensors)
        feed = {n: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)
                for n, t in zip(self.inputs, tensors)}
        out = torch.from_numpy(self.session.run([self.output], feed)[0])
        return out if self.device.type == "cpu" else out.to(self.device)

    def _run_bound(self, tensors) -> torch.Tensor:
        """GPU: bind the torch tensors' memory in and a fresh torch tensor out; no host copies."""
        io, index = self._binding, self.device.index or 0
        io.clear_binding_inputs()
        io.clear_binding_outputs()
        keep = []  # the bound tensors must live until the run ends
        for name, t in zip(self.inputs, tensors):
            t = t.detach().to(self.device, torch.float32).contiguous()
            keep.append(t)
            io.bind_input(name, "cuda", index, np.float32, tuple(t.shape), t.data_ptr())
        batch = keep[0].shape[0]
        out = torch.empty([d if isinstance(d, int) else batch for d in self._out_shape], device=self.device)
        io.bind_output(self.output, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        # ORT runs on its own stream: the inputs torch queued must be finished first. The run itself returns
        # when the output is complete.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(io)
        return out


def profile_shapes(onnx_path: Path, max_batch: int = 4) -> dict[str, str]:
    """The TensorRT execution provider's shape profile for every input: batch 1 to ``max_batch``, opt 1."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    lo, opt, hi = [], [], []
    for inp in graph.input:
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        rest = "x".join(str(d) for d in dims[1:])
        for out, b in ((lo, 1), (opt, 1), (hi, max_batch)):
            out.append(f"{inp.name}:{b}" + (f"x{rest}" if rest else ""))
    return {"trt_profile_min_shapes": ",".join(lo), "trt_profile_opt_shapes": ",".join(opt),
            "trt_profile_max_shapes": ",".join(hi)}
