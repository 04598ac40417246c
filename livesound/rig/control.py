"""The performer's parameters by name, one table for OSC, MIDI, preset keys and the window.

Threading: ``submit`` may be called from any thread (the OSC listener, the MIDI backend's callback, the GUI);
it checks the arguments there and appends to a bounded queue (``MAX_QUEUED``: a flood drops the oldest changes,
counted in ``dropped``, instead of growing without end). ``apply_pending`` runs on the renderer thread before
each frame (the engine's ``before_frame`` hook, or the fixed-step loop's), so every change lands between two
frames and the frame loop never shares a half-written state with another thread. Failures are logged through a
rate limit (a few lines per ten seconds for each parameter, the rest counted), so a flood of bad messages
cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("livesound")

STRENGTH_MAX = 5.0
MIX_GROUPS = ("coarse", "medium", "fine")


@dataclass(frozen=True)
class Param:
    types: str            # OSC argument types: "f" number, "i" integer, "s" string, "" none
    lo: float = 0.0       # range of a continuous value (MIDI CC 0..127 spans it)
    hi: float = 1.0
    help: str = ""
    open_top: bool = False  # integers above ``hi`` are fine (seeds); ``hi`` only scales a MIDI CC

    @property
    def continuous(self) -> bool:
        return self.types == "f"


PARAMS: dict[str, Param] = {
    "strength": Param("f", 0.0, STRENGTH_MAX, "mapper strength"),
    "seed": Param("i", 0, 127, "source latent's seed", open_top=True),
    "next": Param("", help="next seed"),
    "prev": Param("", help="previous seed"),
    "text": Param("s", help="steering text (empty clears; needs CLIP weights)"),
    "mix": Param("s", help="layer groups the text steers: coarse, medium, fine, comma-separated"),
    "smoothing": Param("f", 0.0, 2.0, "embedding time constant, seconds"),
    "pause": Param("i", 0, 1, "1 pauses the picture, 0 resumes"),
    "preset": Param("i", 1, 9, "recall live preset 1-9"),
    "preset_save": Param("i", 1, 9, "store the live state as preset 1-9"),
    "record": Param("i", 0, 1, "1 starts recording, 0 stops"),
    "pulse_gain": Param("f", 0.0, 4.0, "strength added at a full pulse (x strength)"),
    "kick": Param("f", 0.0, 2.0, "latent kick at a full pulse"),
    "walk": Param("f", 0.0, 4.0, "walk speed at full motion, radians/s"),
    "generator": Param("s", help="swap in a generator checkpoint (loads on the side)"),
    "mapper": Param("s", help="swap in a mapper checkpoint (loads on the side)"),
}
MAX_STRING = 1024  # longer strings are refused: a text prompt or a checkpoint path never needs more
MAX_QUEUED = 256   # changes waiting for the next frame; a performer's controls never come near


class ControlError(ValueError):
    """A control message that cannot apply; ``kind`` groups them for counting (unknown_address, wrong_type, ...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def check_args(name: str, args: tuple) -> tuple:
    """The arguments of ``name`` converted to their types, or ControlError."""
    param = PARAMS.get(name)
    if param is None:
        raise ControlError("unknown_address", f"unknown parameter {name!r}")
    if len(args) != len(param.types):
        raise ControlError("wrong_arity", f"{name} takes {len(param.types)} argument(s), got {len(args)}")
    out = []
    for t, a in zip(param.types, args):
        if t == "s":
            if not isinstance(a, str):
                raise ControlError("wrong_type", f"{name} takes a string, got {type(a).__name__}")
            if len(a) > MAX_STRING:
                raise ControlError("oversized", f"{name}: string of {len(a)} characters (max {MAX_STRING})")
            out.append(a)
            continue
        if isinstance(a, bool) or not isinstance(a, (int, float)) or a != a or abs(a) == float("inf"):
            raise ControlError("wrong_type", f"{name} takes a finite number, got {a!r:.40}")
        if t == "i":
            if float(a) != int(a):
                raise ControlError("wrong_type", f"{name} takes an integer, got {a}")
            if int(a) < param.lo or (int(a) > param.hi and not param.open_top) or abs(int(a)) >= 2**31:
                raise ControlError("out_of_range", f"{name} must be in {param.lo:g}..{param.hi:g}, got {a}")
            out.append(int(a))
        else:
            out.append(min(max(float(a), param.lo), param.hi))
    return tuple(out)


class StepTarget:
    """The control surface of a fixed-step run, shaped like LiveEngine's (strength, paused, seed, text)."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.strength = pipeline.s.strength
        self.paused = False
        self.text: str | None = None

    @property
    def seed(self) -> int:
        return self.pipeline.seed

    def set_seed(self, seed: int) -> None:
        self.pipeline.set_seed(max(0, int(seed)))

    def next_seed(self) -> None:
        self.set_seed(self.seed + 1)

    def prev_seed(self) -> None:
        self.set_seed(self.seed - 1)

    def set_text(self, text: str | None) -> None:
        self.pipeline.set_text(text or None)
        self.text = text or None


class RateLimitedLog:
    """At most ``burst`` lines per ``window_s`` for each key; the rest are counted, and the next line that gets
    through says how many were held back. Any thread."""

    def __init__(self, logger: logging.Logger, burst: int = 3, window_s: float = 10.0):
        self.logger, self.burst, self.window_s = logger, burst, window_s
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}
        self.suppressed: Counter[str] = Counter()
        self._held: Counter[str] = Counter()

    def log(self, level: int, key: str, message: str, *args) -> bool:
        now = time.monotonic()
        with self._lock:
            start, n = self._windows.get(key, (now, 0))
            if now - start >= self.window_s:
                start, n = now, 0
            self._windows[key] = (start, n + 1)
            if n >= self.burst:
                self.suppressed[key] += 1
                self._held[key] += 1
                return False
            held, self._held[key] = self._held[key], 0
        if held:
            message += f" ({held} more like it were not logged)"
        self.logger.log(level, message, *args)
        return True


class Controls:
    """Named parameter changes, queued from any thread, applied on the renderer thread.

    ``target`` is a LiveEngine or a StepTarget. ``actions`` adds handlers the rig owns (preset, record, swap):
    name -> callable(*args). ``checks`` adds checks run at ``submit`` (name -> callable(*args) raising
    ControlError), so a refused change is told to its sender's thread and never queued.
    """

    def __init__(self, target, actions: dict[str, Callable] | None = None,
                 checks: dict[str, Callable] | None = None, max_queued: int = MAX_QUEUED):
        self.target = target
        self.actions = dict(actions or {})
        self.checks = dict(checks or {})
        self.max_queued = max_queued
        self._queue: deque[tuple[str, tuple]] = deque()
        self._lock = threading.Lock()
        self.applied = 0
        self.failed = 0
        self.dropped = 0   # queued changes dropped because newer ones filled the queue
        self.errors = RateLimitedLog(log)

    @property
    def pipeline(self):
        return self.target.pipeline

    def submit(self, name: str, *args) -> None:
        """Queue a change (any thread); ControlError at once when the name or arguments are wrong."""
        args = check_args(name, args)
        if name == "text" and args[0] and getattr(self.pipeline, "clip", None) is None:
            # Told here, once per message: applied, it would fail on the renderer thread every time.
            raise ControlError("unavailable", "text steering needs CLIP weights (--clip); /text refused")
        if name in self.checks:
            self.checks[name](*args)
        with self._lock:
            full = len(self._queue) >= self.max_queued
            if full:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((name, args))
        if full:
            self.errors.log(logging.WARNING, "queue_full", "livesound rig: more than %d changes waiting for the "
                            "next frame; the oldest are dropped (counted in controls_dropped)", self.max_queued)

    def apply_pending(self) -> None:
        """Renderer thread, between frames: apply every queued change in order."""
        while True:
            with self._lock:
                if not self._queue:
                    return
                name, args = self._queue.popleft()
            try:
                self.apply(name, *args)
                self.applied += 1
            except Exception as e:  # noqa: BLE001 - a bad value must not stop the frame loop; it is reported
                self.failed += 1
                self.errors.log(logging.ERROR, name, "livesound rig: %s %s failed: %s", name,
                                " ".join(map(str, args))[:200], e)

    def apply(self, name: str, *args) -> None:
        t, st = self.target, self.target.pipeline
        if name in self.actions:
            self.actions[name](*args)
        elif name == "strength":
            t.strength = args[0]
        elif name == "seed":
            t.set_seed(args[0])
        elif name == "next":
            t.next_seed()
        elif name == "prev":
            t.prev_seed()
        elif name == "text":
            t.set_text(args[0] or None)
        elif name == "mix":
            st.set_text_groups(parse_mix(args[0]))
        elif name == "smoothing":
            st.set_smoothing(args[0])
        elif name == "pause":
            t.paused = bool(args[0])
        elif name == "pulse_gain":
            st.reactivity.gains.pulse_strength = args[0]
        elif name == "kick":
            st.reactivity.gains.pulse_kick = args[0]
        elif name == "walk":
            st.reactivity.gains.motion_walk = args[0]
        else:
            raise ValueError(f"{name} is not available here")


def parse_mix(text: str) -> tuple[str, ...]:
    groups = tuple(g.strip() for g in text.split(",") if g.strip())
    bad = [g for g in groups if g not in MIX_GROUPS]
    if bad:
        raise ValueError(f"mix: unknown layer group(s) {bad}; use {', '.join(MIX_GROUPS)}")
    return groups
