"""Accelerated soak: the live engine for 100,000 frames, watching memory, threads, open files and frame time.

    python benchmarks/bench_soak.py                          # demo preset, its default backend, 100k frames
    python benchmarks/bench_soak.py --frames 20000 --backend torch --name soak_demo_torch_cpu

The configuration is the fastest honest one of `livesound live --preset demo --headless`: the live engine
(synthetic noise source paced in real time, listener and renderer threads, the preset's backends), with the
renderer free-running, so frames come as fast as the machine renders them rather than at a display's rate.
The caller's thread reads every new frame's pixels, as a window's paint would. The process is sampled every
``--sample-every`` frames. Verdicts (after the first 10% of samples as warm-up): memory grows < 5% and frame
time does not drift (median of the last decile of samples against the first). Wall-clock frame time on a shared
machine moves with the other load (the JSON records the load average at the start and the end), so the process
CPU time per frame is recorded and judged too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from livesound.audio.sources import SynthSource
from livesound.bench.soak import MIN_SAMPLES, as_rows, judge, soak
from livesound.bench.stats import figure
from livesound.files import write_json
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine

RESULTS = Path(__file__).parent / "results"
MEMORY_LIMIT, DRIFT_LIMIT = 0.05, 0.10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--sample-every", type=int, default=500)
    ap.add_argument("--backend", help="as for `livesound live --backend` (default: the preset's)")
    ap.add_argument("--name", help="result file stem (default soak_PRESET_cpu)")
    args = ap.parse_args()
    # soak() stops at --frames, so the sample due on the last frame may not be taken: one spare sample
    if args.sample_every < 1 or args.frames < (MIN_SAMPLES + 1) * args.sample_every:
        raise SystemExit(f"--frames must be at least {MIN_SAMPLES + 1} x --sample-every ({MIN_SAMPLES} samples to "
                         f"judge, one spare); got --frames {args.frames}, --sample-every {args.sample_every}")

    stages = build_pipeline(LiveOptions(preset=args.preset, backend=args.backend))
    engine = LiveEngine(stages, SynthSource("noise", amplitude=0.3))
    load0 = os.getloadavg()
    bar = tqdm(total=args.frames, unit="frame", file=sys.stderr, mininterval=5)
    t0 = time.perf_counter()
    samples = soak(engine, args.frames, args.sample_every, progress=lambda n: bar.update(n - bar.n))
    wall = time.perf_counter() - t0
    bar.close()
    verdict = judge(samples)
    result = {
        "benchmark": "soak: live engine, synthetic source, free-running renderer",
        "preset": args.preset, "backends": stages.backends, "frames": engine.frames_rendered,
        "wall_s": wall, "fps": engine.frames_rendered / wall, "sample_every": args.sample_every,
        "verdict": verdict | {"memory_ok": verdict["memory_growth"] < MEMORY_LIMIT,
                              "drift_ok": abs(verdict["frame_time_drift"]) < DRIFT_LIMIT,
                              "cpu_drift_ok": abs(verdict["cpu_time_drift"]) < DRIFT_LIMIT,
                              "limits": {"memory_growth": MEMORY_LIMIT, "frame_time_drift": DRIFT_LIMIT}},
        "stages": engine.times.summary(), "overruns": engine.source.ring.overruns,
        "load_average_start_end": [load0[0], os.getloadavg()[0]],
        "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "samples": as_rows(samples),
    }
    stem = args.name or f"soak_{args.preset}_cpu"
    write_json(RESULTS / f"{stem}.json", result, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    _plot(result, RESULTS / f"{stem}.png")


def _plot(result: dict, path: Path) -> None:
    """RSS, frame time (wall and CPU), OS threads and open fds against frames rendered."""
    rows = result["samples"]
    x = [r["frame"] for r in rows]
    with figure(path, 2, 2, (10, 6), sharex=True) as (fig, axes):
        if any(r.get("cpu_ms") for r in rows):
            axes[0, 1].plot(x, [r.get("cpu_ms", 0) for r in rows], lw=0.8, label="CPU ms per frame")
        for ax, key, label in ((axes[0, 0], "rss_mb", "RSS MB"), (axes[0, 1], "frame_ms", "ms per frame"),
                               (axes[1, 0], "threads", "OS threads"), (axes[1, 1], "fds", "open fds")):
            ax.plot(x, [r[key] for r in rows], lw=0.8)
            ax.set(ylabel=label)
        for ax in axes[1]:
            ax.set(xlabel="frame")
        v = result["verdict"]
        fig.suptitle(f"soak {result['preset']}: {result['frames']} frames at {result['fps']:.0f} fps; memory "
                     f"+{100 * v['memory_growth']:.1f}% after warm-up, frame-time drift "
                     f"{100 * v['frame_time_drift']:+.1f}%")


if __name__ == "__main__":
    main()
