"""What each way of steering costs per frame on the demo preset (renderer side), and a directions build.

    python benchmarks/bench_steer_modes.py                     # all of it (about a minute and a half on 2 cores)
    python benchmarks/bench_steer_modes.py --build-samples 0   # frame costs only

Scenarios, each with the preset's own backends (demo: ``auto``, measured once per machine; ``map`` runs the
steerer in torch; each entry records the backends it ran on):
- fixed-step: ``run_fixed_step`` over a file of two sounds, as ``live --headless --source FILE`` runs it; the
  ``map`` stage of ``optimize`` then holds its inline step, so this is the cost of reproducible optimise runs;
- live: the threaded engine fed by the synthetic source for a few seconds: the renderer's ``map`` and
  ``synthesize`` stages and its frame rate; ``optimize`` runs its worker beside the renderer (on 2 cores they
  share the CPU with the listener).
- directions build: ``livesound directions build --preset demo`` with ``--build-samples`` samples, timed; the
  contract's 32 samples are extrapolated (each sample costs the same: 2 images per style channel).
Writes benchmarks/results/steer_modes_demo_cpu.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from livesound.bench.stats import figure, p50_bars, summary_ms
from livesound.files import write_json

RESULTS = Path(__file__).parent / "results"
MODES = ("mapper", "optimize", "directions")
SR = 44100


def two_sounds(seconds: float) -> np.ndarray:
    t = np.arange(int(SR * seconds / 2)) / SR
    hum = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    hiss = 0.2 * np.random.default_rng(1).standard_normal(t.size)
    return np.concatenate([hum, hiss]).astype(np.float32)


def options(mode: str, directions: Path | None):
    from livesound.live.build import LiveOptions

    return LiveOptions(preset="demo", steer=mode, pin_threads="off",
                       directions=str(directions) if directions and mode == "directions" else None)


def stage_entry(times, warmup: int) -> dict:
    """map, synthesize and the renderer's frame (smooth .. to_rgb8) of the timed frames, in ms."""
    keep = {s: list(times.ms[s])[warmup:] for s in ("smooth", "map", "synthesize", "to_rgb8")}
    frame = [sum(v) for v in zip(*keep.values())]
    return {"map": summary_ms(keep["map"]), "synthesize": summary_ms(keep["synthesize"]), "frame": summary_ms(frame),
            "frames": len(frame)}


def fixed_step(mode: str, directions: Path | None, frames: int, warmup: int) -> dict:
    from livesound.live.build import build_pipeline
    from livesound.live.pipeline import run_fixed_step

    pipe = build_pipeline(options(mode, directions))
    for _ in run_fixed_step(pipe, two_sounds(4.0), warmup + frames, SR // 30):
        pass
    pipe.steerer.close()
    return stage_entry(pipe.times, warmup) | {"backends": dict(pipe.backends)}


def live(mode: str, directions: Path | None, seconds: float) -> dict:
    from livesound.audio.sources import SynthSource
    from livesound.live.build import build_pipeline
    from livesound.live.engine import LiveEngine

    pipe = build_pipeline(options(mode, directions))
    engine = LiveEngine(pipe, SynthSource("chirp"), pin_threads="off")
    engine.start()
    time.sleep(1.0)                                       # warm-up: first frames, the worker's first round
    steps0, frames0, t0 = getattr(pipe.steerer, "steps", 0), engine.frames_rendered, time.perf_counter()
    n0 = len(engine.times.ms["map"])
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    engine.stop(timeout=5)
    pipe.steerer.close()
    entry = stage_entry(engine.times, n0) | {"backends": dict(pipe.backends)}
    entry["fps"] = (engine.frames_rendered - frames0) / wall
    if mode == "optimize":
        entry["worker_steps_per_s"] = (pipe.steerer.steps - steps0) / wall
    return entry


def directions_build(samples: int, out: Path) -> dict:
    from livesound.offline.directions import DirectionsOptions, build_directions

    t0 = time.perf_counter()
    build_directions(DirectionsOptions(out=str(out), samples=samples, batch=32, progress=False), log=lambda s: None)
    seconds = time.perf_counter() - t0
    from livesound.models.presets import generator_from_preset, load_preset

    channels = sum(generator_from_preset(load_preset("demo")).synthesis.style_channels)
    return {"samples": samples, "seconds": seconds, "per_sample_s": seconds / samples, "style_channels": channels,
            "images_per_sample": 2 * channels, "samples_32_extrapolated_s": 32 * seconds / samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40, help="timed fixed-step frames per mode")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds of the live engine per mode")
    ap.add_argument("--build-samples", type=int, default=1, help="samples of the timed directions build (0: skip)")
    ap.add_argument("--directions", help="a directions file for the demo preset (default: built here, 1 sample)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the live engine's workers use one each)")
    ap.add_argument("--out", default=str(RESULTS / "steer_modes_demo_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    load = os.getloadavg()[0]  # a shared machine: other work shows in these figures
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "dirs.safetensors"
        build = directions_build(max(1, args.build_samples), built) if args.build_samples or not args.directions \
            else None
        dirs = Path(args.directions) if args.directions else built
        result = {
            "benchmark": "steering per frame, renderer side (map = the steerer; synthesize with its style edit)",
            "model": "demo",
            "fixed_step": {m: fixed_step(m, dirs, args.frames, args.warmup) for m in MODES},
            "live": {m: live(m, dirs, args.seconds) for m in MODES},
            "directions_build": build if args.build_samples else None,
            "threads": args.threads, "load_average_1min_at_start": round(load, 2),
            "device": f"CPU: {platform.machine()}, {args.threads} threads (shared machine)",
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        }
    out = write_json(args.out, result)
    print(json.dumps(result, indent=2))
    plot(result, out.with_suffix(".png"))


def plot(result: dict, path: Path) -> None:
    """p50 (whisker to p99) of map and synthesize per mode, fixed-step and live."""
    with figure(path, 1, 2, (11, 4), dpi=90) as (fig, axes):
        for ax, scenario in zip(axes, ("fixed_step", "live")):
            x = np.arange(len(MODES))
            for j, stage in enumerate(("map", "synthesize", "frame")):
                p50_bars(ax, x + (j - 1) * 0.27, [result[scenario][m][stage] for m in MODES], width=0.27,
                         label=stage)
            ax.set_xticks(x, MODES)
            ax.set(ylabel="ms (p50, whisker p99)", title=f"{scenario.replace('_', '-')}, demo preset")
            ax.legend()


if __name__ == "__main__":
    main()
