"""Projection in the background: a dropped image or a phrase becomes a source latent while the show plays on.

Threading contract:
- The GUI thread calls ``start_image``, ``start_text`` and ``cancel``; it never waits for a projection.
- One worker thread per job runs `livesound.offline.project.project` on a private copy of the generator (the
  renderer keeps drawing with the original; gradients never touch it). The frozen CLIP model is shared: the
  worker only runs forward and backward passes through it, which read its weights and write none.
- The worker reports by Qt signals only (``progress``, ``done``, ``failed``), which Qt queues to the GUI
  thread because this object lives there, so no widget is touched off the GUI thread.
- Starting a new job cancels the running one (it stops at its next step and reports nothing); so does
  ``cancel`` (the window closing), which waits up to ``timeout`` seconds for the worker to end.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

from PyQt6.QtCore import QObject, pyqtSignal


class BackgroundProjection(QObject):
    """Projects onto ``engine.pipeline``'s generator on a worker thread (see the module's contract)."""

    progress = pyqtSignal(str, int, int)     # what, step, steps
    done = pyqtSignal(str, object, object)   # what, ws [1, num_ws, w_dim] (CPU), PSNR in dB or None
    failed = pyqtSignal(str, str)            # what, the error in one line

    def __init__(self, engine, steps: int = 100, parent: QObject | None = None):
        super().__init__(parent)
        self.engine, self.steps = engine, int(steps)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_image(self, path: str | Path) -> str:
        return self._start(Path(path).name, image=Path(path))

    def start_text(self, phrase: str) -> str:
        if not phrase.strip():
            raise ValueError("the phrase is empty")
        return self._start(repr(phrase), text=phrase)

    def cancel(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _start(self, what: str, image: Path | None = None, text: str | None = None) -> str:
        pipeline = self.engine.pipeline
        if text is not None and pipeline.clip is None:
            raise ValueError("starting from a phrase needs a CLIP model (--clip)")
        self._stop.set()                      # the previous job, if any, ends at its next step
        self._stop = stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(what, pipeline, image, text, stop),
                                        name="livesound-projection", daemon=True)
        self._thread.start()
        return what

    def _run(self, what: str, pipeline, image: Path | None, text: str | None, stop: threading.Event) -> None:
        from livesound.offline.project import Cancelled, ProjectConfig, load_target, project

        try:
            G = copy.deepcopy(pipeline.G).requires_grad_(False)
            target = load_target(image, G.resolution) if image is not None else None
            result = project(G, pipeline.clip, target, text, ProjectConfig(steps=self.steps), progress=False,
                             on_step=lambda step, _row: self.progress.emit(what, step + 1, self.steps),
                             should_stop=stop.is_set)
        except Cancelled:
            return
        except Exception as e:  # noqa: BLE001 - reported to the window; the show goes on
            if not stop.is_set():
                self.failed.emit(what, f"{type(e).__name__}: {e}")
            return
        if not stop.is_set():
            self.done.emit(what, result.ws, result.psnr)
