"""Recording live frames to a video file (PyAV) or a directory of numbered PNGs, without slowing the caller.

Threading contract:
- The caller (the GUI thread, or any one frame loop) calls ``write``; it never blocks and never encodes: the
  frame is copied into a bounded queue, or, when the queue is full because the writer fell behind, dropped
  and counted (``frames_dropped``). A live frame loop must keep its pace; a recording with gaps is better
  than a performance that stutters.
- One writer thread per recorder owns the encoder or the PNG files; it is the only thread that touches them.
  It blocks on the queue and on encoding/disk I/O, nothing else.
- ``close`` (from the caller's thread) waits for the writer to drain the queue and finalise the output.

A video is written under a visible, unique in-progress name beside its target (``take.recording-PID-XXXX.mp4``)
and renamed into place by ``close`` once the encoder has been flushed and the container closed, so the target
path only ever holds a complete file. The in-progress file survives a crash too (SIGKILL, OOM, power loss): MP4
and MOV are written fragmented (``movflags=frag_keyframe+empty_moov``, a keyframe every second), Matroska in
clusters of a second, so everything up to the last second before the crash plays; the in-progress name says
what happened. Frames are stamped at the nominal ``fps`` one after another: the file plays at that rate,
whatever the live frame timing was.

Guards: ``max_bytes`` caps the output's size and ``min_free_bytes`` keeps that much of its disk free; the
writer checks both as it goes and, when one is reached, stops with one log line and finalises what it has
(``stopped`` says why; later frames are dropped and counted). Nothing else bounds a recording left running by a
remote ``/record 1``.

Neither PyAV nor Pillow is imported until a recorder needs it.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
import time
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger("livesound")

VIDEO_SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
MIN_FREE_BYTES = 1 << 30   # a recording stops before its disk has less than 1 GiB free
CHECK_EVERY_S = 0.5        # how often the writer looks at the output's size and the disk's free space
_STOP = object()
# Container options that keep a file playable up to its last second if the process dies mid-recording.
_CRASH_SAFE = {"mp4": {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
               "mov": {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"},
               "matroska": {"cluster_time_limit": "1000", "flush_packets": "1"}}


def _import_av():
    try:
        import av
    except ImportError as e:
        raise RuntimeError(
            "recording video needs PyAV (`pip install av`); record to a directory of PNGs instead "
            "(a path without a .mp4/.mkv/.mov suffix)") from e
    return av


class _VideoSink:
    """One video stream in one container; opened on the first frame, whose size fixes the stream's."""

    def __init__(self, path: Path, fps: float, codec: str | None = None):
        self._av = _import_av()  # fail in the caller's thread, at construction, not later in the writer
        self.path = path
        self.tmp = path.with_name(f"{path.stem}.recording-{os.getpid()}-{uuid.uuid4().hex[:6]}{path.suffix}")
        self.tmp.touch(exist_ok=False)  # the name is taken from now on (the container opens with the first frame)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.codec = codec or self._pick_codec()
        self._container = None
        self._stream = None

    def _pick_codec(self) -> str:
        available = self._av.codecs_available
        for name in ("libx264", "h264", "mpeg4"):
            if name in available:
                return name
        raise RuntimeError("this PyAV build has no H.264 or MPEG-4 encoder")

    def _open(self, width: int, height: int) -> None:
        fmt = VIDEO_SUFFIXES[self.path.suffix.lower()]
        self._container = self._av.open(str(self.tmp), mode="w", format=fmt, options=_CRASH_SAFE[fmt])
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"  # what players expect; it needs even sides (see write)
        stream.gop_size = max(1, round(float(self.fps)))  # a keyframe, so a fragment, every second
        if self.codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "18"}
        self._stream = stream

    def bytes_written(self) -> int:
        try:
            return self.tmp.stat().st_size
        except FileNotFoundError:  # nothing muxed yet: the container writes its header with the first packet
            return 0

    def write(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:  # yuv420p halves both sides: repeat the edge rather than lose a row of picture
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._container is None:
            self._open(rgb.shape[1], rgb.shape[0])
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._container is None:
            self.tmp.unlink(missing_ok=True)
            log.warning("recording %s: no frames arrived, so no file was written", self.path)
            return
        try:
            self._container.mux(self._stream.encode(None))  # flush: the encoder holds back frames
        finally:
            self._container.close()
        os.replace(self.tmp, self.path)


class _PngSink:
    """A directory of frame_000000.png, frame_000001.png, ... numbered in write order."""

    def __init__(self, path: Path):
        from PIL import Image  # noqa: F401  (fail at construction if Pillow is missing)

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._n = 0
        self._bytes = 0

    def write(self, rgb: np.ndarray) -> None:
        from PIL import Image

        # compress_level 1: PNG's default level costs several times the time for a few percent of size.
        # Saved under a temporary name and renamed: a kill never leaves half a frame in the folder.
        path = self.path / f"frame_{self._n:06d}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
        self._n += 1
        self._bytes += path.stat().st_size

    def bytes_written(self) -> int:
        return self._bytes

    def close(self) -> None:
        pass


def new_recording_path(folder: Path, suffix: str = "") -> Path:
    """A fresh recording path in ``folder``, named to the millisecond (``livesound-20250101-120000-123``, then
    ``-1``, ``-2``... on a clash). Without ``suffix`` it is a PNG folder, created here so no other recording can
    take it; with one, a video name that no finished or in-progress file uses."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stem = f"livesound-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}-{int(now % 1 * 1000):03d}"
    for n in range(1000):
        name = stem if n == 0 else f"{stem}-{n}"
        path = folder / f"{name}{suffix}"
        if suffix:
            if not path.exists() and not any(folder.glob(f"{name}.recording-*{suffix}")):
                return path
            continue
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise OSError(f"{folder}: no free recording name after {stem}-999")


class Recorder:
    """Write RGB frames to ``path`` in a background thread; see the module docstring for the contract.

    ``path`` ending in .mp4/.mkv/.mov records video (PyAV); any other path is a directory of PNGs.
    ``queue_frames`` bounds the frames waiting for the writer (memory: that many frames). ``max_bytes`` (None: no
    cap) and ``min_free_bytes`` stop the recording (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, queue_frames: int = 32,
                 codec: str | None = None, max_bytes: int | None = None, min_free_bytes: int = MIN_FREE_BYTES):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = float(fps)
        self.max_bytes, self.min_free_bytes = max_bytes, min_free_bytes
        self.stopped: str | None = None   # why the writer stopped early (size cap, disk nearly full)
        self._dropped_stopped = 0         # caller thread only
        self._next_check = 0.0
        self.is_video = self.path.suffix.lower() in VIDEO_SUFFIXES
        if self.is_video:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = _VideoSink(self.path, fps, codec)
        else:
            self._sink = _PngSink(self.path)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_frames))
        self._dropped_full = 0    # caller thread only
        self._written = 0         # writer thread only
        self._dropped_failed = 0  # writer thread only
        self.error: BaseException | None = None  # set by the writer when encoding failed
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"livesound-recorder:{self.path.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def frames_written(self) -> int:
        return self._written

    @property
    def frames_dropped(self) -> int:
        """Frames given to ``write`` that are not in the output: writer behind, writer failed, or stopped."""
        return self._dropped_full + self._dropped_failed + self._dropped_stopped

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, rgb: np.ndarray) -> bool:
        """Queue one [H, W, 3] uint8 frame; never blocks. Returns False when it was dropped."""
        if self._closed:
            raise RuntimeError(f"recorder for {self.path} is closed")
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an [H, W, 3] uint8 frame, got {rgb.shape} {rgb.dtype}")
        if self.stopped is not None:
            self._dropped_stopped += 1
            return False
        if self._queue.full():  # checked first so a dropped frame costs no copy
            self._dropped_full += 1
            return False
        try:
            # copy: the caller may reuse or overwrite its buffer while the frame waits in the queue
            self._queue.put_nowait(np.array(rgb, copy=True, order="C"))
        except queue.Full:
            self._dropped_full += 1
            return False
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if self.error is not None or self.stopped is not None:  # keep draining: nobody waits on a dead writer
                self._dropped_failed += 1
                continue
            try:
                self._write_frame(item)
                self._written += 1
                self._check_limits()
            except BaseException as e:  # noqa: BLE001  (reported through .error and by close())
                self.error = e
                self._dropped_failed += 1
                log.error("recording %s failed: %s", self.path, e, exc_info=e)
        try:
            self._sink.close()  # finalise what was written, even after a failed frame
        except BaseException as e:  # noqa: BLE001
            if self.error is None:
                self.error = e
            log.error("finalising recording %s failed: %s", self.path, e, exc_info=e)

    def _write_frame(self, rgb: np.ndarray) -> None:
        """Encode or save one frame (writer thread only)."""
        self._sink.write(rgb)

    def _check_limits(self) -> None:
        """Writer thread: stop at the size cap or before the disk fills (checked every CHECK_EVERY_S)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY_S
        size = self._sink.bytes_written()
        free = shutil.disk_usage(self.path.parent if self.is_video else self.path).free
        if self.max_bytes is not None and size >= self.max_bytes:
            self.stopped = f"it reached its size cap of {self.max_bytes / 1e6:.0f} MB"
        elif free < self.min_free_bytes:
            self.stopped = (f"its disk has only {free / 1e6:.0f} MB free (it stops below "
                            f"{self.min_free_bytes / 1e6:.0f} MB)")
        if self.stopped is not None:
            log.warning("livesound: recording %s stopped after %d frames: %s", self.path, self._written,
                        self.stopped)

    def close(self) -> None:
        """Drain the queue, finalise the output (flush the encoder, rename into place); idempotent.

        Raises the writer's error, if it had one, after finalising what was written before it.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)  # blocking is fine: the writer always drains
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"recording {self.path} failed: {self.error}") from self.error
        if self.frames_dropped:
            log.warning("recording %s: %d frames written, %d dropped (writer behind)", self.path,
                        self.frames_written, self.frames_dropped)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
