"""Stage faults: what the live loop does when a stage raises, returns NaN/inf, or takes too long.

On stage the show does not stop. A faulty stage call drops that frame (the previous good frame stays in the
latest-frame slot, so the screen keeps it), is counted per stage and per kind, is logged once per stage and kind
(a stage failing 30 times a second must not flood the log), and the loop goes on with the next frame.

Kinds:
- ``exception``: the stage raised (any ``Exception``; ``KeyboardInterrupt``/``SystemExit`` still stop the run);
- ``nonfinite``: a tensor output holds NaN or inf (it would poison the smoother and every later frame);
- ``timeout``: the stage returned, but after ``timeout_s``. A Python thread cannot be pre-empted, so a stage
  that never returns cannot be cut short; one that comes back late has its (stale) result dropped, which keeps
  a slow hiccup from showing an old picture as new.

A stage on an accelerated backend (ONNX Runtime, TensorRT) that faults ``fallback_after`` times in a row is
switched to its torch module, with one warning: a broken engine costs speed, not the show.

Threading: ``FaultGuard.check``/``record`` are called from the engine's two worker threads; the counters sit
behind one lock (a few increments a second at most). ``summary`` may be called from any thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

log = logging.getLogger("livesound")
KINDS = ("exception", "nonfinite", "timeout")


class StageFault(Exception):
    """One faulty stage call; the engine drops the frame it belonged to."""

    def __init__(self, stage: str, kind: str, detail: str):
        super().__init__(f"stage {stage!r}: {kind} ({detail})")
        self.stage, self.kind, self.detail = stage, kind, detail


@dataclass
class FaultPolicy:
    timeout_s: float = 2.0      # a stage slower than this has its result dropped (first calls may compile)
    fallback_after: int = 5     # consecutive faults of an accelerated stage before it falls back to torch


class FaultGuard:
    """Checks each stage call's outcome, counts faults, and swaps a failing accelerated backend for torch."""

    def __init__(self, pipeline=None, policy: FaultPolicy | None = None):
        self.pipeline = pipeline
        self.policy = policy or FaultPolicy()
        self._lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {}
        self._streak: dict[str, int] = {}
        self.fallbacks: list[str] = []
        self.last: str | None = None            # the newest fault, one line, for the overlay

    def call(self, stage: str, fn: Callable, *args):
        """``fn(*args)`` for ``stage``; raises StageFault (already recorded) instead of a bad result."""
        t0 = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as e:  # noqa: BLE001 - turned into a counted fault; the loop goes on
            raise self.record(StageFault(stage, "exception", f"{type(e).__name__}: {e}")) from e
        elapsed = time.perf_counter() - t0
        if elapsed > self.policy.timeout_s:
            raise self.record(StageFault(stage, "timeout", f"{elapsed:.2f} s > {self.policy.timeout_s:.2f} s"))
        if not _finite(out):
            raise self.record(StageFault(stage, "nonfinite", "NaN or inf in the output"))
        self._streak[stage] = 0
        return out

    def record(self, fault: StageFault) -> StageFault:
        with self._lock:
            per_stage = self.counts.setdefault(fault.stage, dict.fromkeys(KINDS, 0))
            first = per_stage[fault.kind] == 0
            per_stage[fault.kind] += 1
            streak = self._streak[fault.stage] = self._streak.get(fault.stage, 0) + 1
            self.last = str(fault)
        if first:
            log.warning("livesound: %s; the frame is dropped and the last good one stays on screen "
                        "(further %s faults of this stage are counted, not logged)", fault, fault.kind)
        if streak >= self.policy.fallback_after:
            self._fall_back(fault.stage)
        return fault

    @property
    def total(self) -> int:
        with self._lock:
            return sum(sum(k.values()) for k in self.counts.values())

    def summary(self) -> dict:
        """{"total": n, "by_stage": {stage: {kind: n}}, "fallbacks": [...], "last": str | None}."""
        with self._lock:
            by_stage = {s: {k: n for k, n in kinds.items() if n} for s, kinds in self.counts.items()}
            total = sum(sum(k.values()) for k in by_stage.values())
            return {"total": total, "by_stage": by_stage, "fallbacks": list(self.fallbacks), "last": self.last}

    def overlay_line(self) -> str | None:
        """'faults 12 (synthesize: nonfinite 12)' or None when there were none."""
        s = self.summary()
        if not s["total"]:
            return None
        parts = [f"{stage}: " + ", ".join(f"{k} {n}" for k, n in kinds.items()) for stage, kinds in s["by_stage"].items()]
        fb = f"; fell back to torch: {', '.join(s['fallbacks'])}" if s["fallbacks"] else ""
        return f"faults {s['total']} ({'; '.join(parts)}){fb}"

    def _fall_back(self, stage: str) -> None:
        st = self.pipeline
        if st is None or st.backends.get(stage, "torch") == "torch":
            return
        was = st.backends[stage]
        st.use_torch(stage)
        self._streak[stage] = 0
        with self._lock:
            self.fallbacks.append(f"{stage} ({was})")
        log.warning("livesound: the %s stage failed %d times in a row on %s; it now runs on torch",
                    stage, self.policy.fallback_after, was)


def _finite(out) -> bool:
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, np.ndarray):
        return out.dtype.kind != "f" or bool(np.isfinite(out).all())
    if isinstance(out, float):
        return math.isfinite(out)
    return True


class InjectFaults:
    """Make every ``every``-th call of one stage of a ``Pipeline`` fault: for tests and drills.

    By default the stage's method is wrapped; ``runner=True`` wraps the backend the stage runs on instead (an
    engine that fails, which the fault guard replaces by the torch module). ``kind``: "exception" raises,
    "nonfinite" returns the real output filled with NaN, "timeout" sleeps ``sleep_s`` before returning the real
    output. ``every=1`` faults every call. ``remove()`` restores it.
    """

    def __init__(self, pipeline, stage: str, kind: str, every: int = 1, sleep_s: float = 0.0,
                 runner: bool = False):
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {', '.join(KINDS)}")
        self.pipeline, self.stage, self.kind, self.every, self.sleep_s = pipeline, stage, kind, every, sleep_s
        self.runner = runner
        self.inner = pipeline.runners[stage] if runner else getattr(pipeline, stage)
        self.name = getattr(self.inner, "name", "torch")  # an injected runner reports its backend's name
        self.calls = self.injected = 0
        self._install(self)

    def _install(self, fn) -> None:
        if self.runner:
            self.pipeline.runners[self.stage] = fn
        else:
            setattr(self.pipeline, self.stage, fn)

    def __call__(self, *args):
        self.calls += 1
        if self.calls % self.every:
            return self.inner(*args)
        self.injected += 1
        if self.kind == "exception":
            raise RuntimeError(f"injected fault #{self.injected} in {self.stage}")
        out = self.inner(*args)
        if self.kind == "timeout":
            time.sleep(self.sleep_s)
            return out
        return torch.full_like(out, float("nan")) if isinstance(out, torch.Tensor) else out * np.nan

    def remove(self) -> None:
        if self.runner and self.pipeline.runners[self.stage] is not self:
            return  # the stage was replaced meanwhile (the fault guard's fallback): leave that in place
        self._install(self.inner)
