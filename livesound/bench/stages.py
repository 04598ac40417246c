"""`livesound bench`: every stage of a frame timed per backend, side by side, in one run.

Each backend runs the same frame recipe on the same deterministic audio (a chirp, one 1/30 s hop per frame),
one frame after another on the calling thread: warm-up frames first, then ``frames`` timed frames. Stage names
in the report: ``features`` (streaming log-mel), ``encoder``, ``mapper``, ``generator``, with an output size
``upscale`` (``--upscaler``) and ``resize`` (``--size``), and ``total`` (the whole frame, smoothing and conversion
to 8-bit RGB included). CUDA work is synchronised before each clock read.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from livesound.audio.sources import SynthSource
from livesound.bench.stats import figure, p50_bars, summary_ms
from livesound.live.backends import AUTO, BACKENDS, unavailable_reason
from livesound.live.backends.capability import cpu_has_bf16, cpu_name
from livesound.live.build import LiveOptions, build_pipeline

REPORT_STAGES = ("features", "encoder", "mapper", "generator", "total")
OUTPUT_STAGES = ("upscale", "resize")  # timed when the pipeline has them (livesound.live.output)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_backend(stages, frames: int, warmup: int, hop: int = 1470, progress: bool = False) -> dict:
    """Per-stage times of ``frames`` frames (after ``warmup``) on already-built ``stages``."""
    from tqdm import tqdm

    audio = SynthSource("chirp").render(0, (frames + warmup) * hop)
    outputs = [s for s, on in zip(OUTPUT_STAGES, (stages.upscaler, stages.resizer)) if on is not None]
    times: dict[str, list[float]] = {k: [] for k in (*REPORT_STAGES, *outputs)}
    dt = hop / stages.sample_rate
    for i in tqdm(range(frames + warmup), disable=None if progress else True, unit="frame", file=sys.stderr):
        block = audio[i * hop:(i + 1) * hop]
        marks = [time.perf_counter()]

        def mark() -> None:
            _sync()
            marks.append(time.perf_counter())

        spec = stages.features(block)
        mark()
        e = stages.encode(spec)
        mark()
        level, onset, _ = stages.envelope.update(block, dt)
        ws = stages.map(stages.smooth(e, dt, onset), stages.envelope.boosted(stages.s.strength))
        mark()
        img = stages.synthesize(ws)
        mark()
        for name in outputs:
            img = getattr(stages, name)(img)
            mark()
        stages.to_rgb8(img)
        mark()
        if i >= warmup:
            spans = [("features", 0, 1), ("encoder", 1, 2), ("mapper", 2, 3), ("generator", 3, 4),
                     *((name, 4 + k, 5 + k) for k, name in enumerate(outputs)), ("total", 0, len(marks) - 1)]
            for name, a, b in spans:
                times[name].append((marks[b] - marks[a]) * 1e3)
    report = {"stages": {k: summary_ms(v) for k, v in times.items()}}
    report["fps"] = 1e3 / report["stages"]["total"]["mean_ms"]
    report["_total_ms"] = times["total"]
    return report


def machine_info(threads: int) -> dict:
    import onnxruntime

    info = {"platform": platform.platform(), "processor": cpu_name(), "cpu_bf16": cpu_has_bf16(),
            "cpu_count": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "onnxruntime_providers": onnxruntime.get_available_providers(), "date": time.strftime("%Y-%m-%d")}
    try:
        import openvino

        info["openvino"] = openvino.__version__.split("-")[0]
    except ImportError:
        info["openvino"] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_bench(preset: str, backends: list[str], frames: int, warmup: int, threads: int,
              progress: bool = True, log=print, device: str = "cpu", size: str | None = None, fit: str = "cover",
              upscaler: str | None = None) -> dict:
    """Each backend's whole frame; one that cannot run on this machine is listed under ``unavailable`` with the
    reason (`livesound.live.backends.capability`)."""
    unknown = [b for b in backends if b not in BACKENDS and b != AUTO]
    if unknown or not backends:
        raise ValueError(f"unknown backends {unknown}; choose from {', '.join(BACKENDS + (AUTO,))}")
    torch.set_num_threads(threads)
    result = {"preset": preset, "frames": frames, "warmup": warmup, "backends": {}, "unavailable": {},
              "device": device, "machine": machine_info(threads),
              "settings": {"hop_samples": 1470, "batch": 1, "precision": "per backend name", "audio": "chirp",
                           "size": size, "fit": fit, "upscaler": Path(upscaler).name if upscaler else None}}
    for name in backends:
        reason = None if name == AUTO else unavailable_reason(name, torch.device(device))
        if reason:
            result["unavailable"][name] = reason
            log(f"livesound bench: {name}: unavailable ({reason})")
            continue
        log(f"livesound bench: {name}: building stages")
        stages = build_pipeline(LiveOptions(preset=preset, backend=name, backend_threads=threads, device=device,
                                            size=size, fit=fit, upscaler=upscaler))
        result["backends"][name] = time_backend(stages, frames, warmup, progress=progress)
        result["backends"][name]["stage_backends"] = dict(stages.backends)
        r = result["backends"][name]
        log(f"livesound bench: {name}: {r['fps']:.1f} fps, frame p50 {r['stages']['total']['p50_ms']:.1f} ms, "
            f"p99 {r['stages']['total']['p99_ms']:.1f} ms")
    if not result["backends"]:
        raise ValueError(f"no backend can run here: {result['unavailable']}")
    return result


def plot(result: dict, path: Path) -> None:
    """Left: per-stage p50 per backend, whisker to p99. Right: the whole-frame time histogram per backend."""
    names = list(result["backends"])
    width = 0.8 / len(names)
    shown = [s for s in (*REPORT_STAGES[:-1], *OUTPUT_STAGES, "total") if s in result["backends"][names[0]]["stages"]]
    x = np.arange(len(shown))
    with figure(path, 1, 2, (11, 4)) as (fig, (a, b)):
        for i, name in enumerate(names):
            r = result["backends"][name]
            p50_bars(a, x + i * width, [r["stages"][s] for s in shown], width, capsize=3, label=name)
            b.hist(r["_total_ms"], bins=30, alpha=0.6, label=f"{name} ({r['fps']:.0f} fps)")
        a.set_xticks(x + width * (len(names) - 1) / 2, shown)
        a.set(ylabel="ms (p50, whisker to p99)", title=f"{result['preset']}: per-stage time per frame")
        a.legend()
        b.set(xlabel="frame time, ms", ylabel="frames", title="whole-frame latency")
        b.legend()
