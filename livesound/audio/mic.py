"""The microphone: the one capture path of `livesound live` and `livesound bench latency`.

The stream runs in a capture child process (``livesound.audio.capture_child``) that writes raw samples into a
pipe; this side copies them into the RingBuffer. What the child says on stderr is read while it runs: its
``overflow TOTAL`` lines are counted in ``input_overflows`` (samples PortAudio lost before the child read
them: never silent), and the last few other lines are kept to explain a failure. When no samples come for
``stall_s`` (device unplugged, sound server stopped, the child hung inside PortAudio) or the child exits, the
source:
1. logs it once and sets ``state`` to "lost";
2. feeds silence into the ring at the real-time rate, so the picture keeps going (on silence);
3. kills the child (SIGKILL: a child hung in a driver cannot be asked nicely) and reaps it;
4. starts a fresh child with exponential backoff (``backoff_s`` doubling to ``max_backoff_s``), state
   "reconnecting", asking for the same device by name, which falls back to the default input when that name
   is gone; when samples flow again, state is "ok" and one line says so. A child whose header line is not
   the protocol's is a failed start like any other: killed, and the next one tried. Any other error in the
   supervisor (a bug, an odd pipe error) is handled as a lost stream too, and counted in ``supervisor_errors``:
   the supervisor never ends while the source runs.
Each child is a fresh PortAudio, which enumerates the devices anew: nothing from a dead stream lingers here.

Threading contract
- One supervisor thread (``livesound-mic``) owns the child, its pipes and the ring's producer side. It blocks
  only in ``select`` on the child's stdout and stderr together, with a timeout of one block, so a chatty
  child can never fill its stderr pipe and stall.
- The caller's thread calls ``start``/``stop`` and reads ``state``, the counters, ``input_latency`` and
  ``ring``. ``stop`` kills the child and joins the thread within about a second.
- What crosses threads: samples through the ring; ``state``, counters, ``input_latency`` and ``error`` written
  only by the supervisor (single attribute stores).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time

import numpy as np

from livesound.audio.io import SAMPLE_RATE, AudioError
from livesound.audio.sources import (
    RING_SECONDS,
    STOP_TIMEOUT_S,
    AudioSource,
    list_input_devices,
    resolve_input_device,
)

log = logging.getLogger("livesound")
STATES = ("connecting", "ok", "lost", "reconnecting", "stopped")
MAX_HEADER = 4096     # bytes before the header's newline; more is not our child talking
MAX_ERR_LINE = 4096   # a stderr "line" longer than this is cut, so a flood without newlines stays bounded
KEEP_LINES = 5        # stderr lines kept to explain a failure
READ_BYTES = 65536


class _BadHeader(ValueError):
    """The child's first line is not the protocol's header."""


class Microphone(AudioSource):
    """An input device captured in a child process, reconnected with backoff after a loss.

    ``device`` is resolved here (index, part of a name, or None for the default) so a wrong name fails at once
    with the list of devices; reconnections ask for that device's name again. ``latency`` is the device
    latency PortAudio is asked for (``"low"``, ``"high"`` or seconds); ``input_latency`` is what the open
    stream reports (seconds, None until a child has opened one). ``input_overflows`` counts blocks PortAudio
    reported as overflowed, over all children; ``captured_samples`` counts samples from the device (the ring
    also holds the silence written while it was gone: ``silence_samples``). ``command`` replaces the child's
    argv (tests run a stand-in child that writes the same protocol).
    """

    def __init__(self, device: int | str | None = None, samplerate: int = SAMPLE_RATE, blocksize: int = 256,
                 channels: int = 1, ring_seconds: float = RING_SECONDS, latency: str | float | None = "low",
                 stall_s: float = 1.5, backoff_s: float = 0.25, max_backoff_s: float = 4.0,
                 open_timeout_s: float = 10.0, command: list[str] | None = None):
        if blocksize <= 0:
            raise ValueError(f"blocksize must be positive, got {blocksize}")
        if not (latency in (None, "low", "high") or (isinstance(latency, (int, float)) and latency >= 0)):
            raise ValueError(f"latency must be 'low', 'high' or seconds >= 0, got {latency!r}")
        if command is None:
            dev = resolve_input_device(device, list_input_devices())
            self.device_name = dev["name"]
            command = [sys.executable, "-m", "livesound.audio.capture_child", "--device", self.device_name,
                       "--samplerate", str(samplerate), "--blocksize", str(blocksize), "--channels", str(channels),
                       "--latency", str(latency if latency is not None else "high")]
        else:
            self.device_name = str(device)
        super().__init__(f"mic:{self.device_name}", samplerate, ring_seconds)
        self.blocksize, self.stall_s, self.latency = int(blocksize), float(stall_s), latency
        self.backoff_s, self.max_backoff_s, self.open_timeout_s = backoff_s, max_backoff_s, open_timeout_s
        self.command = command
        self.state = "stopped"
        self.opened_device: str | None = None  # what the running child opened (maybe the default input)
        self.input_latency: float | None = None
        self.input_overflows = 0
        self.captured_samples = 0
        self.losses = 0
        self.reconnects = 0
        self.silence_samples = 0
        self.supervisor_errors = 0  # unexpected errors the supervisor survived (each handled as a loss)
        self._proc: subprocess.Popen | None = None
        self._pending = b""
        self._got_samples = False
        self._silence_from: float | None = None
        self._err_open = False
        self._err_buf = b""
        self._said: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        self._child_overflows = 0
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- caller's thread --------------------------------------------------------------------------------------
    def start(self) -> "Microphone":
        """Open the device (raises AudioError when the first child cannot), then supervise it."""
        if self.running:
            return self
        self._stop = threading.Event()
        self.state = "connecting"
        problem = self._spawn(self.open_timeout_s)
        if problem:
            self.state = "stopped"
            raise AudioError(f"input device {self.device_name!r}", problem)
        self.state = "ok"
        self._thread = threading.Thread(target=self._supervise, args=(self._stop,), name="livesound-mic",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._kill()
        self.state = "stopped"

    # -- supervisor thread ------------------------------------------------------------------------------------
    def _supervise(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._pump(stop)                # returns when the stream is lost (or on stop)
                if stop.is_set():
                    return
                self._recover(stop)
            except Exception as e:  # noqa: BLE001 - whatever the child did, the picture goes on: a lost stream
                self.supervisor_errors += 1
                self._warn_once("supervisor", "livesound: the microphone supervisor hit %s: %s; treated as a lost "
                                "stream (further ones are counted in supervisor_errors)", type(e).__name__, e)
                self._kill()
                self.state = "lost"
                if stop.is_set():
                    return
                try:
                    self._recover(stop)
                except Exception as again:  # noqa: BLE001 - the recovery itself keeps failing: stop, reported
                    self.error = again
                    self.state = "stopped"
                    log.exception("livesound: the microphone supervisor failed: %s", again)
                    return
            except BaseException as e:  # noqa: BLE001 - stored for the caller; a thread has nobody to raise to
                self.error = e
                log.exception("livesound: the microphone supervisor stopped: %s", e)
                return

    def _pump(self, stop: threading.Event) -> None:
        """Copy samples from the child into the ring until none came for ``stall_s`` or the child ended.

        A fresh stream may take a second or two to deliver its first samples (the sound server starts it):
        until then the grace is ``open_timeout_s``, and silence keeps the picture going."""
        last = time.monotonic()
        waiting = not self._got_samples
        while not stop.is_set():
            chunk = self._read(self.blocksize / self.samplerate)
            if chunk == b"":  # the child ended
                return self._lost(self._child_said() or "the capture process ended")
            if chunk is not None:
                self._write(chunk)
                last = time.monotonic()
                waiting = waiting and not self._got_samples
            elif waiting and time.monotonic() - last < self.open_timeout_s:
                self._write_silence_until(last)
            elif time.monotonic() - last > self.stall_s:
                return self._lost(f"no audio for {self.stall_s:.1f} s")

    def _lost(self, why: str) -> None:
        self.losses += 1
        self.state = "lost"
        log.warning("livesound: input device %r lost (%s); the picture goes on with silence while livesound "
                    "reconnects", self.opened_device or self.device_name, why)
        self._kill()

    def _recover(self, stop: threading.Event) -> None:
        """Silence at the real-time rate, and a fresh child at each backoff step, until one delivers."""
        t_lost = time.monotonic()
        silence = np.zeros(self.blocksize, np.float32)
        clock, written = time.monotonic(), 0
        delay, next_try = self.backoff_s, time.monotonic() + self.backoff_s
        while not stop.is_set():
            due = clock + (written + self.blocksize) / self.samplerate
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            self.ring.write(silence)
            written += self.blocksize
            self.silence_samples += self.blocksize
            if time.monotonic() < next_try:
                continue
            self.state = "reconnecting"
            if self._spawn(timeout=0.0) is None:
                # started: keep the silence going until its first samples arrive (or it fails)
                if self._await_first_samples(stop, silence, clock, written):
                    self.reconnects += 1
                    self.state = "ok"
                    log.warning("livesound: input device %r is back after %.1f s", self.opened_device,
                                time.monotonic() - t_lost)
                    return
                written = int((time.monotonic() - clock) * self.samplerate) // self.blocksize * self.blocksize
            delay = min(delay * 2, self.max_backoff_s)
            next_try = time.monotonic() + delay
            log.debug("livesound: reconnecting %r failed; next try in %.2f s", self.device_name, delay)

    def _await_first_samples(self, stop, silence, clock, written) -> bool:
        """Feed silence until the new child's header and samples arrive (True) or it fails/times out."""
        deadline = time.monotonic() + self.open_timeout_s
        while not stop.is_set() and time.monotonic() < deadline:
            chunk = self._read(self.blocksize / self.samplerate)
            if chunk == b"":
                log.debug("livesound: the new capture process ended: %s", self._child_said())
                break
            if chunk is not None:
                try:
                    if self._take_header(chunk) and self._got_samples:
                        return True
                except _BadHeader as e:
                    self._warn_once("header", "livesound: the capture process for %r broke the protocol (%s); "
                                    "it is treated as a failed start and retried", self.device_name, e)
                    break
                continue
            due = clock + (written + self.blocksize) / self.samplerate
            if time.monotonic() >= due:
                self.ring.write(silence)
                written += self.blocksize
                self.silence_samples += self.blocksize
        self._kill()
        return False

    # -- the child --------------------------------------------------------------------------------------------
    def _spawn(self, timeout: float) -> str | None:
        """Start a child; with ``timeout`` > 0 wait for its header. None when it runs, else the problem."""
        self._kill()
        self._pending, self.opened_device, self.input_latency, self._got_samples = b"", None, None, False
        self._silence_from = None
        self._err_open, self._err_buf, self._child_overflows = True, b"", 0
        self._said.clear()
        self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, close_fds=True)
        if timeout <= 0:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = self._read(0.05)
            if chunk == b"":
                break
            try:
                if chunk is not None and self._take_header(chunk):
                    return None
            except _BadHeader as e:
                self._kill()
                return f"the capture process broke the protocol ({e})"
        problem = self._child_said() or f"the capture process gave no audio within {timeout:.0f} s"
        self._kill()
        return problem

    def _read(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` for bytes on the child's stdout, taking in its stderr meanwhile.

        The bytes, b"" once stdout has ended, None when nothing came in time."""
        proc = self._proc
        out_fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            fds = [out_fd, proc.stderr.fileno()] if self._err_open else [out_fd]
            ready, _, _ = select.select(fds, [], [], max(0.0, deadline - time.monotonic()))
            if len(fds) > 1 and fds[1] in ready:
                self._take_stderr(os.read(fds[1], READ_BYTES))
            if out_fd in ready:
                return os.read(out_fd, READ_BYTES)
            if not ready or time.monotonic() >= deadline:
                return None

    def _take_stderr(self, data: bytes) -> None:
        """Parse the child's stderr: ``overflow TOTAL`` lines are counted, the rest kept as its last words."""
        if not data:  # the child closed stderr: what is left is its last line
            self._err_open, data = False, b"\n"
        self._err_buf += data
        *lines, self._err_buf = self._err_buf.split(b"\n")
        if len(self._err_buf) > MAX_ERR_LINE:
            lines.append(self._err_buf[:MAX_ERR_LINE])
            self._err_buf = b""
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            kind, _, value = line.partition(" ")
            if kind == "overflow" and value.isascii() and value.isdigit():
                self._count_overflows(int(value))
            elif line:
                self._said.append(line[:300])

    def _count_overflows(self, total: int) -> None:
        """``total`` is the running child's own count; ours adds up every child's."""
        if total > self._child_overflows:
            self.input_overflows += total - self._child_overflows
            self._child_overflows = total
            self._warn_once("overflow", "livesound: input overflow on %r: PortAudio lost samples before "
                            "livesound read them (a busy machine, or too short a --latency); counted in "
                            "input_overflows, not logged again", self.opened_device or self.device_name)

    def _take_header(self, chunk: bytes) -> bool:
        """Collect the header line; True once it is complete (any samples after it go to the ring)."""
        if self.opened_device is not None:
            self._write(chunk)
            return True
        self._pending += chunk
        line, sep, rest = self._pending.partition(b"\n")
        if not sep:
            if len(self._pending) > MAX_HEADER:
                raise _BadHeader(f"no header line in its first {MAX_HEADER} bytes")
            return False
        try:
            info = json.loads(line)
            device, latency, note = info["device"], info.get("latency"), info.get("note")
            if not isinstance(device, str):
                raise TypeError("device is not a string")
            latency = None if latency is None else float(latency)
            if latency is not None and not 0 <= latency < 60:
                raise ValueError(f"latency {latency} s")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise _BadHeader(f"header line {line[:80]!r}: {type(e).__name__}: {e}") from None
        self.opened_device, self.input_latency, self._pending = device, latency, b""
        if note:
            log.warning("livesound: %s", note)
        if rest:
            self._write(rest)
        return True

    def _write(self, chunk: bytes) -> None:
        data = self._pending + chunk
        n = len(data) // 4 * 4
        self._pending = data[n:]
        if n:
            self.ring.write(np.frombuffer(data[:n], dtype="<f4"))
            self.captured_samples += n // 4
            self._got_samples = True

    def _write_silence_until(self, since: float) -> None:
        """While a new stream has not delivered yet: silence at the real-time rate since ``since``."""
        if self._silence_from is None:
            self._silence_from, self._silence_done = since, 0
        due = int((time.monotonic() - self._silence_from) * self.samplerate) - self._silence_done
        if due >= self.blocksize:
            n = due // self.blocksize * self.blocksize
            self.ring.write(np.zeros(n, np.float32))
            self._silence_done += n
            self.silence_samples += n

    def _child_said(self) -> str | None:
        """Why the child ended, from its last words on stderr (its own ``capture:`` line first)."""
        proc = self._proc
        if proc is None:
            return None
        try:
            proc.wait(timeout=1.0)
            deadline = time.monotonic() + 1.0
            while self._err_open and time.monotonic() < deadline:
                if select.select([proc.stderr.fileno()], [], [], 0.1)[0]:
                    self._take_stderr(os.read(proc.stderr.fileno(), READ_BYTES))
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return None
        own = [line for line in self._said if line.startswith("capture: ")]
        if own:
            return own[-1].removeprefix("capture: ")
        return " / ".join(list(self._said)[-3:]) or None

    def _warn_once(self, kind: str, message: str, *args) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(message, *args)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:  # unkillable (stuck in the kernel): leave it to init, say so
            log.error("livesound: the capture process %d did not exit after SIGKILL", proc.pid)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
