"""The live path: the stage recipe, fixed-step headless runs, the threaded engine, and the `live` contract."""

import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from PIL import Image

from livesound.audio.sources import SynthSource
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.engine import LiveEngine
from livesound.live.pipeline import run_fixed_step

SR = 44100


@pytest.fixture(scope="module")
def stages():
    return build_pipeline(LiveOptions(preset="demo"))


def dynamic_signal(seconds=2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = 0.2 * np.sin(2 * np.pi * (100 + 2000 * t) * t)
    for k in range(int(seconds * 4)):  # bursts every 250 ms
        s = int(k * 0.25 * SR)
        n = min(4000, x.size - s)
        x[s:s + n] += 0.8 * np.sin(2 * np.pi * (300 + 400 * k) * t[:n]) * np.exp(-t[:n] * 30)
    return x.astype(np.float32)


def test_each_stage_alone(stages):
    spec = stages.features(dynamic_signal(0.5))
    assert spec.shape == (1, 1, 128, 512) and 0 <= spec.min() and spec.max() <= 1
    e = stages.encode(spec)
    assert e.shape == (1, 512) and torch.allclose(e.norm(dim=-1), torch.ones(1), atol=1e-5)
    e_s = stages.smooth(e, 1 / 30, 0.0)
    ws = stages.map(e_s, 0.5)
    assert ws.shape == stages.ws_src.shape and not torch.allclose(ws, stages.ws_src)
    assert torch.allclose(stages.map(e_s, 0.0), stages.ws_src)
    img = stages.synthesize(ws)
    rgb = stages.to_rgb8(img)
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8 and rgb.std() > 5


def test_fixed_step_is_deterministic():
    audio = dynamic_signal(1.0)
    runs = []
    for _ in range(2):
        st = build_pipeline(LiveOptions(preset="demo"))
        runs.append([f.rgb for f in run_fixed_step(st, audio, 6, 1470)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert set(st.times.summary()) == {"features", "encode", "smooth", "map", "synthesize", "to_rgb8"}


def test_live_contract_frames_follow_the_sound(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(SR * 2, np.float32), SR)
    sf.write(tmp_path / "dynamic.wav", dynamic_signal(), SR)
    frames = {}
    for name in ("silence", "dynamic"):
        out = tmp_path / f"out_{name}"
        r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--source",
                            str(tmp_path / f"{name}.wav"), "--headless", "--frames", "24", "--out", str(out),
                            "--stats", str(tmp_path / f"{name}.json")], capture_output=True, text=True,
                           cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr
        files = sorted(out.glob("*.png"))
        assert len(files) >= 24
        frames[name] = [np.asarray(Image.open(f)).astype(float) for f in files[:24]]
    sil, dyn = frames["silence"], frames["dynamic"]
    assert np.mean([np.abs(a - b).mean() for a, b in zip(sil, dyn)]) > 5          # clearly different
    steps = [np.abs(dyn[i + 1] - dyn[i]).mean() for i in range(23)]
    assert min(steps) > 0.1                                                      # changes every frame
    assert (tmp_path / "dynamic.json").exists()


def test_threaded_engine_runs_controls_and_stops(stages):
    src = SynthSource("chirp")
    before = threading.active_count()
    engine = LiveEngine(stages, src)
    engine.start()
    try:
        deadline = time.monotonic() + 20
        while (engine.latest_frame() is None or engine.latest_frame().index < 3) and time.monotonic() < deadline:
            time.sleep(0.01)
        first = engine.latest_frame()
        assert first is not None and first.rgb.shape == (128, 128, 3) and engine.error is None
        seed = engine.seed
        engine.next_seed()
        engine.strength = 1.5
        engine.set_text("a red sunset")
        deadline = time.monotonic() + 10
        while (engine.latest_frame().seed != seed + 1 or engine.latest_frame().strength < 1.5) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        f = engine.latest_frame()
        assert f.seed == seed + 1 and f.strength >= 1.5 and f.index > first.index
        assert stages.text_e is not None
        assert set(engine.stats()["stages"]) >= {"encode", "synthesize"}
    finally:
        t0 = time.monotonic()
        engine.stop(timeout=1.0)
        stopped_in = time.monotonic() - t0
        engine.set_text(None)
        stages.set_text(None)
    assert stopped_in < 1.5 and not engine.running
    time.sleep(0.1)
    assert threading.active_count() <= before


def test_a_failing_stage_is_reported_not_swallowed_and_the_loop_goes_on(caplog):
    st = build_pipeline(LiveOptions(preset="demo"))

    def broken(ws):
        raise RuntimeError("synthesis exploded")

    st.synthesize = broken
    engine = LiveEngine(st, SynthSource("noise"))
    with caplog.at_level(logging.WARNING, logger="livesound"):
        engine.start()
        deadline = time.monotonic() + 20
        while engine.faults.total < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        still_running = engine.running
        engine.stop(timeout=1.0)
    assert engine.error is None and still_running  # counted faults, not a stopped show
    assert engine.stats()["faults"]["by_stage"]["synthesize"]["exception"] >= 5
    assert "synthesis exploded" in caplog.text
    assert not engine.running


def test_missing_device_gives_one_clear_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "livesound", "live", "--source", "mic", "--input",
                        "no-such-device-xyz", "--headless", "--frames", "2", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and ("no-such-device-xyz" in err[0] or "PortAudio" in err[0] or "no audio input" in err[0])
