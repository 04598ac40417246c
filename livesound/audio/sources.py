"""Live sources: a file played in real time, a synthetic signal, and the device helpers of the microphone.

Each source fills a RingBuffer. The microphone itself is ``livesound.audio.mic.Microphone`` (the one capture
path, in a child process); this module holds what it and ``--list-devices`` share: importing sounddevice with a
clear error, listing input devices and resolving ``--device``.

Threading contract
- ``FileSource`` / ``SynthSource``: one daemon thread each, which generates a block, sleeps until that
  block's due time (start of a monotonic clock + samples written / rate, so the pace never drifts), and
  writes the ring. It blocks only on its stop event (as a timed sleep); a non-realtime ``FileSource`` also
  polls the ring's fill level so it never overwrites what the consumer has not read.
- The caller's thread calls ``start``/``stop`` and reads the ring. ``stop`` returns within about 1 s and
  the thread is gone by then.
- What crosses threads: samples through the ring (lock-free, see ``ring.py``), ``threading.Event`` flags
  (stop, ``finished``), and counters and ``error`` that only the source's thread writes and the caller
  only reads. A failure inside the thread is stored in ``error`` and ends the source; nothing is raised
  into the caller.
"""

from __future__ import annotations

import abc
import importlib
import threading
import time
from pathlib import Path

import numpy as np

from livesound.audio.io import SAMPLE_RATE, AudioError, load_audio
from livesound.audio.ring import RingBuffer

RING_SECONDS = 20.0  # twice the encoder's ~10 s window, so a window is always whole in the ring
STOP_TIMEOUT_S = 1.0
_POLL_S = 0.002  # how often a non-realtime FileSource looks for room in the ring


class AudioSource(abc.ABC):
    """One live source of mono float32 samples at ``samplerate``, delivered into ``ring``.

    ``start()`` begins delivery, ``stop()`` ends it (idempotent); also a context manager. ``running`` is
    true between them unless the source failed or ended; ``error`` holds a failure seen in the audio
    callback or source thread (None otherwise).
    """

    def __init__(self, name: str, samplerate: int, ring_seconds: float = RING_SECONDS):
        self.name = name
        self.samplerate = int(samplerate)
        self.ring = RingBuffer(max(1, int(round(ring_seconds * self.samplerate))))
        self.error: BaseException | None = None

    @property
    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def start(self) -> "AudioSource": ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> "AudioSource":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"{type(self).__name__}({self.name!r}, {self.samplerate} Hz, {state})"


# -------------------------------------------------------------------------------------------- threaded

class _ThreadedSource(AudioSource):
    """A source whose samples come from ``_next_block`` in a daemon thread paced by a monotonic clock.

    ``start`` after ``stop`` resumes where delivery stopped.
    """

    def __init__(self, name: str, samplerate: int, blocksize: int, realtime: bool, ring_seconds: float):
        super().__init__(name, samplerate, ring_seconds)
        if blocksize <= 0:
            raise ValueError(f"blocksize must be positive, got {blocksize}")
        self.blocksize = int(blocksize)
        self.realtime = realtime
        self.finished = threading.Event()  # set when a finite source has delivered its last sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pos = 0  # samples delivered; a restart resumes here, so the ring's clock stays the source's

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "_ThreadedSource":
        if self.running:
            return self
        # A fresh event per run: a thread that outlived stop()'s join still sees its own event set.
        self._stop = threading.Event()
        self.finished.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name=f"livesound-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None

    @abc.abstractmethod
    def _next_block(self, pos: int) -> np.ndarray | None:
        """Samples ``[<=blocksize]`` starting at absolute sample ``pos``; None when the source has ended."""

    def _run(self, stop: threading.Event) -> None:
        try:
            t0, pos0 = time.monotonic(), self._pos
            while not stop.is_set():
                block = self._next_block(self._pos)
                if block is None:
                    self.finished.set()
                    return
                if self.realtime:
                    # A block exists once it has "been recorded": due when its last sample's time has come.
                    due = t0 + (self._pos - pos0 + len(block)) / self.samplerate
                    delay = due - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
                elif not self._wait_for_room(len(block), stop):
                    return
                self.ring.write(block)
                self._pos += len(block)
        except BaseException as e:  # noqa: BLE001 - stored for the caller; a thread has nobody to raise to
            self.error = e

    def _wait_for_room(self, n: int, stop: threading.Event) -> bool:
        """Wait until ``n`` samples fit without overwriting unread ones; False if stopped meanwhile."""
        while self.ring.capacity - self.ring.available < n:
            if stop.wait(_POLL_S):
                return False
        return True


class FileSource(_ThreadedSource):
    """An audio file played into the ring, paced in real time (like a microphone) or as fast as read.

    The file is decoded (``load_audio``) when the source is made, so a bad file fails here, in the caller's
    thread. ``realtime=False`` never overruns the reader: it waits while the ring is full. ``loop`` repeats
    the file without a gap; otherwise ``finished`` is set after the last sample.
    """

    def __init__(self, path: Path | str, realtime: bool = True, loop: bool = False, blocksize: int = 512,
                 samplerate: int = SAMPLE_RATE, ring_seconds: float = RING_SECONDS, max_seconds: float | None = None):
        self.path = Path(path)
        self.samples = load_audio(self.path, samplerate, max_seconds=max_seconds)  # [T]
        super().__init__(f"file:{self.path.name}", samplerate, blocksize, realtime, ring_seconds)
        self.loop = loop
        if not realtime and self.ring.capacity < self.blocksize:
            raise ValueError(f"ring ({self.ring.capacity} samples) smaller than one block ({self.blocksize})")

    def _next_block(self, pos: int) -> np.ndarray | None:
        total = len(self.samples)
        if not self.loop and pos >= total:
            return None
        start = pos % total
        block = self.samples[start:start + self.blocksize]
        if self.loop and len(block) < self.blocksize:  # wrap: finish the block from the file's start
            block = np.concatenate([block, self.samples[:self.blocksize - len(block)]])
        return block


SYNTH_KINDS = ("chirp", "noise", "sine", "clicks")


class SynthSource(_ThreadedSource):
    """A deterministic synthetic signal, generated block by block and paced in real time.

    Every sample is a pure function of its absolute index, so the signal does not depend on the block size.
    - ``sine``: ``frequency`` Hz.
    - ``chirp``: exponential sweep from ``f0`` to ``f1`` Hz over ``period`` seconds, repeated.
    - ``noise``: white, uniform in [-amplitude, amplitude], from a hash of (index, seed).
    - ``clicks``: a short decaying 2 kHz burst starting every ``period`` seconds, the first at sample 0.
      ``onsets()`` gives the sample index of each onset written so far, to measure sound-to-picture latency.
    ``duration`` (seconds) makes the source finite; None runs until stopped.
    """

    CLICK_HZ = 2000.0
    CLICK_DECAY_S = 0.002
    CLICK_LEN_S = 0.02

    def __init__(self, kind: str = "chirp", samplerate: int = SAMPLE_RATE, blocksize: int = 512, *,
                 amplitude: float = 0.5, frequency: float = 440.0, f0: float = 50.0, f1: float = 8000.0,
                 period: float = 0.5, seed: int = 0, duration: float | None = None,
                 ring_seconds: float = RING_SECONDS):
        if kind not in SYNTH_KINDS:
            raise ValueError(f"unknown synth kind {kind!r}; choose one of {', '.join(SYNTH_KINDS)}")
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        super().__init__(f"synth:{kind}", samplerate, blocksize, True, ring_seconds)
        self.kind, self.amplitude, self.seed = kind, float(amplitude), int(seed)
        self.frequency, self.f0, self.f1 = float(frequency), float(f0), float(f1)
        self.period_samples = max(1, int(round(period * self.samplerate)))
        self.total = None if duration is None else int(round(duration * self.samplerate))

    def onsets(self) -> np.ndarray:
        """Sample indices ``[K]`` of the click onsets delivered to the ring so far (``clicks`` only)."""
        if self.kind != "clicks":
            raise ValueError(f"onsets exist only for kind 'clicks', this source is {self.kind!r}")
        written = self.ring.total_written
        return np.arange(0, written, self.period_samples, dtype=np.int64)

    def render(self, start: int, n: int) -> np.ndarray:
        """Samples ``[n]`` from absolute index ``start``."""
        idx = np.arange(start, start + n, dtype=np.int64)
        sr = self.samplerate
        if self.kind == "sine":
            # Phase in cycles, wrapped to [0, 1) before scaling, stays accurate after hours of samples.
            y = np.sin(2 * np.pi * np.mod(self.frequency * idx / sr, 1.0))
        elif self.kind == "chirp":
            t = (idx % self.period_samples) / sr
            span = self.period_samples / sr
            k = np.log(self.f1 / self.f0)
            y = np.sin(2 * np.pi * self.f0 * span / k * np.expm1(k * t / span))
        elif self.kind == "noise":
            y = 2.0 * _hash_uniform(idx, self.seed) - 1.0
        else:
            t = (idx % self.period_samples) / sr
            y = np.where(t < self.CLICK_LEN_S,
                         np.sin(2 * np.pi * self.CLICK_HZ * t) * np.exp(-t / self.CLICK_DECAY_S), 0.0)
        return (self.amplitude * y).astype(np.float32)

    def _next_block(self, pos: int) -> np.ndarray | None:
        n = self.blocksize if self.total is None else min(self.blocksize, self.total - pos)
        if n <= 0:
            return None
        return self.render(pos, n)


def _hash_uniform(idx: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) from a SplitMix64-style integer mix of (index, seed): random access, no state."""
    golden = 0x9E3779B97F4A7C15
    # Array uint64 arithmetic wraps modulo 2**64, which the mix relies on (Python ints for the scalar part).
    z = idx.astype(np.uint64) + np.uint64((seed * golden) & 0xFFFFFFFFFFFFFFFF)
    z *= np.uint64(golden)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


# ------------------------------------------------------------------------------ input devices (PortAudio)

def _sounddevice():
    """Import sounddevice, turning a missing PortAudio or package into one clear AudioError."""
    try:
        return importlib.import_module("sounddevice")
    except OSError:
        raise AudioError("sounddevice", "PortAudio library not found: install libportaudio2 "
                                        "(Debian/Ubuntu: apt-get install libportaudio2) "
                                        "or use --source file/synth") from None
    except ImportError:
        raise AudioError("sounddevice", "the sounddevice package is not installed "
                                        "(pip install sounddevice) or use --source file/synth") from None


def list_input_devices() -> list[dict]:
    """Every device with input channels: index, name, channels, samplerate, hostapi, default (bool)."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise AudioError("sounddevice", f"cannot list audio devices ({e})") from None
    return [{"index": d["index"], "name": d["name"], "channels": d["max_input_channels"],
             "samplerate": d["default_samplerate"], "hostapi": hostapis[d["hostapi"]]["name"],
             "default": d["index"] == default_in}
            for d in devices if d["max_input_channels"] > 0]


def format_device_list(devices: list[dict] | None = None) -> str:
    """Input devices as text for ``--list-devices`` (the default marked with ``*``)."""
    devices = list_input_devices() if devices is None else devices
    if not devices:
        return "no audio input devices found (use --source file or --source synth)"
    lines = ["audio input devices (use --device INDEX or a part of the name):"]
    for d in devices:
        mark = "*" if d["default"] else " "
        lines.append(f"{mark} {d['index']:>3}  {d['name']}  ({d['hostapi']}, {d['channels']} in, "
                     f"{d['samplerate']:.0f} Hz)")
    return "\n".join(lines)


def _short_list(devices: list[dict]) -> str:
    return ", ".join(f"[{d['index']}] {d['name']}" for d in devices)


def resolve_input_device(device: int | str | None, devices: list[dict]) -> dict:
    """Pick the input device meant by an index, a (case-insensitive) part of its name, or None = default."""
    if not devices:
        raise AudioError("audio input", "no input device found (PortAudio sees none); "
                                        "use --source file or --source synth")
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    if device is None:
        for d in devices:
            if d["default"]:
                return d
        return devices[0]
    if isinstance(device, int):
        for d in devices:
            if d["index"] == device:
                return d
        raise AudioError(f"input device {device}", f"no input device with this index; "
                                                   f"available: {_short_list(devices)}")
    want = device.lower()
    exact = [d for d in devices if d["name"].lower() == want]
    if exact:
        return exact[0]
    found = [d for d in devices if want in d["name"].lower()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise AudioError(f"input device {device!r}", f"not found; available: {_short_list(devices)}")
    raise AudioError(f"input device {device!r}", f"matches several devices ({_short_list(found)}); "
                                                 "give more of the name or the index")
