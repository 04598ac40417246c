"""Cost of sound-guided latent optimisation on the demo preset: seconds per step and per 300-step run.

    python benchmarks/bench_optimize.py                      # 20 timed steps after warm-up, then a real run
    python benchmarks/bench_optimize.py --steps 20 --full 0  # timed steps only, extrapolated
    python benchmarks/bench_optimize.py --threads 1 --batch 4

One step = synthesis of the batch, the paper's x7 upsample + pool into CLIP, CLIP image encoder, loss,
backward through both, Adam update (paper config: lr 0.05 with its ramp, L2 0.008, no identity loss).
Per-step times come from the optimiser's snapshot hook called every step (it fires once per step, right
after synthesis; the uint8 conversion it costs is included). The 300-step figure is extrapolated from the
per-step mean and, unless ``--full 0``, also measured on a real run with the same config.

The demo preset's CLIP is the tiny untrained one (2-layer ViT, width 64), far cheaper than ViT-B/32: these
figures time the loop and the generator, not the paper's CLIP. Writes
benchmarks/results/optimize_demo_cpu.json and a plot beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from livesound.bench.stats import figure, mark_percentiles, percentiles
from livesound.files import write_json
from livesound.models.presets import clip_from_preset, generator_from_preset, load_preset
from livesound.offline.optimize import OptimizeConfig, Target, TargetPart, optimize, source_latent

RESULTS = Path(__file__).parent / "results"


def step_times(G, clip, source, targets, steps: int, warmup: int) -> tuple[np.ndarray, float]:
    """Per-step seconds over ``steps`` steps after ``warmup``, and the wall time of the whole call."""
    stamps: list[float] = []
    cfg = OptimizeConfig(steps=warmup + steps + 1, save_every=1)
    t0 = time.perf_counter()
    optimize(G, clip, source, targets, cfg, snapshot=lambda i, imgs: stamps.append(time.perf_counter()),
             progress=False)
    wall = time.perf_counter() - t0
    return np.diff(np.array(stamps[warmup:])), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--full", type=int, default=300, help="also time a real run of this many steps (0: skip)")
    ap.add_argument("--batch", type=int, default=1, help="targets optimised together")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default=str(RESULTS / "optimize_demo_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    preset = load_preset("demo")
    G, clip = generator_from_preset(preset), clip_from_preset(preset)
    source = source_latent(G, seed=0, truncation=preset.truncation_psi)
    texts = ["rain", "fire", "wind", "thunder", "drill", "explosion", "giggling", "sobbing"]
    targets = [Target(t, [TargetPart("text", clip.encode_text([t])[0], label=t)])
               for t in (texts * (args.batch // len(texts) + 1))[:args.batch]]

    per_step, wall = step_times(G, clip, source, targets, args.steps, args.warmup)
    ms = per_step * 1e3
    result = {
        "benchmark": "latent optimisation step (synthesis + CLIP + backward + Adam), torch eager fp32",
        "model": "demo", "resolution": G.resolution, "num_ws": G.num_ws, "clip": "tiny (untrained, ViT 2x64)",
        "batch": args.batch, "threads": args.threads, "timed_steps": args.steps, "warmup": args.warmup,
        "step_mean_s": float(per_step.mean()), **{f"step_{k}": v for k, v in percentiles(ms).items()},
        "step_per_target_s": float(per_step.mean() / args.batch),
        "run_300_extrapolated_s": float(per_step.mean() * 300),
        "timed_call_wall_s": wall,
        "device": f"CPU: {platform.machine()}, {args.threads} threads (shared machine)",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    if args.full:
        t0 = time.perf_counter()
        optimize(G, clip, source, targets, OptimizeConfig(steps=args.full), progress=False)
        result[f"run_{args.full}_measured_s"] = time.perf_counter() - t0
    out = write_json(args.out, result)
    print(json.dumps(result, indent=2))
    plot(ms, result, out.with_suffix(".png"))


def plot(ms: np.ndarray, result: dict, path: Path) -> None:
    """Each timed step's ms, with the p50 marked."""
    with figure(path, size=(6, 3), dpi=90) as (fig, ax):
        ax.plot(ms, marker=".")
        mark_percentiles(ax, ms, (50,), fmt=".0f", vertical=False)
        ax.set(xlabel="step", ylabel="ms per step", title=f"optimisation step, demo {result['resolution']} px, "
               f"batch {result['batch']}, {result['threads']} threads")
        ax.legend()


if __name__ == "__main__":
    main()
