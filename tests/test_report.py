"""benchmarks/report.py turns recorded results into the benchmarks README."""

import importlib.util
import json

import pytest
from conftest import REPO


@pytest.fixture
def report(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("report", REPO / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def test_report_tables_come_from_the_recorded_json(report, tmp_path):
    interval = {"p50_ms": 10.25, "p95_ms": 12.5, "p99_ms": 15.0}
    (tmp_path / "live_demo_onnxruntime_cpu.json").write_text(json.dumps({
        "preset": "demo", "backend": "onnxruntime", "pin_threads": "auto", "fps": 95.04, "frame_interval": interval,
        "onset_to_frame_latency": {"p50_ms": 14.6, "p95_ms": 23.6, "p99_ms": 28.2, "max_ms": 30.1, "n": 59,
                                   "onsets": 60}}))
    stage = {"p50_ms": 7.4, "p99_ms": 8.7}
    (tmp_path / "bench_demo_cpu.json").write_text(json.dumps({"backends": {
        "torch": {"fps": 25.0, "stages": {s: stage for s in ("features", "encoder", "mapper", "generator", "total")}},
        "onnxruntime": {"fps": 56.25,
                        "stages": {s: stage for s in ("features", "encoder", "mapper", "generator", "total")}}}}))
    text = report.render()
    assert ("| demo | onnxruntime | auto | 95.0 | 10.2 / 12.5 / 15.0 | 14.6 / 23.6 / 28.2 / 30.1 | 59 of 60 |"
            in text)
    assert "| onnxruntime | 56.2 | 7.4 / 8.7 |" in text and "| 7.4 / 8.7 | 2.25x |" in text
    assert "Offline optimisation" not in text  # no file, no section
    assert "Generator synthesis alone" not in text


def test_report_shows_generator_runs_of_both_shapes(report, tmp_path):
    """The flat records of the former bench_generator.py and a `livesound bench --stages generator` report."""
    (tmp_path / "generator_demo_cpu2.json").write_text(json.dumps({
        "model": "demo", "resolution": 128, "threads": 2, "frames": 500, "p50_ms": 17.73, "p95_ms": 20.33,
        "p99_ms": 21.52, "mean_ms": 17.98, "fps_mean": 55.62}))
    timing = {"p50_ms": 16.0, "p95_ms": 17.0, "p99_ms": 18.0, "mean_ms": 16.4}
    (tmp_path / "generator_demo_cpu.json").write_text(json.dumps({
        "generator": {"source": "preset:demo", "resolution": 128}, "frames": 50, "machine": {"threads": 2},
        "backends": {"torch-plain": {"fps": 61.0, "stages": {"generator": timing, "total": timing}}}}))
    text = report.render()
    assert "| demo | 128 | torch-plain | 2 | 500 | 17.7 / 20.3 / 21.5 | 55.6 | generator_demo_cpu2.json |" in text
    assert "| preset:demo | 128 | torch-plain | 2 | 50 | 16.0 / 17.0 / 18.0 | 61.0 | generator_demo_cpu.json |" in text


def test_techniques_summary_marks_the_default_and_derives_the_floor(report, tmp_path):
    def variant(p50, frac, settings, err=1e-5):
        return {"p50_ms": p50, "p99_ms": p50 + 1, "achieved_gflops": 10.0, "fraction_of_peak": frac,
                "max_abs_error": err, "settings": settings}

    variants = {"grouped": variant(600, 0.5, {"modconv": "grouped"}),
                "+channels-last": variant(500, 0.6, {"fused_act": True, "channels_last": True}, err=3e-5),
                "+retain-heap": variant(510, 0.59, {"fused_act": True, "channels_last": True, "retain_heap": True}),
                "compile": variant(450, 0.7, {"fused_act": True, "channels_last": True, "torch_compile": "inductor"})}
    (tmp_path / "generator_techniques_256px_cpu.json").write_text(json.dumps({
        "frames": 5, "wall_s": 60.0, "machine": {"peak_gflops": 50.0, "threads": 2, "date": "today"},
        "fast_paths_default": {"fused_act": True, "channels_last": True, "fold_fir": False, "retain_heap": False},
        "sizes": [{"resolution": 256, "channel_multiplier": 1, "gflop_per_frame": 25.0, "variants": variants}]}))
    text = report.render()
    assert "| 256 px variant | cm 1 ms | % of peak |" in text
    assert "| + channels-last (`FastPaths()` defaults) | 500 | 60.0 |" in text
    assert "| fast paths + `torch.compile` (inductor) | 450 | 70.0 |" in text  # not the default: it compiles
    assert "within 3.0e-05 of the plain path" in text
    assert "at least 500 ms (cm 1)" in text                                   # 25 GFLOP at 50 GFLOP/s
    assert "`+retain-heap` (heap retention" in text and "by at most 2.0 %" in text


def test_check_says_whether_the_readme_is_what_the_results_give(report, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report, "HERE", tmp_path)
    (tmp_path / "optimize_demo_cpu.json").write_text(json.dumps({
        "step_p50_ms": 80.9, "model": "demo", "threads": 1, "run_300_measured_s": 24.7}))
    monkeypatch.setattr("sys.argv", ["report.py", "--check"])
    with pytest.raises(SystemExit, match="out of date"):
        report.main()
    monkeypatch.setattr("sys.argv", ["report.py"])
    report.main()
    assert "81 ms per step (p50) on the demo preset" in (tmp_path / "README.md").read_text()
    monkeypatch.setattr("sys.argv", ["report.py", "--check"])
    report.main()
    assert "up to date" in capsys.readouterr().out


def test_report_shows_the_output_stages(report, tmp_path):
    (tmp_path / "output_cpu.json").write_text(json.dumps({
        "machine": {"cpu": "AMD EPYC", "cpu_count": 2, "torch": "2.x", "date": "2026-01-01"},
        "settings": {"resize_threads": 1, "upscale_threads": 2},
        "load_average": {"start": [1.5, 1.0, 1.0], "end": [2.25, 1.0, 1.0]},
        "resize": {"128 -> 1920x1080": {"p50_ms": 1.534, "p99_ms": 16.06}},
        "upscale": {"rrdb torch": {"layout": "RealESRGAN_x4plus layout", "params": 16697987, "p50_ms": 123069.0,
                                   "cpu_s_per_frame_mean": 50.86, "n": 2}}}))
    assert "| 128 -> 1920x1080 | 1.53 | 16.06 |" in report.render()
    assert "| rrdb torch | RealESRGAN_x4plus layout | 16,697,987 | 123.07 | 50.86 | 2 |" in report.render()
    assert "Whole demo frames" not in report.render()
    stage = {"p50_ms": 5.4, "p99_ms": 10.6}
    (tmp_path / "bench_demo_size_cpu.json").write_text(json.dumps({
        "machine": {"threads": 1}, "settings": {"size": "1920x1080", "upscaler": "w.pth"},
        "backends": {"torch": {"fps": 1.06, "stages": {s: stage for s in ("features", "resize", "total")}}}}))
    text = report.render()
    assert "--size 1920x1080 --upscaler w.pth --threads 1" in text
    assert "| torch | 1.1 | 5.4 / 10.6 | - | - | - | - | 5.4 / 10.6 | 5.4 / 10.6 |" in text
