"""The GPU check: every GPU path timed and checked on this machine's GPU, in one report (run it through
``benchmarks/gpu_check.sh``, which sets up and regenerates benchmarks/README.md after).

    python benchmarks/gpu_check.py                      # writes results/gpu_<device>.json and its plot
    python benchmarks/gpu_check.py --dry-run            # the same plan on the CPU, tiny sizes, nothing kept

Plan, within ``--budget`` seconds (what does not fit is recorded as not run, with the reason):
1. seeded generators of rosinality's channel table (``--sizes``, default 256, 512 and 1024 px, channel multiplier
   2, as FFHQ config-f) on each backend (``--backends``): torch fp32, ``torch-fp16`` (fp16 + CUDA graph), ONNX
   Runtime's CUDA provider with I/O binding, its TensorRT provider, livesound's own TensorRT engines. Each is
   timed (``livesound.bench.generator``: device synchronised, p50/p95/p99) and compared with fp32 torch
   (PSNR >= 40 dB); a backend whose runtime is not installed is reported unavailable with the reason;
2. the demo preset's whole live frame (``livesound.bench.stages``: features, encoder, mapper, generator, the one
   host copy) with ``auto`` choosing per stage, and on torch fp32 for comparison;
3. the goals of issue 17, judged from those figures: 512 px >= 300 frames a second, 1024 px p50 < 5 ms and
   p99 < 8 ms, the whole live frame < 7 ms.

``--dry-run`` walks the same plan on the CPU with 32 px generators and a few frames: every step up to the GPU
calls runs (the GPU backends then report themselves unavailable), so the script is known to work before a GPU
is at hand.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from livesound.bench.generator import plot_generator, run_generator_bench
from livesound.bench.stages import machine_info, run_bench
from livesound.files import write_json
from livesound.live.device import device_label, resolve_device
from livesound.models.stylegan2 import GeneratorConfig, build_generator

RESULTS = Path(__file__).parent / "results"
BACKENDS = "torch,torch-fp16,onnxruntime,onnxruntime-tensorrt-fp16,tensorrt-fp16"
GOALS = {"512 px fps": 300.0, "1024 px p50 ms": 5.0, "1024 px p99 ms": 8.0, "live frame p50 ms": 7.0}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def judge(report: dict) -> dict:
    """Each goal: the best backend's figure within tolerance, and whether it is met (None: not measured)."""
    def best(res: int, key):
        size = next((s for s in report["generators"] if s["generator"]["resolution"] == res), None)
        rows = [b for b in (size or {}).get("backends", {}).values() if b.get("within_tolerance")]
        return min((key(b) for b in rows), default=None)

    p50 = lambda b: b["stages"]["generator"]["p50_ms"]  # noqa: E731
    fps512 = best(512, p50)
    live = report.get("live", {}).get("backends", {})
    live_ms = min((b["stages"]["total"]["p50_ms"] for b in live.values()), default=None)
    figures = {"512 px fps": None if fps512 is None else 1e3 / fps512,
               "1024 px p50 ms": best(1024, p50),
               "1024 px p99 ms": best(1024, lambda b: b["stages"]["generator"]["p99_ms"]),
               "live frame p50 ms": live_ms}
    return {k: {"goal": GOALS[k], "measured": v,
                "met": None if v is None else (v >= GOALS[k] if k.endswith("fps") else v < GOALS[k])}
            for k, v in figures.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="walk the plan on the CPU (tiny sizes, few frames)")
    ap.add_argument("--sizes", default="256,512,1024", help="generator resolutions (channel multiplier 2)")
    ap.add_argument("--backends", default=BACKENDS, help="generator backends (livesound bench names)")
    ap.add_argument("--frames", type=int, default=200, help="timed frames per backend and size")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--live-frames", type=int, default=300, help="timed frames of the demo's whole live frame")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for the whole check")
    ap.add_argument("--out", type=Path, help="report path (default: results/gpu_<device>.json)")
    args = ap.parse_args()
    start = time.perf_counter()
    left = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731
    log = lambda text: print(f"gpu_check [{time.perf_counter() - start:5.0f} s]: {text}", file=sys.stderr)  # noqa: E731

    if args.dry_run:
        device, sizes, frames, warmup, live_frames = torch.device("cpu"), [32], 2, 1, 3
    else:
        device = resolve_device("cuda")  # no GPU: one line, exit 2 (DeviceUnavailable below)
        sizes, frames, warmup = [int(s) for s in args.sizes.split(",")], args.frames, args.warmup
        live_frames = args.live_frames
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    label = device_label(device)
    report = {"device": label, "dry_run": args.dry_run, "generators": [], "not_run": {},
              "machine": machine_info(torch.get_num_threads()), "date": time.strftime("%Y-%m-%d")}
    for res in sizes:
        if left() < 60:
            report["not_run"][f"generator {res} px"] = "time budget spent"
            continue
        log(f"generator {res} px on {', '.join(backends)}")
        G = build_generator(GeneratorConfig(resolution=res, channel_multiplier=2), seed=0)
        r = run_generator_bench(G, backends=backends, frames=frames, warmup=warmup, device=device,
                                log=log)
        r["generator"] |= {"source": f"random seed 0, {res} px, channel multiplier 2", "channel_multiplier": 2}
        report["generators"].append(r)
        del G
    if left() > 30:
        log("the demo's whole live frame: auto, then torch")
        report["live"] = run_bench("demo", ["auto", "torch"], live_frames, warmup, torch.get_num_threads(),
                                   progress=False, log=log, device=str(device))
    else:
        report["not_run"]["live frame"] = "time budget spent"
    report["goals"] = judge(report)
    report["seconds"] = time.perf_counter() - start
    out = args.out or (Path(tempfile.mkdtemp(prefix="gpu-check-")) / "gpu_dry-run.json" if args.dry_run
                       else RESULTS / f"gpu_{slug(label)}.json")
    write_json(out, _public(report))
    if report["generators"]:
        plot_generator(report["generators"][0] | {"sizes": report["generators"]}, out.with_suffix(".png"))
    for goal, v in report["goals"].items():
        measured = "not measured" if v["measured"] is None else f"{v['measured']:.2f}"
        log(f"{goal}: goal {v['goal']:g}, measured {measured}, met: {v['met']}")
    print(f"gpu_check: wrote {out}")
    return 0


def _public(d):
    if isinstance(d, dict):
        return {k: _public(v) for k, v in d.items() if not k.startswith("_")}
    if isinstance(d, list):
        return [_public(v) for v in d]
    return d


if __name__ == "__main__":
    from livesound.live.device import DeviceUnavailable

    try:
        sys.exit(main())
    except DeviceUnavailable as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        sys.exit(2)
