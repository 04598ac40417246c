"""Hostile-network and broken-cache drills: scenarios that are not one file through one reader.

- ``swap_flood``: bursts of ``/livesound/generator PATH`` over real UDP into a rig (newest valid checkpoints, broken
  ones, paths outside the allowed folders), each burst applied by the renderer's hook. The rig must keep one
  loader thread, load only the newest request, refuse the outside paths at the door, and end on the newest
  valid generator.
- ``corrupt_cache``: an engine-cache entry damaged one way per case (graph truncated or flipped, its record
  missing, unreadable or nested without end, the graph deleted); the next ``cached_onnx`` must say so and hand
  back a graph that checks and loads in ONNX Runtime.

Each drill reports its cases, failures (one line each), worst time, worst peak-memory step and, for the flood, the
most threads seen above the rig's own. Networks are tiny and seeded, so the drills need no files.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from livesound.bench.fuzzing import peak_rss_mb


@dataclass
class DrillReport:
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    worst_s: float = 0.0
    worst_rss_step_mb: float = 0.0
    max_extra_threads: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def add(self, seconds: float, rss_step: float, problem: str | None) -> None:
        self.cases += 1
        self.worst_s, self.worst_rss_step_mb = max(self.worst_s, seconds), max(self.worst_rss_step_mb, rss_step)
        if problem and len(self.failures) < 20:
            self.failures.append(problem)


def tiny_pipeline():
    """A real live Pipeline of tiny seeded networks on torch (16 px generator, lcnet_050 encoder, mapper)."""
    from livesound.live.pipeline import Pipeline
    from livesound.live.steering import MapperSteer
    from livesound.models.audio_encoder import AudioEncoderConfig, build_audio_encoder
    from livesound.models.mapper import MapperConfig, build_mapper
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    G = build_generator(GeneratorConfig(resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64,
                                        channel_max=8), seed=1).eval()
    encoder = build_audio_encoder(AudioEncoderConfig(backbone="lcnet_050", embed_dim=16), seed=2).eval()
    mapper = build_mapper(MapperConfig(num_ws=G.num_ws, w_dim=G.w_dim, clip_dim=16, num_layers=2), seed=3)
    return Pipeline(G, encoder, MapperSteer(mapper.eval(), trained=False))


# ------------------------------------------------------------------------------------------------ swap flood

def swap_flood(cases: int, seed: int, workdir: Path, burst: int = 50) -> DrillReport:
    from pythonosc.osc_message_builder import OscMessageBuilder

    from livesound.models.stylegan2 import build_generator
    from livesound.rig.control import StepTarget
    from livesound.rig.rig import Rig, RigOptions
    from livesound.weights.checkpoint import save_own

    rng, report = random.Random(seed), DrillReport()
    pipeline = tiny_pipeline()
    allowed, outside = workdir / "allowed", workdir / "outside"
    allowed.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    good = []
    for s in range(4):
        g = build_generator(pipeline.G.cfg, seed=100 + s)
        good.append(save_own(allowed / f"g{s}.safetensors", "generator", g.cfg.to_dict(), g.state_dict()))
    (allowed / "broken.safetensors").write_bytes(b"\0" * 64)
    (outside / "g.safetensors").write_bytes(good[0].read_bytes())
    rig = Rig(StepTarget(pipeline), RigOptions(osc_in="127.0.0.1:0", osc_allow_path=[str(allowed)]))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    base = threading.active_count()
    try:
        for _ in range(cases):
            paths = [rng.choice(good + [allowed / "broken.safetensors", outside / "g.safetensors", Path("/etc")])
                     for _ in range(burst - 1)] + [rng.choice(good)]
            sent, received = len(paths), rig.osc_in.received
            peak, stop = [0], threading.Event()
            watcher = threading.Thread(target=_watch_threads, args=(peak, stop), daemon=True)
            t0, rss0 = time.perf_counter(), peak_rss_mb()
            watcher.start()
            for p in paths:
                b = OscMessageBuilder("/livesound/generator")
                b.add_arg(str(p))
                tx.sendto(b.build().dgram, rig.osc_in.address)
            problem = None
            if not _wait(lambda: rig.osc_in.received >= received + sent, 30):
                problem = "datagrams did not all arrive"
            rig.before_frame()
            if not _wait(lambda: rig.swap.loading is None, 120):
                problem = "the loader did not finish"
            rig.before_frame()
            stop.set()
            watcher.join()
            dt, step = time.perf_counter() - t0, peak_rss_mb() - rss0
            extra = peak[0] - 1 - base           # less the watcher
            report.max_extra_threads = max(report.max_extra_threads, extra)
            if extra > 1:
                problem = f"{extra} threads above the rig's own during a burst"
            elif problem is None and rig.swap._paths.get("generator") != str(paths[-1]):
                problem = f"ended on {rig.swap._paths.get('generator')}, not the newest {paths[-1]}"
            report.add(dt, step, problem)
    finally:
        rig.close()
        tx.close()
    return report


def _watch_threads(peak: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], threading.active_count())
        time.sleep(0.0005)


def _wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


# ------------------------------------------------------------------------------------------------ the cache

DAMAGE = ("truncate", "flip", "no_entry", "garbage_entry", "nested_entry", "no_graph", "other_key")


def corrupt_cache(cases: int, seed: int, workdir: Path) -> DrillReport:
    import json

    import onnx

    from livesound.live.backends.cache import ENTRY, cached_onnx, entry_problem
    from livesound.live.backends.ort_stage import OrtBackend

    rng, report = random.Random(seed), DrillReport()
    G = tiny_pipeline().G
    old = os.environ.get("LIVESOUND_ENGINES")
    os.environ["LIVESOUND_ENGINES"] = str(workdir / "engines")
    try:
        path = cached_onnx("generator", G)
        for _ in range(cases):
            damage = rng.choice(DAMAGE)
            data, entry = path.read_bytes(), path.parent / ENTRY
            if damage == "truncate":
                path.write_bytes(data[:rng.randrange(len(data))])
            elif damage == "flip":
                i = rng.randrange(len(data))
                path.write_bytes(data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:])
            elif damage == "no_entry":
                entry.unlink()
            elif damage == "garbage_entry":
                entry.write_bytes(os.urandom(rng.randrange(1, 512)))
            elif damage == "nested_entry":
                entry.write_text("[" * 100_000 + "]" * 100_000)
            elif damage == "no_graph":
                path.unlink()
            else:
                entry.write_text(json.dumps(json.loads(entry.read_text()) | {"key": "0" * 16}))
            t0, rss0 = time.perf_counter(), peak_rss_mb()
            problem = None
            try:
                again = cached_onnx("generator", G)
                onnx.checker.check_model(str(again))
                OrtBackend(again)(torch.zeros(1, G.num_ws, G.w_dim))
                left = entry_problem(again.parent, "generator", again.parent.name.split("-", 1)[1])
                if again != path or left:
                    problem = f"{damage}: the rebuilt entry is not usable ({left or again})"
            except Exception as e:  # noqa: BLE001 - any failure to repair is the finding, in one line
                problem = f"{damage}: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            report.add(time.perf_counter() - t0, peak_rss_mb() - rss0, problem)
    finally:
        if old is None:
            os.environ.pop("LIVESOUND_ENGINES", None)
        else:
            os.environ["LIVESOUND_ENGINES"] = old
    return report


DRILLS = {"swap_flood": swap_flood, "corrupt_cache": corrupt_cache}


def run_drills(cases: int, seed: int, workdir: Path) -> dict[str, dict]:
    """Every drill, ``cases`` cases each, in folders of ``workdir``."""
    out = {}
    for name, drill in DRILLS.items():
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        out[name] = drill(cases, seed, folder).as_dict()
    return out
