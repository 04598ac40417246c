"""Recorder: PNG sequences and video files, a caller that never waits, and files that are always complete."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from livesound.recording import Recorder


def frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A gradient with the frame index in the blue channel, so frames can be told apart after decoding."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    rgb[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    rgb[..., 2] = (i * 37) % 256
    return rgb


def test_png_sequence_written_and_readable(tmp_path: Path):
    out = tmp_path / "frames"
    with Recorder(out, fps=25) as rec:
        for i in range(5):
            assert rec.write(frame(i))
    assert rec.closed and rec.frames_written == 5 and rec.frames_dropped == 0
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(5)]
    for i, f in enumerate(files):
        np.testing.assert_array_equal(np.asarray(Image.open(f).convert("RGB")), frame(i))


def test_caller_buffer_reuse_does_not_change_queued_frames(tmp_path: Path):
    buf = frame(0)
    release = threading.Event()
    rec = Recorder(tmp_path / "frames", fps=25)
    real = rec._write_frame
    rec._write_frame = lambda rgb: (release.wait(5), real(rgb))
    rec.write(buf)
    buf[:] = 0  # the engine may reuse its buffer at once
    release.set()
    rec.close()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "frames" / "frame_000000.png")), frame(0))


def test_slow_writer_drops_and_counts_instead_of_blocking(tmp_path: Path, monkeypatch):
    def slow(self, rgb):
        time.sleep(0.05)

    monkeypatch.setattr(Recorder, "_write_frame", slow)
    rec = Recorder(tmp_path / "frames", fps=25, queue_frames=2)
    t0 = time.perf_counter()
    accepted = [rec.write(frame(i)) for i in range(40)]
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.04, f"write blocked the caller for {elapsed:.3f} s"
    assert not all(accepted)
    assert rec.frames_dropped == accepted.count(False) > 30
    rec.close()
    assert rec.frames_written == accepted.count(True)
    assert rec.frames_written + rec.frames_dropped == 40


def test_close_is_idempotent_and_write_after_close_raises(tmp_path: Path):
    rec = Recorder(tmp_path / "frames", fps=10)
    rec.write(frame(0))
    rec.close()
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.write(frame(1))


def test_writer_failure_is_raised_by_close(tmp_path: Path, monkeypatch):
    def broken(self, rgb):
        raise OSError("disk full")

    monkeypatch.setattr(Recorder, "_write_frame", broken)
    rec = Recorder(tmp_path / "frames", fps=10)
    rec.write(frame(0))
    rec.write(frame(1))
    with pytest.raises(RuntimeError, match="disk full"):
        rec.close()
    assert rec.frames_written == 0 and rec.frames_dropped == 2


def test_rejects_wrong_frames(tmp_path: Path):
    with Recorder(tmp_path / "frames", fps=10) as rec:
        with pytest.raises(ValueError):
            rec.write(np.zeros((8, 8), np.uint8))
        with pytest.raises(ValueError):
            rec.write(np.zeros((8, 8, 3), np.float32))


# ---------------------------------------------------------------------------------------------- video

try:
    import av
except ImportError:
    av = None
needs_av = pytest.mark.skipif(av is None, reason="PyAV is not installed: video recording untested")


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@needs_av
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_has_every_frame_and_is_renamed_on_close(tmp_path: Path, suffix: str):
    path = tmp_path / f"take{suffix}"
    rec = Recorder(path, fps=30)
    for i in range(12):
        assert rec.write(frame(i))
    rec.close()
    assert path.exists() and list(tmp_path.iterdir()) == [path]  # temporary file gone
    frames = decode(path)
    assert len(frames) == 12 == rec.frames_written
    # lossy codec: the blue channel (frame index) survives to within compression error
    for i, f in enumerate(frames):
        assert f.shape == (48, 64, 3)
        assert abs(float(f[..., 2].mean()) - (i * 37) % 256) < 12


@needs_av
def test_video_target_absent_until_close(tmp_path: Path):
    path = tmp_path / "take.mp4"
    rec = Recorder(path, fps=30)
    for i in range(3):
        rec.write(frame(i))
    deadline = time.monotonic() + 5
    while rec.frames_written < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not path.exists(), "a half-written video must never sit at the target path"
    rec.close()
    assert len(decode(path)) == 3


@needs_av
def test_video_odd_size_padded(tmp_path: Path):
    path = tmp_path / "odd.mov"
    with Recorder(path, fps=24) as rec:
        for i in range(4):
            rec.write(frame(i, h=31, w=45))
    frames = decode(path)
    assert len(frames) == 4 and frames[0].shape == (32, 46, 3)


@needs_av
def test_video_writer_failure_still_finalises_earlier_frames(tmp_path: Path, monkeypatch):
    path = tmp_path / "take.mp4"
    rec = Recorder(path, fps=30)
    real = Recorder._write_frame
    calls = []

    def flaky(self, rgb):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("encoder died")
        real(self, rgb)

    monkeypatch.setattr(Recorder, "_write_frame", flaky)
    for i in range(6):
        rec.write(frame(i))
    with pytest.raises(RuntimeError, match="encoder died"):
        rec.close()
    assert len(decode(path)) == 3 and rec.frames_dropped == 3


def test_video_without_pyav_says_what_to_do(tmp_path: Path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(RuntimeError, match="pip install av"):
        Recorder(tmp_path / "take.mp4", fps=30)
