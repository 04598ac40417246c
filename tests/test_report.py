"""benchmarks/report.py turns recorded results into the benchmarks README."""

import importlib.util
import json

from conftest import REPO


def test_report_tables_come_from_the_recorded_json(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("report", REPO / "benchmarks" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    interval = {"p50_ms": 10.25, "p95_ms": 12.5, "p99_ms": 15.0}
    (tmp_path / "live_demo_onnxruntime_cpu.json").write_text(json.dumps({
        "preset": "demo", "backend": "onnxruntime", "fps": 95.04, "frame_interval": interval,
        "onset_to_frame_latency": {"p50_ms": 14.6, "p95_ms": 23.6, "max_ms": 30.1, "n": 59, "onsets": 60}}))
    stage = {"p50_ms": 7.4, "p99_ms": 8.7}
    (tmp_path / "bench_demo_cpu.json").write_text(json.dumps({"backends": {"onnxruntime": {
        "fps": 56.8, "stages": {s: stage for s in ("features", "encoder", "mapper", "generator", "total")}}}}))
    text = report.render()
    assert "| demo | onnxruntime | 95.0 | 10.2 / 12.5 / 15.0 | 14.6 / 23.6 / 30.1 | 59 of 60 |" in text
    assert "| onnxruntime | 56.8 | 7.4 / 8.7 |" in text
    assert "Offline optimisation" not in text  # no file, no section
