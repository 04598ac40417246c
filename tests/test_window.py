"""The live window against a fake engine with the real engine's interface: painting, keys, text, errors."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PyQt6.QtCore import Qt, QTimer  # noqa: E402
from PyQt6.QtGui import QImage  # noqa: E402
from PyQt6.QtTest import QTest  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from livesound.app import LiveWindow, run_window  # noqa: E402


@dataclass
class Frame:
    index: int
    rgb: np.ndarray
    audio_sample: int
    t_done: float
    stage_ms: dict
    level: float
    onset: float
    strength: float
    seed: int
    fps: float
    labels: list = field(default_factory=list)


def gradient(index: int, h: int = 60, w: int = 80) -> np.ndarray:
    """Red rises left to right, green top to bottom, blue encodes the frame index."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = (40 + x * 180 // (w - 1)).astype(np.uint8)
    rgb[..., 1] = (40 + y * 180 // (h - 1)).astype(np.uint8)
    rgb[..., 2] = (index * 29) % 200 + 40
    return rgb


class FakeEngine:
    """The LiveEngine interface; frames come from ``produce()`` or, once started with ``threaded``, a thread."""

    def __init__(self, threaded: bool = False, fail_after: int | None = None):
        self.threaded, self.fail_after = threaded, fail_after
        self._frame: Frame | None = None
        self._lock = threading.Lock()
        self._n = 0
        self._seed = 7
        self.strength = 1.0
        self.paused = False
        self.text: str | None = None
        self.text_calls: list[str | None] = []
        self.error: BaseException | None = None
        self.stop_calls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False

    source_name = "synth:test"

    @property
    def running(self) -> bool:
        return self.started and self.stop_calls == 0 and self.error is None

    @property
    def seed(self) -> int:
        return self._seed

    def next_seed(self) -> None:
        self._seed += 1

    def prev_seed(self) -> None:
        self._seed -= 1

    def set_text(self, text: str | None) -> None:
        self.text_calls.append(text)
        self.text = text or None

    def start(self) -> None:
        self.started = True
        if self.threaded:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self.stop_calls += 1
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.005):
                if not self.paused:
                    self.produce()
        except Exception as e:  # the real engine's thread stores its failure the same way
            self.error = e

    def produce(self) -> Frame:
        if self.fail_after is not None and self._n >= self.fail_after:
            raise RuntimeError("CUDA out of memory (fake)")
        f = Frame(index=self._n, rgb=gradient(self._n), audio_sample=self._n * 512, t_done=time.perf_counter(),
                  stage_ms={"features": 0.5, "encode": 1.5, "smooth": 0.1, "map": 0.7, "synthesize": 9.0,
                            "to_rgb8": 0.3},
                  level=0.6, onset=0.3, strength=self.strength, seed=self._seed, fps=30.0,
                  labels=[("rain", 0.31), ("thunder", 0.12)])
        with self._lock:
            self._frame = f
        self._n += 1
        return f

    def latest_frame(self) -> Frame | None:
        with self._lock:
            return self._frame

    def stats(self) -> dict:
        return {"stages": {k: {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0} for k in ("encode", "synthesize")},
                "fps": 30.0, "frames": self._n, "dropped_samples": 0, "overruns": 2, "input_overflows": 3}


@pytest.fixture(scope="module")
def qapp():
    return QApplication.instance() or QApplication(["test"])


@pytest.fixture
def engine():
    return FakeEngine()


@pytest.fixture
def window(qapp, engine, tmp_path):
    w = LiveWindow(engine, record_path=tmp_path / "rec", record_format="png")
    w.resize(400, 400)
    w.show()
    yield w
    w.close()
    w.deleteLater()
    qapp.processEvents()


def wait_until(cond, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        QTest.qWait(5)


def show(window: LiveWindow, engine: FakeEngine) -> Frame:
    f = engine.produce()
    wait_until(lambda: window.shown_index == f.index)
    return f


def grab(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    rows = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine())
    return rows[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def press(widget, key) -> None:
    QTest.keyClick(widget, key)
    QApplication.processEvents()


# ---------------------------------------------------------------------------------------------- picture

def test_shows_the_latest_frame(window, engine):
    f = show(window, engine)
    QApplication.processEvents()
    px = grab(window.view)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50, "picture is blank or flat"
    h, w = px.shape[:2]
    mid = px[h // 2, w // 2].astype(int)
    np.testing.assert_allclose(mid, f.rgb[30, 40].astype(int), atol=12)
    # a newer frame replaces it (blue carries the index)
    f2 = engine.produce()
    engine.produce()
    f3 = engine.produce()
    wait_until(lambda: window.shown_index == f3.index)
    mid3 = grab(window.view)[h // 2, w // 2].astype(int)
    assert abs(mid3[2] - int(f3.rgb[30, 40, 2])) <= 12 and f2.index < f3.index


def test_skips_repaint_when_no_new_frame(window, engine):
    show(window, engine)
    calls = []
    orig = window.view.set_frame
    window.view.set_frame = lambda rgb: (calls.append(1), orig(rgb))
    QTest.qWait(50)
    assert calls == []


def test_letterbox_keeps_aspect_ratio(window, engine):
    window.resize(900, 300)
    show(window, engine)
    QApplication.processEvents()
    px = grab(window.view)
    h, w = px.shape[:2]
    assert w > h * 4 / 3 + 20
    # 4:3 picture in a wide view: black bars left and right, picture in the middle
    assert px[:, :10].max() == 0 and px[:, -10:].max() == 0
    cols = np.where(px.max(axis=(0, 2)) > 0)[0]
    shown_w = cols[-1] - cols[0] + 1
    assert abs(shown_w / h - 80 / 60) < 0.03
    rows = np.where(px.max(axis=(1, 2)) > 0)[0]
    assert rows[0] == 0 and rows[-1] == h - 1  # full height, no bars top and bottom


# ---------------------------------------------------------------------------------------------- keys

def test_seed_keys(window, engine):
    press(window.view, Qt.Key.Key_N)
    press(window.view, Qt.Key.Key_N)
    assert engine.seed == 9
    press(window.view, Qt.Key.Key_P)
    assert engine.seed == 8


def test_strength_keys_multiplicative_and_clamped(window, engine):
    press(window.view, Qt.Key.Key_Plus)
    s1 = engine.strength
    press(window.view, Qt.Key.Key_Equal)
    assert 1.0 < s1 < engine.strength
    assert engine.strength / s1 == pytest.approx(s1 / 1.0)
    for _ in range(40):
        press(window.view, Qt.Key.Key_Plus)
    assert engine.strength == 5.0
    for _ in range(60):
        press(window.view, Qt.Key.Key_Minus)
    assert engine.strength == 0.0
    press(window.view, Qt.Key.Key_Plus)  # up from 0 must be possible
    assert 0.0 < engine.strength < 0.2


def test_space_toggles_pause(window, engine):
    press(window.view, Qt.Key.Key_Space)
    assert engine.paused
    press(window.view, Qt.Key.Key_Space)
    assert not engine.paused


def test_overlay_toggle_changes_the_picture(window, engine):
    show(window, engine)
    QApplication.processEvents()
    before = grab(window.view)
    press(window.view, Qt.Key.Key_O)
    assert window.overlay_visible
    lines = "\n".join(window.view.overlay.lines)
    for needle in ("synth:test", "seed 7", "strength 1.00", "fps", "synthesize", "rain 0.31", "audio overruns 2",
                   "overflows 3"):
        assert needle in lines
    with_overlay = grab(window.view)
    assert np.abs(with_overlay.astype(int) - before).sum() > 1000
    press(window.view, Qt.Key.Key_N)  # state changes reach the overlay without a new frame
    assert "seed 8" in "\n".join(window.view.overlay.lines)
    press(window.view, Qt.Key.Key_O)
    assert not window.overlay_visible
    np.testing.assert_array_equal(grab(window.view), before)


def test_overlay_names_each_kind_of_lost_audio_only_when_some_was_lost(engine):
    from livesound.app.window import overlay_info

    frame = engine.produce()
    calm = {"dropped_samples": 0, "overruns": 0, "input_overflows": 0}
    line = next(x for x in overlay_info(engine, frame, calm, None).lines if x.startswith("fps"))
    assert "overflows" not in line and "overruns" not in line and "dropped" not in line
    lossy = {"dropped_samples": 512, "overruns": 1, "input_overflows": 4}
    line = next(x for x in overlay_info(engine, frame, lossy, None).lines if x.startswith("fps"))
    assert line.endswith("dropped samples 512   audio overruns 1   overflows 4")


def test_f_toggles_fullscreen(window):
    press(window.view, Qt.Key.Key_F)
    wait_until(window.isFullScreen)
    press(window.view, Qt.Key.Key_F)
    wait_until(lambda: not window.isFullScreen())


def test_r_records_png_frames(window, engine, tmp_path):
    show(window, engine)
    press(window.view, Qt.Key.Key_R)
    assert window.recorder is not None
    for _ in range(4):
        show(window, engine)
    rec = window.recorder
    press(window.view, Qt.Key.Key_R)
    assert window.recorder is None and rec.closed
    dirs = list((tmp_path / "rec").iterdir())
    assert len(dirs) == 1
    files = sorted(dirs[0].glob("frame_*.png"))
    assert len(files) == rec.frames_written == 4


def test_r_records_video(qapp, engine, tmp_path):
    av = pytest.importorskip("av", reason="PyAV is not installed: video recording untested")
    w = LiveWindow(engine, record_path=tmp_path, record_format="mp4")
    w.show()
    try:
        show(w, engine)
        press(w.view, Qt.Key.Key_R)
        for _ in range(5):
            show(w, engine)
        press(w.view, Qt.Key.Key_R)
    finally:
        w.close()
    (video,) = tmp_path.glob("*.mp4")
    with av.open(str(video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_q_closes_and_stops_the_engine(window, engine):
    press(window.view, Qt.Key.Key_Q)
    assert not window.isVisible()
    assert engine.stop_calls == 1


def test_escape_closes_from_the_picture(window, engine):
    press(window.view, Qt.Key.Key_Escape)
    assert not window.isVisible() and engine.stop_calls == 1


def test_closing_finishes_a_recording(window, engine, tmp_path):
    show(window, engine)
    press(window.view, Qt.Key.Key_R)
    show(window, engine)
    rec = window.recorder
    window.close()
    assert rec.closed and rec.frames_written == 1 and engine.stop_calls == 1


# ---------------------------------------------------------------------------------------------- text

def test_text_box_enter_applies_and_empty_clears(window, engine):
    box = window.text_box
    box.setFocus()
    QTest.keyClicks(box, "a stormy sea")
    assert engine.seed == 7 and engine.text_calls == []  # letters typed, not taken as keys
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert engine.text_calls == ["a stormy sea"] and engine.text == "a stormy sea"
    box.clear()
    QTest.keyClick(box, Qt.Key.Key_Return)
    assert engine.text_calls[-1] is None and engine.text is None


def test_text_box_escape_returns_focus_without_quitting(window, engine):
    window.text_box.setFocus()
    QTest.keyClick(window.text_box, Qt.Key.Key_Escape)
    QApplication.processEvents()
    assert window.isVisible() and engine.stop_calls == 0
    assert window.focusWidget() is window.view


def test_text_label_explains_the_split(window):
    from PyQt6.QtWidgets import QLabel

    texts = " ".join(lbl.text() for lbl in window.findChildren(QLabel))
    assert "coarse" in texts and "fine" in texts


# ---------------------------------------------------------------------------------------------- errors

def test_engine_error_shown_and_logged_once(window, engine, caplog):
    show(window, engine)
    QApplication.processEvents()
    before = grab(window.view)
    caplog.set_level(logging.ERROR, logger="livesound")
    engine.error = RuntimeError("CUDA out of memory (fake)")
    wait_until(lambda: window.view.error_label.isVisible())
    QTest.qWait(30)
    assert "CUDA out of memory (fake)" in window.view.error_label.text()
    assert np.abs(grab(window.view).astype(int) - before).sum() > 1000
    logged = [r for r in caplog.records if "CUDA out of memory (fake)" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None


# ---------------------------------------------------------------------------------------------- run_window

def test_run_window_closes_on_sigint(qapp):
    eng = FakeEngine(threaded=True)
    killer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    killer.start()
    t0 = time.monotonic()
    code = run_window(eng, title="test")
    assert time.monotonic() - t0 < 1.5
    assert code == 0 and eng.started and eng.stop_calls >= 1
    assert eng._n > 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_run_window_exit_code_on_engine_failure(qapp, caplog):
    eng = FakeEngine(threaded=True, fail_after=3)
    QTimer.singleShot(300, lambda: [w.close() for w in QApplication.topLevelWidgets()
                                    if isinstance(w, LiveWindow) and w.isVisible()])
    with caplog.at_level(logging.ERROR, logger="livesound"):
        code = run_window(eng)
    assert code == 1
    assert any("CUDA out of memory" in r.getMessage() for r in caplog.records)
