"""Live presets: the whole live state as JSON, nine slots to a file, recalled between two frames.

A state holds the source latent (its seed and the w+ values themselves, so a latent that did not come from a
seed survives too), strength, text and mix, smoothing, the reactivity gains and the walk's phase. The file also
holds the MIDI map, which belongs to the rig rather than to one slot::

    {"livesound_live_presets": 1,
     "slots": {"1": {"seed": 3, "ws_src": [[...], ...], "strength": 0.8, "text": null, "mix": "coarse",
                     "smoothing_s": 0.25, "gains": {"pulse_strength": 0.0, ...}, "walk_phase": 0.0}, ...},
     "midi": [{"kind": "cc", "channel": 0, "number": 21, "param": "strength"}, ...]}

w+ values are written as JSON numbers: float32 -> Python float -> JSON -> float32 is exact, so a recalled
preset renders bit-identical frames. Files are written atomically (a crash never leaves half a file).
`capture` and `apply` run on the renderer thread (they read and write the stages).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from livesound.files import atomic_write
from livesound.live.reactivity import ReactivityGains
from livesound.rig.control import PARAMS, STRENGTH_MAX, parse_mix
from livesound.rig.midi import MidiBinding
from livesound.weights import fields

FORMAT_KEY = "livesound_live_presets"
SLOTS = range(1, 10)


class LivePresetError(ValueError):
    pass


def capture(target) -> dict:
    """The live state of a LiveEngine or StepTarget as a JSON-ready dict."""
    st = target.pipeline
    glide = getattr(st, "glide", None)  # mid-glide, the scene is where the picture is going, not where it is
    ws = glide.end if glide is not None else st.ws_src
    return {"seed": int(st.seed), "ws_src": ws[0].tolist(), "strength": float(target.strength),
            "text": target.text, "mix": ",".join(st.text_groups), "smoothing_s": float(st.smoother.time_constant_s),
            "gains": st.reactivity.gains.to_dict(), "walk_phase": float(st.reactivity.phase)}


def check_state(state, where: str = "preset") -> dict:
    """A captured state with every field checked (types, ranges, finiteness), or LivePresetError naming the
    field. ``ws_src``'s shape is checked against the generator at recall (`apply`)."""
    try:
        state = fields.obj(state, where)
        missing = [k for k in ("seed", "ws_src", "strength") if k not in state]
        if missing:
            raise fields.FieldError(f"{where}.{missing[0]}", "missing")
        ws = fields.sequence(state["ws_src"], f"{where}.ws_src", fields.Bounds(items=(1, 64)))
        try:
            ws = np.asarray(ws, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise fields.FieldError(f"{where}.ws_src", "must be rows of numbers of one length") from None
        if ws.ndim != 2 or ws.shape[1] > 8192 or not np.isfinite(ws).all():
            raise fields.FieldError(f"{where}.ws_src", f"must be rows of finite numbers (shape {list(ws.shape)})")
        gains = fields.obj(state.get("gains", {}), f"{where}.gains")
        unknown = set(gains) - set(_GAIN_BOUNDS)
        if unknown:
            raise fields.FieldError(f"{where}.gains", f"unknown gains {sorted(unknown)} "
                                                      f"(known: {sorted(_GAIN_BOUNDS)})")
        text = state.get("text")
        return {"seed": fields.integer(state["seed"], f"{where}.seed", fields.Bounds(0, 2**31 - 1)),
                "ws_src": ws.astype(np.float32),
                "strength": fields.number(state["strength"], f"{where}.strength", fields.Bounds(0, STRENGTH_MAX)),
                "text": None if text is None else fields.text(text, f"{where}.text"),
                "mix": parse_mix(fields.text(state.get("mix", "coarse"), f"{where}.mix")),
                "smoothing_s": fields.number(state.get("smoothing_s", 0.25), f"{where}.smoothing_s",
                                             fields.Bounds(0, 60)),
                "gains": ReactivityGains(**{k: float(fields.number(v, f"{where}.gains.{k}", _GAIN_BOUNDS[k]))
                                            for k, v in gains.items()}),
                "walk_phase": fields.number(state.get("walk_phase", 0.0), f"{where}.walk_phase",
                                            fields.Bounds(-1e9, 1e9))}
    except ValueError as e:  # FieldError, and parse_mix's own
        raise LivePresetError(str(e)) from None


_GAIN_BOUNDS = {"pulse_strength": fields.Bounds(0, PARAMS["pulse_gain"].hi),
                "pulse_kick": fields.Bounds(0, PARAMS["kick"].hi), "motion_walk": fields.Bounds(0, PARAMS["walk"].hi),
                "walk_radius": fields.Bounds(0, 10)}


def apply(target, state: dict, where: str = "preset") -> None:
    """Restore a state captured by `capture` (renderer thread); checks it first and changes nothing if bad."""
    st = target.pipeline
    s = check_state(state, where)
    ws = torch.from_numpy(s["ws_src"])[None]
    if ws.shape != st.ws_src.shape:
        raise LivePresetError(f"{where}: source latent of shape {list(ws.shape[1:])}, the generator takes "
                              f"{list(st.ws_src.shape[1:])}")
    st.set_text(s["text"])  # first: it raises without CLIP weights, before anything changed
    target.text = s["text"]
    st.set_source(ws, s["seed"])
    if hasattr(target, "drop_pending_seed"):
        target.drop_pending_seed()  # a seed queued before the recall must not overwrite the recalled latent
    target.strength = s["strength"]
    st.set_text_groups(s["mix"])
    st.set_smoothing(s["smoothing_s"])
    st.reactivity.gains, st.reactivity.phase = s["gains"], s["walk_phase"]


class PresetBank:
    """Slots 1-9 and the MIDI map, backed by one JSON file (created on the first store)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.slots: dict[int, dict] = {}
        self.midi: list[dict] = []
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise LivePresetError(f"{self.path}: cannot read the live presets ({str(e)[:200]})") from None
        if not isinstance(data, dict) or data.get(FORMAT_KEY) != 1:
            raise LivePresetError(f"{self.path}: not a livesound live preset file (no \"{FORMAT_KEY}\": 1)")
        slots, midi = data.get("slots", {}), data.get("midi", [])
        if not isinstance(slots, dict) or not isinstance(midi, list):
            raise LivePresetError(f"{self.path}: \"slots\" must be an object and \"midi\" a list")
        bad = [k for k in slots if not (k.isdigit() and int(k) in SLOTS) or not isinstance(slots[k], dict)]
        if bad:
            raise LivePresetError(f"{self.path}: slots must be \"1\"..\"9\" holding objects, got {bad}")
        for k, v in slots.items():  # every field now, naming the file: not at the first recall mid-show
            try:
                check_state(v, f"slots.{k}")
            except LivePresetError as e:
                raise LivePresetError(f"{self.path}: {e}") from None
        for i, item in enumerate(midi):
            try:
                MidiBinding.from_dict(item, f"midi[{i}]")
            except ValueError as e:
                raise LivePresetError(f"{self.path}: {e}") from None
        self.slots = {int(k): v for k, v in slots.items()}
        self.midi = midi

    def snapshot(self) -> dict:
        """The file's content now, cheap to take (slots are replaced whole, never changed in place): a worker
        can ``write`` it while the renderer goes on."""
        return {FORMAT_KEY: 1, "slots": {str(k): v for k, v in sorted(self.slots.items())}, "midi": list(self.midi)}

    def write(self, data: dict) -> None:
        if self.path is None:
            return
        text = json.dumps(data, indent=1) + "\n"
        atomic_write(self.path, lambda tmp: tmp.write_text(text))

    def save(self) -> None:
        self.write(self.snapshot())

    def store(self, slot: int, target) -> None:
        self.slots[self.check_slot(slot)] = capture(target)
        self.save()

    def recall(self, slot: int, target) -> None:
        self.check_slot(slot)
        if slot not in self.slots:
            raise LivePresetError(f"live preset {slot} is empty (store it first)")
        apply(target, self.slots[slot], where=f"live preset {slot}")

    @staticmethod
    def check_slot(slot: int) -> int:
        if slot not in SLOTS:
            raise LivePresetError(f"live preset slots are 1-9, got {slot}")
        return slot
