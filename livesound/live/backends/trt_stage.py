"""The TensorRT backend: a stage's engine, built from its cached ONNX graph by `exporters.tensorrt`."""

from __future__ import annotations

from pathlib import Path

from exporters.tensorrt import (
    BuildSettings,
    _torch_dtype,
    build_engine,
    engine_is_current,
    import_tensorrt,
    require_cuda,
)


def tensorrt_backend(onnx_path: Path, precision: str = "fp32", device=None) -> "TensorRTBackend":
    """The engine beside ``onnx_path`` (built, or rebuilt when the graph or the precision changed), ready to run
    on ``device`` (a CUDA ``torch.device``; None: the current GPU)."""
    engine = onnx_path.with_suffix(".engine" if precision == "fp32" else f".{precision}.engine")
    if not engine.is_file() or not engine_is_current(engine, onnx_path, BuildSettings(precision)):
        build_engine(onnx_path, engine, precision=precision)
    return TensorRTBackend(engine, device=getattr(device, "index", None),
                           name="tensorrt" if precision == "fp32" else f"tensorrt-{precision}")


class TensorRTBackend:
    """Runs an engine as a stage: ``backend(*tensors) -> tensor`` (a tuple where the engine has several outputs).

    Inputs go in the engine's input order and may be on any device or dtype (they are moved and cast to what the
    engine declares); outputs are fresh CUDA tensors. Work is enqueued on torch's current CUDA stream, so it
    orders with the surrounding torch work without a host synchronisation. Not thread-safe: one execution
    context per backend, used by one thread.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, device: int | None = None, name: str = "tensorrt"):
        self.name = name
        trt = import_tensorrt()
        require_cuda()
        import torch

        self._trt = trt
        self.engine_path = Path(engine_path)
        self.device = torch.device("cuda", torch.cuda.current_device() if device is None else device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(self._logger)  # must outlive the engine
            self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT {trt.__version__} could not load {self.engine_path}: engines only load "
                                   "into the TensorRT version and GPU that built them; rebuild it")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def __call__(self, *tensors):
        import torch

        if len(tensors) != len(self.inputs):
            raise TypeError(f"{self.engine_path.name} takes {len(self.inputs)} inputs {self.inputs}, "
                            f"got {len(tensors)}")
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            # Converted inputs are allocated on this same stream, so freeing them after the enqueue is
            # stream-ordered and safe (torch's caching allocator reuses memory only behind queued work).
            for name, t in zip(self.inputs, tensors):
                t = torch.as_tensor(t).to(self.device, self.dtypes[name]).contiguous()
                if not self.context.set_input_shape(name, tuple(t.shape)):
                    raise ValueError(f"input {name!r} shape {tuple(t.shape)} is outside the engine's optimisation "
                                     "profile (see the engine's .json sidecar)")
                self.context.set_tensor_address(name, t.data_ptr())
            outs = []
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise NotImplementedError(f"output {name!r} has a data-dependent shape {shape}")
                out = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outs.append(out)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to run {self.engine_path.name}")
        return outs[0] if len(outs) == 1 else tuple(outs)
