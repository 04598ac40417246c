"""Soak runs: the live engine for many frames, sampling memory, threads, open files and frame time over time.

A show runs for hours; a leak of a few kilobytes a frame, a thread per reconnect or a slowly growing queue only
shows after many thousands of frames. ``soak`` runs the real engine (source thread, listener, renderer, the
preset's backends) with a synthetic source, as fast as the renderer goes, and samples the process every
``sample_every`` frames. ``judge`` turns the samples into the two verdicts the benchmark and the test check:
memory growth after warm-up, and frame-time drift (first against last decile).

Linux only for the file and thread counts (``/proc/self``); RSS falls back to ``resource`` elsewhere.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Sample:
    frame: int            # frames rendered so far
    t_s: float            # seconds since the start
    rss_mb: float
    threads: int          # OS threads of the process (ONNX Runtime's and torch's pools included)
    py_threads: int       # Python threads
    fds: int              # open file descriptors
    frame_ms: float       # mean frame time since the previous sample (wall clock)
    faults: int
    cpu_ms: float = 0.0   # process CPU time per frame since the previous sample: steadier than wall time on
                          # a shared machine, where other processes' load moves the wall time
    stage_ms: dict = field(default_factory=dict)  # median ms per stage over its latest calls: says which stage
                                                  # moved when the frame time does


def rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def os_threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _recent_stage_ms(engine, keep: int) -> dict:
    out = {}
    for name, times in engine.times.ms.items():
        recent = list(times.copy())[-keep:]  # deque.copy is atomic; the workers keep appending
        if recent:
            out[name] = round(float(np.median(recent)), 4)
    return out


def soak(engine, frames: int, sample_every: int = 500, progress=None, timeout_s: float | None = None
         ) -> list[Sample]:
    """Run ``engine`` (not started) until it has rendered ``frames`` frames; samples as it goes.

    The caller's thread plays the display: it takes each new frame from the latest-frame slot and reads its
    pixels, as a window's paint would. ``progress(n)`` is called with frames done at each sample.
    """
    samples: list[Sample] = []
    engine.start()
    t0 = time.perf_counter()
    last_t, last_n, next_at = t0, 0, sample_every
    last_cpu = _cpu_s()
    deadline = None if timeout_s is None else t0 + timeout_s
    checksum = 0
    seen = -1
    try:
        while engine.frames_rendered < frames:
            if engine.error is not None:
                raise RuntimeError(f"the live engine stopped: {engine.error}") from engine.error
            if deadline is not None and time.perf_counter() > deadline:
                raise TimeoutError(f"soak: {engine.frames_rendered} of {frames} frames in {timeout_s} s")
            f = engine.latest_frame()
            if f is not None and f.index != seen:
                seen = f.index
                checksum ^= int(f.rgb[0, 0, 0])
            n = engine.frames_rendered
            if n >= next_at:
                now, cpu = time.perf_counter(), _cpu_s()
                frames_since = max(1, n - last_n)
                samples.append(Sample(n, now - t0, rss_mb(), os_threads(), threading.active_count(), open_fds(),
                                      (now - last_t) * 1e3 / frames_since, engine.faults.total,
                                      (cpu - last_cpu) * 1e3 / frames_since, _recent_stage_ms(engine, 200)))
                last_t, last_n, last_cpu, next_at = now, n, cpu, next_at + sample_every
                if progress is not None:
                    progress(n)
            time.sleep(0.002)
    finally:
        engine.stop()
    return samples


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


MIN_SAMPLES = 20  # deciles of fewer samples are single noisy points


def judge(samples: list[Sample], warmup_fraction: float = 0.1) -> dict:
    """Memory growth after warm-up and frame-time drift, from ``samples`` (at least MIN_SAMPLES of them)."""
    if len(samples) < MIN_SAMPLES:
        raise ValueError(f"need at least {MIN_SAMPLES} samples to judge a soak, got {len(samples)}")
    start = max(1, int(len(samples) * warmup_fraction))
    run = samples[start:]
    rss = np.array([s.rss_mb for s in run])
    ms = np.array([s.frame_ms for s in run])
    dec = max(1, len(run) // 10)
    first, last = float(np.median(ms[:dec])), float(np.median(ms[-dec:]))
    cpu = np.array([s.cpu_ms for s in run])
    cpu_first, cpu_last = float(np.median(cpu[:dec])), float(np.median(cpu[-dec:]))
    return {
        "warmup_samples": start, "rss_mb_after_warmup": float(rss[0]), "rss_mb_end": float(rss[-1]),
        "rss_mb_max": float(rss.max()),
        "memory_growth": float((rss.max() - rss[0]) / rss[0]),
        "threads": [min(s.threads for s in run), max(s.threads for s in run)],
        "py_threads": [min(s.py_threads for s in run), max(s.py_threads for s in run)],
        "fds": [min(s.fds for s in run), max(s.fds for s in run)],
        "frame_ms_first_decile": first, "frame_ms_last_decile": last, "frame_time_drift": last / first - 1.0,
        "cpu_ms_first_decile": cpu_first, "cpu_ms_last_decile": cpu_last,
        "cpu_time_drift": cpu_last / cpu_first - 1.0 if cpu_first > 0 else 0.0,
        "faults": run[-1].faults,
    }


def as_rows(samples: list[Sample]) -> list[dict]:
    return [asdict(s) for s in samples]
