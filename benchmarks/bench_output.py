"""Cost of the output stages per frame: the resize to a screen size, and Real-ESRGAN super-resolution.

    python benchmarks/bench_output.py                          # resize cases, then both upscalers at 256 -> 1024
    python benchmarks/bench_output.py --upscale-frames 1       # fewer timed upscales (the RRDB takes many seconds)
    python benchmarks/bench_output.py --backends torch,onnxruntime --skip rrdb

``resize``: the live stage (`livesound.live.output.FrameResize`) on a generator frame [1, 3, R, R] in torch, from
the demo's 128 px and real generator sizes to common screen sizes, ``cover`` fit, on one torch thread as the live
engine's renderer runs it. ``upscale``: the ``upscale`` stage (`livesound.models.realesrgan.FrameUpscaler`) at
256 -> 1024 px, batch 1, fp32, for both public layouts with random weights (the weights do not change the
cost): the RRDB network of RealESRGAN_x4plus (64 features, 23 blocks, growth 32) and the compact
realesr-general-x4v3 (64 features, 32 convolutions, PReLU). With ``onnxruntime`` in ``--backends`` the upscale
graph is exported once (with its parity check, at 256 px: minutes for the RRDB) and timed in ONNX Runtime too.

Writes benchmarks/results/output_cpu.json (machine, load average while it ran, per-case p50/p95/p99; for the
upscalers also the CPU seconds each frame used, all threads together: on a shared machine the wall time also
counts the neighbours, and CPU seconds / threads is what the frame would take alone) and a plot.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from livesound.bench.stages import machine_info
from livesound.bench.stats import figure, p50_bars, summary_ms, time_calls
from livesound.files import write_json
from livesound.live.output import FrameResize
from livesound.models.realesrgan import CompactConfig, FrameUpscaler, RRDBConfig, build_upscaler

RESULTS = Path(__file__).parent / "results"
RESIZE_CASES = [(128, 512, 512), (128, 1280, 720), (128, 1920, 1080), (256, 1920, 1080), (512, 1920, 1080),
                (1024, 1920, 1080), (1024, 1280, 720)]   # (generator px, output width, height)
UPSCALERS = {"compact": ("realesr-general-x4v3 layout", CompactConfig()),
             "rrdb": ("RealESRGAN_x4plus layout", RRDBConfig())}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_resize(frames: int, warmup: int) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the live engine's renderer thread runs torch with one thread
    out = {}
    for src, w, h in RESIZE_CASES:
        resize = FrameResize(w, h, "cover")
        img = torch.rand(1, 3, src, src) * 2 - 1
        with torch.inference_mode():
            ms = time_calls(lambda i: resize(img), frames, warmup)
        out[f"{src} -> {w}x{h}"] = summary_ms(ms, count=True)
    torch.set_num_threads(threads)
    return out


def time_upscalers(backends: list[str], frames: int, warmup: int, skip: set[str], threads: int, log) -> dict:
    out = {}
    frame = torch.rand(1, 3, 256, 256) * 2 - 1
    for kind, (label, cfg) in UPSCALERS.items():
        if kind in skip:
            continue
        up = FrameUpscaler(build_upscaler(cfg, seed=0), frame_size=256)
        params = sum(p.numel() for p in up.parameters())
        for backend in backends:
            if backend == "torch":
                run = lambda i: up(frame)  # noqa: E731
            else:
                from livesound.live.backends import make_backend

                log(f"bench_output: exporting the {kind} upscaler for {backend} (once, with parity)")
                runner = make_backend("upscale", backend, up, threads)
                run = lambda i: runner(frame)  # noqa: E731
            log(f"bench_output: {kind} on {backend}: {warmup} warm-up + {frames} timed frames at 256 -> 1024")
            cpu: list[float] = []

            def timed(i: int) -> None:  # CPU seconds too: on a shared machine wall time counts the neighbours
                c0 = time.process_time()
                run(i)
                cpu.append(time.process_time() - c0)

            with torch.inference_mode():
                ms = time_calls(timed, frames, warmup)
            cpu_s = cpu[warmup:]
            out[f"{kind} {backend}"] = {"layout": label, "params": params, "input": [1, 3, 256, 256],
                                        "output": [1, 3, 1024, 1024], "cpu_s_per_frame": cpu_s,
                                        "cpu_s_per_frame_mean": sum(cpu_s) / len(cpu_s)} | summary_ms(ms, count=True)
            log(f"bench_output: {kind} on {backend}: p50 {out[f'{kind} {backend}']['p50_ms'] / 1e3:.2f} s")
    return out


def plot(result: dict, path: Path) -> None:
    resize, up = result["resize"], result["upscale"]
    with figure(path, 1, 2, (12, 4)) as (fig, (a, b)):
        p50_bars(a, range(len(resize)), list(resize.values()), capsize=3)
        a.set_xticks(range(len(resize)), list(resize), rotation=30, ha="right")
        a.set(ylabel="ms (p50, whisker to p99)", title="resize stage per frame (torch, cover)")
        if up:
            entries = [v | {k: v[k] / 1e3 for k in ("p50_ms", "p99_ms")} for v in up.values()]
            p50_bars(b, range(len(up)), entries, capsize=3)
            b.set_xticks(range(len(up)), list(up))
        b.set(ylabel="s (p50, whisker to p99)", title="upscale 256 -> 1024 per frame (random weights)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50, help="timed resizes per case")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--upscale-frames", type=int, default=2, help="timed upscales per layout and backend")
    ap.add_argument("--upscale-warmup", type=int, default=1)
    ap.add_argument("--backends", default="torch", help="upscale: torch and/or onnxruntime")
    ap.add_argument("--skip", default="", help="comma-separated layouts to skip: compact, rrdb")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the upscale runs")
    ap.add_argument("--out", default=str(RESULTS / "output_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0, load0 = time.perf_counter(), os.getloadavg()
    result = {"benchmark": "output stages per frame: resize (FrameResize, cover) and upscale (Real-ESRGAN x4)",
              "machine": machine_info(args.threads) | {"cpu": cpu_name()},
              "settings": {"batch": 1, "precision": "fp32", "resize_threads": 1, "upscale_threads": args.threads},
              "resize": time_resize(args.frames, args.warmup)}
    result["upscale"] = time_upscalers([b.strip() for b in args.backends.split(",") if b.strip()],
                                       args.upscale_frames, args.upscale_warmup,
                                       {s.strip() for s in args.skip.split(",") if s.strip()}, args.threads, print)
    result["load_average"] = {"start": list(load0), "end": list(os.getloadavg()),
                              "note": "1/5/15-minute load of the machine while it ran (shared)"}
    result["seconds"] = time.perf_counter() - t0
    out = write_json(args.out, result)
    plot(result, out.with_suffix(".png"))
    print(f"bench_output: wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
