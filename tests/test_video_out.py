"""Video out: the latest-frame hand-off never slows the caller; NDI's sender side; the v4l2 camera where a
loopback device exists."""

import importlib.util
import time

import numpy as np
import pytest

from livesound.rig.video_out import (
    V4l2Sender,
    VideoOut,
    VideoOutError,
    loopback_devices,
)

HAVE_NDI = importlib.util.find_spec("cyndilib") is not None
needs_ndi = pytest.mark.skipif(not HAVE_NDI, reason="cyndilib (the `ndi` extra) is not installed")


def frames(n, size=64):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


@needs_ndi
def test_ndi_sender_sends_and_a_clocked_one_never_slows_the_frame_loop():
    from livesound.rig.video_out import NdiSender

    out = VideoOut(NdiSender("livesound-test"))
    for f in frames(5):
        out.offer(f)
        time.sleep(0.02)
    deadline = time.monotonic() + 5
    while out.sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.sent >= 1 and out.error is None and out.sender.connections() == 0  # no receiver here
    out.close()

    out = VideoOut(NdiSender("livesound-clocked", fps=10.0, clock=True))  # paced like a slow receiver
    batch = frames(200)
    t0 = time.perf_counter()
    for f in batch:
        out.offer(f)
    offer_s = time.perf_counter() - t0
    time.sleep(0.3)
    out.close()
    assert out.error is None and out.offered == 200
    assert out.sent < 50 and out.skipped > 150          # the sender kept up at its own pace, skipping frames
    assert offer_s < 0.5                                # 200 hand-offs while the sender spent seconds


def test_a_failing_sender_stops_alone_and_says_why(caplog):
    class Broken:
        kind = "broken"
        closed = False

        def open(self, height, width):
            raise OSError("device vanished")

        def close(self):
            Broken.closed = True

    out = VideoOut(Broken())
    out.offer(frames(1)[0])
    out._thread.join(2)
    assert isinstance(out.error, OSError) and Broken.closed
    assert any("video out (broken) stopped: OSError: device vanished" in r.getMessage() for r in caplog.records)
    out.offer(frames(1)[0])                             # the frame loop can still offer; nothing waits
    out.close()


def test_v4l2_without_a_loopback_device_is_one_clear_error(tmp_path):
    if loopback_devices():
        pytest.skip("a v4l2loopback device exists here: the sending test covers it")
    with pytest.raises(VideoOutError, match="no v4l2loopback device"):
        V4l2Sender()
    with pytest.raises(VideoOutError, match="no such video device"):
        V4l2Sender(str(tmp_path / "video9"))


def test_v4l2_sends_to_a_loopback_device():
    devices = loopback_devices()
    if not devices:
        pytest.skip("no v4l2loopback device here (the kernel module is not loaded; a container cannot load it)")
    out = VideoOut(V4l2Sender(devices[0]))
    for f in frames(5):
        out.offer(f)
        time.sleep(0.05)
    out.close()
    assert out.error is None and out.sent >= 1
