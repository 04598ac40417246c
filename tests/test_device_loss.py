"""Audio device loss and return: the picture goes on with silence, the microphone reconnects by itself.

Two levels:
- ``Microphone`` with a stand-in capture child (``capture_helpers.fake_child``: a real process writing the child's
  protocol into real pipes): killing or freezing the child is a device loss; the child reports overflows, floods
  its stderr or breaks the protocol; runs everywhere.
- The issue's contract, for real through PulseAudio (docs/design.md's null-sink recipe): ``livesound live --source mic
  --device pulse --headless`` while the server is stopped and started again; skipped where PulseAudio is absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from capture_helpers import fake_child

from livesound.audio.io import AudioError
from livesound.audio.mic import Microphone

REPO = Path(__file__).resolve().parent.parent
SR = 44100


def _wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files through /proc (Linux)")
def test_lost_child_gives_silence_then_reconnects_without_leaks():
    mic = Microphone("fake", command=fake_child(), stall_s=0.3, backoff_s=0.1)
    threads0, fds0 = threading.active_count(), _fds()
    mic.start()
    try:
        assert _wait(lambda: mic.ring.total_written > SR // 4, 10) and mic.state == "ok"
        counts = []
        for i, sig in enumerate([signal.SIGKILL, signal.SIGSTOP, signal.SIGKILL]):
            pid = mic._proc.pid
            os.kill(pid, sig)  # SIGKILL: the stream died; SIGSTOP: it hangs (as in a spinning driver)
            assert _wait(lambda: mic.state != "ok", 5), "the loss was not noticed"
            before = mic.ring.total_written
            time.sleep(0.3)
            assert mic.ring.total_written - before > 0.1 * SR  # silence keeps the sample clock going
            assert _wait(lambda: mic.state == "ok" and mic.reconnects == i + 1, 15), mic.state
            assert mic._proc.pid != pid
            if sig == signal.SIGSTOP:  # the frozen child was killed, not left behind
                assert _wait(lambda: not Path(f"/proc/{pid}").exists(), 5)
            mic.ring.read_available()
            time.sleep(0.3)
            x = mic.ring.read_available()
            assert np.abs(x[-SR // 10:]).max() > 0.2  # the tone again, not silence
            counts.append((threading.active_count(), _fds()))
        assert mic.losses == 3 and mic.silence_samples > 0
        assert len(set(counts)) == 1, f"threads/fds grew across reconnects: {counts}"
        assert counts[0][0] == threads0 + 1  # the one supervisor thread
    finally:
        mic.stop()
    assert mic.state == "stopped" and threading.active_count() == threads0 and _fds() == fds0


def test_a_child_that_cannot_open_fails_start_with_its_reason():
    bad = [sys.executable, "-c", "import sys; print('capture: no such device: xyz', file=sys.stderr); sys.exit(2)"]
    mic = Microphone("xyz", command=bad, open_timeout_s=5)
    with pytest.raises(AudioError, match="no such device: xyz"):
        mic.start()
    assert not mic.running


# Overflows at blocks 10, 20 and 30 (this child's totals 1, 2, 3), between lines of ALSA-style chatter.
OVERFLOWING = """
if n // 256 in (10, 20, 30):
    print("ALSA lib pcm.c:8570:(snd_pcm_recover) overrun occurred", file=err, flush=True)
    print(f"overflow {n // 2560}", file=err, flush=True)
"""


def test_overflows_are_counted_over_reconnects_and_reach_engine_stats(caplog):
    from livesound.live.build import LiveOptions, build_pipeline
    from livesound.live.engine import LiveEngine

    mic = Microphone("fake", command=fake_child("", OVERFLOWING), stall_s=0.3, backoff_s=0.1)
    engine = LiveEngine(build_pipeline(LiveOptions(preset="demo", backend="torch")), mic)
    engine.start()
    try:
        assert _wait(lambda: mic.input_overflows == 3 and engine.frames_rendered > 0, 60), mic.input_overflows
        assert mic.input_latency == pytest.approx(0.0116)
        os.kill(mic._proc.pid, signal.SIGKILL)
        # A new child counts from 1 again; the microphone adds every child's up.
        assert _wait(lambda: mic.reconnects == 1 and mic.input_overflows == 6, 15), mic.input_overflows
        stats = engine.stats()
    finally:
        engine.stop()
    assert stats["input_overflows"] == 6 and stats["source_state"] == "ok"
    assert json.loads(json.dumps(stats))["input_overflows"] == 6  # as --stats writes it
    warned = [r.getMessage() for r in caplog.records if "input overflow" in r.getMessage()]
    assert len(warned) == 1 and "'fake'" in warned[0]  # the first one is logged, the rest only counted


def test_a_child_flooding_stderr_keeps_delivering_samples():
    """1 MB of text on stderr (half before the header, half while streaming): far more than a pipe holds, so
    a supervisor that did not read it would see the child block and the samples stop."""
    flood = "print('ALSA lib confmisc.c:767:(parse_card) cannot find card ' + 'x' * 90, file=err)\n"
    before = "for _ in range(5000):\n    " + flood + "err.flush()"
    each = "if n <= 256 * 50:\n    for _ in range(100):\n        " + flood + "    err.flush()"
    mic = Microphone("fake", command=fake_child(before, each), stall_s=0.5, open_timeout_s=10)
    with mic:
        t0, n0 = time.monotonic(), mic.captured_samples
        time.sleep(1.5)
        captured, elapsed = mic.captured_samples - n0, time.monotonic() - t0
        state, losses = mic.state, mic.losses
        x = mic.ring.read_available()
    assert losses == 0 and state == "ok"
    assert captured > 0.8 * elapsed * SR, (captured, elapsed * SR)
    assert np.abs(x[-SR // 10:]).max() > 0.2
    assert "cannot find card" in mic._said[-1]  # the last words are kept for an error message


# The 2nd child writes a line that is not JSON, the 3rd a JSON header without its device, the 4th is fine.
BROKEN_SOMETIMES = """
count = int(open(args[0]).read()) + 1 if os.path.exists(args[0]) else 1
open(args[0], "w").write(str(count))
if count == 2:
    out.write(b"this is not json\\n"); out.flush(); time.sleep(60)
if count == 3:
    out.write(b'{"samplerate": 44100}\\n'); out.flush(); time.sleep(60)
"""


def test_a_malformed_header_is_a_failed_start_and_the_supervisor_retries(tmp_path, caplog):
    count = tmp_path / "starts"
    mic = Microphone("fake", command=fake_child(BROKEN_SOMETIMES, "", str(count)), stall_s=0.3, backoff_s=0.1)
    with mic:
        assert _wait(lambda: mic.ring.total_written > SR // 4, 10)
        os.kill(mic._proc.pid, signal.SIGKILL)
        assert _wait(lambda: mic.state == "ok" and mic.reconnects == 1, 20), (mic.state, count.read_text())
        assert mic.running and mic.error is None and count.read_text() == "4"
        mic.ring.read_available()
        time.sleep(0.3)
        assert np.abs(mic.ring.read_available()[-SR // 10:]).max() > 0.2
    warned = [r.getMessage() for r in caplog.records if "broke the protocol" in r.getMessage()]
    assert len(warned) == 1 and "not json" in warned[0]


def test_a_malformed_header_at_start_fails_start_with_the_line():
    bad = [sys.executable, "-c", "import sys, time; print('hello from a wrong program'); sys.stdout.flush(); "
           "time.sleep(60)"]
    with pytest.raises(AudioError, match="broke the protocol.*hello from a wrong program"):
        Microphone("fake", command=bad, open_timeout_s=5).start()


# -------------------------------------------------------------------------------------------- real PulseAudio

@pytest.fixture
def pulse_server():
    from livesound.audio.pulse import NullSink, missing_tools
    from livesound.audio.sources import _sounddevice, list_input_devices

    missing = missing_tools()
    if missing:
        pytest.skip(f"PulseAudio tools not installed: {', '.join(missing)}")
    try:
        sd = _sounddevice()
    except AudioError as e:
        pytest.skip(f"PortAudio unavailable: {e}")
    server = NullSink(sd, f"livesound_loss_{os.getpid()}")
    if not server.ours:
        pytest.skip("a PulseAudio server is already running; this test must own the server it stops")
    try:
        server.start()
    except AudioError as e:
        pytest.skip(f"cannot start a PulseAudio server: {e.problem}")
    try:
        if "pulse" not in [d["name"] for d in list_input_devices()]:
            pytest.skip("PortAudio shows no 'pulse' input device (needs libasound2-plugins)")
        yield server
    finally:
        server.stop()


def _frame(folder: Path, i: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(folder / f"frame_{i:06d}.png"), np.float32)


def test_contract_live_mic_survives_a_sound_server_restart(pulse_server, tmp_path):
    frames, out, stats = 420, tmp_path / "frames", tmp_path / "stats.json"
    noise = tmp_path / "noise.wav"
    sf.write(noise, (0.5 * np.random.default_rng(0).uniform(-1, 1, 3 * SR)).astype(np.float32), SR)
    proc = subprocess.Popen([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--source", "mic",
                             "--device", "pulse", "--headless", "--frames", str(frames), "--out", str(out),
                             "--stats", str(stats)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert _wait(lambda: len(list(out.glob("*.png"))) >= 30, 120), "".join(err)[-2000:]
        subprocess.run(["pulseaudio", "--kill"], check=True)          # the device goes away mid-run
        assert _wait(lambda: any("lost" in line for line in err), 10), "".join(err)[-2000:]
        n_at_loss = len(list(out.glob("*.png")))
        time.sleep(1.0)
        pulse_server.start()                                            # ... and comes back
        assert _wait(lambda: any("is back" in line for line in err), 20), "".join(err)[-2000:]
        assert len(list(out.glob("*.png"))) > n_at_loss + 20            # frames never stopped meanwhile
        pulse_server.play(noise)                                        # sound after the restart
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
    assert rc == 0, "".join(err)[-2000:]
    assert len(list(out.glob("frame_*.png"))) == frames
    d = json.loads(stats.read_text())
    assert d["source_losses"] >= 1 and d["source_reconnects"] >= 1
    assert isinstance(d["input_overflows"], int)                        # counted over every capture child
    rows = d["timeline"]["rows"]                                        # [t, frame, level, onset, state]
    lost = [i for i, r in enumerate(rows) if r[4] in ("lost", "reconnecting")]
    after = [i for i, r in enumerate(rows) if i > lost[-1]]
    loud = [i for i in after if rows[i][2] > 0.05]
    assert lost and len(loud) >= 20, f"sound after the restart did not reach the frames: {''.join(err)[-1500:]}"
    assert max(rows[i][2] for i in lost) < 1e-3                         # silence while the device was gone
    # The picture follows the sound: on silence it settles (two late silent frames nearly equal); the noise
    # after the restart moves it well away from that settled picture.
    settled, settled_too = _frame(out, lost[-1]), _frame(out, lost[-4])
    baseline = np.abs(settled - settled_too).mean()
    moved = np.median([np.abs(_frame(out, i) - settled).mean() for i in loud[5:20]])
    assert moved > 3 * baseline + 1.0, (moved, baseline)


def test_a_stderr_flood_without_newlines_stays_bounded():
    """8 MB on stderr in one "line": the supervisor keeps reading it (the child never blocks) and keeps only a
    bounded piece of it."""
    from livesound.audio.mic import MAX_ERR_LINE

    before = "for _ in range(2000):\n    err.write('A' * 4096)\nerr.flush()"
    each = "if n <= 256 * 40:\n    err.write('B' * 4096); err.flush()"
    mic = Microphone("fake", command=fake_child(before, each), stall_s=0.5, open_timeout_s=10)
    with mic:
        t0, n0 = time.monotonic(), mic.captured_samples
        time.sleep(1.0)
        captured, elapsed = mic.captured_samples - n0, time.monotonic() - t0
        buffered = len(mic._err_buf)
        state, losses = mic.state, mic.losses
    assert state == "ok" and losses == 0 and captured > 0.8 * elapsed * SR
    assert buffered <= MAX_ERR_LINE and all(len(line) <= 300 for line in mic._said)


@pytest.mark.parametrize("header", ['[1, 2]', '{"device": 5}', '{"device": "x", "latency": 1e400}',
                                    '{"device": "x", "latency": "soon"}', '"just a string"'])
def test_odd_but_valid_json_headers_are_a_failed_start(header):
    bad = [sys.executable, "-c", f"import sys, time; print({header!r}); sys.stdout.flush(); time.sleep(60)"]
    with pytest.raises(AudioError, match="broke the protocol"):
        Microphone("fake", command=bad, open_timeout_s=5).start()


def test_an_unexpected_error_in_the_supervisor_is_a_loss_not_the_end(caplog):
    """Before: any exception ended the supervisor thread for good; the source stayed silent and said "ok"."""
    mic = Microphone("fake", command=fake_child(), stall_s=0.3, backoff_s=0.1)
    real, calls = mic._write, []

    def write_then_fail_once(chunk):
        calls.append(len(chunk))
        if len(calls) == 20:
            raise OSError(5, "Input/output error")   # what a broken pipe read can raise mid-stream
        real(chunk)

    mic._write = write_then_fail_once
    with mic:
        assert _wait(lambda: mic.supervisor_errors == 1, 10)
        assert _wait(lambda: mic.state == "ok" and mic.reconnects == 1, 20), mic.state
        assert mic.running and mic.error is None
        mic.ring.read_available()
        time.sleep(0.3)
        assert np.abs(mic.ring.read_available()[-SR // 10:]).max() > 0.2
    assert sum("supervisor hit OSError" in r.getMessage() for r in caplog.records) == 1
