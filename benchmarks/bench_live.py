"""The live path end to end on this machine: frames per second, frame-time tails, per-stage times, and the
time from a sound onset to the first frame that reacts to it.

    python benchmarks/bench_live.py                    # demo preset, 20 s of clicks every 0.5 s
    python benchmarks/bench_live.py --seconds 60 --preset demo --backend onnxruntime
    python benchmarks/bench_live.py --backend onnxruntime --pin-threads off    # worker threads unpinned

The source is the synthetic `clicks` source running in real time through the same ring buffer, threads and
stages as `livesound live`. Sound-to-picture latency is measured, not estimated: a probe thread timestamps the
moment each click's first sample is in the ring buffer (polling every 1 ms), and the latency is the time
until the first finished frame whose audio includes that sample and whose onset jumped (>= REACTS, i.e. the edit strength
was boosted by at least a quarter).
For a microphone, PortAudio's input latency comes on top (sounddevice reports it per stream).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch

from livesound.audio.sources import SynthSource
from livesound.bench.stats import figure, summary_ms
from livesound.files import write_json
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine

RESULTS = Path(__file__).parent / "results"
REACTS = 0.25  # onset value at which the edit strength is boosted by a quarter or more: a visible kick


def measure_live(preset: str = "demo", backend: str | None = None, seconds: float = 20.0, warmup: float = 3.0,
                 period: float = 0.5, pin_threads: str = "auto",
                 steer: str | None = None) -> tuple[dict, np.ndarray, list[float]]:
    """One run of the live engine on the clicks source: (result, frame intervals ms, onset latencies ms).
    ``steer`` as `livesound live --steer` (None: the preset's default)."""
    stages = build_pipeline(LiveOptions(preset=preset, backend=backend, steer=steer))
    src = SynthSource("clicks", period=period, amplitude=0.8)
    engine = LiveEngine(stages, src, pin_threads=pin_threads)
    arrivals: dict[int, float] = {}
    stop = threading.Event()

    def probe() -> None:  # when did each onset sample land in the ring?
        while not stop.is_set():
            written, now = src.ring.total_written, time.perf_counter()
            k = 0
            while k * src.period_samples < written:
                arrivals.setdefault(k * src.period_samples, now)
                k += 1
            time.sleep(0.001)

    frames = []
    threading.Thread(target=probe, daemon=True).start()
    engine.start()
    t_end = time.perf_counter() + warmup + seconds
    last = -1
    while time.perf_counter() < t_end and engine.error is None:
        f = engine.latest_frame()
        if f is not None and f.index != last:
            last = f.index
            frames.append((f.index, f.t_done, f.audio_sample, f.onset, f.stage_ms))
        time.sleep(0.001)
    engine.stop()
    stop.set()
    if engine.error is not None:
        raise SystemExit(f"engine failed: {engine.error}")

    t0 = frames[0][1] + warmup
    run = [f for f in frames if f[1] >= t0]
    intervals = np.diff([f[1] for f in run]) * 1e3
    latencies = []
    for onset_idx, t_arrive in sorted(arrivals.items()):
        if t_arrive < t0:
            continue
        hit = next((f for f in run if f[2] > onset_idx and f[3] >= REACTS and f[1] >= t_arrive), None)
        if hit is not None:
            latencies.append((hit[1] - t_arrive) * 1e3)
    stages_ms = {name: summary_ms([f[4][name] for f in run if name in f[4]], peak=True)
                 for name in ("features", "encode", "smooth", "map", "synthesize", "to_rgb8")}
    result = {
        "benchmark": "live path end to end (synthetic clicks source in real time, threads as in `livesound live`)",
        "preset": preset, "backend": backend or "torch", "seconds": seconds, "frames": len(run),
        "steering": stages.steering.line if stages.steering is not None else None,
        "pin_threads": pin_threads, "fps": len(run) / (run[-1][1] - run[0][1]),
        "frame_interval": summary_ms(intervals, peak=True),
        "onset_to_frame_latency": summary_ms(latencies, peak=True) | {
            "n": len(latencies), "onsets": sum(1 for t in arrivals.values() if t >= t0), "reacts_at_onset": REACTS},
        "stages": stages_ms, "overruns": src.ring.overruns, "stage_backends": dict(stages.backends),
        "load_average_1min": os.getloadavg()[0],  # the cores are shared: how busy the machine was at the end
        "device": f"CPU: {platform.processor() or platform.machine()}, 2 worker threads x 1 torch thread",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    return result, intervals, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--period", type=float, default=0.5, help="seconds between clicks")
    ap.add_argument("--backend", help="stage backends as for `livesound live --backend` (default torch)")
    ap.add_argument("--pin-threads", default="auto",
                    help="off, auto or RENDER,LISTEN cores (default auto, as `livesound live`)")
    ap.add_argument("--name", help="result file stem")
    args = ap.parse_args()

    result, intervals, latencies = measure_live(args.preset, args.backend, args.seconds, args.warmup, args.period,
                                                args.pin_threads)
    stem = args.name or f"live_{args.preset}_{(args.backend or 'torch').replace('=', '-').replace(',', '_')}_cpu"
    write_json(RESULTS / f"{stem}.json", result)
    print(json.dumps(result, indent=2))
    _plot(intervals, latencies, result, RESULTS / f"{stem}.png")


def _plot(intervals, latencies, result, path: Path) -> None:
    """Left: the interval between frames over the run. Right: onset-to-reacting-frame latencies."""
    with figure(path, 1, 2, (10, 3.5)) as (fig, (a, b)):
        a.plot(intervals, lw=0.7)
        a.set(xlabel="frame", ylabel="ms between frames",
              title=f"{result['preset']}: {result['fps']:.1f} fps, p99 {result['frame_interval']['p99_ms']:.1f} ms")
        if latencies:
            b.hist(latencies, bins=20)
            b.set(xlabel="ms", ylabel="onsets", title=f"onset -> reacting frame, p50 "
                  f"{result['onset_to_frame_latency']['p50_ms']:.1f} ms")


if __name__ == "__main__":
    main()
