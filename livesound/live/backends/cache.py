"""The engine cache: each stage's ONNX graph (and TensorRT engine) built once and kept on disk.

Entries live under ``engines_dir()`` (``$LIVESOUND_ENGINES``, else ``~/.cache/livesound/engines``), one folder per
graph named by a key over everything that changes the graph: the network's weights, its config (``conv_clamp``,
the blur kernel and every width), its fast-path flags, the noise the exporter bakes in, the ONNX opset, the
versions of livesound, torch, onnx and onnxruntime, and the source files that define the network and its export.
An entry is rebuilt whenever any of them changes and reused otherwise.

Each entry records its graph's sha256 (``entry.json``); a hit is verified against it, so a truncated or edited
graph is rebuilt, with one line saying so, instead of failing every start. Entries are exported into a private
folder and renamed into place: two processes exporting the same key both finish, the second rename loses the race
(the folder exists) and that process uses the winner's entry, so no reader ever sees half an entry.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import uuid
from importlib import metadata
from pathlib import Path

import torch

import livesound
from exporters import onnx as onnx_exporter
from exporters.onnx import OPSET, export_graph, stage_specs

ENTRY = "entry.json"
ENTRY_FORMAT = 1
NOISE_MODE = "const"  # what the exporter bakes into a generator graph (noise as a constant, not RandomNormal)


def engines_dir() -> Path:
    return Path(os.environ.get("LIVESOUND_ENGINES") or Path.home() / ".cache" / "livesound" / "engines")


def fingerprint(module: torch.nn.Module, extra: str = "") -> str:
    """sha256 of every tensor's name, dtype, shape and bytes (and ``extra``): the weights' identity."""
    h = hashlib.sha256(extra.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def graph_settings(graph: str, module: torch.nn.Module) -> dict:
    """Everything besides the weights that changes ``graph``'s ONNX (the cache key's readable part)."""
    cfg = getattr(module, "cfg", None)
    fast = getattr(getattr(module, "synthesis", None), "fast_paths", None)
    return {"graph": graph, "config": cfg.to_dict() if hasattr(cfg, "to_dict") else None,
            "fast_paths": {k: str(v) for k, v in sorted((fast or {}).items())},
            "noise_mode": NOISE_MODE if graph.startswith("generator") else None, "opset": OPSET,
            "frame_size": getattr(module, "frame_size", None),  # an upscaler's graph is built for one frame size
            "versions": {"torch": torch.__version__} | {n: _version(n) for n in ("livesound", "onnx", "onnxruntime")},
            "sources": _sources_digest(module)}


def _version(dist: str) -> str:
    for name in (dist, f"{dist}-gpu"):  # onnxruntime ships as onnxruntime or onnxruntime-gpu
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def _sources_digest(module: torch.nn.Module) -> str:
    """The source files of the network's classes and of the exporter: an edit changes the graph before any
    version number does."""
    ours = (Path(livesound.__file__).parent, Path(onnx_exporter.__file__).parent)
    files = {Path(onnx_exporter.__file__)}
    for m in module.modules():
        try:
            files.add(Path(inspect.getsourcefile(type(m)) or ""))
        except TypeError:  # a class without a source file
            continue
    h = hashlib.sha256()
    for f in sorted(f for f in files if f.is_file() and any(f.is_relative_to(d) for d in ours)):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_onnx(graph: str, module: torch.nn.Module) -> Path:
    """The ONNX graph ``graph`` ("generator", "generator_styles", "mapper", "encoder" or "upscaler") of ``module`` from the
    cache, exported (and parity-checked) on first use, and rebuilt when the entry fails its check."""
    settings = graph_settings(graph, module)
    key = fingerprint(module, json.dumps(settings, sort_keys=True))
    folder = engines_dir() / f"{graph}-{key}"
    if folder.exists():
        problem = entry_problem(folder, graph, key)
        if problem is None:
            return folder / f"{graph}.onnx"
        print(f"livesound: the cached {graph} graph in {folder} is unusable ({problem}); rebuilding it",
              file=sys.stderr)
        _discard(folder)
    else:
        print(f"livesound: exporting the {graph} to ONNX once (cached in {engines_dir()})", file=sys.stderr)
    spec = next(s for s in stage_specs(**{_SPEC_ARG[graph]: module}, styles=graph == "generator_styles")
                if s.name == graph)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        export_graph(spec, tmp)
        path = tmp / f"{graph}.onnx"
        entry = {"format": ENTRY_FORMAT, "key": key, "graph_sha256": file_sha256(path),
                 "graph_bytes": path.stat().st_size, "settings": settings}
        (tmp / ENTRY).write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n")
        try:
            os.rename(tmp, folder)   # atomic; fails when another process's entry got there first
        except OSError:
            if not folder.is_dir():
                raise
            problem = entry_problem(folder, graph, key)
            if problem is not None:
                raise RuntimeError(f"{folder}: another process wrote an unusable cache entry ({problem})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / f"{graph}.onnx"


def entry_problem(folder: Path, graph: str, key: str) -> str | None:
    """Why the cache entry in ``folder`` cannot be used, or None when its graph is the one it recorded."""
    try:
        entry = json.loads((folder / ENTRY).read_text())
    except FileNotFoundError:
        return f"no {ENTRY} (an entry from an older livesound, or a half-removed one)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        return f"unreadable {ENTRY}: {str(e)[:100]}"
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or entry.get("key") != key:
        return f"{ENTRY} is for another graph or format"
    path = folder / f"{graph}.onnx"
    if not path.is_file():
        return f"{path.name} is missing"
    if path.stat().st_size != entry.get("graph_bytes"):
        return f"{path.name} has {path.stat().st_size} bytes, {entry.get('graph_bytes')} were written"
    if file_sha256(path) != entry.get("graph_sha256"):
        return f"{path.name} does not match its recorded sha256"
    return None


def _discard(folder: Path) -> None:
    """Move a bad entry out of the way (atomically, so a reader never sees it half-deleted), then delete it."""
    trash = folder.with_name(f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.bad")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:  # another process discarded it first
        return
    shutil.rmtree(trash, ignore_errors=True)


_SPEC_ARG = {"generator": "G", "generator_styles": "G", "mapper": "mapper", "encoder": "encoder",
             "upscaler": "upscaler"}
