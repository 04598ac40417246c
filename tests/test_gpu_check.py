"""benchmarks/gpu_check: what can be checked without a GPU (its --dry-run walks the whole plan on the CPU and is
run by hand: about two minutes), i.e. the refusal without a GPU, the goals' judgement and the report section."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess

import pytest
from conftest import REPO


def _module(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _size(res, backends):
    return {"generator": {"resolution": res}, "backends": {
        n: {"stages": {"generator": {"p50_ms": p50, "p95_ms": p99, "p99_ms": p99}}, "fps": 1e3 / p50,
            "psnr_db": db, "within_tolerance": db >= 40} for n, (p50, p99, db) in backends.items()},
        "unavailable": {"tensorrt-fp16": "TensorRT is not installed"}}


REPORT = {"device": "NVIDIA Test GPU", "date": "2026-01-01", "dry_run": False,
          "generators": [_size(512, {"torch": (9.0, 9.5, 200.0), "torch-fp16": (3.0, 3.2, 52.0),
                                     "broken": (1.0, 1.0, 20.0)}),
                         _size(1024, {"torch-fp16": (4.5, 8.5, 50.0)})],
          "live": {"backends": {"auto": {"stages": {"total": {"p50_ms": 6.0}}}}}}


def test_goals_are_judged_on_backends_within_tolerance_only():
    goals = _module("gpu_check").judge(REPORT)
    assert goals["512 px fps"]["measured"] == pytest.approx(1e3 / 3.0)  # not the 1 ms backend at 20 dB
    assert goals["512 px fps"]["met"] is True
    assert goals["1024 px p50 ms"] == {"goal": 5.0, "measured": 4.5, "met": True}
    assert goals["1024 px p99 ms"]["met"] is False
    assert goals["live frame p50 ms"]["met"] is True
    empty = _module("gpu_check").judge({"generators": []})
    assert all(v["measured"] is None and v["met"] is None for v in empty.values())


def test_report_says_plainly_when_no_gpu_was_measured(tmp_path, monkeypatch):
    report = _module("report")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    assert "Not measured" in "\n".join(report.gpu_section())
    goals = _module("gpu_check").judge(REPORT)
    (tmp_path / "gpu_nvidia-test-gpu.json").write_text(json.dumps(REPORT | {"goals": goals}))
    text = "\n".join(report.gpu_section())
    assert "### NVIDIA Test GPU" in text and "| 512 | torch-fp16 | 3.0 / 3.2 / 3.2 | 333 | 52.0 |" in text
    assert "unavailable: TensorRT is not installed" in text and "| 1024 px p99 ms | 8 | 8.50 | False |" in text


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="an NVIDIA GPU may be present")
def test_the_script_refuses_in_one_line_without_a_gpu():
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no NVIDIA GPU" in r.stderr
