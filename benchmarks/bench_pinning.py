"""The live path with and without pinned worker threads, back to back, several times: fps and frame-time tails.

    python benchmarks/bench_pinning.py                              # demo, onnxruntime, 3 x (off, auto) x 15 s
    python benchmarks/bench_pinning.py --repeats 5 --seconds 20 --backend torch

Runs alternate (off, auto, off, auto, ...) so slow drifts of a shared machine hit both settings alike; each run
is ``bench_live.measure_live`` (the synthetic clicks source in real time through `livesound live`'s threads).
Writes ``results/pinning_<preset>_<backend>_cpu.json`` and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from livesound.bench.stats import figure
from livesound.files import write_json

sys.path.insert(0, str(Path(__file__).parent))
from bench_live import RESULTS, measure_live  # noqa: E402

SETTINGS = ("off", "auto")


def summarise(runs: list[dict]) -> dict:
    fps = [r["fps"] for r in runs]
    p99 = [r["frame_interval"]["p99_ms"] for r in runs]
    lat = [r["onset_to_frame_latency"].get("p50_ms", float("nan")) for r in runs]
    return {"fps_median": float(np.median(fps)), "fps": fps, "interval_p99_ms_median": float(np.median(p99)),
            "interval_p99_ms": p99, "onset_p50_ms_median": float(np.nanmedian(lat)) if runs else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--backend", default="onnxruntime", help="as for `livesound live --backend` (default onnxruntime)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")

    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    for i in range(args.repeats):
        for pin in SETTINGS:
            r, _, _ = measure_live(args.preset, args.backend, args.seconds, args.warmup, pin_threads=pin)
            runs[pin].append(r)
            print(f"run {i + 1}/{args.repeats} pin {pin:4s}: {r['fps']:.1f} fps, interval p99 "
                  f"{r['frame_interval']['p99_ms']:.1f} ms, synthesize p50 {r['stages']['synthesize']['p50_ms']:.1f} "
                  f"ms", file=sys.stderr, flush=True)
    result = {"benchmark": "live path, worker threads pinned (auto) or not (off), alternating runs",
              "preset": args.preset, "backend": args.backend, "repeats": args.repeats, "seconds": args.seconds,
              "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
              "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
              "summary": {s: summarise(v) for s, v in runs.items()},
              "runs": {s: [{k: r[k] for k in ("fps", "frame_interval", "onset_to_frame_latency", "stages")}
                           for r in v] for s, v in runs.items()},
              "command": "python benchmarks/bench_pinning.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d")}
    stem = f"pinning_{args.preset}_{args.backend.replace('=', '-').replace(',', '_')}_cpu"
    write_json(RESULTS / f"{stem}.json", result)
    print(json.dumps(result["summary"], indent=2))
    _plot(result, RESULTS / f"{stem}.png")


def _plot(result: dict, path: Path) -> None:
    """fps and frame-interval p99 per repeat, one line per setting (dotted: 60 fps and a 25 ms p99)."""
    with figure(path, 1, 2, (10, 3.5)) as (fig, (a, b)):
        for s in SETTINGS:
            summ = result["summary"][s]
            a.plot(range(1, len(summ["fps"]) + 1), summ["fps"], "o-", label=f"pin {s}")
            b.plot(range(1, len(summ["fps"]) + 1), summ["interval_p99_ms"], "o-", label=f"pin {s}")
        a.axhline(60, color="gray", ls=":", lw=1)
        b.axhline(25, color="gray", ls=":", lw=1)
        a.set(xlabel="repeat", ylabel="fps", title=f"{result['preset']} ({result['backend']}): frames per second")
        b.set(xlabel="repeat", ylabel="ms", title="frame interval p99")
        a.legend()
        b.legend()


if __name__ == "__main__":
    main()
