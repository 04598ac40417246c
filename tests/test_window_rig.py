"""The window's rig keys: 1-9 recall a live preset, Ctrl+1-9 store one, L then a control key then a knob learns."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import mido  # noqa: E402
import pytest  # noqa: E402
from PyQt6.QtCore import Qt  # noqa: E402
from PyQt6.QtTest import QTest  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402
from rig_helpers import fresh, shared_stages  # noqa: E402

from livesound.app import LiveWindow  # noqa: E402
from livesound.audio.sources import SynthSource  # noqa: E402
from livesound.live.engine import LiveEngine  # noqa: E402
from livesound.rig.control import PARAMS  # noqa: E402
from livesound.rig.rig import Rig, RigOptions  # noqa: E402


@pytest.fixture
def setup(tmp_path):
    app = QApplication.instance() or QApplication([])
    stages = fresh(shared_stages())
    engine = LiveEngine(stages, SynthSource("chirp"))  # never started: the keys only queue changes
    rig = Rig(engine, RigOptions(preset_file=str(tmp_path / "set.json"))).attach(engine)
    window = LiveWindow(engine, rig=rig)
    window.show()
    yield window, engine, rig, stages
    window.close()
    rig.close()
    fresh(stages)
    app.processEvents()


def test_preset_keys_store_and_recall(setup, tmp_path):
    window, engine, rig, stages = setup
    stages.set_seed(21)
    engine.strength = 1.3
    QTest.keyClick(window.view, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    rig.before_frame()
    rig.settle()                             # the file is written by the rig's worker, off the renderer
    assert (tmp_path / "set.json").exists() and rig.bank.slots[4]["seed"] == 21
    stages.set_seed(0)
    engine.strength = 0.2
    QTest.keyClick(window.view, Qt.Key.Key_4)
    assert stages.seed == 0                  # queued, not yet applied
    rig.before_frame()
    assert stages.seed == 21 and engine.strength == pytest.approx(1.3)


def test_midi_learn_from_the_window(setup, tmp_path):
    window, engine, rig, stages = setup
    QTest.keyClick(window.view, Qt.Key.Key_L)
    assert window.learning
    QTest.keyClick(window.view, Qt.Key.Key_Plus)            # touch the strength control
    assert not window.learning and engine.strength == stages.s.strength  # learning, not stepping
    changes = rig.midi_map.handle(mido.Message("control_change", channel=0, control=16, value=127))
    assert changes == [("strength", (PARAMS["strength"].hi,))]
    QTest.keyClick(window.view, Qt.Key.Key_L)
    QTest.keyClick(window.view, Qt.Key.Key_7)               # a pad for preset 7
    assert rig.midi_map.handle(mido.Message("note_on", note=36, velocity=100)) == [("preset", (7,))]
    rig.close()
    assert len(Rig(engine, RigOptions(preset_file=str(tmp_path / "set.json"))).midi_map.bindings) == 2
