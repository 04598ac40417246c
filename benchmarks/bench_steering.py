"""Steering on the demo preset: what a bank costs against the mapper, how lively the demo is, and what a bank
costs to build.

    python benchmarks/bench_steering.py                  # 10 s per live run, mapper and bank alternating twice
    python benchmarks/bench_steering.py --seconds 30 --repeats 3

1. Frame rate: the live engine on the clicks source (`bench_live.measure_live`, threads as in `livesound live`),
   steered by the preset's untrained mapper and by its direction bank, alternating, so both see the same machine
   load; the medians are compared (goal: the bank within 5 % of the mapper), with each run's ``map`` stage time.
2. Liveliness: the mean absolute change of a pixel (0-255) from one frame to the next, fixed-step at 30 fps on a
   busy signal (a sweep under a burst every 250 ms): the former demo (mapper, no pulse/kick/walk), the bank
   alone, and the demo as it ships (bank + its pulse, kick and walk).
3. Bank build: the demo's own bank (its 4 synthetic sounds and 3 texts, its build settings) built from scratch,
   wall time and process CPU time per anchor.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_live import measure_live

from livesound.bench.stats import figure
from livesound.files import write_json
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.pipeline import run_fixed_step
from livesound.live.reactivity import ReactivityGains
from livesound.models.presets import load_preset
from livesound.offline.bank import BankSettings, build_bank_for, plan_anchors, preset_window
from livesound.offline.networks import ModelOptions, load_networks

RESULTS = Path(__file__).parent / "results"
SR = 44100


def busy_signal(seconds: float) -> np.ndarray:
    """A rising sweep under a decaying burst every 250 ms (the live tests' dynamic signal)."""
    t = np.arange(int(SR * seconds)) / SR
    x = 0.2 * np.sin(2 * np.pi * (100 + 2000 * t) * t)
    for k in range(int(seconds * 4)):
        s = int(k * 0.25 * SR)
        n = min(4000, x.size - s)
        x[s:s + n] += 0.8 * np.sin(2 * np.pi * (300 + 400 * k) * t[:n]) * np.exp(-t[:n] * 30)
    return x.astype(np.float32)


def frame_rates(preset: str, seconds: float, repeats: int) -> dict:
    runs: dict[str, list[dict]] = {"mapper": [], "bank": []}
    for _ in range(repeats):
        for steer in runs:
            result, _, _ = measure_live(preset, seconds=seconds, warmup=3.0, steer=steer)
            runs[steer].append({"fps": result["fps"], "map_p50_ms": result["stages"]["map"]["p50_ms"],
                                "frame_interval_p99_ms": result["frame_interval"]["p99_ms"]})
    out = {steer: {"fps_median": float(np.median([r["fps"] for r in rs])),
                   "map_p50_ms_median": float(np.median([r["map_p50_ms"] for r in rs])), "runs": rs}
           for steer, rs in runs.items()}
    out["bank_vs_mapper_fps"] = out["bank"]["fps_median"] / out["mapper"]["fps_median"]
    return out


def liveliness(preset: str, seconds: float = 6.0) -> dict:
    audio, hop = busy_signal(seconds), SR // 30
    frames = int(seconds * 30)
    out = {}
    for name, steer, gains in (("mapper, no reactivity (the former demo)", "mapper", ReactivityGains()),
                               ("bank, no reactivity", "bank", ReactivityGains()),
                               ("bank + the preset's pulse, kick, walk (the demo)", "bank", None)):
        pipe = build_pipeline(LiveOptions(preset=preset, steer=steer), say=lambda line: None)
        if gains is not None:
            pipe.reactivity.gains = gains
        rgb = [f.rgb.astype(np.float32) for f in run_fixed_step(pipe, audio, frames, hop)]
        out[name] = float(np.mean([np.abs(b - a).mean() for a, b in zip(rgb, rgb[1:])]))
    return out


def bank_build(preset: str) -> dict:
    p = load_preset(preset)
    spec = dict(p.extra["bank"]["build"])
    anchors = plan_anchors(synth=spec.pop("synth", []), texts=spec.pop("texts", []))
    settings = BankSettings(window_s=preset_window(p), truncation=p.truncation_psi, **spec)
    nets = load_networks(ModelOptions(preset=preset), need_encoder=True)
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        build_bank_for(nets.G, nets.encoder, nets.clip, anchors, settings, Path(tmp) / "bank.safetensors",
                       preset=preset, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"anchors": len(anchors), "steps": settings.steps, "batch": settings.batch,
            "threads": torch.get_num_threads(), "wall_s": wall, "cpu_s": cpu, "wall_s_per_anchor": wall / len(anchors),
            "cpu_s_per_anchor": cpu / len(anchors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per live run")
    ap.add_argument("--repeats", type=int, default=2, help="mapper and bank runs, alternating")
    ap.add_argument("--name", default=None, help="result file stem (default steering_<preset>_cpu)")
    args = ap.parse_args()
    result = {"benchmark": "steering on the demo preset: bank vs mapper frame rate, liveliness, bank build",
              "preset": args.preset, "seconds": args.seconds, "repeats": args.repeats,
              "command": f"python benchmarks/bench_steering.py --seconds {args.seconds:g} --repeats {args.repeats}",
              "device": f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d")}
    result["bank_build"] = bank_build(args.preset)
    result["frame_rate"] = frame_rates(args.preset, args.seconds, args.repeats)
    result["change_per_frame"] = liveliness(args.preset)
    stem = args.name or f"steering_{args.preset}_cpu"
    write_json(RESULTS / f"{stem}.json", result)
    print(json.dumps(result, indent=2))
    _plot(result, RESULTS / f"{stem}.png")


def _plot(result: dict, path: Path) -> None:
    """Left: fps per run, mapper and bank. Right: mean change a frame per configuration."""
    with figure(path, 1, 2, (11, 3.8)) as (fig, (a, b)):
        fr = result["frame_rate"]
        for i, steer in enumerate(("mapper", "bank")):
            fps = [r["fps"] for r in fr[steer]["runs"]]
            a.bar(np.arange(len(fps)) * 3 + i, fps, label=f"{steer} (median {fr[steer]['fps_median']:.1f})")
        a.set(ylabel="frames per second", xticks=[], title=f"bank / mapper fps: {fr['bank_vs_mapper_fps']:.3f}")
        a.legend(fontsize=8)
        ch = result["change_per_frame"]
        b.barh(range(len(ch)), list(ch.values()), color="tab:purple")
        b.set_yticks(range(len(ch)), [k.split(" (")[0] for k in ch], fontsize=8)
        b.set(xlabel="mean |change| of a pixel per frame (0-255), 30 fps, busy signal")


if __name__ == "__main__":
    main()
