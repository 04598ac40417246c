"""The live window: shows the engine's latest frame, takes the performer's keys and text, records on demand.

Threading contract:
- Everything in this module runs in the GUI thread, widgets included. The engine's inference thread never
  calls in here; the window *polls* the engine's latest-wins frame slot from a QTimer (every ``poll_ms``),
  so a slow paint can only skip frames, never queue them behind each other or slow the engine.
- The engine calls made from here (``latest_frame``, the ``strength``/``paused`` setters, ``next_seed``,
  ``set_text``, ``stats``, ``stop``) are the engine's any-thread API. ``stop`` may block for its timeout.
- A recording's encoder runs in the recorder's own writer thread (``livesound.recording``); ``write`` here
  only queues (or drops) a copy of the frame.
- A dropped image or Shift+Enter in the text box projects on a worker thread (``livesound.app.background``),
  which reports by signals; when it is done the engine glides its source latent there (``glide_to``), so the
  picture keeps playing throughout.

Errors are never swallowed: an engine failure is logged once on the ``livesound`` logger and shown as a red
line on the picture; a recording failure is logged and shown in the status bar. (PyQt aborts the process on
an exception escaping a Qt callback, so the callbacks catch, report and carry on instead.)
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QDragEnterEvent, QDropEvent, QKeyEvent
from PyQt6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QVBoxLayout,
    QWidget,
)

from livesound.app.background import BackgroundProjection
from livesound.app.view import FrameView, OverlayInfo
from livesound.live.engine import LiveEngine
from livesound.live.glide import GLIDE_S
from livesound.recording import VIDEO_SUFFIXES, Recorder, new_recording_path

log = logging.getLogger("livesound")

STRENGTH_MAX = 5.0
STRENGTH_STEP = 1.2    # multiplicative, so each press is the same *relative* change at any strength
STRENGTH_FLOOR = 0.05  # below this a step down reaches 0 and a step up from 0 lands here (0 * k stays 0)
STATS_EVERY_S = 0.5    # engine.stats() sorts its timing history: refresh the overlay's percentiles this often

KEYS_HELP = ("F fullscreen · O overlay · N/P seed · +/- strength · Space pause · R record · T text · "
             "1-9 preset (Ctrl stores) · L MIDI learn · drop an image: start from it · Q quit")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class _TextBox(QLineEdit):
    """The steering text; Esc hands focus back to the picture instead of reaching the window (quit)."""

    escaped = pyqtSignal()
    start_from = pyqtSignal()   # Shift+Enter: start the picture from this phrase

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802  (Qt's name)
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            event.accept()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.start_from.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class LiveWindow(QMainWindow):
    """A window on a live engine (``livesound.live.engine.LiveEngine``'s interface; tests pass stand-ins).

    ``record_path`` is the directory recordings go to (default ``./recordings``, created on the first
    recording); each press of R starts a new timestamped recording there. ``record_format`` is "mp4", "mkv",
    "mov" or "png" (a directory of PNGs); by default mp4 when PyAV is installed, else png.
    ``record_fps`` is the rate a video plays at; by default the engine's fps when the recording starts.
    ``rig`` (`livesound.rig.rig.Rig`) takes the preset keys 1-9 (Ctrl+1-9 stores) and MIDI learn (L, then a
    control key, then a knob); its changes are queued for the engine's next frame.
    Dropping an image file projects it (``project_steps`` steps) and glides there; Shift+Enter in the text box
    does the same from the phrase (the paper's free generation, from the mean latent).
    """

    closed = pyqtSignal()

    def __init__(self, engine: LiveEngine, *, title: str = "livesound", record_path: str | Path | None = None,
                 record_format: str | None = None, record_fps: float | None = None, poll_ms: int = 4,
                 rig=None, project_steps: int = 100, parent: QWidget | None = None):
        super().__init__(parent)
        self.engine = engine
        self.rig = rig
        self.learning = False  # L pressed: the next control key picks what a MIDI knob will drive
        self.record_dir = Path(record_path) if record_path is not None else Path("recordings")
        if record_format is None:
            record_format = "mp4" if importlib.util.find_spec("av") is not None else "png"
        record_format = record_format.lower().lstrip(".")
        if f".{record_format}" not in VIDEO_SUFFIXES and record_format != "png":
            raise ValueError(f"record_format must be one of mp4, mkv, mov, png; got {record_format!r}")
        self.record_format = record_format
        self.record_fps = record_fps
        self.recorder: Recorder | None = None
        self._last_frame = None
        self._shown_index: int | None = None
        self._overlay_on = False
        self._stats: dict = {}
        self._stats_t = float("-inf")
        self._reported_error: BaseException | None = None
        self._poll_failure: str | None = None
        self._shut = False

        self.setWindowTitle(title)
        self.resize(960, 800)
        self.view = FrameView()
        self.text_box = _TextBox()
        self.text_box.setPlaceholderText("a phrase: Enter steers, Shift+Enter starts the picture from it, empty "
                                         "Enter clears, Esc back to the picture")
        self.text_box.returnPressed.connect(self._apply_text)
        self.text_box.start_from.connect(self.start_from_phrase)
        self.projection = BackgroundProjection(engine, project_steps, self)
        self.projection.progress.connect(self._projection_progress)
        self.projection.done.connect(self._projection_done)
        self.projection.failed.connect(self._projection_failed)
        self.setAcceptDrops(True)
        self.text_box.escaped.connect(self.view.setFocus)
        text_label = QLabel("Text steers the coarse layers, sound the fine ones:")
        text_label.setToolTip("The text's CLIP embedding drives the coarse generator layers (pose, layout); the "
                              "sound keeps driving the fine layers (colour, texture).")
        text_label.setBuddy(self.text_box)
        self.text_box.setToolTip(text_label.toolTip())
        row = QHBoxLayout()
        row.setContentsMargins(6, 2, 6, 4)
        row.addWidget(text_label)
        row.addWidget(self.text_box, 1)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.view, 1)
        column.addLayout(row)
        self.setCentralWidget(central)
        self.statusBar().showMessage(KEYS_HELP)
        self.view.setFocus()

        self._timer = QTimer(self)
        # Precise: Qt may shift a coarse timer by 5% of its interval to batch wake-ups; here that is latency.
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._poll)
        self._timer.start(poll_ms)

    # ------------------------------------------------------------------------------------------ frames

    @property
    def shown_index(self) -> int | None:
        """Index of the frame on screen (None before the first)."""
        return self._shown_index

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_on

    def _poll(self) -> None:
        try:
            self._check_engine_error()
            self._report_source_state()
            frame = self.engine.latest_frame()
            if frame is None or frame.index == self._shown_index:
                return
            self._shown_index, self._last_frame = frame.index, frame
            self.view.set_frame(frame.rgb)
            if self.recorder is not None:
                self.recorder.write(frame.rgb)
            if self._overlay_on:
                self._refresh_overlay()
            self._poll_failure = None
        except Exception as e:  # noqa: BLE001  (see the module docstring)
            message = f"{type(e).__name__}: {e}"
            if message != self._poll_failure:  # once per distinct failure, not 250 times a second
                self._poll_failure = message
                log.error("live window: showing a frame failed: %s", message, exc_info=e)
                self.view.show_error(f"Window error: {message}")

    def _report_source_state(self) -> None:
        """One status-bar line when the audio device is lost and one when it is back (not every poll)."""
        state = getattr(getattr(self.engine, "source", None), "state", "ok")
        if state == getattr(self, "_source_state", "ok") or state == "reconnecting":
            return
        self._source_state = state
        if state == "lost":
            self.statusBar().showMessage("audio input lost: the picture plays on silence while livesound "
                                         "reconnects")
        elif state == "ok":
            self.statusBar().showMessage("audio input is back", 8000)

    def _check_engine_error(self) -> None:
        err = getattr(self.engine, "error", None)
        if err is None or err is self._reported_error:
            return
        self._reported_error = err
        log.error("live engine failed: %s: %s", type(err).__name__, err, exc_info=err)
        self.view.show_error(f"Engine stopped: {type(err).__name__}: {err}")
        self.view.update()

    # ------------------------------------------------------------------------------------------ overlay

    def toggle_overlay(self) -> None:
        self._overlay_on = not self._overlay_on
        if self._overlay_on:
            self._refresh_overlay()
        else:
            self.view.overlay = None
            self.view.update()

    def _refresh_overlay(self) -> None:
        now = time.perf_counter()
        if now - self._stats_t > STATS_EVERY_S:
            self._stats, self._stats_t = self.engine.stats(), now
        self.view.overlay = overlay_info(self.engine, self._last_frame, self._stats, self.recorder)
        self.view.update()

    def _changed(self) -> None:
        """After a key changed engine state: show it now, even while paused (no new frame will)."""
        if self._overlay_on:
            self._refresh_overlay()

    # ------------------------------------------------------------------------------------------ controls

    def step_strength(self, up: bool) -> float:
        s = float(self.engine.strength)
        if up:
            s = max(s * STRENGTH_STEP, STRENGTH_FLOOR)
        else:
            s = s / STRENGTH_STEP
            if s < STRENGTH_FLOOR:
                s = 0.0
        s = min(max(s, 0.0), STRENGTH_MAX)
        self.engine.strength = s
        self.statusBar().showMessage(f"strength {s:.2f}", 2000)
        return s

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def toggle_pause(self) -> None:
        self.engine.paused = not self.engine.paused
        self.statusBar().showMessage("paused" if self.engine.paused else "running", 2000)

    def _apply_text(self) -> None:
        text = self.text_box.text().strip()
        try:
            self.engine.set_text(text or None)
        except Exception as e:  # noqa: BLE001  (e.g. no CLIP text model loaded)
            log.error("setting the steering text failed: %s", e, exc_info=e)
            self.statusBar().showMessage(f"text not applied: {e}", 8000)
            return
        self.statusBar().showMessage(f"text: {text}" if text else "text cleared", 3000)
        self.view.setFocus()
        self._changed()

    # ------------------------------------------------------------------------------- starting from a picture

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        path = dropped_image(event.mimeData())
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        self.start_from_image(path)

    def start_from_image(self, path: str | Path) -> None:
        """Project the image in the background, then glide to it."""
        self._run_action(lambda: self.statusBar().showMessage(
            f"projecting {self.projection.start_image(path)}: the picture glides there when done"))

    def start_from_phrase(self) -> None:
        """Free-generate toward the text box's phrase in the background, then glide to it."""
        text = self.text_box.text().strip()
        self._run_action(lambda: self.statusBar().showMessage(
            f"starting from {self.projection.start_text(text)}: the picture glides there when done"))
        self.view.setFocus()

    def _projection_progress(self, what: str, step: int, steps: int) -> None:
        self.statusBar().showMessage(f"projecting {what}: step {step}/{steps}")

    def _projection_done(self, what: str, ws, psnr) -> None:
        self._run_action(lambda: self.engine.glide_to(ws, GLIDE_S))
        fit = f" ({psnr:.1f} dB)" if psnr is not None else ""
        self.statusBar().showMessage(f"projected {what}{fit}: gliding there", 8000)

    def _projection_failed(self, what: str, message: str) -> None:
        log.error("live window: projecting %s failed: %s", what, message)
        self.statusBar().showMessage(f"projecting {what} failed: {message}", 8000)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key, repeat = event.key(), event.isAutoRepeat()
        K = Qt.Key
        if self.rig is not None and self._rig_key(event):
            event.accept()
            return
        # Toggles ignore auto-repeat: holding F must not flicker between fullscreen and windowed.
        toggles = {K.Key_F: self.toggle_fullscreen, K.Key_O: self.toggle_overlay, K.Key_Space: self.toggle_pause,
                   K.Key_R: self.toggle_recording}
        steps = {K.Key_N: self.engine.next_seed, K.Key_P: self.engine.prev_seed,
                 K.Key_Plus: lambda: self.step_strength(True), K.Key_Equal: lambda: self.step_strength(True),
                 K.Key_Minus: lambda: self.step_strength(False)}
        if key in (K.Key_Q, K.Key_Escape):
            self.close()
        elif key == K.Key_T:
            self.text_box.setFocus()
            self.text_box.selectAll()
        elif key in toggles:
            if not repeat:
                self._run_action(toggles[key])
        elif key in steps:
            self._run_action(steps[key])
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def _rig_key(self, event: QKeyEvent) -> bool:
        """Preset keys and MIDI learn; True if the key was the rig's."""
        key, K = event.key(), Qt.Key
        slot = key - K.Key_0 if K.Key_1 <= key <= K.Key_9 else None
        if key == K.Key_L and not event.isAutoRepeat():
            self.learning = not self.learning
            self.statusBar().showMessage("MIDI learn: press the control to map (+/-, N, P, Space, R, 1-9)"
                                         if self.learning else KEYS_HELP)
            return True
        if self.learning:
            learnable = {K.Key_Plus: "strength", K.Key_Equal: "strength", K.Key_Minus: "strength",
                         K.Key_N: "next", K.Key_P: "prev", K.Key_Space: "pause", K.Key_R: "record"}
            param = "preset" if slot is not None else learnable.get(key)
            if param is None:
                return False
            self.learning = False
            self.rig.midi_map.arm(param, slot)
            self.statusBar().showMessage(f"MIDI learn: move a knob or press a pad for {param}"
                                         + (f" {slot}" if slot else ""), 8000)
            return True
        if slot is None:
            return False
        store = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        self._run_action(lambda: self.rig.controls.submit("preset_save" if store else "preset", slot))
        self.statusBar().showMessage(f"{'stored' if store else 'recalled'} live preset {slot}", 3000)
        return True

    def _run_action(self, action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001  (see the module docstring)
            log.error("live window: %s", e, exc_info=e)
            self.statusBar().showMessage(f"failed: {e}", 8000)
        self._changed()

    # ------------------------------------------------------------------------------------------ recording

    def toggle_recording(self) -> None:
        if self.recorder is None:
            self.start_recording()
        else:
            self.stop_recording()

    def start_recording(self) -> Path:
        fps = self.record_fps
        if fps is None:
            fps = self._last_frame.fps if self._last_frame is not None and self._last_frame.fps > 0 else 30.0
        path = self._next_record_path()
        self.recorder = Recorder(path, fps=fps)
        self.view.recording = True
        self.view.update()
        log.info("recording to %s at %.1f fps", path, fps)
        self.statusBar().showMessage(f"recording to {path}")
        return path

    def stop_recording(self) -> Path | None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            return None
        self.view.recording = False
        self.view.update()
        rec.close()  # raises the writer's error, if any: _run_action or shutdown reports it
        message = f"saved {rec.path} ({rec.frames_written} frames, {rec.frames_dropped} dropped)"
        log.info("recording %s", message)
        self.statusBar().showMessage(message, 8000)
        return rec.path

    def _next_record_path(self) -> Path:
        # Named to the millisecond and checked against in-progress videos too: two takes never share a name.
        return new_recording_path(self.record_dir, "" if self.record_format == "png" else f".{self.record_format}")

    # ------------------------------------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Stop polling, finish any recording and stop the engine; idempotent."""
        if self._shut:
            return
        self._shut = True
        self._timer.stop()
        self.projection.cancel()
        try:
            self.stop_recording()
        except Exception as e:  # noqa: BLE001
            log.error("finishing the recording failed: %s", e, exc_info=e)
        self.engine.stop()
        self._check_engine_error()  # a failure during the last frames still gets logged

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
        self.closed.emit()


def dropped_image(mime) -> str | None:
    """The first local image file among dropped URLs, or None."""
    for url in mime.urls() if mime.hasUrls() else []:
        path = url.toLocalFile()
        if path and Path(path).suffix.lower() in IMAGE_SUFFIXES and Path(path).is_file():
            return path
    return None


def overlay_info(engine, frame, stats: dict, recorder: Recorder | None) -> OverlayInfo:
    """The overlay's lines from the engine's settings (current even when paused) and the last frame."""
    lines = [f"source   {engine.source_name}"]
    state = "  PAUSED" if engine.paused else ""
    lines.append(f"strength {float(engine.strength):.2f}   seed {engine.seed}{state}")
    if frame is None:
        lines.append("waiting for the first frame")
        return OverlayInfo(lines)
    losses = "".join(f"   {label} {stats[key]}" for key, label in
                     (("dropped_samples", "dropped samples"), ("overruns", "audio overruns"),
                      ("input_overflows", "overflows")) if stats.get(key))
    lines.append(f"fps {frame.fps:5.1f}   frame {frame.index}{losses}")
    p95 = stats.get("stages", {})
    for name, ms in frame.stage_ms.items():
        tail = f"   p95 {p95[name]['p95_ms']:6.2f}" if name in p95 and "p95_ms" in p95[name] else ""
        lines.append(f"{name:<11}{ms:6.2f} ms{tail}")
    if engine.text:
        lines.append(f"text     {engine.text}")
    steering = getattr(getattr(engine, "pipeline", None), "steering", None)  # a SteeringChoice (live.steer_choice)
    if steering is not None:
        lines += steering.overlay_lines
    if frame.labels:
        head = "anchors  " if steering is not None and steering.kind == "bank" else "sounds   "
        lines.append(head + ", ".join(f"{label} {score:.2f}" for label, score in frame.labels))
    lines += fault_lines(engine)
    if recorder is not None:
        lines.append(f"rec      {recorder.path.name}  {recorder.frames_written} written"
                     f"  {recorder.frames_dropped} dropped")
    return OverlayInfo(lines, level=frame.level, onset=frame.onset)


def fault_lines(engine) -> list[str]:
    """What went wrong and is being survived: a lost audio device, dropped frames from stage faults."""
    lines = []
    state = getattr(getattr(engine, "source", None), "state", "ok")
    if state not in ("ok", "stopped"):
        lines.append(f"AUDIO    {state.upper()}: input device gone, playing on silence")
    faults = getattr(engine, "faults", None)
    line = faults.overlay_line() if faults is not None else None
    if line:
        lines.append(line)
    return lines


def run_window(engine: LiveEngine, title: str = "livesound", fullscreen: bool = False, **window_kwargs) -> int:
    """Start ``engine``, show it in a LiveWindow and run Qt's event loop until the window closes.

    Ctrl+C in the terminal closes the window. Returns 0, or 1 when the engine failed (its error has been
    logged and shown). ``window_kwargs`` go to LiveWindow (record_path, record_format, record_fps, poll_ms, rig).
    """
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "livesound"])
    window = LiveWindow(engine, title=title, **window_kwargs)
    window.closed.connect(app.quit)  # quit even when the application has other windows open
    # Qt's loop runs in C++, and Python runs a signal handler only between bytecodes: this no-op slot lets
    # the interpreter in ten times a second, so Ctrl+C is seen however idle the window is.
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(100)
    restore = _close_on_sigint(window)
    try:
        engine.start()
        if fullscreen:
            window.showFullScreen()
        else:
            window.show()
        window.view.setFocus()
        app.exec()
    finally:
        restore()
        window.shutdown()
        window.deleteLater()
    return 1 if engine.error is not None else 0


def _close_on_sigint(window: LiveWindow):
    """Make SIGINT and SIGTERM close the window (via the event loop); returns a function restoring the
    old handlers."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return lambda: None
    # SIGTERM too (a service manager, `kill`): closing the window finishes a recording as a playable file.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Deferred with singleShot: the handler may interrupt any Python code of this thread, even a paint.
    for sig in previous:
        signal.signal(sig, lambda signum, frame: QTimer.singleShot(0, window.close))
    return lambda: [signal.signal(sig, prev) for sig, prev in previous.items()]
