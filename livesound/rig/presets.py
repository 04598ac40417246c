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
import math
from pathlib import Path

import torch

from livesound.files import atomic_write
from livesound.live.reactivity import ReactivityGains
from livesound.rig.control import parse_mix

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


def apply(target, state: dict, where: str = "preset") -> None:
    """Restore a state captured by `capture` (renderer thread); checks it first and changes nothing if bad."""
    st = target.pipeline
    try:
        ws = torch.tensor(state["ws_src"], dtype=torch.float32)[None]
        gains = ReactivityGains.from_dict(state.get("gains", {}))
        mix = parse_mix(state.get("mix", "coarse"))
        strength, smoothing = float(state["strength"]), float(state.get("smoothing_s", 0.25))
        phase, seed, text = float(state.get("walk_phase", 0.0)), int(state["seed"]), state.get("text")
    except (KeyError, TypeError, ValueError) as e:
        raise LivePresetError(f"{where}: not a live state ({type(e).__name__}: {e})") from None
    if ws.shape != st.ws_src.shape:
        raise LivePresetError(f"{where}: source latent of shape {list(ws.shape[1:])}, the generator takes "
                              f"{list(st.ws_src.shape[1:])}")
    if not all(map(math.isfinite, (strength, smoothing, phase))) or not torch.isfinite(ws).all():
        raise LivePresetError(f"{where}: non-finite values")
    if text is not None and not isinstance(text, str):
        raise LivePresetError(f"{where}: text must be a string or null")
    st.set_text(text)  # first: it raises without CLIP weights, before anything changed
    target.text = text
    st.set_source(ws, seed)
    if hasattr(target, "drop_pending_seed"):
        target.drop_pending_seed()  # a seed queued before the recall must not overwrite the recalled latent
    target.strength = strength
    st.set_text_groups(mix)
    st.set_smoothing(smoothing)
    st.reactivity.gains, st.reactivity.phase = gains, phase


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
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise LivePresetError(f"{self.path}: cannot read the live presets ({e})") from None
        if not isinstance(data, dict) or data.get(FORMAT_KEY) != 1:
            raise LivePresetError(f"{self.path}: not a livesound live preset file (no \"{FORMAT_KEY}\": 1)")
        slots, midi = data.get("slots", {}), data.get("midi", [])
        if not isinstance(slots, dict) or not isinstance(midi, list):
            raise LivePresetError(f"{self.path}: \"slots\" must be an object and \"midi\" a list")
        bad = [k for k in slots if not (k.isdigit() and int(k) in SLOTS) or not isinstance(slots[k], dict)]
        if bad:
            raise LivePresetError(f"{self.path}: slots must be \"1\"..\"9\" holding objects, got {bad}")
        self.slots = {int(k): v for k, v in slots.items()}
        self.midi = midi

    def save(self) -> None:
        if self.path is None:
            return
        data = {FORMAT_KEY: 1, "slots": {str(k): v for k, v in sorted(self.slots.items())}, "midi": self.midi}
        text = json.dumps(data, indent=1) + "\n"
        atomic_write(self.path, lambda tmp: tmp.write_text(text))

    def store(self, slot: int, target) -> None:
        self._check(slot)
        self.slots[slot] = capture(target)
        self.save()

    def recall(self, slot: int, target) -> None:
        self._check(slot)
        if slot not in self.slots:
            raise LivePresetError(f"live preset {slot} is empty (store it first)")
        apply(target, self.slots[slot], where=f"live preset {slot}")

    @staticmethod
    def _check(slot: int) -> None:
        if slot not in SLOTS:
            raise LivePresetError(f"live preset slots are 1-9, got {slot}")
