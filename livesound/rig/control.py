"""The performer's parameters by name, one table for OSC, MIDI, preset keys and the window.

Threading: ``submit`` may be called from any thread (the OSC listener, the MIDI backend's callback, the GUI);
it checks the arguments there and appends to a deque. ``apply_pending`` runs on the renderer thread before
each frame (the engine's ``before_frame`` hook, or the fixed-step loop's), so every change lands between two
frames and the frame loop never shares a half-written state with another thread.
"""

from __future__ import annotations

import logging
from collections import deque
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


class Controls:
    """Named parameter changes, queued from any thread, applied on the renderer thread.

    ``target`` is a LiveEngine or a StepTarget. ``actions`` adds handlers the rig owns (preset, record, swap):
    name -> callable(*args).
    """

    def __init__(self, target, actions: dict[str, Callable] | None = None):
        self.target = target
        self.actions = dict(actions or {})
        self._queue: deque[tuple[str, tuple]] = deque()
        self.applied = 0
        self.failed = 0

    @property
    def pipeline(self):
        return self.target.pipeline

    def submit(self, name: str, *args) -> None:
        """Queue a change (any thread); ControlError at once when the name or arguments are wrong."""
        self._queue.append((name, check_args(name, args)))

    def apply_pending(self) -> None:
        """Renderer thread, between frames: apply every queued change in order."""
        while self._queue:
            name, args = self._queue.popleft()
            try:
                self.apply(name, *args)
                self.applied += 1
            except Exception as e:  # noqa: BLE001 - a bad value must not stop the frame loop; it is reported
                self.failed += 1
                log.error("livesound rig: %s %s failed: %s", name, " ".join(map(str, args)), e)

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
