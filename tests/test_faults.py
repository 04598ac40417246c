"""Stage faults: an exception, a NaN/inf output or a time-out in a stage drops that frame, is counted and shown,
and never stops the live loop; an accelerated backend that keeps failing falls back to torch."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import torch

from livesound.audio.sources import SynthSource
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine
from livesound.live.faults import FaultPolicy, InjectFaults


@pytest.fixture(scope="module")
def stages():
    return build_pipeline(LiveOptions(preset="demo", backend="synthesize=onnxruntime"))


def _run(engine: LiveEngine, until, timeout: float = 30.0) -> None:
    engine.start()
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            assert engine.error is None, engine.error
            time.sleep(0.01)
    finally:
        engine.stop(timeout=2.0)


def test_a_stage_that_raises_drops_frames_but_never_stops_the_loop(stages, caplog):
    real, calls = stages.synthesize, [0]

    def flaky(ws):  # every third frame explodes
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("synthesis exploded")
        return real(ws)

    stages.synthesize = flaky
    engine = LiveEngine(stages, SynthSource("noise"))
    try:
        with caplog.at_level(logging.WARNING, logger="livesound"):
            _run(engine, lambda: engine.frames_rendered >= 30)
    finally:
        del stages.synthesize
    assert engine.error is None and engine.frames_rendered >= 30
    faults = engine.stats()["faults"]
    assert faults["by_stage"]["synthesize"]["exception"] >= 10
    assert abs(faults["by_stage"]["synthesize"]["exception"] - calls[0] // 3) <= 1
    assert caplog.text.count("synthesis exploded") == 1  # logged once, then counted


@pytest.mark.parametrize("stage,kind", [("map", "nonfinite"), ("encode", "nonfinite"), ("smooth", "nonfinite"),
                                        ("synthesize", "timeout"), ("features", "exception")])
def test_each_fault_kind_is_counted_and_bad_frames_never_shown(stages, stage, kind):
    inj = InjectFaults(stages, stage, kind, every=2, sleep_s=0.6)
    engine = LiveEngine(stages, SynthSource("noise"))
    if kind == "timeout":
        engine.faults.policy = FaultPolicy(timeout_s=0.5)
    shown = []

    def counted() -> int:
        return engine.faults.summary()["by_stage"].get(stage, {}).get(kind, 0)

    def until():
        f = engine.latest_frame()
        if f is not None and (not shown or shown[-1].index != f.index):
            shown.append(f)
        return engine.frames_rendered >= 12 and counted() >= 3

    try:
        _run(engine, until)
    finally:
        inj.remove()
    assert engine.error is None and inj.injected >= 3
    assert 3 <= counted() <= inj.injected
    # NaN reaching the picture would turn it to a flat uint8 frame; a dropped frame leaves the last good one.
    assert all(np.isfinite(f.rgb).all() and f.rgb.std() > 1.0 for f in shown)
    assert engine.faults.overlay_line().startswith("faults ")


def test_a_failing_accelerated_backend_falls_back_to_torch(stages, caplog):
    assert stages.backends["synthesize"] == "onnxruntime"
    ort = stages.runners["synthesize"]
    inj = InjectFaults(stages, "synthesize", "exception", every=1, runner=True)  # the engine itself fails
    engine = LiveEngine(stages, SynthSource("noise"))
    try:
        with caplog.at_level(logging.WARNING, logger="livesound"):
            _run(engine, lambda: engine.frames_rendered >= 10)
        assert engine.frames_rendered >= 10, "frames did not resume on torch"
        assert stages.backends["synthesize"] == "torch" and stages.runners["synthesize"] is not inj
        assert engine.stats()["faults"]["fallbacks"] == ["synthesize (onnxruntime)"]
        assert "now runs on torch" in caplog.text
    finally:
        stages.runners["synthesize"], stages.backends["synthesize"] = ort, "onnxruntime"


def test_a_loop_error_outside_the_stages_restarts_the_worker(stages):
    engine = LiveEngine(stages, SynthSource("noise"))
    real = stages.set_seed
    stages.set_seed = lambda seed: (_ for _ in ()).throw(ValueError("no such seed"))
    try:
        engine.next_seed()  # the renderer applies it: it fails, is counted, and the renderer goes on
        _run(engine, lambda: engine.faults.total >= 1 and engine.frames_rendered >= 5)
    finally:
        stages.set_seed = real
    assert engine.error is None and engine.frames_rendered >= 5
    assert engine.faults.summary()["by_stage"]["loop"]["exception"] == 1


def test_guard_rejects_nonfinite_numpy_and_tensors():
    from livesound.live.faults import FaultGuard, StageFault

    g = FaultGuard()
    assert g.call("map", lambda: torch.ones(3)) is not None
    for bad in (torch.tensor([1.0, float("inf")]), np.array([np.nan]), float("nan")):
        with pytest.raises(StageFault):
            g.call("map", lambda b=bad: b)
    assert g.summary()["by_stage"] == {"map": {"nonfinite": 3}}


def test_the_overlay_shows_faults_and_a_lost_device(stages):
    pytest.importorskip("PyQt6")
    from livesound.app.window import fault_lines
    from livesound.live.faults import StageFault

    source = SynthSource("noise")
    engine = LiveEngine(stages, source)
    assert fault_lines(engine) == []
    engine.faults.record(StageFault("synthesize", "nonfinite", "NaN"))
    source.state = "lost"  # what Microphone reports while its device is gone
    lines = fault_lines(engine)
    assert lines[0].startswith("AUDIO    LOST") and lines[1] == "faults 1 (synthesize: nonfinite 1)"
