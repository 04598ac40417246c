"""The generator's CPU techniques weighed one by one: frame time, GFLOP/s and fraction of this machine's peak.

    python benchmarks/bench_generator_techniques.py                       # 256 px, cm 1 and 2, ~10 min on 2 cores
    python benchmarks/bench_generator_techniques.py --channel-multiplier 1 --frames 10 --skip compile

One seeded random generator per channel multiplier (rosinality's channel table), one w+ (seed 0, psi 0.7),
const noise, batch 1, fp32. Every variant runs the same frames after a warm-up; the work per frame is the
network's own (``livesound.bench.flops.generator_flops``) and the peak is measured in this run with the same threads
(``livesound.bench.flops.measure_peak_gflops``). Parity is the max abs difference from the plain path's image.

Variants (``+`` adds to the previous cumulative one; ``only`` is one technique on the plain path). The eager
model variants (grouped to +channels-last) run round-robin, a frame of each in turn, so a shared machine's
slow spells hit them alike; the rest run one after another, and retain-heap stays on from there (glibc keeps it).
  grouped            the reference form: per-sample modulated weights, one grouped convolution (the baseline)
  shared             modulation as input scaling, demodulation as output scaling, one shared-weight conv
  only-fused-act / only-channels-last / only-fold-fir     one technique each on ``shared``
  +fused-act, +channels-last, +fold-fir                   cumulative
  +retain-heap       the default fast paths (FastPaths()) with glibc keeping freed blocks in the heap
  1-thread           the same with 1 intra-op thread
  omp-bind / interop-1   in a fresh process: OMP_PROC_BIND=close OMP_PLACES=cores; torch.set_num_interop_threads(1)
  compile            torch.compile (inductor, CPU) of the default fast paths; compile time recorded
  ort / ort-fused / ort-fold   ONNX Runtime, ORT_ENABLE_ALL: the plain graph, the fused-epilogue graph, and
                     that with the FIR folded in
Writes ``results/generator_techniques_<R>px_cpu.json`` and a bar plot beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from livesound.bench.flops import generator_flops, measure_peak_gflops
from livesound.bench.stages import machine_info
from livesound.bench.stats import figure, percentiles, summary_ms
from livesound.files import write_json
from livesound.live.backends.torch_stage import compile_synthesis
from livesound.models.fast_paths import FastPaths, retain_freed_memory
from livesound.models.stylegan2 import GeneratorConfig, build_generator

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("grouped", "shared", "only-fused-act", "only-channels-last", "only-fold-fir", "+fused-act",
            "+channels-last", "+fold-fir", "+retain-heap", "1-thread", "omp-bind", "interop-1", "compile",
            "ort", "ort-fused", "ort-fold")
CHILD_VARIANTS = {"omp-bind": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}, "interop-1": {}}


def make_generator(resolution: int, cm: int):
    G = build_generator(GeneratorConfig(resolution=resolution, channel_multiplier=cm), seed=0)
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seeds([0]), truncation_psi=0.7)   # [1, num_ws, w_dim]
    return G, ws.clone()


def eager(G, **fast):
    G.synthesis.set_fast_paths(**fast)

    def run(ws):
        with torch.inference_mode():
            return G.synthesis(ws, noise_mode="const")
    return run


def time_frames(run, ws, frames: int, warmup: int) -> tuple[list[float], torch.Tensor, list[float]]:
    """Wall ms and process CPU ms per frame (CPU time shrugs off other processes' load; idle spinning counts)."""
    for _ in range(warmup):
        out = run(ws)
    ms, cpu = [], []
    for _ in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        out = run(ws)
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return ms, out, cpu


def ort_runner(G, threads: int, folder: Path):
    from exporters.onnx import export_graph, stage_specs
    from livesound.live.backends.ort_stage import OrtBackend

    spec = next(s for s in stage_specs(G) if s.name == "generator")
    t0 = time.perf_counter()
    export_graph(spec, folder, check=False)
    backend = OrtBackend(folder / "generator.onnx", threads=threads)
    return backend, time.perf_counter() - t0


# Eager variants that differ only in the model's own switches: timed round-robin, one frame of each in turn,
# so a shared machine's slow spells fall on all of them alike.
STRUCTURAL = {"grouped": dict(modconv="grouped"), "shared": {},
              "only-fused-act": dict(fused_act=True), "only-channels-last": dict(channels_last=True),
              "only-fold-fir": dict(fold_fir=True), "+fused-act": dict(fused_act=True),
              "+channels-last": dict(fused_act=True, channels_last=True),
              "+fold-fir": dict(fused_act=True, channels_last=True, fold_fir=True)}
_DEFAULT = FastPaths()
BEST = dict(fold_fir=_DEFAULT.fold_fir, fused_act=_DEFAULT.fused_act, channels_last=_DEFAULT.channels_last)


def time_round_robin(runs: dict, ws, frames: int, warmup: int) -> tuple[dict, dict, dict]:
    ms: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    outs = {}
    for i in range(warmup + frames):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outs[name] = run(ws)
            if i >= warmup:
                ms[name].append((time.perf_counter() - t0) * 1e3)
                cpu[name].append((time.process_time() - c0) * 1e3)
    return ms, outs, cpu


def build_sequential(name: str, G, threads: int, tmp: Path):
    """(run, build seconds or None: measured at the first call, settings) for a variant run on its own."""
    torch.set_num_threads(threads)
    if name in ("+retain-heap", "1-thread"):
        retain_freed_memory()
        if name == "1-thread":
            torch.set_num_threads(1)
        return eager(G, **BEST), 0.0, BEST | {"retain_heap": True, "threads": torch.get_num_threads()}
    if name == "compile":
        G.synthesis.set_fast_paths(**BEST)
        return compile_synthesis(G), None, BEST | {"torch_compile": "inductor"}
    if name in ("ort", "ort-fused", "ort-fold"):
        fast = {"ort": {}, "ort-fused": dict(fused_act=True), "ort-fold": dict(fused_act=True, fold_fir=True)}[name]
        G.synthesis.set_fast_paths(**fast)
        run, build_s = ort_runner(G, threads, tmp / name)
        return run, build_s, fast | {"onnxruntime": "ORT_ENABLE_ALL"}
    raise ValueError(f"unknown variant {name!r}")


def run_child(name: str, args) -> dict:
    """A variant that needs a fresh process (thread pools and OpenMP read their settings once)."""
    env = os.environ | CHILD_VARIANTS[name]
    cmd = [sys.executable, __file__, "--child", name, "--resolution", str(args.resolution), "--channel-multiplier",
           str(args.cm), "--frames", str(args.frames), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(args) -> None:
    if args.child == "interop-1":
        torch.set_num_interop_threads(1)
    retain_freed_memory()
    G, ws = make_generator(args.resolution, args.cm)
    with torch.inference_mode():
        plain = G.synthesis(ws, noise_mode="const")
    torch.set_num_threads(args.threads)
    run = eager(G, **BEST)
    ms, out, cpu = time_frames(run, ws, args.frames, args.warmup)
    print(json.dumps({"ms": ms, "cpu_ms": cpu, "max_abs_error": float((out - plain).abs().max()),
                      "settings": BEST | {"retain_heap": True,
                                   "env": CHILD_VARIANTS[args.child],
                                   "interop_threads": torch.get_num_interop_threads()}}))


def bench_one_size(args, cm: int, peak: float, variants: list[str], log) -> dict:
    args.cm = cm
    G, ws = make_generator(args.resolution, cm)
    flops = generator_flops(G.cfg)
    with torch.inference_mode():
        plain = G.synthesis(ws, noise_mode="const")
    log(f"cm {cm}: {flops['gflop']:.2f} GFLOP a frame, channels {G.cfg.channels}")
    rows, skipped = {}, {}

    def record(name: str, ms: list[float], err: float, build_s: float, settings: dict, cpu: list[float]) -> None:
        stats = summary_ms(ms)
        p50 = stats["p50_ms"]
        rows[name] = stats | {"cpu_p50_ms": percentiles(cpu, (50,))["p50_ms"], "cpu_ms": cpu,
                              "achieved_gflops": flops["gflop"] / (p50 / 1e3),
                              "fraction_of_peak": flops["gflop"] / (p50 / 1e3) / peak, "max_abs_error": err,
                              "build_s": build_s, "settings": settings, "ms": ms}
        log(f"  {name:18s} {p50:8.1f} ms p50  {rows[name]['p99_ms']:8.1f} p99  "
            f"{100 * rows[name]['fraction_of_peak']:5.1f}% of peak  cpu {rows[name]['cpu_p50_ms']:7.0f} ms  "
            f"err {err:.2e}"
            + (f"  build {build_s:.1f} s" if build_s else ""))

    structural = [v for v in variants if v in STRUCTURAL]
    if structural:
        log(f"  round-robin: {', '.join(structural)}")
        copies = {}
        for name in structural:
            Gv = copy.deepcopy(G)
            t0 = time.perf_counter()
            copies[name] = (eager(Gv, **STRUCTURAL[name]), time.perf_counter() - t0)
        ms, outs, cpu = time_round_robin({n: c[0] for n, c in copies.items()}, ws, args.frames, args.warmup)
        for name in structural:
            record(name, ms[name], float((outs[name] - plain).abs().max()), copies[name][1], STRUCTURAL[name],
                   cpu[name])
        del copies, outs
    with tempfile.TemporaryDirectory() as tmp:
        for name in [v for v in variants if v not in STRUCTURAL]:
            try:
                if name in CHILD_VARIANTS:
                    r = run_child(name, args)
                    ms, err, settings, build_s, cpu = r["ms"], r["max_abs_error"], r["settings"], 0.0, r["cpu_ms"]
                else:
                    run, build_s, settings = build_sequential(name, G, args.threads, Path(tmp))
                    t0 = time.perf_counter()
                    run(ws)  # compiles, if it is going to
                    if build_s is None:
                        build_s = time.perf_counter() - t0
                    ms, out, cpu = time_frames(run, ws, args.frames, args.warmup)
                    err = float((out.float() - plain).abs().max())
            except Exception as e:  # noqa: BLE001 - a technique that cannot run here is reported, not fatal
                skipped[name] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"
                log(f"  {name:18s} skipped: {skipped[name]}")
                continue
            finally:
                torch.set_num_threads(args.threads)
                G.synthesis.set_fast_paths()
            record(name, ms, err, build_s, settings, cpu)
    base = rows.get("grouped", {}).get("p50_ms")
    for r in rows.values():
        r["speedup_vs_grouped"] = base / r["p50_ms"] if base else None
    return {"resolution": args.resolution, "channel_multiplier": cm, "channels": list(G.cfg.channels),
            "gflop_per_frame": flops["gflop"], "variants": rows, "skipped": skipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--channel-multiplier", default="1,2", help="comma-separated, e.g. 1,2 (default 1,2)")
    ap.add_argument("--frames", type=int, default=5, help="timed frames per variant (default 5)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip", default="", help=f"comma-separated variants to leave out; all: {', '.join(VARIANTS)}")
    ap.add_argument("--name", help="result file stem (default generator_techniques_<R>px_cpu)")
    ap.add_argument("--child", choices=sorted(CHILD_VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.cm = int(args.channel_multiplier)
        return child_main(args)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(VARIANTS):
        raise SystemExit(f"--skip: unknown variants {sorted(skip - set(VARIANTS))}; choose from {', '.join(VARIANTS)}")
    variants = [v for v in VARIANTS if v not in skip]
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    peak = measure_peak_gflops(args.threads, seconds=1.5)
    log(f"peak {peak['peak_gflops']:.1f} GFLOP/s (matmul {peak['matmul_gflops']:.1f}, conv {peak['conv_gflops']:.1f})"
        f", {args.threads} threads")
    sizes = [bench_one_size(args, int(cm), peak["peak_gflops"], variants, log)
             for cm in args.channel_multiplier.split(",")]
    result = {"benchmark": "generator techniques, batch 1, const noise, fp32, CPU", "frames": args.frames,
              "warmup": args.warmup, "machine": machine_info(args.threads) | peak, "sizes": sizes,
              "command": "python benchmarks/bench_generator_techniques.py " + " ".join(sys.argv[1:]),
              "wall_s": time.perf_counter() - t_start, "fast_paths_default": FastPaths().to_dict()}
    stem = args.name or f"generator_techniques_{args.resolution}px_cpu"
    write_json(RESULTS / f"{stem}.json", result)
    plot(result, RESULTS / f"{stem}.png")
    log(f"wrote {RESULTS / stem}.json and .png in {result['wall_s']:.0f} s")


def plot(result: dict, path: Path) -> None:
    """Per size, each variant's fraction of the measured peak (grouped, the baseline, in grey), labelled with its
    p50 frame time."""
    sizes = result["sizes"]
    m = result["machine"]
    with figure(path, len(sizes), 1, (11, 3.6 * len(sizes)), squeeze=False) as (fig, axes):
        for ax, size in zip(axes[:, 0], sizes):
            names = list(size["variants"])
            frac = [100 * size["variants"][n]["fraction_of_peak"] for n in names]
            bars = ax.bar(names, frac, color=["tab:gray" if n == "grouped" else "tab:blue" for n in names])
            ax.bar_label(bars, [f"{size['variants'][n]['p50_ms']:.0f} ms" for n in names], fontsize=7)
            ax.set(ylabel="% of measured peak", ylim=(0, max(100, max(frac, default=0) * 1.15)),
                   title=f"{size['resolution']} px, channel multiplier {size['channel_multiplier']}: "
                         f"{size['gflop_per_frame']:.1f} GFLOP a frame; peak {m['peak_gflops']:.0f} GFLOP/s, "
                         f"{m['threads']} threads (label: p50 frame time)")
            ax.tick_params(axis="x", rotation=30, labelsize=8)


if __name__ == "__main__":
    main()
