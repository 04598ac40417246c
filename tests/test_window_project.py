"""Starting from a picture in the window: a dropped image or Shift+Enter's phrase is projected on a worker while
the real engine keeps drawing, then the source latent glides there."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from PyQt6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PyQt6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PyQt6.QtTest import QTest  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from livesound.app import LiveWindow  # noqa: E402
from livesound.audio.sources import SynthSource  # noqa: E402
from livesound.live.build import LiveOptions, build_pipeline  # noqa: E402
from livesound.live.engine import LiveEngine  # noqa: E402
from livesound.offline.generate import to_uint8  # noqa: E402

STEPS = 12


@pytest.fixture
def show(tmp_path):
    app = QApplication.instance() or QApplication([])
    st = build_pipeline(LiveOptions(preset="demo", backend="torch"))
    engine = LiveEngine(st, SynthSource("chirp"), pin_threads="off")
    window = LiveWindow(engine, project_steps=STEPS, record_path=tmp_path / "rec")
    done: list = []
    window.projection.done.connect(lambda what, ws, db: done.append((what, ws, db)))
    window.show()
    engine.start()
    yield app, window, engine, st, done
    window.close()
    app.processEvents()


def _mime(path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def _wait(app, condition, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert condition(), "timed out"


def _picture(G, ws) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(G.synthesis(ws, noise_mode="const"))[0].astype(float)


def test_a_dropped_image_is_projected_while_the_picture_plays_then_glided_to(show, tmp_path):
    app, window, engine, st, done = show
    G = st.G
    picture = tmp_path / "mine.png"
    Image.fromarray(to_uint8(G.synthesis(G.mapping(G.z_from_seeds([31]), truncation_psi=0.7)))[0]).save(picture)
    start = st.ws_src.clone()

    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    # NB: the events do not own their QMimeData: keep each alive while its event is in use.
    not_image, image = _mime(text), _mime(picture)
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, not_image, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()                                   # only image files are taken
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, image, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()

    _wait(app, lambda: window.shown_index is not None, 60)
    window.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, image, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier))
    assert window.projection.busy and "projecting mine.png" in window.statusBar().currentMessage()
    shown_before = window.shown_index
    _wait(app, lambda: bool(done))
    assert window.shown_index > shown_before                        # frames kept coming while it projected
    what, ws, db = done[0]
    assert what == "mine.png" and ws.shape == start.shape and db is not None
    _wait(app, lambda: torch.equal(st.ws_src, ws), 60)              # the glide lands on the projection
    assert st.glide is None
    target = np.asarray(Image.open(picture)).astype(float)
    assert np.abs(_picture(G, ws) - target).mean() < np.abs(_picture(G, start) - target).mean()


def test_shift_enter_starts_from_the_phrase_and_enter_still_steers(show):
    app, window, engine, st, done = show
    window.text_box.setText("a foggy harbour at dawn")
    QTest.keyClick(window.text_box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.projection.busy and engine.text is None           # a start, not a steering text
    _wait(app, lambda: bool(done))
    what, ws, db = done[0]
    assert what == "'a foggy harbour at dawn'" and db is None
    _wait(app, lambda: torch.equal(st.ws_src, ws), 60)
    QTest.keyClick(window.text_box, Qt.Key.Key_Return)              # plain Enter: steer with the text
    assert engine.text == "a foggy harbour at dawn"


def test_closing_the_window_stops_a_running_projection(show, tmp_path):
    app, window, engine, st, done = show
    window.projection.steps = 10_000                                # far longer than the test
    window.text_box.setText("a long walk")
    window.start_from_phrase()
    assert window.projection.busy
    window.close()
    assert not window.projection.busy and not done
