"""Headless runs of the live path: frames to PNG files (and optionally a video), with per-stage timing.

Ctrl+C or SIGTERM ends a headless run early and cleanly: the frames so far stay, and a recording is closed as
a playable file (see ``shutdown.py``). A microphone run is paced in real time: it writes the newest frame every
``1 / hop_fps`` seconds, so N frames span N / hop_fps seconds of the performance whatever the render speed,
and frames keep coming while the device is gone (the picture then follows silence).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from livesound.audio.io import load_audio
from livesound.files import save_png
from livesound.live.build import LiveOptions, open_source
from livesound.live.engine import LiveEngine
from livesound.live.pipeline import Pipeline, run_fixed_step
from livesound.live.shutdown import stop_requested
from livesound.recording import Recorder
from livesound.rig.rig import open_rig

log = logging.getLogger("livesound")


def run_headless(stages: Pipeline, opts: LiveOptions, frames: int, out: Path, hop_fps: float = 30.0,
                 source=None, rig_opts=None, record: Path | None = None) -> dict:
    """Render ``frames`` PNGs into ``out`` (and every frame into the video ``record``, if given). A file
    source steps its audio by a fixed hop per frame (the same frames on every run); the microphone and
    synthetic sources run live on the engine's threads. ``rig_opts`` (`livesound.rig.rig.RigOptions`):
    OSC/MIDI/presets/video out, applied in both modes."""

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recorder = Recorder(record, fps=hop_fps, queue_frames=256) if record is not None else None
    rig_stats: dict = {}
    try:
        with stop_requested() as stop:
            if opts.source not in ("auto", "mic", "synth"):
                stats = _fixed_step(stages, opts, frames, out, hop_fps, recorder, stop, rig_opts, rig_stats)
            else:
                stats = _live(stages, source if source is not None else open_source(opts), frames, out, hop_fps,
                              recorder, stop, opts.pin_threads, rig_opts, rig_stats)
            stats["interrupted"] = stop.is_set()
    finally:
        if recorder is not None:
            recorder.close()  # flushes the encoder and renames the video into place, even after a signal
    if recorder is not None:
        stats["recording"] = {"path": str(record), "frames": recorder.frames_written,
                              "dropped": recorder.frames_dropped}
    if rig_stats:
        stats["rig"] = rig_stats
    stats["fps"] = stats["frames"] / (time.perf_counter() - t0)
    return stats


def _save(frame_rgb, path: Path, recorder) -> None:

    save_png(frame_rgb, path)
    if recorder is not None:
        recorder.write(frame_rgb)


def _fixed_step(stages, opts, frames, out, hop_fps, recorder, stop, rig_opts=None, rig_stats=None) -> dict:

    audio = load_audio(opts.source, sr=stages.sample_rate, max_seconds=opts.max_audio_seconds)
    hop = max(1, round(stages.sample_rate / hop_fps))
    written = 0
    rig = open_rig(stages, rig_opts)
    try:
        for frame in run_fixed_step(stages, audio, frames, hop, rig and rig.step_before_frame):
            _save(frame.rgb, out / f"frame_{frame.index:06d}.png", recorder)
            if rig is not None:
                rig.after_frame(frame)
            written += 1
            if stop.is_set():
                break
    finally:
        if rig is not None:
            rig.close()
            rig_stats.update(rig.stats())
    return {"stages": stages.times.summary() if written == frames else {}, "frames": written,
            "mode": "fixed-step", "hop_samples": hop}


def _live(stages, source, frames, out, hop_fps, recorder, stop, pin_threads: str = "off", rig_opts=None,
          rig_stats=None) -> dict:
    paced = hasattr(source, "state")  # a real device: pace in real time (see the module docstring)
    engine = LiveEngine(stages, source, pin_threads=pin_threads)
    rig = open_rig(engine, rig_opts)
    if rig is not None:
        rig.attach(engine)
    engine.start()
    written, last, timeline = 0, -1, []
    next_t = time.perf_counter()
    try:
        while written < frames and not stop.is_set():
            if engine.error is not None:
                raise RuntimeError(f"the live engine failed: {engine.error}") from engine.error
            frame = engine.latest_frame()
            now = time.perf_counter()
            if frame is None or (paced and now < next_t) or (not paced and frame.index == last):
                time.sleep(0.002)
                continue
            next_t = max(next_t + 1.0 / hop_fps, now - 1.0 / hop_fps)
            last = frame.index
            _save(frame.rgb, out / f"frame_{written:06d}.png", recorder)
            timeline.append([round(now, 4), frame.index, round(frame.level, 5), round(frame.onset, 4),
                             getattr(source, "state", "ok")])
            written += 1
    finally:
        engine.stop()
        if rig is not None:
            rig.close()
            rig_stats.update(rig.stats())
    stats = engine.stats() | {"mode": "live-paced" if paced else "live", "frames": written}
    for key in ("losses", "reconnects", "silence_samples"):
        if hasattr(source, key):
            stats[f"source_{key}"] = getattr(source, key)
    stats["timeline"] = {"columns": ["t", "frame_index", "level", "onset", "source_state"], "rows": timeline}
    return stats
