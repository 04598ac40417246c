"""CPU pinning of the live engine's two worker threads, so the audio side and the picture side each own a core.

On a 2-core machine the listener (features, encode) and the renderer (smooth, map, synthesize) already overlap;
left to the scheduler they also migrate and land on one core now and then, which shows in the frame-time tail.
Pinning gives each worker one core of the process's allowed set: the renderer the first, the listener the
second (``auto``), or the cores named (``RENDER,LISTEN``). The audio callback, the GUI and everything else stay
unpinned. Each worker pins itself at its start: on Linux ``os.sched_setaffinity(0, ...)`` called from a
thread applies to that thread only. Elsewhere (no ``sched_setaffinity``) pinning is a logged no-op.

Torch runs each worker's ops on the worker itself (one intra-op thread each), and ONNX Runtime sessions built
with one intra-op thread run on the calling thread too, so the pin covers the stage's compute.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("livesound")
WORKERS = ("renderer", "listener")


def parse_pin(text: str | None) -> str | tuple[int, int]:
    """``off`` | ``auto`` | ``RENDER,LISTEN`` core numbers -> "off", "auto" or (render, listen)."""
    text = (text or "off").strip().lower()
    if text in ("off", "auto"):
        return text
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--pin-threads must be off, auto or two core numbers RENDER,LISTEN; got {text!r}")
    return int(parts[0]), int(parts[1])


def plan(pin: str | tuple[int, int], allowed: set[int] | None = None) -> dict[str, int]:
    """The core of each worker (empty: no pinning). ``auto`` pins only where two or more cores are allowed."""
    if pin == "off" or not hasattr(os, "sched_getaffinity"):
        return {}
    allowed = set(os.sched_getaffinity(0)) if allowed is None else set(allowed)
    if pin == "auto":
        cores = sorted(allowed)
        return dict(zip(WORKERS, cores[:2])) if len(cores) >= 2 else {}
    bad = [c for c in pin if c not in allowed]
    if bad:
        raise ValueError(f"--pin-threads: core(s) {bad} are not among this process's cores {sorted(allowed)}")
    return dict(zip(WORKERS, pin))


def pin_current_thread(core: int | None, worker: str = "") -> bool:
    """Pin the calling thread to ``core`` (None: leave it); False, logged, where the OS refuses."""
    if core is None:
        return False
    try:
        os.sched_setaffinity(0, {core})
    except (AttributeError, OSError) as e:
        log.warning("livesound: could not pin the %s thread to core %d (%s); it runs unpinned", worker, core, e)
        return False
    log.info("livesound: %s thread pinned to core %d", worker, core)
    return True
