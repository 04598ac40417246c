"""MIDI in: mapping and learn mode with real mido messages, a virtual port where the platform has one."""

import time

import mido
import pytest
from rig_helpers import fresh, shared_stages

from livesound.rig.control import PARAMS, Controls, StepTarget
from livesound.rig.midi import MidiBinding, MidiIn, MidiMap, open_midi
from livesound.rig.presets import PresetBank


@pytest.fixture
def stages():
    st = fresh(shared_stages())
    yield st
    fresh(st)


def test_cc_spans_a_continuous_range_and_triggers_fire_on_rising_edges():
    m = MidiMap([MidiBinding("cc", 0, 21, "strength"), MidiBinding("cc", 0, 22, "next"),
                 MidiBinding("note", 9, 36, "preset", 3), MidiBinding("note", 9, 38, "pause"),
                 MidiBinding("cc", 1, 7, "seed")])
    cc = lambda n, v, ch=0: mido.Message("control_change", channel=ch, control=n, value=v)  # noqa: E731
    assert m.handle(cc(21, 127)) == [("strength", (PARAMS["strength"].hi,))]
    assert m.handle(cc(21, 0)) == [("strength", (0.0,))]
    assert m.handle(cc(21, 64))[0][1][0] == pytest.approx(PARAMS["strength"].hi * 64 / 127)
    assert m.handle(cc(22, 100)) == [("next", ())] and m.handle(cc(22, 120)) == []   # held: no repeat
    assert m.handle(cc(22, 10)) == [] and m.handle(cc(22, 90)) == [("next", ())]
    assert m.handle(cc(7, 42, ch=1)) == [("seed", (42,))]
    assert m.handle(mido.Message("note_on", channel=9, note=36, velocity=90)) == [("preset", (3,))]
    assert m.handle(mido.Message("note_on", channel=9, note=38, velocity=90)) == [("pause", (1,))]
    assert m.handle(mido.Message("note_on", channel=9, note=38, velocity=90)) == [("pause", (0,))]
    assert m.handle(mido.Message("note_on", channel=9, note=38, velocity=0)) == []     # a note-off by velocity
    assert m.handle(cc(21, 5, ch=2)) == [] and m.handle(mido.Message("pitchwheel", pitch=100)) == []


def test_learn_binds_the_next_control_and_the_map_survives_the_preset_file(tmp_path):
    m = MidiMap()
    m.arm("smoothing")
    knob = mido.Message("control_change", channel=3, control=74, value=127)
    assert m.handle(knob) == [("smoothing", (PARAMS["smoothing"].hi,))]              # learnt and applied
    m.arm("preset", 2)
    assert m.handle(mido.Message("note_on", channel=0, note=60, velocity=1)) == [("preset", (2,))]
    m.arm("strength")                                                               # relearn the same knob
    assert m.handle(knob.copy(value=0)) == [("strength", (0.0,))]
    bank = PresetBank(tmp_path / "set.json")
    bank.midi = m.to_json()
    bank.save()
    again = MidiMap.from_json(PresetBank(tmp_path / "set.json").midi)
    assert again.to_json() == m.to_json() and len(again.bindings) == 2
    with pytest.raises(ValueError, match="param: must be one of"):
        MidiMap.from_json([{"kind": "cc", "channel": 0, "number": 1, "param": "volume"}])


def test_messages_reach_the_next_frame_through_controls(stages):
    st = fresh(stages)
    target = StepTarget(st)
    controls = Controls(target)
    m = MidiMap([MidiBinding("cc", 0, 1, "strength"), MidiBinding("note", 0, 40, "next")])
    midi = MidiIn(mido.ports.BaseInput("injected"), m, controls)  # messages injected as the backend would
    midi.on_message(mido.Message("control_change", channel=0, control=1, value=127))
    midi.on_message(mido.Message("note_on", channel=0, note=40, velocity=64))
    assert target.strength == st.s.strength and st.seed == 0        # nothing before the frame boundary
    controls.apply_pending()
    assert target.strength == PARAMS["strength"].hi and st.seed == 1
    fresh(stages)


def virtual_ports_available() -> str | None:
    try:
        port = mido.open_input("livesound-probe", virtual=True)
    except Exception as e:  # noqa: BLE001 - the reason goes into the skip message
        return f"{type(e).__name__}: {str(e).strip()}"
    port.close()
    return None


def test_virtual_port_end_to_end(stages):
    reason = virtual_ports_available()
    if reason is not None:
        pytest.skip(f"no virtual MIDI ports here (rtmidi: {reason}; the ALSA sequencer /dev/snd/seq is absent)")
    st = fresh(stages)
    controls = Controls(StepTarget(st))
    out = mido.open_output("livesound-test-out", virtual=True)
    try:
        midi = open_midi("livesound-test-out", MidiMap([MidiBinding("cc", 0, 1, "strength")]), controls)
        assert midi is not None
        out.send(mido.Message("control_change", channel=0, control=1, value=127))
        deadline = time.monotonic() + 5
        while midi.received == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        controls.apply_pending()
        assert controls.target.strength == PARAMS["strength"].hi
        midi.close()
    finally:
        out.close()
        fresh(stages)


def test_no_port_or_backend_is_one_line_and_none(stages, capsys):
    controls = Controls(StepTarget(stages))
    assert open_midi("no-such-controller-xyz", MidiMap(), controls) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("livesound live: MIDI unavailable") and "running without it" in err[0]
