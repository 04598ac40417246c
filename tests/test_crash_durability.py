"""Crashes and durability: a recording survives SIGKILL, files are synced and follow the umask, recording folders
never collide, and finishing a recording or saving a preset never blocks the renderer.

Before: an MP4 under a fixed hidden temporary name had its index written at close only, so a SIGKILL lost the
whole recording; PNG recording folders were named to the second; stopping a recording (flushing the encoder) and
saving a preset (a synced file write) ran on the renderer thread.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

FFPROBE = shutil.which("ffprobe")
needs_ffprobe = pytest.mark.skipif(FFPROBE is None, reason="ffprobe (ffmpeg) is not installed: a killed "
                                                           "recording cannot be read back independently")


def ffprobe_frames(path: Path) -> int:
    """Frames ffprobe decodes from ``path`` (0 when it cannot read the file at all)."""
    r = subprocess.run([FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=nb_read_frames", "-of", "json", str(path)], capture_output=True, text=True)
    streams = json.loads(r.stdout or "{}").get("streams") or [{}]
    return int(streams[0].get("nb_read_frames") or 0)


@needs_ffprobe
def test_sigkill_during_a_headless_recording_leaves_a_file_ffprobe_reads(tmp_path):
    pytest.importorskip("av")
    out, video = tmp_path / "frames", tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--backend", "torch",
                             "--source", "synth", "--headless", "--frames", "300", "--hop-fps", "30",
                             "--out", str(out), "--record", str(video)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, first = time.monotonic() + 240, None
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and len(list(out.glob("frame_*.png"))) >= 150:  # mid-way through the 10 s recording
                first = time.monotonic()
                break
            time.sleep(0.01)
        assert proc.poll() is None and first is not None, proc.stderr.read()[-2000:]
        written = len(list(out.glob("frame_*.png")))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert not video.exists()                                        # never a half file at the target name
    (partial,) = [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    assert re.fullmatch(r"rec\.recording-\d+-[0-9a-f]{6}\.mp4", partial.name)   # visible, unique, says what it is
    frames = ffprobe_frames(partial)
    # Everything up to the last whole second (a fragment per keyframe) plays.
    assert 0 < frames <= written and frames >= min(written - 90, written // 2), (frames, written)


KILL_SELF = """
import os, signal, sys, time
import numpy as np
from livesound.recording import Recorder
rec = Recorder(sys.argv[1], fps=30, queue_frames=128)
for i in range(90):
    rec.write(np.full((64, 64, 3), i, np.uint8))
while rec.frames_written < 90:
    time.sleep(0.01)
time.sleep(0.3)
os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_ffprobe
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_a_killed_recorder_leaves_every_whole_second(tmp_path, suffix):
    pytest.importorskip("av")
    r = subprocess.run([sys.executable, "-c", KILL_SELF, str(tmp_path / f"take{suffix}")], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-1500:]
    (partial,) = list(tmp_path.iterdir())
    assert partial.name.startswith("take.recording-") and partial.suffix == suffix
    assert ffprobe_frames(partial) >= 60      # 3 s written; the last second's fragment may be incomplete


UMASK = """
import os, stat, sys
os.umask(int(sys.argv[2], 8))
from livesound.files import write_json
p = write_json(sys.argv[1], {"a": 1})
print(oct(stat.S_IMODE(os.stat(p).st_mode)))
"""


@pytest.mark.parametrize("umask, mode", [("022", "0o644"), ("077", "0o600"), ("002", "0o664")])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    r = subprocess.run([sys.executable, "-c", UMASK, str(tmp_path / "x.json"), umask], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == mode, r.stderr


def test_atomic_writes_sync_the_file_and_its_folder(tmp_path, monkeypatch):
    from livesound import files

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    files.write_json(tmp_path / "r.json", {"x": 1})
    assert synced == [False, True]            # the bytes before the rename, the folder after it


def test_a_failed_plot_or_json_leaves_the_previous_file(tmp_path):
    pytest.importorskip("matplotlib")
    from livesound.bench.stats import figure
    from livesound.files import write_json

    png, js = tmp_path / "b.png", tmp_path / "b.json"
    with figure(png) as (fig, ax):
        ax.plot([1, 2])
    before = png.read_bytes()
    with pytest.raises(RuntimeError):
        with figure(png) as (fig, ax):
            ax.plot([3, 4])
            raise RuntimeError("benchmark died mid-plot")
    write_json(js, {"ok": 1})
    with pytest.raises(TypeError):
        write_json(js, {"bad": object()})
    assert png.read_bytes() == before and json.loads(js.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "b.png"]


def test_recording_names_never_collide(tmp_path, monkeypatch):
    from livesound import recording
    from livesound.recording import Recorder, new_recording_path

    folders = [new_recording_path(tmp_path) for _ in range(20)]     # all within the same second
    assert len(set(folders)) == 20 and all(f.is_dir() for f in folders)
    assert all(re.fullmatch(r"livesound-\d{8}-\d{6}-\d{3}(-\d+)?", f.name) for f in folders)
    if importlib.util.find_spec("av") is None:
        return
    monkeypatch.setattr(recording.time, "time", lambda: 1_700_000_000.25)   # both takes in the same millisecond
    first = new_recording_path(tmp_path / "v", ".mp4")
    rec = Recorder(first, fps=30)
    rec.write(np.zeros((16, 16, 3), np.uint8))
    deadline = time.monotonic() + 10
    while rec.frames_written < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = new_recording_path(tmp_path / "v", ".mp4")  # the first is still in progress, under its own name
    rec.close()
    assert second != first and second.name.endswith("-1.mp4") and first.exists()


def test_stopping_a_recording_and_saving_a_preset_never_block_the_renderer(tmp_path, monkeypatch):
    from rig_helpers import fresh, shared_stages

    from livesound.recording import Recorder
    from livesound.rig.control import StepTarget
    from livesound.rig.presets import PresetBank
    from livesound.rig.rig import Rig, RigOptions

    real_close, real_write = Recorder.close, PresetBank.write
    monkeypatch.setattr(Recorder, "close", lambda self: (time.sleep(1.0), real_close(self)))
    monkeypatch.setattr(PresetBank, "write", lambda self, data: (time.sleep(1.0), real_write(self, data)))
    stages = fresh(shared_stages())
    rig = Rig(StepTarget(stages), RigOptions(record_dir=str(tmp_path / "rec"), preset_file=str(tmp_path / "p.json")))
    frame = type("F", (), {"rgb": np.zeros((32, 32, 3), np.uint8)})
    try:
        rig.set_recording(1)
        rec = rig.recorder
        rig.after_frame(frame)
        t0 = time.perf_counter()
        rig.set_recording(0)              # as `/record 0` runs: on the renderer thread
        rig.store_preset(3)               # as `/preset_save 3` runs
        assert time.perf_counter() - t0 < 0.2
        assert not (tmp_path / "p.json").exists()     # still being written by the worker
    finally:
        rig.close()                       # waits for the worker: everything finished
    assert rec.closed and list(rec.path.glob("frame_*.png"))
    assert json.loads((tmp_path / "p.json").read_text())["slots"]["3"]["seed"] == stages.seed
