"""`livesound bench --stages generator`: the generator alone, per backend, as a fraction of this machine's peak.

Writes issue 5's report shape with only the ``generator`` stage timed (``total`` is the same call: w+ in,
image tensor out, any conversion a backend needs included), plus ``achieved_gflops`` and
``fraction_of_peak`` per backend. The work per frame is ``livesound.bench.flops.generator_flops`` (the network's own
multiply-adds, not what an implementation executes); the peak is measured in the same run with the same
threads (``livesound.bench.flops.measure_peak_gflops``). Achieved GFLOP/s use the median frame time.

Backends: ``torch`` (eager, inference mode, with the fast paths of ``livesound.models.fast_paths.FastPaths``),
``torch-plain`` (eager, the plain reference path), ``torch-compile`` (``torch.compile`` of the fast-path
generator, inductor; needs a C++ compiler and takes minutes to build, so it is never a default), and every
stage backend of `livesound.live.backends` by its name (``onnxruntime``, ``openvino``, ``openvino-bf16``,
``torch-bf16``, ``torch-fp16``, ``tensorrt``, ... and ``auto``), built from the fast-path generator. Each
backend's image is compared with the fp32 torch image (``psnr_db``, ``within_tolerance``: PSNR >= 40 dB,
`livesound.live.backends.parity`). A backend that cannot run on this machine (no bf16 instructions, no OpenVINO,
no GPU) is listed under ``unavailable`` with the reason, one that failed to build under ``skipped``.

On a GPU (``device``) frames are timed with the device synchronised, and there is no CPU peak to compare
with: ``fraction_of_peak`` is then absent.

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
from livesound.live.backends import AUTO, BACKENDS, make_backend, parity, unavailable_reason
from livesound.live.backends.torch_stage import compile_synthesis
from livesound.models.fast_paths import FastPaths, apply_fast_paths
from livesound.models.presets import generator_from_preset, load_preset
from livesound.models.stylegan2 import GeneratorConfig, build_generator

GENERATOR_BACKENDS = ("torch", "torch-plain", "torch-compile") + tuple(b for b in BACKENDS if b != "torch") + (AUTO,)


def _load(generator, preset: str):
    """A Generator object, a checkpoint path, or None for the preset's generator."""
    if isinstance(generator, torch.nn.Module):
        return generator.eval()

    return generator_from_preset(load_preset(preset), generator).eval()


def _make_backend(name: str, G, threads: int, device: torch.device = torch.device("cpu")):
    apply_fast_paths(G, FastPaths.plain() if name == "torch-plain" else FastPaths())
    if name in ("torch", "torch-plain"):
        def run(ws):
            with torch.inference_mode():
                return G.synthesis(ws, noise_mode="const")
        return run
    if name == "torch-compile":
        return compile_synthesis(G)
    if name in BACKENDS or name == AUTO:
        return make_backend("synthesize", name, G, threads=threads, device=device, check=False)
    raise ValueError(f"unknown generator backend {name!r}; choose from {', '.join(GENERATOR_BACKENDS)}")


def unavailable(name: str, device: torch.device) -> str | None:
    """Why generator backend ``name`` cannot run on ``device`` here (None: it can)."""
    return unavailable_reason(name, device) if name in BACKENDS else None


def time_generator(run, ws: torch.Tensor, frames: int, warmup: int) -> dict:
    """Per-frame times of ``run(ws)`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run(ws)
    ms = []
    for _ in range(frames):
        t0 = time.perf_counter()
        run(ws)
        if ws.is_cuda:
            torch.cuda.synchronize(ws.device)
        ms.append((time.perf_counter() - t0) * 1e3)
    stats = summary_ms(ms)
    return {"fps": 1e3 / stats["mean_ms"], "stages": {"generator": stats, "total": dict(stats)}, "_total_ms": ms}


def run_generator_bench(generator=None, preset: str = "demo", backends=("torch", "onnxruntime"), frames: int = 10,
                        warmup: int = 2, threads: int = 0, peak_seconds: float = 2.0, log=print,
                        peak: dict | None = None, device: str | torch.device = "cpu") -> dict:
    """Time the generator (a checkpoint path, a Generator, or None: the preset's) on each backend.

    A backend that cannot run here is reported under ``unavailable``, one that fails to build
    (``torch-compile`` without a working compiler, say) under ``skipped``, each with the reason, instead of
    failing the run.
    """
    device = torch.device(device)

    unknown = [b for b in backends if b not in GENERATOR_BACKENDS]
    if unknown or not backends:
        raise ValueError(f"unknown generator backends {unknown}; choose from {', '.join(GENERATOR_BACKENDS)}")
    if frames < 1 or warmup < 0:
        raise ValueError("frames must be at least 1 and warmup not negative")
    threads = threads or __import__("os").cpu_count() or 1
    G = _load(generator, preset).to(device)
    flops = generator_flops(G.cfg)
    cpu = device.type == "cpu"
    log(f"livesound bench: generator {G.resolution} px, channels {G.cfg.channels}, "
        f"{flops['gflop']:.2f} GFLOP a frame, on {device}" +
        (f"; measuring this machine's peak ({threads} threads)" if cpu else ""))
    if cpu:
        peak = peak or measure_peak_gflops(threads, seconds=peak_seconds)
        log(f"livesound bench: peak {peak['peak_gflops']:.1f} GFLOP/s (matmul {peak['matmul_gflops']:.1f}, "
            f"3x3 conv {peak['conv_gflops']:.1f})")
    torch.set_num_threads(threads)
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seeds([0]), truncation_psi=0.7)            # [1, num_ws, w_dim]
        reference = apply_fast_paths(G).synthesis(ws, noise_mode="const").float()  # fp32 torch: the parity target
    result = {"generator": {"source": Path(generator).name if isinstance(generator, (str, Path)) else
                            ("preset:" + preset if generator is None else "object"),
                            "resolution": G.resolution, "channels": list(G.cfg.channels),
                            "gflop_per_frame": flops["gflop"],
                            "gflop_parts": {k: v / 1e9 for k, v in flops["parts"].items()}},
              "frames": frames, "warmup": warmup, "device": str(device), "backends": {}, "unavailable": {},
              "skipped": {}, "machine": machine_info(threads) | (peak if cpu else {}),
              "settings": {"batch": 1, "precision": "in the backend's name (none: fp32)", "noise_mode": "const",
                           "stages": ["generator"], "parity": parity.TOLERANCE["synthesize"]}}
    for name in backends:
        reason = unavailable(name, device)
        if reason:
            result["unavailable"][name] = reason
            log(f"livesound bench: {name}: unavailable ({reason})")
            continue
        log(f"livesound bench: {name}: building")
        try:
            t0 = time.perf_counter()
            run = _make_backend(name, G, threads, device)
            image = run(ws)  # builds (exports, compiles) here, outside the timed frames
            build_s = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 - an optional backend that cannot build is reported, not fatal
            result["skipped"][name] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e) else ''}"
            log(f"livesound bench: {name}: skipped ({result['skipped'][name]})")
            continue
        r = time_generator(run, ws, frames, warmup)
        achieved = flops["gflop"] / (r["stages"]["generator"]["p50_ms"] / 1e3)
        psnr = parity.psnr_db(image, reference)
        r |= {"achieved_gflops": achieved, "build_s": build_s, "psnr_db": psnr,
              "within_tolerance": psnr >= parity.MIN_PSNR_DB, "runs_as": getattr(run, "name", name)}
        if cpu:
            r["fraction_of_peak"] = achieved / peak["peak_gflops"]
        result["backends"][name] = r
        log(f"livesound bench: {name}: {r['stages']['generator']['p50_ms']:.1f} ms a frame (p50), "
            f"{achieved:.1f} GFLOP/s" + (f" = {100 * r['fraction_of_peak']:.0f}% of peak" if cpu else "") +
            f", PSNR {psnr:.1f} dB against fp32 torch")
    if not result["backends"]:
        raise RuntimeError(f"no backend could run: unavailable {result['unavailable']}, failed {result['skipped']}")
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
                        threads: int = 0, log=print, peak_seconds: float = 2.0, device: str = "cpu") -> dict:
    """``run_generator_bench`` on a seeded random generator of each (resolution, channel multiplier), against
    one peak measured at the start of the run."""
    import os

    threads = threads or os.cpu_count() or 1
    peak = measure_peak_gflops(threads, seconds=peak_seconds) if torch.device(device).type == "cpu" else None
    reports = []
    for res, cm in sizes:
        G = build_generator(GeneratorConfig(resolution=res, channel_multiplier=cm), seed=0)
        r = run_generator_bench(G, backends=backends, frames=frames, warmup=warmup, threads=threads,
                                peak=peak, log=log, device=device)
        r["generator"] |= {"source": f"random seed 0, {res} px, channel multiplier {cm}", "channel_multiplier": cm}
        reports.append(r)
    return reports[0] | {"sizes": reports}


def plot_generator(result: dict, path: Path) -> None:
    """Frame time per backend (p50, whisker to p99) and the fraction of peak each reaches (on a GPU: each one's
    PSNR), one row per size."""
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
            m = r["machine"]
            if "peak_gflops" in m:
                b.bar(names, [100 * x["fraction_of_peak"] for x in rs])
                b.set(ylabel="% of measured fp32 peak", ylim=(0, 100),
                      title=f"peak {m['peak_gflops']:.0f} GFLOP/s, {m['threads']} threads")
            else:  # a GPU: no CPU peak to compare with; the parity of each backend instead
                b.bar(names, [min(x["psnr_db"], 100) for x in rs])
                b.axhline(40, color="r", ls="--", label="40 dB")
                b.set(ylabel="PSNR against fp32 torch, dB", title=r.get("device", ""))
