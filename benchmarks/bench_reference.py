"""livesound's generator backends against the reference eager code: rosinality's stylegan2-pytorch ``model.py``.

    python benchmarks/bench_reference.py --reference ~/src/stylegan2-pytorch          # 256 px, cm 1, all cores
    python benchmarks/bench_reference.py --reference DIR --size 256 --channel-multiplier 1 --threads 2 \\
        --backends torch,torch-bf16,onnxruntime,openvino,openvino-bf16 --frames 10

``--reference`` is a checkout of https://github.com/rosinality/stylegan2-pytorch (its ``model.py`` and ``op/``);
nothing of it is part of livesound, and no test depends on it. Its ``op`` package compiles CUDA extensions when
imported; on the CPU its ops fall back to plain PyTorch (``upfirdn2d_native``, ``F.leaky_relu``, ``F.conv2d``)
and never touch the extension, so this script lets the import succeed without building it (``_import_reference``)
and runs the reference eagerly, as its own code does on a CPU.

Same weights: the reference generator is built from a seed (its own initialisation, then biases and noise
strengths perturbed so that every term counts), saved as the rosinality ``.pt`` it would write, and loaded by
livesound's one door (``load_generator``). Same input: one w+ from seed 0 at truncation 0.7, the stored
constant noise on both sides. Same threads: ``--threads`` for torch, ONNX Runtime and OpenVINO alike. Same run:
after warm-up, every round times one reference call and then one call of each backend, so a load that comes
and goes weighs on all of them alike. PSNR is against the reference image (clamped to [-1, 1]).

Writes ``benchmarks/results/reference_<size>px_cm<cm>_cpu.json`` (``--json`` elsewhere) and the plot beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from livesound.bench.stages import machine_info
from livesound.bench.stats import figure, p50_bars, summary_ms
from livesound.files import write_json
from livesound.live.backends import make_backend, parity, unavailable_reason
from livesound.models.fast_paths import apply_fast_paths
from livesound.models.stylegan2 import load_generator

RESULTS = Path(__file__).parent / "results"
GOAL_SPEEDUP = 6.0


@contextlib.contextmanager
def _no_extension_build():
    """``torch.utils.cpp_extension.load`` hands back a stand-in: the reference's CPU paths never call into it."""
    import torch.utils.cpp_extension as ext

    class NotBuilt:
        def __getattr__(self, name):
            raise RuntimeError("the reference's CUDA extension was not built (CPU run)")

    real = ext.load
    ext.load = lambda *args, **kwargs: NotBuilt()
    try:
        yield
    finally:
        ext.load = real


def _import_reference(folder: Path):
    if not (folder / "model.py").is_file() or not (folder / "op").is_dir():
        raise SystemExit(f"{folder}: not a stylegan2-pytorch checkout (model.py and op/ expected)")
    sys.path.insert(0, str(folder))
    try:
        with _no_extension_build():
            import model
    finally:
        sys.path.remove(str(folder))
    return model


def build_pair(reference_model, size: int, cm: int, seed: int, folder: Path):
    """(reference Generator, livesound Generator) with the same weights, via a rosinality ``.pt``."""
    torch.manual_seed(seed)
    ref = reference_model.Generator(size, 512, 8, channel_multiplier=cm).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("bias") or "noise" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        latent_avg = ref.mean_latent(4096)[0]
    path = folder / "reference.pt"
    torch.save({"g_ema": ref.state_dict(), "latent_avg": latent_avg}, path)
    return ref, apply_fast_paths(load_generator(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, type=Path, help="a rosinality/stylegan2-pytorch checkout")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--channel-multiplier", type=int, default=1)
    ap.add_argument("--backends", default="torch,torch-bf16,onnxruntime,openvino,openvino-bf16")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of every side (0: all cores)")
    ap.add_argument("--frames", type=int, default=10, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="report path (default: results/reference_<size>px_cm<cm>_cpu.json)")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    load_before = os.getloadavg()  # other processes share the cores: the report says how busy the machine was
    out = args.json or RESULTS / f"reference_{args.size}px_cm{args.channel_multiplier}_cpu.json"
    cpu = torch.device("cpu")

    with tempfile.TemporaryDirectory(prefix="livesound-reference-") as tmp:
        ref, G = build_pair(_import_reference(args.reference.expanduser()), args.size, args.channel_multiplier,
                            args.seed, Path(tmp))
    with torch.inference_mode():
        ws = G.mapping(G.z_from_seeds([0]), truncation_psi=0.7)                      # [1, num_ws, 512]

    def reference(w):
        with torch.no_grad():
            return ref([w], input_is_latent=True, randomize_noise=False)[0]

    want = reference(ws)
    runners, result = {}, {"unavailable": {}, "skipped": {}}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        reason = unavailable_reason(name, cpu)
        if reason:
            result["unavailable"][name] = reason
            print(f"{name}: unavailable ({reason})", file=sys.stderr)
            continue
        try:
            runners[name] = make_backend("synthesize", name, G, threads=threads, check=False)
            runners[name](ws)
        except Exception as e:  # noqa: BLE001 - reported, the others still run
            result["skipped"][name] = f"{type(e).__name__}: {e}"[:300]
            runners.pop(name, None)
    ms = {"reference": [], **{n: [] for n in runners}}
    calls = {"reference": reference, **runners}
    for i in range(args.warmup + args.frames):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call(ws)
            if i >= args.warmup:
                ms[name].append((time.perf_counter() - t0) * 1e3)
    ref_p50 = float(np.median(ms["reference"]))
    entries = {}
    for name, values in ms.items():
        s = summary_ms(values)
        db = parity.psnr_db(calls[name](ws), want)
        entries[name] = {"stages": {"generator": s}, "speedup_vs_reference": ref_p50 / s["p50_ms"], "psnr_db": db,
                         "within_tolerance": db >= parity.MIN_PSNR_DB, "_ms": values}
        print(f"{name:>14}: p50 {s['p50_ms']:7.1f} ms, p95 {s['p95_ms']:7.1f} ms, "
              f"{ref_p50 / s['p50_ms']:5.2f}x the reference, PSNR {db:6.1f} dB", file=sys.stderr)
    best = max((n for n in runners if entries[n]["within_tolerance"]),
               key=lambda n: entries[n]["speedup_vs_reference"], default=None)
    result |= {"reference": {"code": "rosinality/stylegan2-pytorch model.py, eager, its CPU op fallbacks",
                             "size": args.size, "channel_multiplier": args.channel_multiplier, "seed": args.seed},
               "frames": args.frames, "warmup": args.warmup, "backends": entries,
               "best": best, "best_speedup": entries[best]["speedup_vs_reference"] if best else None,
               "goal": {"speedup": GOAL_SPEEDUP, "min_psnr_db": parity.MIN_PSNR_DB,
                        "met": bool(best and entries[best]["speedup_vs_reference"] >= GOAL_SPEEDUP)},
               "machine": machine_info(threads) | {"load_average_1min": [load_before[0], os.getloadavg()[0]]}}
    write_json(out, _public(result))
    plot(result, out.with_suffix(".png"))
    verdict = "met" if result["goal"]["met"] else "NOT met"
    print(f"best within {parity.MIN_PSNR_DB:g} dB: {best} at {result['best_speedup'] or 0:.2f}x the reference "
          f"(goal {GOAL_SPEEDUP:g}x: {verdict}); wrote {out}")


def _public(d):
    if isinstance(d, dict):
        return {k: _public(v) for k, v in d.items() if not k.startswith("_")}
    return d


def plot(result: dict, path: Path) -> None:
    names = list(result["backends"])
    entries = [result["backends"][n] for n in names]
    with figure(path, 1, 2, (11, 4)) as (fig, (a, b)):
        p50_bars(a, names, [e["stages"]["generator"] for e in entries])
        r = result["reference"]
        a.set(ylabel="ms a frame (p50, whisker to p99)",
              title=f"{r['size']} px, cm {r['channel_multiplier']}, {result['machine']['threads']} threads")
        a.tick_params(axis="x", rotation=30)
        b.bar(names, [e["speedup_vs_reference"] for e in entries])
        b.axhline(GOAL_SPEEDUP, color="r", ls="--", label=f"goal {GOAL_SPEEDUP:g}x")
        b.set(ylabel="speed-up over the reference", title=result["machine"]["processor"])
        b.tick_params(axis="x", rotation=30)
        b.legend()


if __name__ == "__main__":
    main()
