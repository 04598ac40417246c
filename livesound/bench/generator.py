"""`livesound bench --stages generator`: the generator alone, per backend, as a fraction of this machine's peak.

Writes issue 5's report shape with only the ``generator`` stage timed (``total`` is the same call: w+ in,
image tensor out, any conversion a backend needs included), plus ``achieved_gflops`` and
``fraction_of_peak`` per backend. The work per frame is ``livesound.bench.flops.generator_flops`` (the network's own
multiply-adds, not what an implementation executes); the peak is measured in the same run with the same
threads (``livesound.bench.flops.measure_peak_gflops``). Achieved GFLOP/s use the median frame time.

Backends: ``torch`` (eager, inference mode, with the fast paths of ``livesound.models.fast_paths.FastPaths``),
``torch-plain`` (eager, the plain reference path), ``onnxruntime`` (the cached, parity-checked ONNX graph of
the live path, exported from the fast-path generator, all graph optimisations) and ``torch-compile``
(``torch.compile`` of the fast-path generator, inductor on the CPU; needs a C++ compiler and takes minutes to
build, so it is never a default).

``sizes`` ("256:1,256:2": resolution:channel-multiplier) times seeded random generators of rosinality's
channel table instead of a checkpoint: the report then holds one entry per size under ``sizes`` (the first
size's entry is also the report's own top level, in the one-generator shape).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from livesound.bench.flops import generator_flops, measure_peak_gflops
from livesound.bench.stages import machine_info
from livesound.bench.stats import figure, p50_bars, summary_ms
from livesound.live.backends import make_backend
from livesound.live.backends.torch_stage import compile_synthesis
from livesound.models.fast_paths import FastPaths, apply_fast_paths
from livesound.models.presets import generator_from_preset, load_preset
from livesound.models.stylegan2 import GeneratorConfig, build_generator

GENERATOR_BACKENDS = ("torch", "torch-plain", "onnxruntime", "torch-compile")


def _load(generator, preset: str):
    """A Generator object, a checkpoint path, or None for the preset's generator."""
    if isinstance(generator, torch.nn.Module):
        return generator.eval()

    return generator_from_preset(load_preset(preset), generator).eval()


def _make_backend(name: str, G, threads: int):

    apply_fast_paths(G, FastPaths.plain() if name == "torch-plain" else FastPaths())
    if name in ("torch", "torch-plain"):
        def run(ws):
            with torch.inference_mode():
                return G.synthesis(ws, noise_mode="const")
        return run
    if name == "onnxruntime":
        return make_backend("synthesize", "onnxruntime", G, threads=threads)
    if name == "torch-compile":
        return compile_synthesis(G)
    raise ValueError(f"unknown generator backend {name!r}; choose from {', '.join(GENERATOR_BACKENDS)}")


def time_generator(run, ws: torch.Tensor, frames: int, warmup: int) -> dict:
    """Per-frame times of ``run(ws)`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run(ws)
    ms = []
    for _ in range(frames):
        t0 = time.perf_counter()
        run(ws)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3)
    stats = summary_ms(ms)
    return {"fps": 1e3 / stats["mean_ms"], "stages": {"generator": stats, "total": dict(stats)}, "_total_ms": ms}


def run_generator_bench(generator=None, preset: str = "demo", backends=("torch", "onnxruntime"), frames: int = 10,
                        warmup: int = 2, threads: int = 0, peak_seconds: float = 2.0, log=print,
                        peak: dict | None = None) -> dict:
    """Time the generator (a checkpoint path, a Generator, or None: the preset's) on each backend.

    A backend that fails to build (``torch-compile`` without a working compiler, say) is reported under
    ``skipped`` with the reason instead of failing the run.
    """

    unknown = [b for b in backends if b not in GENERATOR_BACKENDS]
    if unknown or not backends:
        raise ValueError(f"unknown generator backends {unknown}; choose from {', '.join(GENERATOR_BACKENDS)}")
    if frames < 1 or warmup < 0:
        raise ValueError("frames must be at least 1 and warmup not negative")
    threads = threads or __import__("os").cpu_count() or 1
    G = _load(generator, preset)
    flops = generator_flops(G.cfg)
    log(f"livesound bench: generator {G.resolution} px, channels {G.cfg.channels}, "
        f"{flops['gflop']:.2f} GFLOP a frame; measuring this machine's peak ({threads} threads)")
    peak = peak or measure_peak_gflops(threads, seconds=peak_seconds)
    log(f"livesound bench: peak {peak['peak_gflops']:.1f} GFLOP/s (matmul {peak['matmul_gflops']:.1f}, "
        f"3x3 conv {peak['conv_gflops']:.1f})")
    torch.set_num_threads(threads)
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seeds([0]), truncation_psi=0.7)            # [1, num_ws, w_dim]
    result = {"generator": {"source": Path(generator).name if isinstance(generator, (str, Path)) else
                            ("preset:" + preset if generator is None else "object"),
                            "resolution": G.resolution, "channels": list(G.cfg.channels),
                            "gflop_per_frame": flops["gflop"],
                            "gflop_parts": {k: v / 1e9 for k, v in flops["parts"].items()}},
              "frames": frames, "warmup": warmup, "backends": {}, "skipped": {},
              "machine": machine_info(threads) | peak,
              "settings": {"batch": 1, "precision": "fp32", "noise_mode": "const", "stages": ["generator"]}}
    for name in backends:
        log(f"livesound bench: {name}: building")
        try:
            t0 = time.perf_counter()
            run = _make_backend(name, G, threads)
            run(ws)  # builds (exports, compiles) here, outside the timed frames
            build_s = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - an optional backend that cannot build is reported, not fatal
            result["skipped"][name] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}"
            log(f"livesound bench: {name}: skipped ({result['skipped'][name]})")
            continue
        r = time_generator(run, ws, frames, warmup)
        achieved = flops["gflop"] / (r["stages"]["generator"]["p50_ms"] / 1e3)
        r |= {"achieved_gflops": achieved, "fraction_of_peak": achieved / peak["peak_gflops"],
              "build_s": build_s}
        result["backends"][name] = r
        log(f"livesound bench: {name}: {r['stages']['generator']['p50_ms']:.1f} ms a frame (p50), "
            f"{achieved:.1f} GFLOP/s = {100 * r['fraction_of_peak']:.0f}% of peak")
    if not result["backends"]:
        raise RuntimeError(f"no backend could run: {result['skipped']}")
    return result


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'256:1,256:2' -> [(256, 1), (256, 2)] (resolution, channel multiplier)."""
    sizes = []
    for part in text.split(","):
        res, _, cm = part.strip().partition(":")
        if not (res.isdigit() and cm.isdigit()):
            raise ValueError(f"--sizes takes RESOLUTION:CHANNEL_MULTIPLIER pairs like 256:1,256:2; got {part!r}")
        sizes.append((int(res), int(cm)))
    return sizes


def run_generator_sizes(sizes: list[tuple[int, int]], backends, frames: int = 10, warmup: int = 2,
                        threads: int = 0, log=print, peak_seconds: float = 2.0) -> dict:
    """``run_generator_bench`` on a seeded random generator of each (resolution, channel multiplier), against
    one peak measured at the start of the run."""
    import os

    threads = threads or os.cpu_count() or 1
    peak = measure_peak_gflops(threads, seconds=peak_seconds)
    reports = []
    for res, cm in sizes:
        G = build_generator(GeneratorConfig(resolution=res, channel_multiplier=cm), seed=0)
        r = run_generator_bench(G, backends=backends, frames=frames, warmup=warmup, threads=threads,
                                peak=peak, log=log)
        r["generator"] |= {"source": f"random seed 0, {res} px, channel multiplier {cm}", "channel_multiplier": cm}
        reports.append(r)
    return reports[0] | {"sizes": reports}


def plot_generator(result: dict, path: Path) -> None:
    """Frame time per backend (p50, whisker to p99) and the fraction of peak each reaches, one row per size."""
    sizes = result.get("sizes", [result])
    with figure(path, len(sizes), 2, (10, 3.8 * len(sizes)), squeeze=False) as (fig, axes):
        for (a, b), r in zip(axes, sizes):
            names = list(r["backends"])
            rs = [r["backends"][n] for n in names]
            p50_bars(a, names, [x["stages"]["generator"] for x in rs])
            g = r["generator"]
            cm = f", cm {g['channel_multiplier']}" if "channel_multiplier" in g else ""
            a.set(ylabel="ms a frame (p50, whisker to p99)",
                  title=f"{g['resolution']} px generator{cm}, {g['gflop_per_frame']:.1f} GFLOP a frame")
            b.bar(names, [100 * x["fraction_of_peak"] for x in rs])
            m = r["machine"]
            b.set(ylabel="% of measured fp32 peak", ylim=(0, 100),
                  title=f"peak {m['peak_gflops']:.0f} GFLOP/s, {m['threads']} threads")
