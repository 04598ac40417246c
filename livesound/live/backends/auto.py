"""``auto``: per stage, the fastest backend that stays within tolerance of fp32, measured once and remembered.

At the first use of a stage's network on a machine, every backend that can run there (`capability`) is built,
compared with the fp32 torch module on a seeded input (`parity`: PSNR >= 40 dB for images, cosine >= 0.999
for embeddings, 1 % RMS for latents) and, if within tolerance, timed: ``WARMUP`` untimed calls, then the
median of ``TIMED`` calls, with the threads the live path will use. The fastest wins. The choice and every
measurement are written to ``engines_dir()/auto/<stage>-<key>.json``, the key being the network's weights, the
device, the threads and the runtime versions, so a later start builds only the winner. Delete the file (or
``$LIVESOUND_ENGINES``) to measure again.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import torch

from livesound.files import write_json
from livesound.live.backends import engines_dir, fingerprint, make_backend, parity
from livesound.live.backends.capability import cpu_name, unavailable_reason

WARMUP, TIMED = 2, 7


def candidates(device: torch.device) -> list[str]:
    """The backends ``auto`` considers on ``device``'s kind (available or not)."""
    if device.type == "cuda":
        return ["torch", "torch-fp16", "onnxruntime", "onnxruntime-tensorrt", "onnxruntime-tensorrt-fp16",
                "tensorrt", "tensorrt-fp16"]
    return ["torch", "torch-bf16", "onnxruntime", "openvino", "openvino-bf16"]


def choice_path(stage: str, module: torch.nn.Module, threads: int, device: torch.device):
    versions = [torch.__version__]
    for name in ("onnxruntime", "openvino"):
        try:
            versions.append(__import__(name).__version__)
        except ImportError:
            versions.append("-")
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    key = hashlib.sha256(f"{fingerprint(module)}|{device}|{machine}|{threads}|{versions}".encode()).hexdigest()
    return engines_dir() / "auto" / f"{stage}-{key[:16]}.json"


def choose_backend(stage: str, module: torch.nn.Module, threads: int = 1, device=None, log=None):
    """The backend ``auto`` picks for ``stage`` (built, ready to call); measures on first use (module doc)."""
    device = torch.device(device or "cpu")
    log = log or (lambda text: print(f"livesound: {text}", file=sys.stderr))
    path = choice_path(stage, module, threads, device)
    if path.is_file():
        try:
            chosen = json.loads(path.read_text())["choice"]
            return make_backend(stage, chosen, module, threads, device, check=False)
        except Exception as e:  # noqa: BLE001 - a stale or broken choice is measured again, not fatal
            log(f"auto: the cached choice for {stage} ({path.name}) failed ({e}); measuring again")
    report, runner = measure(stage, module, threads, device)
    write_json(path, report)
    times = ", ".join(f"{n} {r['p50_ms']:.1f}" for n, r in report["measured"].items() if "p50_ms" in r)
    log(f"auto: {stage} runs on {report['choice']} (ms a call: {times}; cached in {path})")
    return runner


def measure(stage: str, module: torch.nn.Module, threads: int, device: torch.device) -> tuple[dict, object]:
    """Build, check and time every candidate: (report, the winner's runner). Candidates are timed in turns, one
    call each per round, so a load that comes and goes weighs on all of them alike."""
    report = {"stage": stage, "device": str(device), "threads": threads, "tolerance": parity.TOLERANCE[stage],
              "measured": {}, "unavailable": {}, "date": time.strftime("%Y-%m-%d")}
    runners = {}
    for name in candidates(device):
        reason = unavailable_reason(name, device)
        if reason:
            report["unavailable"][name] = reason
            continue
        try:
            runner = make_backend(stage, name, module, threads, device, check=False)
            entry = parity.compare_with_torch(stage, runner, module, device)  # outside tolerance: not chosen
        except Exception as e:  # noqa: BLE001 - a backend that fails to build is reported and passed over
            entry = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        report["measured"][name] = entry
        if entry["ok"]:
            runners[name] = runner
    inputs = parity.example_inputs(stage, module, device)
    ms: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(WARMUP + TIMED):
        for name, runner in runners.items():
            t = time_call(runner, inputs, device)
            if i >= WARMUP:
                ms[name].append(t)
    for name, values in ms.items():
        report["measured"][name]["p50_ms"] = float(np.median(values))
    report["choice"] = min(ms, key=lambda n: report["measured"][n]["p50_ms"]) if ms else "torch"
    return report, runners.get(report["choice"]) or make_backend(stage, "torch", module, threads, device)


def time_call(runner, inputs, device: torch.device) -> float:
    """Milliseconds of one call, the device synchronised."""
    t0 = time.perf_counter()
    runner(*inputs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) * 1e3
