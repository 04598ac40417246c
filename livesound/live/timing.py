"""Timing of the live stages, and the one percentile summary every report uses (benchmarks included)."""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Iterable

import numpy as np

STAGES = ("features", "encode", "smooth", "map", "synthesize", "upscale", "resize", "to_rgb8")


def percentiles(values: Iterable[float], qs: tuple[int, ...] = (50, 95, 99), unit: str = "ms",
                mean: bool = False) -> dict[str, float]:
    """{"p50_ms": .., "p95_ms": .., "p99_ms": ..} (``unit`` names the suffix, "" for bare "p50"; ``mean`` adds
    "mean_<unit>"). Empty input gives {}."""
    v = np.fromiter(values, float) if not isinstance(values, np.ndarray) else values.astype(float, copy=False)
    if v.size == 0:
        return {}
    suffix = f"_{unit}" if unit else ""
    out = {f"p{q}{suffix}": float(x) for q, x in zip(qs, np.percentile(v, qs))}
    if mean:
        out[f"mean{suffix}"] = float(v.mean())
    return out


class StageTimes:
    """Per-stage milliseconds of recent frames, for percentiles (bounded, so long runs stay flat)."""

    def __init__(self, keep: int = 4096):
        self.ms: dict[str, deque] = {name: deque(maxlen=keep) for name in STAGES}

    def add(self, name: str, ms: float) -> None:
        self.ms[name].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50_ms", "p95_ms", "p99_ms", "n"}} over the kept frames."""
        return {name: percentiles(values) | {"n": len(values)} for name, values in self.ms.items() if values}


class StageClock:
    """Runs stage calls for one thread: times each into ``times`` and this frame's ``ms``, and passes it
    through ``guard`` (a `livesound.live.faults.FaultGuard`) when there is one."""

    def __init__(self, times: StageTimes, guard=None):
        self.times, self.guard = times, guard
        self.ms: dict[str, float] = {}

    def new_frame(self) -> dict[str, float]:
        self.ms = {}
        return self.ms

    def run(self, name: str, fn: Callable, *args):
        t0 = time.perf_counter()
        out = fn(*args) if self.guard is None else self.guard.call(name, fn, *args)
        ms = (time.perf_counter() - t0) * 1e3
        self.ms[name] = ms
        self.times.add(name, ms)
        return out
