"""Headless runs of the live path: frames to PNG files, with per-stage timing."""

from __future__ import annotations

import time
from pathlib import Path

from livesound.live.build import LiveOptions, open_source
from livesound.live.engine import LiveEngine, Stages, run_fixed_step


def run_headless(stages: Stages, opts: LiveOptions, frames: int, out: Path, hop_fps: float = 30.0,
                 source=None, rig_opts=None) -> dict:
    """Render ``frames`` PNGs into ``out``. A file source steps its audio by a fixed hop per frame (the same
    frames on every run); the microphone and synthetic sources run live on the engine's threads.
    ``rig_opts`` (`livesound.rig.rig.RigOptions`): OSC/MIDI/presets/video out, applied in both modes."""
    from livesound.generate import save_png
    from livesound.rig.rig import open_rig

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if opts.source not in ("auto", "mic", "synth"):
        from livesound.audio.io import load_audio

        audio = load_audio(opts.source, sr=stages.sample_rate)
        hop = max(1, round(stages.sample_rate / hop_fps))
        rig = open_rig(stages, rig_opts)
        try:
            for frame in run_fixed_step(stages, audio, frames, hop, rig and rig.step_before_frame):
                save_png(frame.rgb, out / f"frame_{frame.index:06d}.png")
                if rig is not None:
                    rig.after_frame(frame)
        finally:
            if rig is not None:
                rig.close()
        stats = {"stages": stages.times.summary(), "frames": frames, "mode": "fixed-step",
                 "hop_samples": hop}
    else:
        engine = LiveEngine(stages, source if source is not None else open_source(opts),
                            pin_threads=opts.pin_threads)
        rig = open_rig(engine, rig_opts)
        if rig is not None:
            rig.attach(engine)
        engine.start()
        written, last = 0, -1
        try:
            while written < frames:
                if engine.error is not None:
                    raise RuntimeError(f"the live engine failed: {engine.error}") from engine.error
                frame = engine.latest_frame()
                if frame is None or frame.index == last:
                    time.sleep(0.002)
                    continue
                last = frame.index
                save_png(frame.rgb, out / f"frame_{written:06d}.png")
                written += 1
        finally:
            engine.stop()
            if rig is not None:
                rig.close()
        stats = engine.stats() | {"mode": "live"}
    stats["fps"] = frames / (time.perf_counter() - t0)
    if rig is not None:
        stats["rig"] = rig.stats()
    return stats
