"""The live engine: the frame recipe (`livesound.live.pipeline`) on two worker threads, fed by a live source.

Threading contract
- Audio thread (the source's capture or its file/synth thread): writes the RingBuffer and nothing else; never
  blocks.
- Listener thread: consumes every new sample in order and runs the recipe's ``hear`` half (``features`` ->
  ``encode``), putting the unit embedding, stamped with its audio sample index, into a latest-wins slot. It
  never waits on the renderer.
- Renderer thread: applies pending controls, takes the newest embedding if there is one and every sample that
  arrived since the previous frame (for the onset envelope), runs the recipe's ``draw`` half (``smooth`` ->
  ``map`` -> ``synthesize`` -> ``to_rgb8``) and puts the frame into a latest-wins slot. Stale frames are
  replaced, never queued.
- Caller / GUI thread: reads ``latest_frame()`` and sets controls (strength, seed, pause, text, a latent to
  glide to). Controls are plain attribute writes that the renderer reads once per frame.
- Rig hooks (`livesound.rig`: OSC, MIDI, presets, swaps, video out): ``before_frame`` and ``after_frame`` run on
  the renderer thread and only drain a queue of control changes or hand a frame to a latest-wins slot.
The two workers each run torch with one intra-op thread, so on a 2-core machine each owns a core instead of
both fighting over two; with ``pin_threads`` each worker pins itself to its core at its start
(`livesound.live.affinity`). A stage that raises, returns NaN/inf or comes back too late drops that frame and is
counted in ``faults`` (`livesound.live.faults`): the last good frame stays on screen and the loop goes on. Any
other ``Exception`` in a worker is logged, counted as a fault of stage "loop", and the worker restarts; only a
``BaseException`` (KeyboardInterrupt, SystemExit) is stored in ``error`` and stops the engine. Nothing is
swallowed silently. ``stop()`` sets one event and joins every thread within its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np
import torch

from livesound.live.affinity import parse_pin, pin_current_thread, plan
from livesound.live.faults import FaultGuard, StageFault
from livesound.live.pipeline import Frame, Pipeline
from livesound.live.timing import StageClock, StageTimes

log = logging.getLogger("livesound")


class LatestSlot:
    """One item, replaced by each put: the reader always gets the newest, never a queue."""

    def __init__(self):
        self._item = None
        self._lock = threading.Lock()

    def put(self, item) -> None:
        with self._lock:
            self._item = item

    def get(self):
        with self._lock:
            return self._item


class LiveEngine:
    """Live source + pipeline on two worker threads (see the module's threading contract)."""

    def __init__(self, pipeline: Pipeline, source, torch_threads: int | None = 1, pin_threads: str = "off"):
        self.pipeline, self.source = pipeline, source
        self._cores = plan(parse_pin(pin_threads))  # {"renderer": core, "listener": core}, or {} unpinned
        self.times = StageTimes()
        self._frame_slot, self._emb_slot = LatestSlot(), LatestSlot()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._torch_threads = torch_threads
        self._pending_seed: int | None = None
        self._pending_text: tuple[str | None] | None = None
        self._pending_glide: tuple[torch.Tensor, float] | None = None
        self.error: BaseException | None = None
        self.faults = FaultGuard(pipeline)
        self.strength = pipeline.s.strength
        self.paused = False
        self.text: str | None = None
        self.frames_rendered = 0
        self._fps = 0.0
        # The rig's hooks (livesound.rig), called on the renderer thread: before each frame (and each idle
        # wait) to apply control changes, after each frame to send it out. Both must return quickly.
        self.before_frame: Callable[[], None] | None = None
        self.after_frame: Callable[[Frame], None] | None = None

    # -- controls (any thread) -------------------------------------------------------------------------------
    @property
    def seed(self) -> int:
        return self._pending_seed if self._pending_seed is not None else self.pipeline.seed

    def set_seed(self, seed: int) -> None:
        self._pending_seed = max(0, int(seed))

    def next_seed(self) -> None:
        self._pending_seed = self.seed + 1

    def prev_seed(self) -> None:
        self._pending_seed = max(0, self.seed - 1)

    def set_text(self, text: str | None) -> None:
        self.text = text or None
        self._pending_text = (self.text,)

    def glide_to(self, ws: torch.Tensor, seconds: float = 1.5) -> None:
        """Travel the source latent to ``ws`` [1, num_ws, w_dim] over ``seconds`` (from the next frame on)."""
        self._pending_glide = (ws.detach().cpu().float(), float(seconds))

    def drop_pending_seed(self) -> None:
        """Forget a queued seed change (a recalled preset sets the source latent itself)."""
        self._pending_seed = None

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def latest_frame(self) -> Frame | None:
        return self._frame_slot.get()

    def stats(self) -> dict:
        ring = self.source.ring
        return {"stages": self.times.summary(), "fps": self._fps, "frames": self.frames_rendered,
                "overruns": ring.overruns, "dropped_samples": ring.dropped_samples,
                "input_overflows": getattr(self.source, "input_overflows", 0),
                "faults": self.faults.summary(), "source_state": getattr(self.source, "state", "ok")}

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        self._stop.clear()
        self.source.start()
        self._threads = [threading.Thread(target=self._guard, args=(self._listen,), name="livesound-listener",
                                          daemon=True),
                         threading.Thread(target=self._guard, args=(self._render,), name="livesound-renderer",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.source.stop()

    def _guard(self, loop: Callable[[], None]) -> None:
        worker = threading.current_thread().name.removeprefix("livesound-")
        try:
            pin_current_thread(self._cores.get(worker), worker)
        except BaseException as e:  # noqa: BLE001 - reported, never swallowed
            self.error = e
            log.exception("livesound: %s failed: %s", threading.current_thread().name, e)
            self._stop.set()
            return
        while not self._stop.is_set():
            try:
                loop()
            except Exception as e:  # noqa: BLE001 - counted and logged; the show goes on
                self.faults.record(StageFault("loop", "exception", f"{type(e).__name__}: {e}"))
                log.exception("livesound: %s failed and restarts: %s", threading.current_thread().name, e)
                self._stop.wait(0.1)
            except BaseException as e:  # noqa: BLE001 - reported, never swallowed
                self.error = e
                log.exception("livesound: %s stopped: %s", threading.current_thread().name, e)
                self._stop.set()

    # -- workers --------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        ring, pipe = self.source.ring, self.pipeline
        clock = StageClock(self.times, self.faults)
        interval = 1.0 / pipe.s.embed_hz if pipe.s.embed_hz > 0 else 0.0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            new = ring.read_available()
            if new.size == 0:
                self._stop.wait(0.002)
                continue
            stage_ms = clock.new_frame()
            try:
                e = pipe.hear(new, clock)
            except StageFault:  # counted; the renderer keeps the previous embedding
                self._stop.wait(interval)
                continue
            self._emb_slot.put((e, pipe.stream.samples_total, stage_ms))
            self._stop.wait(max(0.0, interval - (time.perf_counter() - t0)))

    def _apply_controls(self) -> None:
        if self.before_frame is not None:
            self.before_frame()
        if self._pending_seed is not None:  # taken before applying: a failing seed is tried once
            seed, self._pending_seed = self._pending_seed, None
            self.pipeline.set_seed(seed)
        if self._pending_text is not None:
            (text,), self._pending_text = self._pending_text, None
            self.pipeline.set_text(text)
        if self._pending_glide is not None:
            (ws, seconds), self._pending_glide = self._pending_glide, None
            self.pipeline.glide_to(ws, seconds)

    def _render(self) -> None:
        ring, pipe = self.source.ring, self.pipeline
        clock = StageClock(self.times, self.faults)
        scratch = np.zeros(8192, np.float32)  # every sample since the previous frame (at most ~0.19 s)
        seen = 0
        last_t = time.perf_counter()
        e_last, audio_idx, emb_ms = None, 0, {}
        fps_t, fps_n = last_t, 0
        while not self._stop.is_set():
            self._apply_controls()
            got = self._emb_slot.get()
            if got is not None:
                e_last, audio_idx, emb_ms = got
            if e_last is None or self.paused:
                self._stop.wait(0.005)
                continue
            now = time.perf_counter()
            dt, last_t = max(now - last_t, 1e-4), now
            newest = ring.total_written
            n = int(min(scratch.size, newest - seen))
            block = ring.read_latest(n, out=scratch[:n])
            seen = newest
            stage_ms = clock.new_frame()
            try:
                drawn = pipe.draw(e_last, block, dt, self.strength, clock)
            except StageFault:  # counted; the previous frame stays in the slot (on screen)
                self._stop.wait(0.002)
                continue
            fps_n += 1
            if now - fps_t >= 0.5:
                self._fps, fps_t, fps_n = fps_n / (now - fps_t), now, 0
            frame = pipe.frame(self.frames_rendered, drawn, max(newest, audio_idx), emb_ms | stage_ms, self._fps)
            self._frame_slot.put(frame)
            self.frames_rendered += 1
            if self.after_frame is not None:
                self.after_frame(frame)
