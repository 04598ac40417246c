"""What this machine can run: every stage backend's availability on a device, with the reason where it cannot.

A backend that cannot run here (no bf16 instructions, no OpenVINO, no GPU, no TensorRT) is *unavailable*, not an
error: ``auto`` skips it, ``livesound bench`` reports it with the reason, and asking for it by name is one
line saying why. The probes are cheap and import nothing heavy until asked; ``cpu_has_bf16`` is the one
capability probe for the bf16 backends (tests replace it to play a CPU without bf16).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

# bf16 dot products in hardware: AVX-512 BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids and later).
# Without them oneDNN and OpenVINO emulate bf16 (or quietly run fp32): slower than fp32, never faster.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (else ``platform.processor()``)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16() -> bool:
    return any(f in cpu_flags() for f in BF16_FLAGS)


def no_bf16_reason() -> str:
    return f"this CPU has no bf16 instructions ({' or '.join(BF16_FLAGS)} not in its flags)"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def unavailable_reason(backend: str, device) -> str | None:
    """Why ``backend`` cannot run on ``device`` (a ``torch.device``) here, or None when it can."""
    from livesound.live.backends import BACKENDS

    if backend not in BACKENDS:
        return f"unknown backend {backend!r}"
    cuda = device.type == "cuda"
    if backend == "torch":
        return None
    if backend == "torch-bf16":
        if cuda:
            return "torch-bf16 is the CPU's bf16 path; on a GPU use torch-fp16"
        return None if cpu_has_bf16() else no_bf16_reason()
    if backend == "torch-fp16":
        return None if cuda else "torch-fp16 needs a CUDA GPU (fp16 runs slower than fp32 on CPUs): --device cuda"
    if backend.startswith("openvino"):
        if cuda:
            return "OpenVINO runs on the CPU here: use --device cpu"
        if not _has("openvino"):
            return "OpenVINO is not installed (pip install openvino)"
        return no_bf16_reason() if backend.endswith("-bf16") and not cpu_has_bf16() else None
    if backend.startswith("onnxruntime"):
        if not _has("onnxruntime"):
            return "ONNX Runtime is not installed"
        providers = _ort_providers()
        if backend == "onnxruntime":
            if cuda and "CUDAExecutionProvider" not in providers:
                return ("this onnxruntime has no CUDA execution provider: install onnxruntime-gpu "
                        "(pip install 'livesound[gpu]'; scripts/setup.sh does it where an NVIDIA GPU is)")
            return None
        if not cuda:
            return f"{backend} needs a CUDA GPU: --device cuda"
        if "TensorrtExecutionProvider" not in providers:
            return "this onnxruntime has no TensorRT execution provider: install onnxruntime-gpu and TensorRT"
        return None
    if backend.startswith("tensorrt"):
        if not cuda:
            return "TensorRT needs a CUDA GPU: --device cuda"
        from exporters.tensorrt import BackendUnavailable, import_tensorrt

        try:
            import_tensorrt()
        except BackendUnavailable as e:
            return str(e)
        return None
    return f"unknown backend {backend!r}"


class Unavailable(ValueError):
    """A backend asked for by name cannot run on this machine (the message says why)."""
