"""``livesound bench``: one of the four benchmarks, its JSON report and the plot beside it.

- ``stages`` (the default): every stage of a frame on each backend (`livesound.bench.stages`);
- ``stages`` with ``generator``: the generator alone, against this machine's measured peak
  (`livesound.bench.generator`), for a checkpoint, the preset's, or seeded generators of given sizes;
- ``latency``: sound onset to frame ready, live (`livesound.bench.latency`);
- ``semantic``: a switch of sound to the picture half-way to the new anchor's (`livesound.bench.semantic`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from livesound.bench import generator as generator_bench
from livesound.bench import latency as latency_bench
from livesound.bench import semantic as semantic_bench
from livesound.bench import stages as stages_bench
from livesound.files import write_json
from livesound.live.device import resolve_device


@dataclass
class BenchOptions:
    what: str = "stages"              # stages | latency
    preset: str = "demo"
    stages: str = "all"               # all | generator (with what="stages")
    generator: str | None = None      # stages=generator: this checkpoint, not the preset's
    sizes: str | None = None          # stages=generator: "256:1,256:2" seeded generators instead
    backends: str = "torch,onnxruntime"
    frames: int = 200
    warmup: int = 10
    threads: int = 0                  # 0: all cores
    json: str = "bench.json"
    plot: str | None = None           # None: the JSON's name with .png
    seconds: float = 10.0             # latency: seconds of clicks
    path: str = "auto"                # latency: capture path
    blocksize: int = 256              # latency: capture block size
    latency: str = "low"              # latency: capture device latency
    backend: str | None = None        # latency, semantic: stage backends as for ``livesound live --backend``
    device: str = "auto"              # where the networks run: auto | cpu | cuda | cuda:N
    size: str | None = None           # stages: output size "WxH" (times the resize stage)
    fit: str = "cover"
    upscaler: str | None = None       # stages: Real-ESRGAN weights (times the upscale stage)
    bank: str | None = None           # semantic: the bank (None: the preset's)
    anchors: str | None = None        # semantic: "A,B" anchors to switch between
    segment: float = 4.0              # semantic: seconds per sound
    switches: int = 8                 # semantic
    fps: float = 30.0                 # semantic
    change_db: float | None = None    # semantic: None: the preset's


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """Run the benchmark ``opts`` names, write its JSON (atomically), then plot it; returns (json, png).

    ``log`` hears the progress lines. Keys starting with ``_`` (raw samples the plot draws) stay out of the JSON.
    """
    if opts.frames < 1 or opts.warmup < 0:
        raise ValueError("--frames must be at least 1 and --warmup not negative")
    threads = opts.threads or os.cpu_count() or 1
    backends = [b.strip() for b in opts.backends.split(",") if b.strip()]
    device = str(resolve_device(opts.device))  # a missing GPU is told before anything is built
    if opts.what == "semantic":
        plot = semantic_bench.plot_semantic
        anchors = [a.strip() for a in opts.anchors.split(",") if a.strip()] if opts.anchors else None
        result = semantic_bench.run_semantic_bench(opts.preset, opts.bank, anchors, opts.segment, opts.switches,
                                                   opts.fps, opts.backend, opts.change_db, log=log)
    elif opts.what == "latency":
        plot = latency_bench.plot_latency
        result = latency_bench.run_latency_bench(opts.preset, opts.seconds, opts.path, opts.blocksize, opts.latency,
                                                 backend=opts.backend, log=log, device=device)
    elif opts.stages == "generator":
        plot = generator_bench.plot_generator
        if opts.sizes and opts.generator:
            raise ValueError("give --generator or --sizes, not both")
        if opts.sizes:
            result = generator_bench.run_generator_sizes(generator_bench.parse_sizes(opts.sizes), backends,
                                                         opts.frames, opts.warmup, threads, log, device=device)
        else:
            result = generator_bench.run_generator_bench(opts.generator, opts.preset, backends, opts.frames,
                                                         opts.warmup, threads, log=log, device=device)
    else:
        if opts.generator:
            raise ValueError("--generator needs --stages generator (a whole frame runs the preset's networks)")
        plot = stages_bench.plot
        result = stages_bench.run_bench(opts.preset, backends, opts.frames, opts.warmup, threads, log=log,
                                        device=device, size=opts.size, fit=opts.fit, upscaler=opts.upscaler)
    out = Path(opts.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = Path(opts.plot) if opts.plot else out.with_suffix(".png")
    write_json(out, _public(result))  # first: the figures survive a plotting failure
    plot(result, png)
    return out, png


def _public(result: dict) -> dict:
    """The report without the raw samples kept for the plot (``_``-prefixed keys, at any depth); ``result`` itself
    is left whole for the plot."""
    if isinstance(result, dict):
        return {k: _public(v) for k, v in result.items() if not k.startswith("_")}
    if isinstance(result, list):
        return [_public(v) for v in result]
    return result
