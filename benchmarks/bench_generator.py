"""Generator synthesis time per frame: warm up, then time many single frames; p50/p95/p99 to JSON and a plot.

    python benchmarks/bench_generator.py                       # the demo preset
    python benchmarks/bench_generator.py --preset demo --frames 500 --threads 2
    python benchmarks/bench_generator.py --generator ckpt.pt   # any checkpoint load_generator reads
    python benchmarks/bench_generator.py --resolution 256 --channel-multiplier 1   # a real-size random generator
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from livesound.models.stylegan2 import GeneratorConfig, build_generator
from livesound.models.presets import generator_from_preset, load_preset

RESULTS = Path(__file__).parent / "results"


def measure(G, frames: int, warmup: int, batch: int = 1) -> np.ndarray:
    ws = G.mapping(G.z_from_seeds(range(batch)), truncation_psi=0.7).detach()
    times = []
    with torch.inference_mode():
        for i in range(warmup + frames):
            t0 = time.perf_counter()
            G.synthesis(ws, noise_mode="const")
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--generator", help="checkpoint path instead of the preset's generator")
    ap.add_argument("--resolution", type=int, help="time a randomly initialised generator of this size")
    ap.add_argument("--channel-multiplier", type=int, default=1)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--name", help="result file stem (default from the model)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if args.resolution:
        cfg = GeneratorConfig(resolution=args.resolution, channel_multiplier=args.channel_multiplier)
        G, label = build_generator(cfg, seed=0), f"random-{args.resolution}px-cm{args.channel_multiplier}"
    else:
        G = generator_from_preset(load_preset(args.preset), args.generator)
        label = Path(args.generator).stem if args.generator else args.preset
    ms = measure(G, args.frames, args.warmup)
    pct = {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)}
    result = {
        "benchmark": "generator synthesis, batch 1, const noise, torch eager fp32",
        "model": label, "resolution": G.resolution, "channels": G.cfg.channels,
        "frames": args.frames, "warmup": args.warmup, "threads": args.threads,
        "mean_ms": float(ms.mean()), **{f"{k}_ms": v for k, v in pct.items()},
        "max_ms": float(ms.max()), "fps_mean": float(1e3 / ms.mean()),
        "device": f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.name or f"generator_{label}_cpu{args.threads}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(ms, result, RESULTS / f"{stem}.png")
    print(json.dumps(result, indent=2))


def _plot(ms: np.ndarray, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(ms, lw=0.8)
    a.set(xlabel="frame", ylabel="ms", title=f"{result['model']}: synthesis time per frame")
    b.hist(ms, bins=50)
    for q, c in (("p50", "g"), ("p95", "orange"), ("p99", "r")):
        b.axvline(result[f"{q}_ms"], color=c, label=f"{q} {result[f'{q}_ms']:.1f} ms")
    b.set(xlabel="ms", ylabel="frames", title=f"{result['threads']} threads, {result['fps_mean']:.0f} fps mean")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
