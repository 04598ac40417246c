"""Interrupted writes: a writer killed mid-way leaves the previous file intact, and a live run stopped by SIGTERM
closes its recording as a playable file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from livesound.weights.checkpoint import load_own, save_own

# Saves a ~48 MB checkpoint over and over; the parent kills it while one save is half written.
WRITER = r"""
import sys, torch
from livesound.weights.checkpoint import save_own
state = {"w": torch.full((12_000_000,), 2.0)}
while True:
    save_own(sys.argv[1], "mapper", {"gen": 2}, state)
"""


def _kill_mid_write(folder: Path, target: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGKILL ``proc`` in the middle of a save: once a new file appears in ``folder`` or ``target`` changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for p in folder.iterdir():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if p != target or st.st_mtime_ns != target_mtime[0]:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                return
        time.sleep(0.0005)
    proc.kill()
    pytest.fail("never caught the writer mid-write")


target_mtime = [0]


def test_a_writer_killed_mid_save_leaves_the_previous_checkpoint_intact(tmp_path):
    target = tmp_path / "mapper.safetensors"
    save_own(target, "mapper", {"gen": 1}, {"w": torch.full((12_000_000,), 1.0)})
    before = target.read_bytes()
    target_mtime[0] = target.stat().st_mtime_ns
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO)
    _kill_mid_write(tmp_path, target, proc)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == before                      # the previous file, byte for byte
    config, state = load_own(target, "mapper")
    assert config == {"gen": 1} and float(state["w"][0]) == 1.0


def test_a_failed_onnx_export_leaves_the_previous_graph(tmp_path, monkeypatch):
    import onnx

    from exporters.onnx import export_graph, stage_specs
    from livesound.models.mapper import MapperConfig, build_mapper

    mapper = build_mapper(MapperConfig(num_ws=4, w_dim=8, clip_dim=8, num_layers=2), seed=0)
    spec = next(s for s in stage_specs(None, None, mapper) if s.name == "mapper")
    export_graph(spec, tmp_path)
    graph = tmp_path / "mapper.onnx"
    before = graph.read_bytes()
    with torch.no_grad():  # a different network, whose export is interrupted after the graph was written
        for p in mapper.parameters():
            p.add_(1.0)

    def killed(path):
        raise KeyboardInterrupt("interrupted while checking the new graph")

    monkeypatch.setattr(onnx.checker, "check_model", killed)
    with pytest.raises(KeyboardInterrupt):
        export_graph(spec, tmp_path)
    assert graph.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mapper.onnx"]  # no temporary left behind


def test_sigterm_closes_a_headless_recording_as_a_playable_video(tmp_path):
    av = pytest.importorskip("av")
    out, video, stats = tmp_path / "frames", tmp_path / "rec.mp4", tmp_path / "stats.json"
    proc = subprocess.Popen([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--backend", "torch",
                             "--source", "synth", "--headless", "--frames", "100000", "--out", str(out), "--record", str(video),
                             "--stats", str(stats)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("*.png"))) < 20:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    d = json.loads(stats.read_text())
    assert d["interrupted"] and d["recording"]["frames"] >= 20
    with av.open(str(video)) as container:                     # it decodes: the moov index was written
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == d["recording"]["frames"] == d["frames"] - d["recording"]["dropped"]
    assert frames[0].shape == (128, 128, 3) and np.std(frames[-1]) > 1.0
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary video left
