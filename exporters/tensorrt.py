"""TensorRT engines from livesound's ONNX graphs (the live stage that runs them: `livesound.live.backends.trt_stage`).

Written against TensorRT 10's documented Python API (``tensorrt>=10,<11``): TensorRT 11 removed the weak-typing
builder flags (``BuilderFlag.FP16``/``BF16``), so there an fp16 engine needs an fp16 graph built strongly typed.
``tensorrt`` is imported lazily: importing this module, writing and reading the JSON sidecar and deciding
whether an engine is current all work without it. Everything that needs TensorRT or a GPU raises
``BackendUnavailable`` (a RuntimeError) that says what is missing.

An engine ``E.engine`` is written atomically with ``E.engine.json`` beside it: build settings, versions, GPU,
input/output names, shapes and dtypes, and the source ONNX's sha256, so callers rebuild when the source changes
(``engine_is_current``). Engines are specific to the TensorRT version and GPU that built them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from exporters.trt_ops import check_onnx_for_tensorrt
from livesound.files import write_bytes

log = logging.getLogger("livesound")

INSTALL_HINT = "TensorRT is not installed: pip install 'tensorrt>=10,<11' on a machine with an NVIDIA GPU"
NO_GPU_HINT = "TensorRT needs an NVIDIA GPU with CUDA, and torch sees none (torch.cuda.is_available() is False)"
PRECISIONS = ("fp32", "fp16", "bf16")
SIDECAR_FORMAT = 1


class BackendUnavailable(RuntimeError):
    """TensorRT (or the GPU it needs) is not available on this machine."""


# ---------------------------------------------------------------------------------------------- availability

def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:  # also raised when its bundled CUDA libraries are missing
        raise BackendUnavailable(f"{INSTALL_HINT} ({e})") from e
    return trt


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(NO_GPU_HINT)


def tensorrt_available() -> bool:
    """True where both ``tensorrt`` imports and torch sees a CUDA GPU."""
    try:
        import_tensorrt()
        require_cuda()
    except BackendUnavailable:
        return False
    return True


def _major(version: str) -> int:
    return int(str(version).split(".")[0])


# ---------------------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class BuildSettings:
    precision: str = "fp32"                      # fp32 | fp16 | bf16 (builder flags; graph dtype if strongly typed)
    batch: tuple[int, int, int] = (1, 1, 4)      # min, opt, max of every dynamic batch axis
    workspace_gb: float = 4.0
    strongly_typed: bool = False                 # precision comes from the graph's own dtypes

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        lo, opt, hi = self.batch
        if not 1 <= lo <= opt <= hi:
            raise ValueError(f"batch must be (min, opt, max) with 1 <= min <= opt <= max, not {self.batch}")
        if self.workspace_gb <= 0:
            raise ValueError("workspace_gb must be positive")


def precision_flags(trt_version: str, precision: str, strongly_typed: bool) -> list[str]:
    """Names of the ``trt.BuilderFlag`` members to set, or a clear error where this TensorRT cannot do it."""
    if strongly_typed:
        return []  # a strongly typed network takes its types from the graph; precision flags are an error there
    if precision == "fp32":
        return []
    if _major(trt_version) >= 11:
        raise BackendUnavailable(
            f"TensorRT {trt_version} removed BuilderFlag.{precision.upper()}: install 'tensorrt>=10,<11', or export "
            f"an {precision} ONNX graph and build it with strongly_typed=True")
    return [precision.upper()]


def profile_shape(name: str, shape, batch: tuple[int, int, int],
                  override: tuple | None = None) -> tuple[tuple, tuple, tuple]:
    """(min, opt, max) for one input: a dynamic axis 0 takes ``batch``; any other dynamic axis needs ``override``."""
    if override is not None:
        lo, opt, hi = (tuple(int(d) for d in s) for s in override)
        return lo, opt, hi
    dims = list(shape)
    if any(d is None or d < 0 for d in dims[1:]):
        raise ValueError(f"input {name!r} has dynamic non-batch axes {tuple(dims)}: give its (min, opt, max) "
                         "shapes in `shapes`")
    if not dims or (dims[0] is not None and dims[0] >= 0):
        return tuple(dims), tuple(dims), tuple(dims)
    return tuple(tuple([b] + dims[1:]) for b in batch)


# ---------------------------------------------------------------------------------------------- files

def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def write_sidecar(engine_path: str | Path, info: dict) -> Path:
    path = sidecar_path(engine_path)
    write_bytes(path, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_sidecar(engine_path: str | Path) -> dict | None:
    try:
        info = json.loads(sidecar_path(engine_path).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def sidecar_info(onnx_path: str | Path, engine_path: str | Path, settings: BuildSettings, *, timing_cache=None,
                 shapes: dict | None = None, inputs: list[dict], outputs: list[dict], versions: dict,
                 gpu: dict, warnings: list[str], build_seconds: float) -> dict:
    """The sidecar's content (pure: no TensorRT needed, so it is tested here)."""
    onnx_path = Path(onnx_path)
    return {
        "format": SIDECAR_FORMAT,
        "engine": {"file": Path(engine_path).name, "sha256": file_sha256(engine_path),
                   "bytes": Path(engine_path).stat().st_size},
        "source": {"onnx": str(onnx_path.resolve()), "sha256": file_sha256(onnx_path),
                   "bytes": onnx_path.stat().st_size},
        "build": asdict(settings) | {"batch": list(settings.batch),
                                     "timing_cache": str(timing_cache) if timing_cache else None,
                                     "shapes": {k: [list(s) for s in v] for k, v in (shapes or {}).items()},
                                     "seconds": round(build_seconds, 3)},
        "versions": versions,
        "gpu": gpu,
        "inputs": inputs,
        "outputs": outputs,
        "op_check_warnings": warnings,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def engine_is_current(engine_path: str | Path, onnx_path: str | Path, settings: BuildSettings | None = None) -> bool:
    """True when the engine exists, its sidecar names this ONNX file's exact bytes, the engine's bytes match the
    sidecar, and (where given) the build settings match. Where TensorRT is importable its version must match too:
    an engine does not load into another TensorRT release."""
    engine_path = Path(engine_path)
    info = read_sidecar(engine_path)
    if info is None or info.get("format") != SIDECAR_FORMAT or not engine_path.is_file():
        return False
    try:
        if info["source"]["sha256"] != file_sha256(onnx_path):
            return False
        engine = info["engine"]
        if engine["bytes"] != engine_path.stat().st_size or engine["sha256"] != file_sha256(engine_path):
            return False
        if settings is not None:
            built = info["build"]
            if (built["precision"], tuple(built["batch"]), built["strongly_typed"]) != \
                    (settings.precision, tuple(settings.batch), settings.strongly_typed):
                return False
    except (KeyError, TypeError, OSError):
        return False
    try:
        import tensorrt as trt
    except ImportError:
        return True
    return info.get("versions", {}).get("tensorrt") == trt.__version__


def _versions() -> dict:
    import onnx
    import torch

    out = {"torch": torch.__version__, "cuda": torch.version.cuda, "onnx": onnx.__version__}
    try:
        import tensorrt as trt

        out["tensorrt"] = trt.__version__
    except ImportError:
        out["tensorrt"] = None
    return out


def _gpu() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    i = torch.cuda.current_device()
    return {"name": torch.cuda.get_device_name(i), "capability": list(torch.cuda.get_device_capability(i))}


# ---------------------------------------------------------------------------------------------- TensorRT glue

def _torch_dtype(trt, dtype):
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
             "INT64": torch.int64, "INT8": torch.int8, "UINT8": torch.uint8, "BOOL": torch.bool}
    for name, torch_dtype in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return torch_dtype
    raise TypeError(f"no torch dtype for TensorRT {dtype}")


def engine_io(trt, engine) -> tuple[list[dict], list[dict]]:
    """Inputs and outputs of a deserialized engine: name, shape (-1 = dynamic), dtype, profile 0 range."""
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = {"name": name, "shape": list(engine.get_tensor_shape(name)),
                 "dtype": str(_torch_dtype(trt, engine.get_tensor_dtype(name))).replace("torch.", "")}
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            if engine.num_optimization_profiles > 0 and -1 in entry["shape"]:
                lo, opt, hi = engine.get_tensor_profile_shape(name, 0)
                entry["profile"] = {"min": list(lo), "opt": list(opt), "max": list(hi)}
            inputs.append(entry)
        else:
            outputs.append(entry)
    return inputs, outputs


def _parse(trt, builder, logger, onnx_path: Path, strongly_typed: bool):
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # from a path, so external weights resolve beside it
        errors = "\n".join(f"  - {parser.get_error(i)}" for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}:\n{errors}")
    return network, parser


def _timing_cache(config, path: Path | None):
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        # A cache from another GPU or TensorRT version is refused: start a fresh one rather than fail the build.
        log.warning("timing cache %s does not match this GPU/TensorRT; starting a new one", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def build_engine(onnx_path: str | Path, engine_path: str | Path, precision: str = "fp32",
                 batch: tuple[int, int, int] = (1, 1, 4), workspace_gb: float = 4.0,
                 timing_cache: str | Path | None = None, strongly_typed: bool = False,
                 shapes: dict[str, tuple] | None = None) -> dict:
    """Build ``engine_path`` from ``onnx_path`` and write ``<engine>.json``; return the sidecar's content.

    ``batch`` is the (min, opt, max) of every dynamic batch axis; ``shapes`` gives (min, opt, max) shapes for
    inputs with other dynamic axes. The op-support check runs first and fails with its report.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    settings = BuildSettings(precision, tuple(batch), float(workspace_gb), strongly_typed)
    check_onnx_for_tensorrt(onnx_path, "10.x", precision).raise_if_unsupported()
    trt = import_tensorrt()
    require_cuda()
    flags = precision_flags(trt.__version__, precision, strongly_typed)
    warnings = []
    if _major(trt.__version__) == 10:  # again, for the installed release (ops added after 10.0 etc.)
        report = check_onnx_for_tensorrt(onnx_path, trt.__version__, precision)
        report.raise_if_unsupported()
        warnings = report.warnings

    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, builder, logger, onnx_path, strongly_typed)  # the parser must outlive parsing
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    profile, dynamic = builder.create_optimization_profile(), False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = list(tensor.shape)
        if -1 in shape or (shapes and tensor.name in shapes):
            lo, opt, hi = profile_shape(tensor.name, shape, settings.batch, (shapes or {}).get(tensor.name))
            profile.set_shape(tensor.name, lo, opt, hi)
            dynamic = True
    if dynamic:
        config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cache = _timing_cache(config, cache_path) if cache_path else None

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}; its log above says why")
    seconds = time.perf_counter() - start
    if cache is not None:
        write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))

    # Old sidecar first: a crash between the two writes leaves an engine that engine_is_current rejects.
    sidecar_path(engine_path).unlink(missing_ok=True)
    write_bytes(engine_path, bytes(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
    inputs, outputs = engine_io(trt, engine)
    info = sidecar_info(onnx_path, engine_path, settings, timing_cache=cache_path, shapes=shapes, inputs=inputs,
                        outputs=outputs, versions=_versions(), gpu=_gpu(), warnings=warnings,
                        build_seconds=seconds)
    write_sidecar(engine_path, info)
    log.info("built %s (%s, %.1f s)", engine_path, precision, seconds)
    return info


@dataclass
class EnginesOptions:
    """``livesound export tensorrt``: an engine for every ``.onnx`` graph of a folder."""
    onnx: str | None = None           # folder of graphs; None: ``out`` itself
    out: str = "engines"
    precision: str = "fp16"
    max_batch: int = 4                # the largest batch of each dynamic profile
    device: str = "auto"              # the GPU to build on: auto, cuda or cuda:N (cpu: refused, engines need one)


def build_engines(opts: EnginesOptions, log: Callable[[str], None] = print) -> list[dict]:
    """``build_engine`` for each graph, sharing one timing cache ``out/timing.cache``; ``log`` hears
    ``graph.onnx -> graph.engine`` per engine built. Returns the sidecars."""
    src, out = Path(opts.onnx or opts.out), Path(opts.out)
    graphs = sorted(src.glob("*.onnx"))
    if not graphs:
        raise ValueError(f"{src}: no .onnx graphs to build engines from (run `livesound export onnx` first)")
    if opts.device != "auto":  # auto: the current GPU, and build_engine says what is missing after its op check
        import torch

        from livesound.live.device import DeviceUnavailable, resolve_device

        device = resolve_device(opts.device)
        if device.type != "cuda":
            raise DeviceUnavailable(f"TensorRT engines are built on a CUDA GPU, not on --device {opts.device}")
        torch.cuda.set_device(device)
    infos = []
    for g in graphs:
        info = build_engine(g, out / g.with_suffix(".engine").name, precision=opts.precision,
                            batch=(1, 1, opts.max_batch), timing_cache=out / "timing.cache")
        log(f"{g.name} -> {info.get('engine', g.with_suffix('.engine').name)}")
        infos.append(info)
    return infos
