"""Live sources: pacing, exact file delivery, prompt stop, and the microphone path through PortAudio.

Real capture uses a PulseAudio null sink (docs/design.md): a sound played into the sink with ``paplay`` is
recorded by ``Microphone(device="pulse")`` (its capture child and supervisor, as `livesound live` runs them)
exactly as a microphone would be. Where PortAudio or PulseAudio is absent those tests skip and say which part
is missing.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from livesound.audio import sources
from livesound.audio.io import SAMPLE_RATE, AudioError, load_audio
from livesound.audio.mic import Microphone
from livesound.audio.pulse import NullSink, missing_tools
from livesound.audio.sources import (
    FileSource,
    SynthSource,
    format_device_list,
    list_input_devices,
    resolve_input_device,
)

SR = SAMPLE_RATE


@pytest.fixture
def thread_count():
    """Asserts that a test leaves no thread of its own running."""
    before = threading.active_count()
    yield
    assert threading.active_count() == before


def _tone(path, seconds: float, hz: float = 1000.0, amp: float = 0.5, sr: int = SR, channels: int = 1):
    t = np.arange(int(seconds * sr)) / sr
    x = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    sf.write(str(path), np.stack([x] * channels, 1), sr, subtype="PCM_16")
    return path


def _paced(source, seconds: float = 0.3) -> tuple[int, float]:
    """Run ``source`` for about ``seconds``; (samples written, wall seconds since just before start)."""
    t0 = time.monotonic()
    with source:
        time.sleep(seconds)
        written = source.ring.total_written
        elapsed = time.monotonic() - t0
    return written, elapsed


def _assert_real_time(written: int, elapsed: float, blocksize: int) -> None:
    # Never ahead of the clock (a block is due only once its samples' time has passed); loosely not behind.
    assert written <= elapsed * SR
    assert written >= 0.5 * (elapsed - 0.05) * SR - blocksize


# ----------------------------------------------------------------------------------------- synthetic

@pytest.mark.parametrize("kind", sources.SYNTH_KINDS)
def test_synth_is_paced_in_real_time(kind, thread_count):
    src = SynthSource(kind, blocksize=512)
    written, elapsed = _paced(src)
    _assert_real_time(written, elapsed, 512)
    assert src.error is None and not src.running
    block = src.ring.read_available()
    np.testing.assert_array_equal(block, src.render(0, len(block)))  # the ring holds the signal in order
    assert np.abs(block).max() <= src.amplitude + 1e-6


@pytest.mark.parametrize("kind", sources.SYNTH_KINDS)
def test_synth_is_deterministic_and_block_size_free(kind):
    a, b = SynthSource(kind, seed=3), SynthSource(kind, blocksize=100, seed=3)
    whole = a.render(20000, 5000)  # spans a click onset (every 22050 samples)
    np.testing.assert_array_equal(whole, np.concatenate([b.render(20000, 1234), b.render(21234, 3766)]))
    assert whole.dtype == np.float32 and np.abs(whole).max() > 0.1


def test_synth_sine_frequency_and_noise_statistics():
    x = SynthSource("sine", frequency=1000.0).render(0, SR)
    assert np.argmax(np.abs(np.fft.rfft(x))) == 1000  # 1 Hz bins over one second
    n = SynthSource("noise", amplitude=1.0).render(0, 200_000)
    assert abs(n.mean()) < 0.01 and abs(n.var() - 1 / 3) < 0.01  # uniform on [-1, 1]
    assert abs(np.corrcoef(n[:-1], n[1:])[0, 1]) < 0.01


def test_synth_clicks_onsets_mark_where_each_click_starts(thread_count):
    src = SynthSource("clicks", period=0.05, duration=0.2)
    with src:
        assert src.finished.wait(2.0)
    x = src.ring.read_available()
    assert len(x) == int(0.2 * SR)
    onsets = src.onsets()
    np.testing.assert_array_equal(onsets, np.arange(0, len(x), src.period_samples))
    assert len(onsets) == 4
    for k in onsets[1:]:
        assert not x[k - 200:k].any()  # silence just before
        assert np.abs(x[k:k + 100]).max() > 0.3  # a burst just after


def test_synth_rejects_unknown_kind():
    with pytest.raises(ValueError, match="chirp"):
        SynthSource("square")
    with pytest.raises(ValueError, match="clicks"):
        SynthSource("sine").onsets()


# --------------------------------------------------------------------------------------------- files

def test_file_source_realtime_pacing(tmp_path, thread_count):
    path = _tone(tmp_path / "tone.wav", 2.0)
    src = FileSource(path, realtime=True, blocksize=512)
    written, elapsed = _paced(src)
    _assert_real_time(written, elapsed, 512)
    np.testing.assert_array_equal(src.ring.read_available(), load_audio(path)[:written])


def test_file_source_fast_delivers_the_whole_file_exactly(tmp_path, thread_count):
    path = _tone(tmp_path / "stereo48k.wav", 1.0, hz=440.0, sr=48000, channels=2)
    want = load_audio(path)
    src = FileSource(path, realtime=False, blocksize=700, ring_seconds=0.05)  # a ring much shorter than the file
    got = []
    with src:
        while not (src.finished.is_set() and src.ring.available == 0):
            block = src.ring.read(1500)
            if len(block):
                got.append(block)
            else:
                time.sleep(0.001)
    np.testing.assert_array_equal(np.concatenate(got), want)
    assert src.ring.overruns == 0 and src.error is None


def test_file_source_loops_without_a_gap(tmp_path, thread_count):
    path = _tone(tmp_path / "short.wav", 0.1, hz=300.0)
    want = load_audio(path)
    src = FileSource(path, realtime=False, loop=True, blocksize=1000, ring_seconds=0.5)
    got, n = [], int(2.5 * len(want))
    with src:
        while sum(map(len, got)) < n:
            got.append(src.ring.read(n - sum(map(len, got))))
            time.sleep(0.001)
        assert not src.finished.is_set()
    np.testing.assert_array_equal(np.concatenate(got), np.tile(want, 3)[:n])


def test_file_source_bad_file_fails_in_the_callers_thread(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav"):
        FileSource(path)


def test_stop_joins_within_a_second_and_is_idempotent(tmp_path):
    before = threading.active_count()
    path = _tone(tmp_path / "tone.wav", 2.0)
    srcs = [SynthSource("noise"), FileSource(path), FileSource(path, realtime=False, ring_seconds=0.02)]
    for s in srcs:
        s.start()
    time.sleep(0.1)
    assert all(s.running for s in srcs)
    assert threading.active_count() == before + len(srcs)
    t0 = time.monotonic()
    for s in srcs:
        s.stop()
        s.stop()
    assert time.monotonic() - t0 < 1.0
    assert threading.active_count() == before and not any(s.running for s in srcs)


def test_restart_resumes_the_sample_clock():
    src = SynthSource("sine", blocksize=256)
    with src:
        time.sleep(0.05)
    first = src.ring.total_written
    with src:
        time.sleep(0.05)
    x = src.ring.read_available()
    assert src.ring.total_written > first
    np.testing.assert_array_equal(x, src.render(0, len(x)))


def test_thread_failure_is_stored_in_error(thread_count):
    src = SynthSource("sine")
    src.render = lambda start, n: 1 / 0  # noqa: E731 - stands in for any failure inside the thread
    src.start()
    src._thread.join(1.0)
    assert isinstance(src.error, ZeroDivisionError) and not src.running
    src.stop()


# ----------------------------------------------------------------------------------------- microphone

class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Makes ``import sounddevice`` fail as it does when libportaudio2 is missing."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_is_reported_clearly(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    for call in (Microphone, list_input_devices, format_device_list):
        with pytest.raises(AudioError) as info:
            call()
        msg = str(info.value)
        assert "PortAudio library not found" in msg and "libportaudio2" in msg and "--source file" in msg


def test_device_resolution_by_index_and_name():
    devs = [{"index": 0, "name": "HDA Intel PCH: ALC3246 Analog", "channels": 2, "samplerate": 44100.0,
             "hostapi": "ALSA", "default": False},
            {"index": 3, "name": "USB Audio Mic", "channels": 1, "samplerate": 48000.0, "hostapi": "ALSA",
             "default": True},
            {"index": 4, "name": "pulse", "channels": 32, "samplerate": 44100.0, "hostapi": "ALSA",
             "default": False}]
    assert resolve_input_device(None, devs)["index"] == 3
    assert resolve_input_device(4, devs)["name"] == "pulse"
    assert resolve_input_device("0", devs)["index"] == 0
    assert resolve_input_device("usb", devs)["index"] == 3
    assert resolve_input_device("PULSE", devs)["index"] == 4
    with pytest.raises(AudioError, match=r"not found; available: \[0\] HDA.*\[3\] USB Audio Mic, \[4\] pulse"):
        resolve_input_device("no-such-mic", devs)
    with pytest.raises(AudioError, match="no input device with this index"):
        resolve_input_device(7, devs)
    with pytest.raises(AudioError, match="several devices"):
        resolve_input_device("a", devs)
    with pytest.raises(AudioError, match="no input device found"):
        resolve_input_device(None, [])
    text = format_device_list(devs)
    assert "*   3  USB Audio Mic" in text and "pulse" in text
    assert "no audio input devices" in format_device_list([])


def _require_sounddevice():
    try:
        return sources._sounddevice()
    except AudioError as e:
        pytest.skip(f"PortAudio unavailable: {e}")


def test_unknown_device_name_gives_a_clear_error():
    _require_sounddevice()
    with pytest.raises(AudioError) as info:
        Microphone(device="no-such-device-xyz")
    msg = str(info.value)
    assert "\n" not in msg
    # With devices present the message lists them; on a machine with none it says there are none.
    assert "'no-such-device-xyz': not found; available: [" in msg or "no input device found" in msg


@pytest.fixture(scope="module")
def pulse():
    missing = missing_tools()
    if missing:
        pytest.skip(f"PulseAudio tools not installed: {', '.join(missing)} "
                    "(apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
    server = NullSink(_require_sounddevice(), f"livesound_test_{os.getpid()}")
    try:
        server.start()
    except AudioError as e:
        pytest.skip(f"cannot start a PulseAudio server: {e.problem}")
    try:
        names = [d["name"] for d in list_input_devices()]
        if "pulse" not in names:
            pytest.skip(f"PortAudio shows no 'pulse' input device (needs libasound2-plugins); has {names}")
        yield server
    finally:
        server.stop()


def _capture_tone(pulse, tmp_path, channels: int = 1) -> np.ndarray:
    path = _tone(tmp_path / "tone.wav", 0.5, hz=1000.0, amp=0.5, channels=2)
    mic = Microphone(device="pulse", channels=channels, blocksize=256)
    assert mic.samplerate == SR and mic.name == "mic:pulse"
    with mic:
        assert mic.running and mic.state == "ok" and mic.opened_device == "pulse"
        pulse.play(path)
        time.sleep(0.2)
        assert mic.captured_samples > 0.5 * SR and mic.losses == 0
        # PortAudio's figure for the open stream (what the latency benchmark adds to the capture part).
        assert 0 < mic.input_latency < 0.5
    assert not mic.running and mic.error is None and mic.state == "stopped"
    assert mic.ring.overruns == 0 and mic.input_overflows == 0
    return mic.ring.read_available()


def _assert_heard_the_tone(x: np.ndarray) -> None:
    assert len(x) > 0.5 * SR
    assert np.sum(np.abs(x) > 0.05) > 0.3 * SR  # most of the tone arrived
    assert abs(np.argmax(np.abs(np.fft.rfft(x))) * SR / len(x) - 1000.0) < 10
    assert 0.4 < np.abs(x).max() < 0.6  # a 0.5 tone, not doubled or halved by the mono mix


@pytest.mark.parametrize("channels", [1, 2])
def test_mic_captures_sound_played_into_the_sink(pulse, tmp_path, channels, thread_count):
    _assert_heard_the_tone(_capture_tone(pulse, tmp_path, channels))


def test_device_listing_shows_pulse(pulse):
    devices = list_input_devices()
    assert any(d["name"] == "pulse" for d in devices)
    assert "pulse" in format_device_list()
    with pytest.raises(AudioError, match=r"not found; available: \[.*pulse"):
        Microphone(device="no-such-device-xyz")

