"""The engine cache: each stage's ONNX graph (and TensorRT engine) built once and kept on disk.

Entries live under ``engines_dir()`` (``$LIVESOUND_ENGINES``, else ``~/.cache/livesound/engines``), one folder per
graph named by a fingerprint of the network's weights and of the settings that change the graph, so an entry is
rebuilt whenever the source checkpoint changes and reused otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import torch

from exporters.onnx import export_graph, stage_specs


def engines_dir() -> Path:
    return Path(os.environ.get("LIVESOUND_ENGINES") or Path.home() / ".cache" / "livesound" / "engines")


def fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    """sha256 of every tensor's name, dtype, shape and bytes (and ``extra``): the weights' identity."""
    h = hashlib.sha256(extra.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_onnx(graph: str, module: torch.nn.Module) -> Path:
    """The ONNX graph ``graph`` ("generator", "mapper", "encoder" or "upscaler") of ``module`` from the cache,
    exported (and parity-checked) on first use."""
    spec = next(s for s in stage_specs(**{_SPEC_ARG[graph]: module}) if s.name == graph)
    fast = getattr(getattr(module, "synthesis", None), "fast_paths", None)  # a fast path changes the graph
    extra = str(sorted(fast.items())) if fast and any(v not in (False, "shared") for v in fast.values()) else ""
    if getattr(module, "frame_size", None):  # an upscaler's graph is built for one frame size
        extra += f"frame_size={module.frame_size}"
    folder = engines_dir() / f"{graph}-{fingerprint(module, extra)}"
    path = folder / f"{graph}.onnx"
    if not path.is_file():  # export into a private folder, then rename: a kill never leaves half a graph
        print(f"livesound: exporting the {graph} to ONNX once (cached in {engines_dir()})", file=sys.stderr)
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        export_graph(spec, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return path


_SPEC_ARG = {"generator": "G", "mapper": "mapper", "encoder": "encoder", "upscaler": "upscaler"}
