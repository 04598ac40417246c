"""MIDI in (mido, python-rtmidi backend): CC and notes mapped to the rig's parameters, with a learn mode.

A binding is (kind "cc" or "note", channel, number) -> parameter. A CC on a continuous parameter spans its range
(0..127 -> lo..hi, `livesound.rig.control.PARAMS`); on an integer parameter it sets the value itself (a seed
knob), clamped to the range; on a trigger (next, prev) it fires when the controller crosses 64 upwards. A note-on
fires triggers, toggles pause and record, and recalls or stores the binding's preset slot (``value``).

Learn mode: ``arm(param)`` (the window does it when a control is touched in learn mode), then the next CC or
note-on binds to it, replacing any binding of that control. The map is saved in the live preset file.

Threading: mido calls ``MidiIn``'s callback on the backend's thread; it only looks up the map and queues a change
in the Controls (applied by the next frame). ``arm`` may be called from the GUI thread: the armed name is one
attribute, replaced whole.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from livesound.rig.control import PARAMS, ControlError, Controls
from livesound.weights import fields

log = logging.getLogger("livesound")
TOGGLES = ("pause", "record")


@dataclass
class MidiBinding:
    kind: str          # "cc" or "note"
    channel: int       # 0-15
    number: int        # controller or note number
    param: str
    value: int | None = None  # the slot for preset/preset_save

    @property
    def key(self) -> tuple[str, int, int]:
        return self.kind, self.channel, self.number

    @classmethod
    def from_dict(cls, d: dict, where: str = "MIDI binding") -> "MidiBinding":
        """From a preset file's JSON; ``fields.FieldError`` (a ValueError) names the field (``midi[2].channel``)."""
        d = fields.obj(d, where)
        for key in ("kind", "channel", "number", "param"):
            if key not in d:
                raise fields.FieldError(f"{where}.{key}", "missing")
        value = d.get("value")
        return cls(fields.text(d["kind"], f"{where}.kind", fields.Bounds(choices=("cc", "note"))),
                   fields.integer(d["channel"], f"{where}.channel", fields.Bounds(0, 15)),
                   fields.integer(d["number"], f"{where}.number", fields.Bounds(0, 127)),
                   fields.text(d["param"], f"{where}.param", fields.Bounds(choices=tuple(PARAMS))),
                   None if value is None else fields.integer(value, f"{where}.value", fields.Bounds(0, 2**31 - 1)))


class MidiMap:
    def __init__(self, bindings: list[MidiBinding] | None = None):
        self.bindings: dict[tuple[str, int, int], MidiBinding] = {b.key: b for b in bindings or []}
        self.armed: tuple[str, int | None] | None = None
        self._cc_last: dict[tuple[str, int, int], int] = {}
        self.toggled: dict[str, bool] = {}

    def to_json(self) -> list[dict]:
        return [asdict(b) for b in self.bindings.values()]

    @classmethod
    def from_json(cls, items: list[dict]) -> "MidiMap":
        return cls([MidiBinding.from_dict(d) for d in items])

    def arm(self, param: str, value: int | None = None) -> None:
        """Learn: the next CC or note-on binds to ``param`` (with ``value`` for preset slots)."""
        if param not in PARAMS:
            raise ValueError(f"cannot learn unknown parameter {param!r}")
        self.armed = (param, value)

    def handle(self, msg) -> list[tuple[str, tuple]]:
        """A mido message -> the parameter changes it makes (learning it first when armed)."""
        if msg.type == "control_change":
            key, v = ("cc", msg.channel, msg.control), msg.value
        elif msg.type == "note_on" and msg.velocity > 0:
            key, v = ("note", msg.channel, msg.note), msg.velocity
        else:
            return []
        if self.armed is not None:
            (param, value), self.armed = self.armed, None
            self.bindings[key] = MidiBinding(*key, param, value)
            log.info("livesound MIDI: %s %d on channel %d now drives %s", key[0], key[2], key[1] + 1, param)
        b = self.bindings.get(key)
        if b is None:
            return []
        return self._changes(b, v)

    def _changes(self, b: MidiBinding, v: int) -> list[tuple[str, tuple]]:
        p = PARAMS[b.param]
        if b.kind == "cc":
            rising = self._cc_last.get(b.key, 0) < 64 <= v
            self._cc_last[b.key] = v
            if p.continuous:
                return [(b.param, (p.lo + (p.hi - p.lo) * v / 127.0,))]
            if b.param in ("seed",):
                return [(b.param, (v,))]
            if not rising:
                return []
        return self._fire(b)

    def _fire(self, b: MidiBinding) -> list[tuple[str, tuple]]:
        p = PARAMS[b.param]
        if b.param in TOGGLES:
            on = not self.toggled.get(b.param, False)
            self.toggled[b.param] = on
            return [(b.param, (int(on),))]
        if p.types == "":
            return [(b.param, ())]
        if p.types == "i" and b.value is not None:
            return [(b.param, (b.value,))]
        return []  # a note cannot carry a string or a continuous value


class MidiIn:
    """An open MIDI input port feeding Controls through a MidiMap (mido's callback thread)."""

    def __init__(self, port, midi_map: MidiMap, controls: Controls):
        self.port, self.map, self.controls = port, midi_map, controls
        self.received = 0
        self.refused = 0
        port.callback = self.on_message

    def on_message(self, msg) -> None:
        """NB: called on the MIDI backend's thread; only queues."""
        self.received += 1
        for name, args in self.map.handle(msg):
            try:
                self.controls.submit(name, *args)
            except ControlError as e:
                self.refused += 1
                log.warning("livesound MIDI: %s", e)

    def close(self) -> None:
        self.port.close()


def open_midi(port_name: str | None, midi_map: MidiMap, controls: Controls) -> MidiIn | None:
    """Open ``port_name`` (None or "": the first input port). Without a backend or a port: one line, None."""
    try:
        import mido

        if sys.platform.startswith("linux") and not Path("/dev/snd/seq").exists():
            # Asked anyway, ALSA prints its own error lines before rtmidi raises: say it once, plainly.
            raise OSError("no ALSA sequencer (/dev/snd/seq; load the snd-seq module)")
        names = mido.get_input_names()
        if port_name:
            match = [n for n in names if port_name.lower() in n.lower()]
            if not match:
                raise OSError(f"no MIDI input port matching {port_name!r} (ports: {', '.join(names) or 'none'})")
            name = match[0]
        elif names:
            name = names[0]
        else:
            raise OSError("no MIDI input ports")
        port = mido.open_input(name)
    except Exception as e:  # noqa: BLE001 - ImportError, rtmidi's SystemError (no ALSA sequencer), OSError
        print(f"livesound live: MIDI unavailable ({type(e).__name__}: {str(e).strip() or 'no backend'}); "
              "running without it", file=sys.stderr, flush=True)
        return None
    log.info("livesound MIDI: listening on %s", name)
    return MidiIn(port, midi_map, controls)
