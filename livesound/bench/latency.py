"""`livesound bench latency`: sound-to-picture latency, measured end to end on the live path.

A train of clicks goes into the capture path while a ``LiveEngine`` renders, as in `livesound live`:
- ``pulseaudio``: a private PulseAudio null sink (docs/design.md's recipe); ``paplay`` plays a click WAV into it
  and ``Microphone(device="pulse")`` records its monitor exactly as `livesound live --source mic` captures a
  microphone: the same class (a capture child streaming through a pipe, supervised), the same block size
  (256) and device latency ("low") unless ``--blocksize``/``--latency`` ask for others;
- ``file``: a ``FileSource`` of the click WAV paced in real time (a block enters the ring when its last
  sample's time has come);
- ``auto``: pulseaudio where pulseaudio, paplay and PortAudio's ``pulse`` device are present, else file.

Every frame is recorded (the range of audio samples it saw, its onset, when it started and finished), and so
is every write into the ring (when, and how many samples had arrived). For each click, ``match_clicks`` finds
the first frame that reacts to it. The time from the click to that frame being ready splits into
- capture: the click's time in the stream until it is in the ring. For ``file`` this is measured: the
  source's clock is the lower envelope of (write time - samples written / rate) over all writes, so the
  click's time is that origin + its index / rate. For ``pulseaudio`` the block buffering after PortAudio and
  the pipe from the capture child are measured the same way, and the device's input latency before them
  (which that envelope cannot see) is the input latency PortAudio reports for the child's open stream
  (``Microphone.input_latency``): estimated, not measured. Overflows PortAudio reported during the run are in
  ``input_overflows``.
- wait: ring arrival until the renderer starts the frame that includes the click;
- compute: frame start until the frame is ready (the renderer's smooth, map, synthesize, to_rgb8).

Threads: the engine's (see ``livesound.live.engine``) plus the source's; this module adds none. The engine's
frame slot is wrapped to record each frame as the renderer puts it (nothing is missed by polling), and the
ring's ``write`` to log arrivals into preallocated arrays (it runs on the source's thread: the file's, or the
microphone's supervisor).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from livesound.audio.io import SAMPLE_RATE, AudioError
from livesound.audio.mic import Microphone
from livesound.audio.pulse import NullSink, missing_tools
from livesound.audio.sources import FileSource, SynthSource, _sounddevice
from livesound.bench.stages import machine_info
from livesound.bench.stats import figure, summary
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine

REACTS = 0.25  # onset at which the edit strength is boosted by a quarter or more: a visible kick
RENDER_STAGES = ("smooth", "map", "synthesize", "to_rgb8")
PATHS = ("auto", "pulseaudio", "file")


@dataclass
class FrameRecord:
    index: int
    audio_sample: int    # samples in the ring when the frame started: it saw [previous frame's, this)
    onset: float
    t_start: float       # perf_counter when the renderer started its stages
    t_done: float


def match_clicks(click_samples: Sequence[int], frames: Sequence, reacts: float = REACTS) -> list[int | None]:
    """For each click (a sample index), the position in ``frames`` of the first frame that reacts to it.

    ``frames`` are in render order, each with ``audio_sample`` (samples seen, exclusive end; its range
    starts at the previous frame's, 0 for the first) and ``onset``. A frame reacts to click ``c`` when it
    has seen ``c`` (``c < audio_sample``), has not yet seen the next click, and its onset is at least
    ``reacts``. None where no frame reacts.
    """
    ends = np.array([f.audio_sample for f in frames], dtype=np.int64)
    onsets = np.array([f.onset for f in frames], dtype=np.float64)
    clicks = np.asarray(click_samples, dtype=np.int64)
    out: list[int | None] = []
    for k, c in enumerate(clicks):
        nxt = clicks[k + 1] if k + 1 < len(clicks) else np.iinfo(np.int64).max
        first = int(np.searchsorted(ends, c, side="right"))           # first frame with end > c
        stop = int(np.searchsorted(ends, nxt, side="right"))          # frames that saw the next click start here
        hit = np.flatnonzero(onsets[first:stop] >= reacts)
        out.append(first + int(hit[0]) if hit.size else None)
    return out


def click_train(seconds: float, period: float = 0.5, lead: float = 0.5, tail: float = 0.5,
                sr: int = SAMPLE_RATE, amplitude: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(audio [T], click sample indices [K]): silence for ``lead`` s, a click every ``period`` s for
    ``seconds`` s (SynthSource's 2 kHz decaying burst), then ``tail`` s of silence."""

    click = SynthSource("clicks", sr, amplitude=amplitude, period=period)
    n_lead, n_body = int(round(lead * sr)), int(round(seconds * sr))
    audio = np.zeros(n_lead + n_body + int(round(tail * sr)), np.float32)
    audio[n_lead:n_lead + n_body] = click.render(0, n_body)
    return audio, n_lead + np.arange(0, n_body, click.period_samples, dtype=np.int64)


def detect_clicks(x: np.ndarray, threshold: float = 0.05, gap: int = SAMPLE_RATE // 10) -> np.ndarray:
    """Sample indices where the signal first exceeds ``threshold`` after at least ``gap`` quiet samples."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return loud
    keep = np.concatenate([[True], np.diff(loud) > gap])
    return loud[keep].astype(np.int64)


def parse_latency(text: str | float | None) -> str | float | None:
    """``low``, ``high`` or seconds (as text or a number); None keeps the device's default."""
    if text is None or text in ("low", "high"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"latency must be low, high or seconds, got {text!r}") from None
    if value < 0:
        raise ValueError(f"latency must not be negative, got {value}")
    return value


class _ArrivalLog:
    """Wraps a ring's ``write`` to log (time, samples written) per block and keep a copy of the audio."""
    def __init__(self, ring, max_samples: int, max_blocks: int):
        self.t = np.zeros(max_blocks)
        self.n = np.zeros(max_blocks, np.int64)
        self.audio = np.zeros(max_samples, np.float32)
        self.count = 0
        self._ring, self._write = ring, ring.write
        ring.write = self.write  # the instance attribute shadows the method for every writer

    def write(self, block: np.ndarray) -> None:
        """NB: called from the source's thread: the ring write, then stores into preallocated arrays only."""
        start = self._ring.total_written
        self._write(block)
        i, end = self.count, self._ring.total_written
        if i < len(self.t):
            self.t[i], self.n[i] = time.perf_counter(), end
            self.count = i + 1
        if end <= len(self.audio):
            self.audio[start:end] = block

    def arrival(self, samples: np.ndarray) -> np.ndarray:
        """perf_counter time at which each sample index was in the ring (nan if it never arrived)."""
        n, t = self.n[:self.count], self.t[:self.count]
        i = np.searchsorted(n, samples, side="right")
        return np.where(i < len(n), t[np.minimum(i, len(n) - 1)], np.nan)

    def stream_origin(self, sr: int) -> float:
        """The stream's sample-0 time: lower envelope of (write time - samples written / rate)."""
        return float(np.min(self.t[:self.count] - self.n[:self.count] / sr))


class _RecordingSlot:
    """The engine's latest-wins frame slot, also recording every frame put into it (renderer thread)."""
    def __init__(self, slot):
        self._slot, self.frames = slot, []

    def put(self, frame) -> None:
        self._slot.put(frame)
        busy = sum(frame.stage_ms.get(s, 0.0) for s in RENDER_STAGES) / 1e3
        self.frames.append(FrameRecord(frame.index, frame.audio_sample, frame.onset, frame.t_done - busy,
                                       frame.t_done))

    def get(self):
        return self._slot.get()


def _pulse_missing() -> str | None:
    missing = missing_tools()
    if missing:
        return f"PulseAudio tools not installed: {', '.join(missing)}"

    try:
        _sounddevice()
    except AudioError as e:
        return str(e)
    return None


def _pct(values) -> dict[str, float]:
    """The report's summary: its keys already say ms ("onset_to_frame_ms"), so bare "p50" .. "max"."""
    return summary(values, unit="", peak=True)


def run_latency_bench(preset: str = "demo", seconds: float = 10.0, path: str = "auto", blocksize: int = 256,
                      latency: str | float | None = "low", period: float = 0.5, lead: float = 1.0,
                      backend: str | None = None, pin_threads: str = "auto", log=print, device: str = "auto") -> dict:
    """Play ``seconds`` of clicks (one every ``period`` s, after ``lead`` s of silence for warm-up) into the
    capture path and measure onset to frame-ready per click (module docstring). Real time: it takes
    about ``lead + seconds + 0.5`` s plus building the stages. ``latency`` and ``pin_threads`` default to
    what ``livesound live`` uses, so the figure is the one a performer gets."""

    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    if seconds <= 0 or period <= 0 or blocksize <= 0:
        raise ValueError("seconds, period and blocksize must be positive")
    latency = parse_latency(latency)
    requested, note = path, None
    if path in ("auto", "pulseaudio"):
        note = _pulse_missing()
        if note and path == "pulseaudio":
            raise AudioError("bench latency", f"the pulseaudio path is unavailable: {note}")
        path = "file" if note else "pulseaudio"
        if note:
            log(f"livesound bench latency: {note}; using a file source paced in real time")
    audio, planted = click_train(seconds, period, lead)
    log(f"livesound bench latency: building the {preset!r} stages")
    stages = build_pipeline(LiveOptions(preset=preset, backend=backend, device=device))
    with tempfile.TemporaryDirectory(prefix="livesound-latency-") as tmp:
        wav = Path(tmp) / "clicks.wav"
        import soundfile as sf

        sf.write(wav, audio, SAMPLE_RATE)
        log(f"livesound bench latency: {len(planted)} clicks over {seconds:g} s through the {path} path")
        run = None
        if path == "pulseaudio":
            try:
                run = _run_pulse(stages, wav, len(audio), blocksize, latency, pin_threads)
            except Exception as e:  # noqa: BLE001 - 'auto' falls back to the file path and says why
                if requested == "pulseaudio":
                    raise
                path, note = "file", f"the pulseaudio path failed ({type(e).__name__}: {e})"
                log(f"livesound bench latency: {note}; using a file source paced in real time")
                # fresh envelope and state
                stages = build_pipeline(LiveOptions(preset=preset, backend=backend, device=device))
        if run is None:
            run = _run_file(stages, wav, len(audio), blocksize, pin_threads)
    result = _analyse(run, planted if path == "file" else None)
    result |= {"path": path, "machine": machine_info(1),
               "settings": {"preset": preset, "backend": backend or "preset default", "blocksize": blocksize,
                            "latency": latency if path == "pulseaudio" else None, "period_s": period,
                            "seconds": seconds, "lead_s": lead, "reacts_at_onset": REACTS,
                            "engine": "2 worker threads x 1 torch thread",
                            "pin_threads": pin_threads}}
    if path == "pulseaudio":
        result["settings"]["input_latency_s"] = run["input_latency"]
        result["input_overflows"] = run["input_overflows"]
    if note:
        result["note"] = note
    return result


def _attach(engine, source, max_samples: int):
    slot = _RecordingSlot(engine._frame_slot)
    engine._frame_slot = slot  # NB: private; LiveEngine has no per-frame hook yet
    blocks = 4 * max_samples // max(1, getattr(source, "blocksize", 256)) + 1024
    return slot, _ArrivalLog(source.ring, max_samples, blocks)


def _drive(engine, done, timeout: float) -> None:
    engine.start()
    try:
        deadline = time.perf_counter() + timeout
        while not done() and engine.error is None and time.perf_counter() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # the frames that react to the last click
    finally:
        engine.stop()
    if engine.error is not None:
        raise RuntimeError(f"the live engine failed: {engine.error}") from engine.error


def _run_file(stages, wav: Path, n: int, blocksize: int, pin_threads: str = "auto") -> dict:
    """The click WAV from a ``FileSource`` paced in real time; no device latency to add."""
    source = FileSource(wav, realtime=True, blocksize=blocksize)
    engine = LiveEngine(stages, source, pin_threads=pin_threads)
    slot, arrivals = _attach(engine, source, n)
    _drive(engine, source.finished.is_set, timeout=n / SAMPLE_RATE + 10)
    return {"frames": slot.frames, "arrivals": arrivals, "sr": source.samplerate, "input_latency": 0.0,
            "overruns": source.ring.overruns}


def _run_pulse(stages, wav: Path, n: int, blocksize: int, latency, pin_threads: str = "auto") -> dict:
    """The click WAV played into a null sink and captured by ``Microphone``, the class `livesound live` uses.

    The clicks start once the device delivers (the microphone fills the ring with silence before that);
    the input latency is the one the capture child's open stream reported in its header."""
    import os

    sink = f"livesound_latency_{os.getpid()}"
    with NullSink(_sounddevice(), sink):
        source = Microphone(device="pulse", blocksize=blocksize, latency=latency)
        engine = LiveEngine(stages, source, pin_threads=pin_threads)
        slot, arrivals = _attach(engine, source, n + 10 * SAMPLE_RATE)
        player: list[subprocess.Popen] = []
        input_latency = [0.0]

        def done() -> bool:
            if not player and source.captured_samples > 0:  # the device delivers: play the clicks
                input_latency[0] = source.input_latency or 0.0
                player.append(subprocess.Popen(["paplay", f"--device={sink}", str(wav)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            return bool(player) and player[0].poll() is not None

        try:
            _drive(engine, done, timeout=n / SAMPLE_RATE + 15)
        finally:
            for p in player:
                if p.poll() is None:
                    p.kill()
                p.wait()
        if player and player[0].returncode != 0:
            raise AudioError("paplay", player[0].stderr.read().decode().strip()[-200:] or "failed")
    return {"frames": slot.frames, "arrivals": arrivals, "sr": source.samplerate, "input_latency": input_latency[0],
            "overruns": source.ring.overruns, "input_overflows": source.input_overflows}


def _analyse(run: dict, planted: np.ndarray | None) -> dict:
    """Per click: capture, wait, compute and their sum (ms); percentiles; the timeline for the plot."""
    frames, arr, sr = run["frames"], run["arrivals"], run["sr"]
    written = int(arr.n[arr.count - 1]) if arr.count else 0
    if planted is None:  # clicks as captured: where each burst starts in the recorded stream
        clicks = detect_clicks(arr.audio[:min(written, len(arr.audio))])
    else:
        clicks = planted[planted < written]
    hits = match_clicks(clicks, frames)
    origin = arr.stream_origin(sr) if arr.count else 0.0
    t_sound = origin + clicks / sr - run["input_latency"]
    t_arrive = arr.arrival(clicks)
    parts: dict[str, list[float]] = {"capture": [], "wait": [], "compute": [], "total": []}
    per_click = []
    for c, h, ts, ta in zip(clicks, hits, t_sound, t_arrive):
        if h is None:
            per_click.append({"sample": int(c), "frame": None})
            continue
        f = frames[h]
        ta = min(ta, f.t_start)  # stamped just after the write; the frame that saw it cannot start earlier
        row = {"capture": ta - ts, "wait": f.t_start - ta, "compute": f.t_done - f.t_start, "total": f.t_done - ts}
        for k, v in row.items():
            parts[k].append(v * 1e3)
        per_click.append({"sample": int(c), "frame": f.index} | {f"{k}_ms": float(v) * 1e3 for k, v in row.items()})
    span = frames[-1].t_done - frames[0].t_done if len(frames) > 1 else float("nan")
    return {"onset_to_frame_ms": _pct(parts["total"]), "clicks": len(parts["total"]), "clicks_played": len(clicks),
            "parts_ms": {k: _pct(parts[k]) for k in ("capture", "wait", "compute")},
            "capture_measured": "block buffering after the stream's clock, measured"
                                + ("" if not run["input_latency"] else
                                   " + PortAudio's reported input latency, estimated"),
            "frames": len(frames), "fps": (len(frames) - 1) / span if len(frames) > 1 else 0.0,
            "overruns": run["overruns"], "per_click": per_click,
            "_timeline": {"origin": origin, "clicks_s": (t_sound - origin).tolist(),
                          "frames_done_s": [f.t_done - origin for f in frames],
                          "frames_onset": [f.onset for f in frames], "hits": hits}}


def plot_latency(result: dict, path: Path) -> None:
    """Left: clicks and frames on one time axis (each frame's onset at its ready time, the first reacting
    frame of each click circled). Right: per click, capture, wait and compute stacked from the click."""
    tl = result["_timeline"]
    with figure(path, 1, 2, (12, 4), gridspec_kw={"width_ratios": [2, 1]}) as (fig, (a, b)):
        a.vlines(tl["clicks_s"], 0, 1.05, colors="tab:red", lw=1, label="click (in the stream)")
        a.plot(tl["frames_done_s"], tl["frames_onset"], ".", ms=2, color="tab:blue", label="frame ready (onset)")
        hit_t = [tl["frames_done_s"][h] for h in tl["hits"] if h is not None]
        hit_o = [tl["frames_onset"][h] for h in tl["hits"] if h is not None]
        a.plot(hit_t, hit_o, "o", mfc="none", color="tab:green", label="first reacting frame")
        a.axhline(REACTS, color="grey", lw=0.5, ls="--")
        a.set(xlabel="seconds since the stream started", ylabel="frame onset",
              title=f"{result['path']} path, {result['fps']:.0f} fps")
        a.legend(loc="upper right", fontsize=8)
        rows = [c for c in result["per_click"] if c.get("frame") is not None]
        left = np.zeros(len(rows))
        for part, colour in (("capture", "tab:orange"), ("wait", "tab:grey"), ("compute", "tab:blue")):
            v = np.array([c[f"{part}_ms"] for c in rows])
            b.barh(np.arange(len(rows)), v, left=left, color=colour, label=part)
            left += v
        o = result["onset_to_frame_ms"]
        b.set(xlabel="ms after the click", ylabel="click", title=f"onset to frame: p50 "
              f"{o.get('p50', float('nan')):.1f}, p95 {o.get('p95', float('nan')):.1f} ms")
        b.legend(fontsize=8)
