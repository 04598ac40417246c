"""Video out to other programs: NDI (cyndilib, the optional extra ``ndi``) and a v4l2 virtual camera
(pyvirtualcam on a v4l2loopback device).

Threading: the renderer thread only ``offer``s each frame to a latest-wins slot and sets an event; one sender
thread per output takes the newest frame and sends it, so a slow receiver or a paced sender (NDI clocks video,
a virtual camera waits for its consumer) can only skip frames, never slow the frame loop. The sender opens its
device on the first frame (the size is known then); a failure there is logged once, and the output stops.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger("livesound")


class VideoOutError(RuntimeError):
    pass


class NdiSender:
    """An NDI source named ``name`` sending RGBA frames. Unclocked by default (the renderer sets the pace);
    ``clock=True`` lets NDI pace sends to ``fps`` (the sender thread then skips frames, never the renderer)."""

    kind = "ndi"

    def __init__(self, name: str = "livesound", fps: float = 30.0, clock: bool = False):
        try:
            from cyndilib.sender import Sender
            from cyndilib.video_frame import VideoSendFrame
            from cyndilib.wrapper.ndi_structs import FourCC
        except ImportError as e:
            raise VideoOutError(f"NDI needs cyndilib: pip install 'livesound[ndi]' ({e})") from None
        self.name, self.fps, self.clock = name, fps, clock
        self._types = Sender, VideoSendFrame, FourCC
        self._sender = None
        self._rgba: np.ndarray | None = None

    def open(self, height: int, width: int) -> None:
        Sender, VideoSendFrame, FourCC = self._types
        vf = VideoSendFrame()
        vf.set_resolution(width, height)
        vf.set_fourcc(FourCC.RGBA)
        vf.set_frame_rate(Fraction(round(self.fps * 1000), 1000))
        sender = Sender(self.name, clock_video=self.clock)
        sender.set_video_frame(vf)
        sender.open()
        self._sender = sender
        self._rgba = np.full((height, width, 4), 255, np.uint8)

    def send(self, rgb: np.ndarray) -> None:
        self._rgba[..., :3] = rgb
        if not self._sender.write_video(self._rgba.ravel()):
            raise VideoOutError("NDI refused the frame")

    def connections(self) -> int:
        return self._sender.get_num_connections(0.0) if self._sender is not None else 0

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None


def loopback_devices() -> list[str]:
    """v4l2loopback devices: video devices with no hardware behind them (sysfs puts them under "virtual")."""
    sysfs = Path("/sys/class/video4linux")
    return [f"/dev/{d.name}" for d in sorted(sysfs.glob("video*")) if "/virtual/" in str(d.resolve())]


class V4l2Sender:
    """A v4l2 virtual camera (v4l2loopback) fed RGB frames through pyvirtualcam."""

    kind = "v4l2"

    def __init__(self, device: str | None = None, fps: float = 30.0):
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError as e:
            raise VideoOutError(f"a virtual camera needs pyvirtualcam: pip install pyvirtualcam ({e})") from None
        devices = loopback_devices()
        if device is None and not devices:
            raise VideoOutError("no v4l2loopback device (load it: sudo modprobe v4l2loopback exclusive_caps=1)")
        if device is not None and not Path(device).exists():
            raise VideoOutError(f"{device}: no such video device (loopback devices: {', '.join(devices) or 'none'})")
        self.device, self.fps = device or devices[0], fps
        self._cam = None

    def open(self, height: int, width: int) -> None:
        import pyvirtualcam

        self._cam = pyvirtualcam.Camera(width, height, self.fps, device=self.device, backend="v4l2loopback")

    def send(self, rgb: np.ndarray) -> None:
        self._cam.send(rgb)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
            self._cam = None


class VideoOut:
    """Latest-frame hand-off from the renderer to one sender's thread."""

    def __init__(self, sender):
        self.sender = sender
        self.offered = self.sent = self.failed = 0
        self.error: BaseException | None = None
        self._frame: np.ndarray | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"livesound-video-{sender.kind}", daemon=True)
        self._thread.start()

    @property
    def skipped(self) -> int:
        """Frames replaced by a newer one before the sender took them."""
        return self.offered - self.sent - self.failed - (1 if self._frame is not None else 0)

    def offer(self, rgb: np.ndarray) -> None:
        """Renderer thread: hand over the newest frame (never waits for the sender)."""
        with self._lock:
            self._frame = rgb
            self.offered += 1
        self._ready.set()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._ready.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        opened = False
        try:
            while not self._stop.is_set():
                self._ready.wait()
                self._ready.clear()
                with self._lock:
                    rgb, self._frame = self._frame, None
                if rgb is None or self._stop.is_set():
                    continue
                if not opened:
                    self.sender.open(*rgb.shape[:2])
                    opened = True
                try:
                    self.sender.send(rgb)
                    self.sent += 1
                except VideoOutError as e:
                    self.failed += 1
                    if self.failed == 1:
                        log.warning("livesound video out (%s): %s; counted, not logged again", self.sender.kind, e)
        except Exception as e:  # noqa: BLE001 - the output stops, the frame loop goes on; reported once
            self.error = e
            log.error("livesound video out (%s) stopped: %s: %s", self.sender.kind, type(e).__name__, e)
        finally:
            self.sender.close()
