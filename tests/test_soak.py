"""A short soak of the live engine (the benchmark runs 100,000 frames): no thread, file or memory growth."""

from __future__ import annotations

import sys

import pytest

from livesound.audio.sources import SynthSource
from livesound.bench.soak import judge, soak
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads and files through /proc")
def test_short_soak_keeps_threads_files_and_memory_flat():
    stages = build_pipeline(LiveOptions(preset="demo", backend="torch"))  # no export: the short test stays short
    engine = LiveEngine(stages, SynthSource("noise", amplitude=0.3))
    samples = soak(engine, frames=440, sample_every=20, timeout_s=120)
    v = judge(samples, warmup_fraction=0.2)
    assert len(samples) >= 21 and v["faults"] == 0
    assert v["threads"][0] == v["threads"][1] and v["py_threads"][0] == v["py_threads"][1]
    assert v["fds"][0] == v["fds"][1]
    assert v["memory_growth"] < 0.05, v
    assert not engine.running
