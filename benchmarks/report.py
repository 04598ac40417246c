"""Regenerate benchmarks/README.md from the recorded results in benchmarks/results/ (tables + plots).

    python benchmarks/report.py            # rewrites benchmarks/README.md
    python benchmarks/report.py --check    # exit 1 if README.md is not what the results give

Every figure comes from a JSON file a benchmark wrote; the machine and versions are the ones each file records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _ms(d: dict, key: str = "p50_ms") -> str:
    return f"{d[key]:.1f}" if key in d else "-"


def _cells(d: dict, keys: tuple[str, ...] = ("p50_ms", "p95_ms", "p99_ms")) -> str:
    return " / ".join(_ms(d, k) for k in keys)


def live_rows() -> list[str]:
    rows = []
    for path in sorted(RESULTS.glob("live_*_cpu.json")):
        d = json.loads(path.read_text())
        lat = d.get("onset_to_frame_latency", {})
        rows.append(f"| {d['preset']} | {d.get('backend', 'torch')} | {d.get('pin_threads', '-')} | {d['fps']:.1f} | "
                    f"{_cells(d['frame_interval'])} | {_cells(lat, ('p50_ms', 'p95_ms', 'p99_ms', 'max_ms'))} | "
                    f"{lat.get('n', 0)} of {lat.get('onsets', '?')} | {path.name} |")
    return rows


def bench_rows(d: dict) -> list[str]:
    """p50 / p99 per stage, and each backend's fps against the first backend's."""
    rows, first = [], None
    for name, b in d["backends"].items():
        st = b["stages"]
        first = first or b["fps"]
        cells = " | ".join(_cells(st[s], ("p50_ms", "p99_ms")) if s in st else "-"
                           for s in ("features", "encoder", "mapper", "generator", "total"))
        rows.append(f"| {name} | {b['fps']:.1f} | {cells} | {b['fps'] / first:.2f}x |")
    return rows


def generator_rows(d: dict) -> list[str]:
    return [f"| {name} | {b['stages']['generator']['p50_ms']:.0f} | {b['stages']['generator']['p99_ms']:.0f} | "
            f"{b.get('achieved_gflops', 0):.1f} | {100 * b.get('fraction_of_peak', 0):.0f} % |"
            for name, b in d["backends"].items()]


def rig_section(rig: dict | None) -> list[str]:
    if not rig:
        return []
    out = ["## The rig's per-frame cost (`python benchmarks/bench_rig.py`)", "",
           "| scenario | p50 ms | p99 ms |", "|---|---|---|",
           *[f"| {k} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} |" for k, v in rig["scenarios"].items()], ""]
    swap = rig.get("swap")
    if swap:
        gaps = swap.get("takeover_frame_gaps_ms", [])
        out += [f"Checkpoint swap under load: takeover {', '.join(f'{ms:.1f}' for ms in swap['takeover_ms'])} ms "
                f"between frames; gaps into the first new frames {' / '.join(f'{ms:.0f}' for ms in gaps) or '-'} ms "
                f"against a {swap['frame_interval_p50_ms']:.1f} ms median interval; frame gap max "
                f"{swap['max_gap_while_loading_ms']:.0f} ms while loading against {swap['max_gap_control_ms']:.0f} ms "
                f"without swaps; {swap['overruns']} audio overruns.", ""]
    return out + ["![rig](results/rig_cpu.png)", ""]


# The variants the techniques summary shows, in its order, and what each one is.
HEADLINE_VARIANTS = {
    "grouped": "reference form: per-sample grouped-conv weights",
    "shared": "shared-weight convolution (plain path)",
    "+fused-act": "+ fused bias/noise/activation",
    "+channels-last": "+ channels-last",
    "+fold-fir": "+ FIR folded into the upsampling convolution",
    "1-thread": "fast paths on 1 thread",
    "compile": "fast paths + `torch.compile` (inductor)",
    "ort-fused": "ONNX Runtime, all optimisations, fast-path graph",
}
# Settings that leave the fast paths alone (heap retention, OMP_PROC_BIND=close, one inter-op thread); the
# report says how far they move the default variant's time.
NEUTRAL_VARIANTS = ("+retain-heap", "omp-bind", "interop-1")
# Files the sections below show by name; every other generator_*.json goes to the "other runs" table.
NAMED_GENERATOR_FILES = ("generator_256px_cm1_cpu.json", "generator_256px_cpu.json")


def _default_variant(size: dict, default: dict) -> str | None:
    """The variant whose settings are exactly the default fast paths (``FastPaths()``), if one is."""
    for name, v in size["variants"].items():
        st = v.get("settings", {})
        if set(st) <= set(default) and all(st.get(k, False) == on for k, on in default.items()):
            return name
    return None


def technique_summary(tech: dict) -> list[str]:
    """One row per headline variant across the sizes, then what the recorded figures imply."""
    sizes, peak = tech["sizes"], tech["machine"]["peak_gflops"]
    default = _default_variant(sizes[0], tech.get("fast_paths_default", {}))
    head = " | ".join(f"cm {s['channel_multiplier']} ms | % of peak" for s in sizes)
    out = [f"| {sizes[0]['resolution']} px variant | {head} |", "|---" * (1 + 2 * len(sizes)) + "|"]
    for name, label in HEADLINE_VARIANTS.items():
        if not any(name in s["variants"] for s in sizes):
            continue
        cells = " | ".join(f"{s['variants'][name]['p50_ms']:.0f} | {100 * s['variants'][name]['fraction_of_peak']:.1f}"
                           if name in s["variants"] else "- | -" for s in sizes)
        out.append(f"| {label}{' (`FastPaths()` defaults)' if name == default else ''} | {cells} |")
    err = max(v["max_abs_error"] for s in sizes for v in s["variants"].values())
    floors = ", ".join(f"{1e3 * s['gflop_per_frame'] / peak:.0f} ms (cm {s['channel_multiplier']})" for s in sizes)
    out += ["", f"Every variant is within {err:.1e} of the plain path's image. At the measured peak a frame takes "
                f"at least {floors}."]
    neutral = [n for n in NEUTRAL_VARIANTS if default and all(n in s["variants"] for s in sizes)]
    moves = [abs(s["variants"][n]["p50_ms"] / s["variants"][default]["p50_ms"] - 1) for s in sizes for n in neutral]
    if moves:
        out[-1] += (f" {', '.join(f'`{n}`' for n in neutral)} (heap retention, `OMP_PROC_BIND=close`, one inter-op "
                    f"thread) move the defaults' frame time by at most {100 * max(moves):.1f} %.")
    return out + [""]


def technique_section() -> list[str]:
    """The generator techniques study (bench_generator_techniques.py) and the per-size backend figures."""
    out = []
    for path in sorted(RESULTS.glob("generator_techniques_*_cpu.json")):
        tech = json.loads(path.read_text())
        m = tech["machine"]
        command = tech.get("command", "python benchmarks/bench_generator_techniques.py").strip()
        out += [f"## Generator techniques, one by one (`{command}`)", "",
                f"Measured peak {m['peak_gflops']:.1f} GFLOP/s ({m['threads']} threads, {m['date']}); "
                f"{tech['frames']} frames per variant; whole run {tech['wall_s'] / 60:.1f} min. Parity: max abs "
                "difference from the plain path's image.", "", *technique_summary(tech)]
        for size in tech["sizes"]:
            out += [f"{size['resolution']} px, channel multiplier {size['channel_multiplier']} "
                    f"({size['gflop_per_frame']:.1f} GFLOP a frame):", "",
                    "| variant | p50 ms | p99 ms | CPU ms p50 | GFLOP/s | of peak | vs grouped | parity |",
                    "|---|---|---|---|---|---|---|---|"]
            for name, v in size["variants"].items():
                sp, cpu = v.get("speedup_vs_grouped"), v.get("cpu_p50_ms")
                out.append(f"| {name} | {v['p50_ms']:.0f} | {v['p99_ms']:.0f} | {f'{cpu:.0f}' if cpu else '-'} | "
                           f"{v['achieved_gflops']:.1f} | {100 * v['fraction_of_peak']:.0f} % | "
                           f"{f'{sp:.2f}x' if sp else '-'} | {v['max_abs_error']:.1e} |")
            out += [f"| {n} | skipped: {why} | | | | | | |" for n, why in size.get("skipped", {}).items()] + [""]
        out += [f"![techniques](results/{path.with_suffix('.png').name})", ""]
    sizes = _load("generator_256px_cpu.json")
    if sizes:
        out += ["## Generator per backend, cm 1 and cm 2 (`livesound bench --stages generator --sizes 256:1,256:2 "
                "--backends torch,torch-plain,onnxruntime --json benchmarks/results/generator_256px_cpu.json`)", "",
                f"{sizes['frames']} timed frames per backend after {sizes['warmup']} warm-up against a peak of "
                f"{sizes['machine']['peak_gflops']:.1f} GFLOP/s measured in the same run "
                f"({sizes['machine']['threads']} threads, {sizes['machine']['date']}); `torch` runs the default fast "
                "paths, `torch-plain` the reference path.", "",
                "| size | backend | p50 ms | p99 ms | GFLOP/s | of peak |", "|---|---|---|---|---|---|"]
        for size in sizes.get("sizes", [sizes]):
            g = size["generator"]
            out += [f"| {g['resolution']} px cm {g.get('channel_multiplier', '?')} ({g['gflop_per_frame']:.1f} GFLOP) "
                    f"| {row[2:]}" for row in generator_rows(size)]
        out += ["", "![generator](results/generator_256px_cpu.png)", ""]
    out += other_generator_section()
    pin = _load("pinning_demo_onnxruntime_cpu.json")
    if pin:
        out += ["## Pinned worker threads (`python benchmarks/bench_pinning.py`)", "",
                f"{pin['repeats']} alternating runs of {pin['seconds']:.0f} s each, {pin['backend']}.", "",
                "| pin | fps (median) | frame interval p99 ms (median) | onset to frame p50 ms |", "|---|---|---|---|",
                *[f"| {k} | {v['fps_median']:.1f} | {v['interval_p99_ms_median']:.1f} | "
                  f"{v['onset_p50_ms_median']:.1f} |" for k, v in pin["summary"].items()],
                "", "![pinning](results/pinning_demo_onnxruntime_cpu.png)", ""]
    return out


def other_generator_section() -> list[str]:
    """Every other generator_*.json: ``livesound bench --stages generator`` reports, and the flat records of the
    former ``benchmarks/bench_generator.py`` (eager synthesis on the plain path: now ``--backends torch-plain``)."""
    rows = []
    for path in sorted(RESULTS.glob("generator_*.json")):
        if path.name in NAMED_GENERATOR_FILES or path.name.startswith("generator_techniques_"):
            continue
        d = json.loads(path.read_text())
        if "backends" in d:
            for size in d.get("sizes", [d]):
                g = size["generator"]
                rows += [f"| {g['source']} | {g['resolution']} | {name} | {size['machine']['threads']} | "
                         f"{size['frames']} | {_cells(b['stages']['generator'])} | {b['fps']:.1f} | {path.name} |"
                         for name, b in size["backends"].items()]
        elif "p50_ms" in d:
            rows.append(f"| {d['model']} | {d['resolution']} | torch-plain | {d['threads']} | {d['frames']} | "
                        f"{_cells(d)} | {d['fps_mean']:.1f} | {path.name} |")
    if not rows:
        return []
    return ["## Generator synthesis alone, other runs (`livesound bench --stages generator --backends torch-plain "
            "--preset demo --frames 500 --threads 2`, or `--sizes 256:1`)", "",
            "Batch 1, const noise, fp32. The `*_cpu2.json` files were recorded by the former "
            "`benchmarks/bench_generator.py`, which timed the same eager call on the plain path.", "",
            "| generator | px | backend | threads | frames | p50 / p95 / p99 ms | fps | file |",
            "|---|---|---|---|---|---|---|---|", *rows, ""]


def output_section() -> list[str]:
    """The output stages (`bench_output.py`) and, when recorded, a whole demo frame with ``--size``."""
    d = _load("output_cpu.json")
    if not d:
        return []
    m, load, st = d["machine"], d["load_average"], d["settings"]
    out = ["## Output stages: resize and upscale (`python benchmarks/bench_output.py`)", "",
           f"{m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}, {m['date']}; 1-minute load average "
           f"{load['start'][0]:.1f} at the start and {load['end'][0]:.1f} at the end (a shared machine). Resize on "
           f"{st['resize_threads']} torch thread, as the live renderer runs it; upscale on {st['upscale_threads']} "
           "threads, fp32, batch 1, random weights in the public layouts.", "",
           "| resize (`--fit cover`) | p50 ms | p99 ms |", "|---|---|---|",
           *[f"| {k} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |" for k, v in d["resize"].items()], ""]
    if d["upscale"]:
        out += ["| upscale 256 -> 1024 px | layout | parameters | wall p50 s | CPU s per frame | frames |",
                "|---|---|---|---|---|---|",
                *[f"| {k} | {v['layout']} | {v['params']:,} | {v['p50_ms'] / 1e3:.2f} | "
                  f"{v['cpu_s_per_frame_mean']:.2f} | {v['n']} |" for k, v in d["upscale"].items()], ""]
    sized = _load("bench_demo_size_cpu.json")
    if sized:
        cols = ("features", "encoder", "mapper", "generator", "upscale", "resize", "total")
        st, up = sized["settings"], sized["settings"].get("upscaler")
        out += [f"Whole demo frames at {st['size']} (`livesound bench --preset demo --size {st['size']}"
                + (f" --upscaler {up}" if up else "") + f" --threads {sized['machine']['threads']}`"
                + ("; random weights in the compact layout" if up else "") + "), p50 / p99 ms:", "",
                "| backend | fps | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols),
                *[f"| {name} | {b['fps']:.1f} | " + " | ".join(_cells(b["stages"][c], ("p50_ms", "p99_ms"))
                                                          if c in b["stages"] else "-" for c in cols) + " |"
                  for name, b in sized["backends"].items()], ""]
    return out + ["![output stages](results/output_cpu.png)", ""]


def render() -> str:
    out = ["# livesound benchmark results", "",
           "Generated by `python benchmarks/report.py` from the JSON files in `results/`; each file records its "
           "machine, versions and settings. Figures are from the machines named there (no GPU results yet).", ""]
    rows = live_rows()
    if rows:
        out += ["## Live path end to end (`python benchmarks/bench_live.py --seconds 30 --backend B`)", "",
                "| preset | backend | pinned | fps | frame interval p50 / p95 / p99 ms | onset to frame p50 / p95 / "
                "p99 / max ms | clicks reacted | file |", "|---|---|---|---|---|---|---|---|", *rows,
                "", "![live](results/live_demo_onnxruntime_cpu.png)", ""]
    lat = _load("latency_demo_cpu.json")
    if lat:
        parts = lat["parts_ms"]
        out += ["## Sound to picture through the capture path (`livesound bench latency --preset demo "
                "--latency low`)", "",
                f"Path **{lat['path']}**, {lat['clicks']} clicks: onset to frame ready p50 "
                f"{lat['onset_to_frame_ms']['p50']:.1f} ms, p95 {lat['onset_to_frame_ms']['p95']:.1f} ms; "
                f"p50 parts: capture {parts['capture']['p50']:.1f}, wait {parts['wait']['p50']:.1f}, "
                f"compute {parts['compute']['p50']:.1f} ms.", "", "![latency](results/latency_demo_cpu.png)", ""]
    bench = _load("bench_demo_cpu.json")
    if bench:
        out += ["## Per stage, per backend (`livesound bench --preset demo --backends torch,onnxruntime "
                "--frames 200`)", "", "p50 / p99 ms per frame.", "",
                "| backend | fps | features | encoder | mapper | generator | total | fps vs the first |",
                "|---|---|---|---|---|---|---|---|", *bench_rows(bench), "", "![bench](results/bench_demo_cpu.png)", ""]
    gen = _load("generator_256px_cm1_cpu.json")
    if gen:
        out += ["## Generator against the machine's measured peak (`livesound bench --generator G --stages "
                "generator`)", "",
                f"{gen['generator']['source']}: {gen['generator']['gflop_per_frame']:.2f} GFLOP a frame; measured "
                f"fp32 peak {gen['machine']['peak_gflops']:.1f} GFLOP/s ({gen['machine']['threads']} threads, "
                f"{gen['machine']['date']}); {gen['frames']} frames per backend.", "",
                "| backend | p50 ms | p99 ms | GFLOP/s | of peak |", "|---|---|---|---|---|", *generator_rows(gen), ""]
    out += technique_section()
    feats = _load("features_cpu.json")
    if feats:
        out += ["## Audio front end (`python benchmarks/bench_features.py --threads 2`)", "",
                "| scenario | p50 ms | p99 ms |", "|---|---|---|",
                *[f"| {k} | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} |" for k, v in feats["scenarios"].items()], ""]
    out += rig_section(_load("rig_cpu.json"))
    opt = _load("optimize_demo_cpu.json")
    if opt:
        out += ["## Offline optimisation (`python benchmarks/bench_optimize.py`)", "",
                f"{opt['step_p50_ms']:.0f} ms per step (p50) on the {opt['model']} preset, {opt['threads']} thread; "
                f"a 300-step run measured {opt['run_300_measured_s']:.1f} s.", ""]
    out += meaning_section()
    out += steer_modes_section(_load("steer_modes_demo_cpu.json"))
    out += output_section()
    out += reference_section() + gpu_section()
    out += robustness_section()
    return "\n".join(out) + "\n"


def _steer_modes_backends(d: dict) -> str:
    """'encode X, synthesize Y; map: mapper Z, optimize torch, ...' from what each run recorded."""
    runs = {m: e.get("backends", {}) for m, e in d["fixed_step"].items()}
    first = next(iter(runs.values()), {})
    shared = ", ".join(f"{s} {first[s]}" for s in ("encode", "synthesize") if s in first)
    return f"{shared}; map: " + ", ".join(f"{m} {b.get('map', '?')}" for m, b in runs.items())


def steer_modes_section(d: dict | None) -> list[str]:
    """Per-frame cost of each steering mode and a directions build (`bench_steer_modes.py`), when recorded."""
    if not d:
        return []
    out = ["## Steering modes (`python benchmarks/bench_steer_modes.py`)", "",
           f"Renderer-side ms per frame on the {d['model']} preset (its backends: {_steer_modes_backends(d)}), "
           f"{d['threads']} torch thread, "
           f"p50 / p99; fixed-step is a headless file run, live the threaded engine on the synthetic source "
           f"(machine load average {d.get('load_average_1min_at_start', '?')} at the start: shared with other work).",
           "", "| mode | fixed-step map | fixed-step frame | live map | live frame | live fps |",
           "|---|---|---|---|---|---|"]
    for mode, fixed in d["fixed_step"].items():
        lv = d["live"][mode]
        extra = f" (worker {lv['worker_steps_per_s']:.1f} steps/s)" if "worker_steps_per_s" in lv else ""
        out.append(f"| {mode} | {_cells(fixed['map'], ('p50_ms', 'p99_ms'))} | "
                   f"{_cells(fixed['frame'], ('p50_ms', 'p99_ms'))} | {_cells(lv['map'], ('p50_ms', 'p99_ms'))} | "
                   f"{_cells(lv['frame'], ('p50_ms', 'p99_ms'))} | {lv['fps']:.1f}{extra} |")
    build = d.get("directions_build")
    if build:
        out += ["", f"`directions build --preset {d['model']}`: {build['per_sample_s']:.0f} s per sample "
                    f"({build['images_per_sample']} images: two per style channel); 32 samples extrapolate to "
                    f"{build['samples_32_extrapolated_s'] / 60:.0f} min."]
    return out + ["", "![steer modes](results/steer_modes_demo_cpu.png)", ""]


def _busy(machine: dict) -> str:
    """', load average 8.1 to 8.6' where the run recorded how busy the machine was (its cores are shared)."""
    la = machine.get("load_average_1min")
    return f", load average {la[0]:.1f} to {la[1]:.1f} on {machine['cpu_count']} cores" if la else ""


def reference_section() -> list[str]:
    """``bench_reference.py``: each backend against rosinality's eager model.py, same weights, threads and run."""
    out = []
    for path in sorted(RESULTS.glob("reference_*_cpu.json")):
        d = json.loads(path.read_text())
        r, m = d["reference"], d["machine"]
        rows = [f"| {name} | {_cells(b['stages']['generator'], ('p50_ms', 'p95_ms'))} | "
                f"{b['speedup_vs_reference']:.2f}x | {b['psnr_db']:.1f} |" for name, b in d["backends"].items()]
        unavailable = "".join(f" {n}: unavailable ({why})." for n, why in d.get("unavailable", {}).items())
        goal = d["goal"]
        out += [f"## Against the reference eager code (`python benchmarks/bench_reference.py --reference DIR "
                f"--size {r['size']} --channel-multiplier {r['channel_multiplier']} --threads {m['threads']}`)", "",
                f"{r['code']}; {r['size']} px, channel multiplier {r['channel_multiplier']}, the same seeded weights "
                f"through livesound's rosinality loader; {m['processor']} (bf16: {'yes' if m.get('cpu_bf16') else 'no'}"
                f"), {m['threads']} threads, {d['frames']} alternating rounds, {m['date']}{_busy(m)}. Best within "
                f"{goal['min_psnr_db']:g} dB: **{d['best']}** at {d['best_speedup']:.2f}x (goal "
                f"{goal['speedup']:g}x: {'met' if goal['met'] else 'not met'}).{unavailable}", "",
                "| backend | p50 / p95 ms | speed-up | PSNR dB |", "|---|---|---|---|", *rows, "",
                f"![reference](results/{path.with_suffix('.png').name})", ""]
    return out


def _num(x: float | None) -> str:
    return "not measured" if x is None else f"{x:.2f}"


def gpu_section() -> list[str]:
    """``benchmarks/gpu_check.sh``: every GPU path, per device; says so plainly when none was run."""
    files = sorted(RESULTS.glob("gpu_*.json"))
    out = ["## GPU (`bash benchmarks/gpu_check.sh`)", ""]
    if not files:
        return out + ["Not measured: no GPU machine has run the check yet, so no GPU figure is claimed.", ""]
    for path in files:
        d = json.loads(path.read_text())
        out += [f"### {d['device']} ({d['date']}, {path.name})", "",
                "| px | backend | p50 / p95 / p99 ms | fps | PSNR dB |", "|---|---|---|---|---|"]
        for g in d["generators"]:
            out += [f"| {g['generator']['resolution']} | {n} | {_cells(b['stages']['generator'])} | {b['fps']:.0f} | "
                    f"{b['psnr_db']:.1f} |" for n, b in g["backends"].items()]
            out += [f"| {g['generator']['resolution']} | {n} | unavailable: {why} | | |"
                    for n, why in g.get("unavailable", {}).items()]
        out += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
        out += [f"| {k} | {v['goal']:g} | {_num(v['measured'])} | {v['met']} |" for k, v in d["goals"].items()]
        out += [""]
    return out


def _p(d: dict) -> str:
    return f"{d['p50']:.0f} / {d['p95']:.0f}" if "p50" in d else "-"


def meaning_section() -> list[str]:
    """Semantic latency before and after change detection (`livesound bench semantic`), and what steering costs
    (`bench_steering.py`)."""
    out = []
    runs = [(label, _load(name)) for label, name in (
        ("plain 2.5 s window (`--change-db 0`)", "semantic_demo_uniform_cpu.json"),
        ("change detection + re-windowing (the default)", "semantic_demo_cpu.json"))]
    runs = [(label, d) for label, d in runs if d]
    if runs:
        d = runs[-1][1]
        out += ["## Semantic latency (`livesound bench semantic --preset demo`; `--change-db 0`: the plain window)",
                "",
                f"{d['switches']} switches between the demo bank's `{d['anchors'][0]}` and `{d['anchors'][1]}`, "
                f"{d['segment_s']:g} s each, {d['fps']:g} frames a second of audio, encoder at {d['embed_hz']:g} Hz; "
                "time from the switch until the picture is half-way (90 %) from the old anchor's settled picture to "
                "the new one's, and the half-way time's parts (p50). Calm: mean change of a pixel a frame (0-255) "
                "once settled.", "",
                "| window | half-way p50 / p95 ms | 90 % p50 / p95 ms | window fill | encoder | smoothing | steering "
                "| calm | file |", "|---|---|---|---|---|---|---|---|---|"]
        for label, r in runs:
            parts = " | ".join(f"{r['parts_ms'][k]['p50']:.0f}" for k in ("window_fill", "encoder", "smoothing",
                                                                            "steering"))
            name = "semantic_demo_cpu.json" if r is d else "semantic_demo_uniform_cpu.json"
            out.append(f"| {label} | {_p(r['half_way_ms'])} | {_p(r['ninety_ms'])} | {parts} | "
                       f"{r['steady_change_per_frame']:.2f} | {name} |")
        out += ["", "![semantic](results/semantic_demo_cpu.png)", ""]
    st = _load("steering_demo_cpu.json")
    if st:
        fr, bb = st["frame_rate"], st["bank_build"]
        out += [f"## Steering on the demo (`{st['command']}`)", "",
                "| steering | fps (median) | map stage p50 ms |", "|---|---|---|",
                *[f"| {k} | {fr[k]['fps_median']:.1f} | {fr[k]['map_p50_ms_median']:.3f} |"
                  for k in ("mapper", "bank")],
                "", f"Bank / mapper frame rate: {fr['bank_vs_mapper_fps']:.3f}. Mean change of a pixel a frame "
                "(0-255, 30 fps, busy signal): "
                + "; ".join(f"{k} {v:.2f}" for k, v in st["change_per_frame"].items())
                + f". The demo's bank ({bb['anchors']} anchors, {bb['steps']} steps, batch {bb['batch']}, "
                f"{bb['threads']} threads) built in {bb['wall_s']:.1f} s ({bb['wall_s_per_anchor']:.2f} s and "
                f"{bb['cpu_s_per_anchor']:.2f} CPU s per anchor).", "",
                "![steering](results/steering_demo_cpu.png)", ""]
    return out


def robustness_section() -> list[str]:
    """Soak (`bench_soak.py`) and hostile-file drills (`bench_fuzz.py`), when recorded."""
    out = []
    soak = _load("soak_demo_cpu.json")
    if soak:
        v = soak["verdict"]
        out += ["## Soak (`python benchmarks/bench_soak.py`)", "",
                f"{soak['frames']} frames of the live engine at {soak['fps']:.1f} fps ({soak['wall_s'] / 60:.0f} min, "
                f"backends {soak['backends']}): RSS {v['rss_mb_after_warmup']:.0f} MB after warm-up, max "
                f"{v['rss_mb_max']:.0f} MB (+{100 * v['memory_growth']:.2f} %); OS threads {v['threads']}, open fds "
                f"{v['fds']}; frame time first / last decile {v['frame_ms_first_decile']:.2f} / "
                f"{v['frame_ms_last_decile']:.2f} ms ({100 * v['frame_time_drift']:+.1f} %); faults {v['faults']}.",
                "", "![soak](results/soak_demo_cpu.png)", ""]
    fuzz = _load("fuzz_cpu.json")
    if fuzz:
        out += ["## Hostile files (`python benchmarks/bench_fuzz.py`)", "",
                f"{fuzz['cases']} mutated files (seed {fuzz['seed']}): {fuzz['loaded']} loaded, {fuzz['clear_errors']} "
                f"clear errors, {fuzz['other_failures']} other failures; slowest case {fuzz['max_case_s']:.2f} s, peak "
                f"RSS growth {fuzz['max_rss_growth_mb']:.0f} MB; code ran: {'yes' if fuzz['code_ran'] else 'no'}.", ""]
        out += _fuzz_cases(fuzz)
    return out


# The hostile cases of the second round, as the result files name them (mutation families, then drills).
NEW_FUZZ_CASES = {"strides": "tensors with stride 0 or overlapping strides",
                  "giant": "consistent but over-large generators (stride-0 / shared-storage tensors)",
                  "bomb": "compression bombs (FLAC)"}


def _fuzz_cases(fuzz: dict) -> list[str]:
    worst, drills = fuzz.get("worst", {}), fuzz.get("drills", {})
    if not worst and not drills:
        return []
    rows = ["| case | count | failures | worst time | worst peak-RSS step |", "|---|---:|---:|---:|---:|"]
    for key, what in NEW_FUZZ_CASES.items():
        if key in worst:
            w = worst[key]
            rows.append(f"| {what} | {w['cases']} | {w.get('failures', 0)} | {w['worst_s'] * 1e3:.0f} ms | "
                        f"{w['worst_rss_step_mb']:.0f} MB |")
    for name, d in drills.items():
        extra = f" (at most {d['max_extra_threads']} extra thread)" if name == "swap_flood" else ""
        rows.append(f"| {name.replace('_', ' ')}{extra} | {d['cases']} | {len(d['failures'])} | "
                    f"{d['worst_s'] * 1e3:.0f} ms | {d['worst_rss_step_mb']:.0f} MB |")
    return rows + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if README.md is out of date")
    args = ap.parse_args()
    readme, text = HERE / "README.md", render()
    if args.check:
        if not readme.is_file() or readme.read_text() != text:
            raise SystemExit(f"{readme} is out of date with {RESULTS}: run python benchmarks/report.py")
        print(f"{readme} is up to date")
        return
    readme.write_text(text)
    print(f"wrote {readme}")


if __name__ == "__main__":
    main()
