"""Stage backends: the same call, ``backend(*tensors) -> tensor``, on torch, ONNX Runtime or TensorRT.

A stage's ONNX graph (and TensorRT engine) is built once and cached on disk under ``engines_dir()``, named by a
fingerprint of the network's weights and config, so it is rebuilt whenever the source checkpoint changes and
reused otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

BACKENDS = ("torch", "onnxruntime", "tensorrt")
ACCELERATED_STAGES = ("encode", "map", "synthesize")  # features, smooth and to_rgb8 stay in torch/numpy


def engines_dir() -> Path:
    return Path(os.environ.get("LIVESOUND_ENGINES") or Path.home() / ".cache" / "livesound" / "engines")


def fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    """sha256 of every tensor's name, dtype, shape and bytes (and ``extra``): the weights' identity."""
    h = hashlib.sha256(extra.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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
        if providers is None:  # TensorRT / CUDA execution providers where installed, else the CPU
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


def cached_onnx(stage: str, spec_name: str, module: torch.nn.Module, specs) -> Path:
    """The stage's ONNX graph from the cache, exported (and parity-checked) on first use."""
    from exporters.onnx_stages import export_graph

    spec = next(s for s in specs if s.name == spec_name)
    fast = getattr(getattr(module, "synthesis", None), "fast_paths", None)  # a fast path changes the graph
    extra = str(sorted(fast.items())) if fast and any(v not in (False, "shared") for v in fast.values()) else ""
    folder = engines_dir() / f"{spec_name}-{fingerprint(module, extra)}"
    path = folder / f"{spec_name}.onnx"
    if not path.is_file():  # export into a private folder, then rename: a kill never leaves half a graph
        print(f"livesound: exporting the {stage} stage to ONNX once (cached in {engines_dir()})",
              file=sys.stderr)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        export_graph(spec, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return path


def make_backend(stage: str, backend: str, module: torch.nn.Module, specs, threads: int = 1):
    """A backend for one accelerated stage (``module`` is what the torch backend would run)."""
    spec_name = {"encode": "encoder", "map": "mapper", "synthesize": "generator"}[stage]
    if backend == "onnxruntime":
        return OrtBackend(cached_onnx(stage, spec_name, module, specs), threads=threads)
    if backend == "tensorrt":
        from exporters.tensorrt import TensorRTBackend, build_engine, engine_is_current

        onnx_path = cached_onnx(stage, spec_name, module, specs)
        engine = onnx_path.with_suffix(".engine")
        if not engine.is_file() or not engine_is_current(engine, onnx_path):
            build_engine(onnx_path, engine)
        return TensorRTBackend(engine)
    raise ValueError(f"no {backend!r} backend for stage {stage!r}")
