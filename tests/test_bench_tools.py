"""Measurement tools: the benchmarks' one statistics and plot helper, the generator's FLOP count, the peak
measurement, the generator-only bench report, and the sound-to-picture latency tool (click matching on planted
clicks, the report of a short real-time run on a file source, and on the live microphone through a PulseAudio null
sink)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from livesound.audio.io import SAMPLE_RATE, load_audio
from livesound.bench.flops import generator_flops, measure_peak_gflops
from livesound.bench.latency import (
    click_train,
    detect_clicks,
    match_clicks,
    parse_latency,
)
from livesound.bench.stats import (
    figure,
    mark_percentiles,
    p50_bars,
    summary,
    summary_ms,
    time_calls,
)
from livesound.models.stylegan2 import GeneratorConfig

HOP = 1470


def test_summaries_are_numpys_percentiles_under_each_reports_keys():
    v = np.random.default_rng(0).gamma(2.0, 3.0, 1001)
    want = {q: float(np.percentile(v, q)) for q in (50, 95, 99)}
    s = summary_ms(v)
    assert s == pytest.approx({"p50_ms": want[50], "p95_ms": want[95], "p99_ms": want[99], "mean_ms": v.mean()})
    assert summary_ms(list(v), peak=True, count=True) == pytest.approx(s | {"max_ms": v.max(), "n": 1001})
    bare = summary(v, unit="", peak=True)  # the latency report's shape: its key already says ms
    assert bare == pytest.approx({"p50": want[50], "p95": want[95], "p99": want[99], "mean": v.mean(), "max": v.max()})
    assert summary([], peak=True) == {} and summary_ms([], count=True) == {"n": 0}


def test_time_calls_times_only_the_calls_after_warmup():
    import time

    seen = []
    ms = time_calls(lambda i: (seen.append(i), time.sleep(0.002)), n=5, warmup=3)
    assert seen == list(range(8)) and ms.shape == (5,)
    assert (ms >= 2.0).all() and (ms < 500).all()


def test_figure_writes_a_whole_png_or_nothing(tmp_path):
    from PIL import Image

    png = tmp_path / "plots" / "p.png"
    values = np.arange(1.0, 101.0)
    with figure(png, 1, 2, (6, 3), dpi=50) as (fig, (a, b)):
        bars = p50_bars(a, ["x", "y"], [summary_ms(values), summary_ms(2 * values)], label="bars")
        b.hist(values, bins=10)
        pct = mark_percentiles(b, values)
        assert not png.exists()  # written when the block ends
    assert [r.get_height() for r in bars] == pytest.approx([50.5, 101.0])
    assert pct == pytest.approx({"p50_ms": 50.5, "p95_ms": 95.05, "p99_ms": 99.01})
    assert [line.get_xdata()[0] for line in b.get_lines()] == pytest.approx([50.5, 95.05, 99.01])
    assert [line.get_label() for line in b.get_lines()] == ["p50 50.5 ms", "p95 95.0 ms", "p99 99.0 ms"]
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (300, 150)

    with pytest.raises(RuntimeError, match="plot failed"):
        with figure(tmp_path / "broken.png") as (fig, ax):
            ax.plot([1, 2])
            raise RuntimeError("plot failed")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["p.png"]  # no half file, no temp file


def test_flops_of_the_reference_generator():
    """256 px, channel multiplier 1 (rosinality's table): the issue's 29.8 GFLOP, nearly all in 3x3 convs."""
    f = generator_flops(GeneratorConfig(resolution=256, channel_multiplier=1))
    assert f["gflop"] == pytest.approx(29.8, rel=0.01)
    assert f["parts"]["conv3x3"] + f["parts"]["conv3x3_up"] > 0.99 * f["total"]
    assert sum(layer["flops"] for layer in f["layers"]) == f["total"]
    wider = generator_flops(GeneratorConfig(resolution=256, channel_multiplier=2))
    assert wider["total"] > 2.5 * f["total"]


def test_flops_by_hand_on_a_tiny_generator():
    """8 px, 4 and 2 channels, w 8, one mapping layer: every term written out."""
    cfg = GeneratorConfig(resolution=8, z_dim=8, w_dim=8, mapping_layers=1, channels=[4, 2])
    f = generator_flops(cfg)
    conv4 = 4 * 4 * 9 * 4 * 4 * 2              # 3x3 at 4 px
    up8 = 4 * 2 * 9 * 4 * 4 * 2                # transposed stride 2: at its 4 px input
    conv8 = 2 * 2 * 9 * 8 * 8 * 2
    torgb = 4 * 3 * 4 * 4 * 2 + 2 * 3 * 8 * 8 * 2
    affine = 8 * (4 + 4 + 4 + 2 + 2) * 2       # conv4, torgb4, up8 (in 4), conv8 (in 2), torgb8 (in 2)
    demod = (4 * 4 + 4 * 2 + 2 * 2) * 2
    mapping = 8 * 8 * 2
    assert f["parts"] == {"conv3x3": conv4 + conv8, "conv3x3_up": up8, "torgb": torgb, "affine": affine,
                          "demod": demod, "mapping": mapping}


def test_peak_measurement_gives_positive_rates():
    import torch

    threads = torch.get_num_threads()
    p = measure_peak_gflops(1, seconds=0.01, matmul_n=64, conv_shape=(1, 8, 16, 16), conv_out=8)
    assert p["matmul_gflops"] > 0 and p["conv_gflops"] > 0
    assert p["peak_gflops"] == max(p["matmul_gflops"], p["conv_gflops"])
    assert torch.get_num_threads() == threads


def test_generator_bench_report(tmp_path, tiny_generator):
    from livesound.bench.generator import plot_generator, run_generator_bench
    from livesound.weights.checkpoint import save_own

    G = tiny_generator
    ckpt = save_own(tmp_path / "G.safetensors", "generator", G.cfg.to_dict(), G.state_dict())
    r = run_generator_bench(str(ckpt), backends=("torch", "onnxruntime"), frames=3, warmup=1, threads=1,
                            peak_seconds=0.05, log=lambda line: None)
    plot_generator(r, tmp_path / "g.png")
    for b in r["backends"].values():
        assert len(b.pop("_total_ms")) == 3
    r = json.loads(json.dumps(r))
    assert set(r["backends"]) == {"torch", "onnxruntime"}
    for b in r["backends"].values():
        assert set(b["stages"]) == {"generator", "total"}
        assert set(b["stages"]["generator"]) == {"p50_ms", "p95_ms", "p99_ms", "mean_ms"}
        assert b["fps"] > 0 and b["achieved_gflops"] > 0
        assert b["fraction_of_peak"] == pytest.approx(b["achieved_gflops"] / r["machine"]["peak_gflops"])
    assert r["machine"]["peak_gflops"] > 0 and r["machine"]["matmul_gflops"] > 0 and r["machine"]["conv_gflops"] > 0
    g = r["generator"]
    assert g["resolution"] == 32 and g["channels"] == list(G.cfg.channels)
    assert g["gflop_per_frame"] == pytest.approx(generator_flops(G.cfg)["gflop"])
    assert (tmp_path / "g.png").stat().st_size > 0


def test_match_clicks_rules():
    frames = [SimpleNamespace(audio_sample=e, onset=o) for e, o in
              [(100, 0.0), (200, 0.1), (200, 0.0), (300, 0.9), (400, 0.0), (500, 0.0), (600, 0.8), (700, 0.0)]]
    # 150: seen by the 200 frame with a weak onset, the 300 frame reacts ("in its range or before it").
    # 420: seen from the 500 frame on; the 600 frame reacts. 550: only frames that also saw 580 react -> None.
    assert match_clicks([150, 420], frames) == [3, 6]
    assert match_clicks([450, 550, 580], frames) == [None, None, 6]
    assert match_clicks([], frames) == []
    assert match_clicks([50], []) == [None]


def test_match_clicks_finds_planted_clicks_at_the_right_frames(tmp_path):
    """A 2 s file with clicks at known samples, rendered in fixed steps: each click's first reacting frame is
    the first frame whose audio range contains it."""
    from livesound.audio.sources import SynthSource
    from livesound.live.build import LiveOptions, build_pipeline
    from livesound.live.pipeline import run_fixed_step

    burst = SynthSource("clicks", amplitude=0.8).render(0, int(SynthSource.CLICK_LEN_S * SAMPLE_RATE))
    planted = [12 * HOP + 100, 24 * HOP + 700, 36 * HOP + 1200, 48 * HOP + 400]  # ~0.4 s apart, any offset
    x = np.zeros(2 * SAMPLE_RATE, np.float32)
    for c in planted:
        x[c:c + len(burst)] = burst
    sf.write(tmp_path / "clicks.wav", x, SAMPLE_RATE)
    audio = load_audio(tmp_path / "clicks.wav")
    np.testing.assert_array_equal(detect_clicks(audio), np.add(planted, 1))  # the burst starts at 0
    stages = build_pipeline(LiveOptions(preset="demo", backend="torch"))
    frames = list(run_fixed_step(stages, audio, len(audio) // HOP, HOP))
    assert match_clicks(planted, frames) == [c // HOP for c in planted]
    assert all(frames[c // HOP - 1].onset < 0.25 for c in planted)  # nothing reacted before the click


def test_click_train_and_latency_settings():
    audio, clicks = click_train(1.0, period=0.25, lead=0.5, tail=0.25)
    assert len(audio) == 7 * SAMPLE_RATE // 4 and list(clicks) == [22050 + k * 11025 for k in range(4)]
    assert not audio[:22050].any() and np.abs(audio[22050:22150]).max() > 0.5
    assert list(detect_clicks(audio)) == [c + 1 for c in clicks]  # a sine burst: sample 0 is 0
    assert parse_latency("low") == "low" and parse_latency("0.02") == 0.02 and parse_latency(None) is None
    with pytest.raises(ValueError, match="low, high or seconds"):
        parse_latency("fast")


def test_latency_bench_report_on_a_file_source(tmp_path):
    """A real-time run of about 3 s: every click found, parts that add up, the report's contract keys."""
    from livesound.bench.latency import plot_latency, run_latency_bench

    r = run_latency_bench("demo", seconds=1.5, path="file", blocksize=256, period=0.5, lead=1.0,
                          backend="torch", log=lambda line: None)
    plot_latency(r, tmp_path / "lat.png")
    r.pop("_timeline")
    r = json.loads(json.dumps(r))
    assert r["path"] == "file" and r["clicks_played"] == 3 and r["clicks"] == 3
    assert set(r["onset_to_frame_ms"]) >= {"p50", "p95"}
    assert set(r["parts_ms"]) == {"capture", "wait", "compute"}
    assert r["settings"]["blocksize"] == 256 and "latency" in r["settings"]
    assert r["machine"]["cpu_count"] >= 1
    for c in r["per_click"]:
        assert c["total_ms"] == pytest.approx(c["capture_ms"] + c["wait_ms"] + c["compute_ms"])
        assert 0 <= c["capture_ms"] < 50 and c["wait_ms"] >= 0 and c["compute_ms"] > 0
    assert 0 < r["onset_to_frame_ms"]["p50"] < 1000
    assert (tmp_path / "lat.png").stat().st_size > 0


def test_latency_bench_captures_through_the_live_microphone(tmp_path):
    """The pulseaudio path measures the class and settings `livesound live --source mic` captures with, and the
    capture part carries PortAudio's input latency as the capture child reported it."""
    import inspect
    import os

    from livesound.audio.io import AudioError
    from livesound.audio.mic import Microphone
    from livesound.audio.pulse import NullSink
    from livesound.audio.sources import _sounddevice
    from livesound.bench.latency import _pulse_missing, run_latency_bench
    from livesound.live.build import LiveOptions, open_source

    missing = _pulse_missing()
    if missing:
        pytest.skip(missing)
    server = NullSink(_sounddevice(), f"livesound_bench_test_{os.getpid()}")
    try:
        server.start()
    except AudioError as e:
        pytest.skip(f"cannot start a PulseAudio server: {e.problem}")
    try:
        live = open_source(LiveOptions(source="mic", device="pulse"))
    finally:
        server.stop()
    defaults = inspect.signature(run_latency_bench).parameters
    assert isinstance(live, Microphone)
    assert (live.blocksize, live.latency) == (defaults["blocksize"].default, defaults["latency"].default)

    r = run_latency_bench("demo", seconds=1.5, path="pulseaudio", period=0.5, lead=1.0, backend="torch",
                          log=lambda line: None)
    assert r["path"] == "pulseaudio" and r["clicks_played"] == 3 and r["clicks"] == 3
    assert 0 < r["settings"]["input_latency_s"] < 0.5 and "reported input latency" in r["capture_measured"]
    assert isinstance(r["input_overflows"], int)
    for c in r["per_click"]:  # the device's share is in it (less at most the microseconds of a stamp's lag)
        assert c["capture_ms"] > r["settings"]["input_latency_s"] * 1e3 - 0.5
