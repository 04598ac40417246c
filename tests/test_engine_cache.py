"""The engine cache keys on everything that changes a graph, verifies a hit, repairs a bad entry and survives two
processes exporting the same key. Before: keyed on weights and fast paths only (two generators differing in
``conv_clamp`` shared one graph), never re-checked on a hit (a truncated graph failed every start with a protobuf
traceback), and two exporters raced on ``rmtree`` + ``rename``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import pytest
import torch
from conftest import REPO

from livesound.live.backends.cache import ENTRY, cached_onnx, entry_problem
from livesound.models.stylegan2 import GeneratorConfig, build_generator

CFG = dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=2, channel_base=64, channel_max=8)


@pytest.fixture
def engines(tmp_path, monkeypatch):
    folder = tmp_path / "engines"
    monkeypatch.setenv("LIVESOUND_ENGINES", str(folder))
    return folder


def tiny(**changes):
    return build_generator(GeneratorConfig(**CFG | changes), seed=5).eval()


def test_a_hit_is_reused_and_verified(engines, capsys):
    G = tiny()
    path = cached_onnx("generator", G)
    entry = json.loads((path.parent / ENTRY).read_text())
    assert entry["settings"]["opset"] and entry["settings"]["versions"]["torch"] == torch.__version__
    mtime = path.stat().st_mtime_ns
    assert cached_onnx("generator", tiny()) == path and path.stat().st_mtime_ns == mtime
    assert "exporting" in capsys.readouterr().err


def test_settings_that_change_the_graph_change_the_key(engines, monkeypatch):
    a = cached_onnx("generator", tiny())
    b = cached_onnx("generator", tiny(conv_clamp=0.5))     # same weights, a clamp in the graph
    assert a != b
    from livesound.live.backends import cache

    real = cache._version
    monkeypatch.setattr(cache, "_version", lambda name: "99.0" if name == "onnxruntime" else real(name))
    c = cached_onnx("generator", tiny())
    assert c not in (a, b)
    monkeypatch.setattr(cache, "OPSET", 18)
    assert cached_onnx("generator", tiny()) not in (a, b, c)


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_entry"])
def test_a_bad_entry_is_rebuilt_with_one_line(engines, capsys, damage):
    from livesound.live.backends.ort_stage import OrtBackend

    G = tiny()
    path = cached_onnx("generator", G)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:len(data) // 3])
    elif damage == "flip":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    else:
        (path.parent / ENTRY).unlink()
    capsys.readouterr()
    again = cached_onnx("generator", G)
    err = capsys.readouterr().err.strip().splitlines()
    assert again == path and len(err) == 1 and "unusable" in err[0] and "rebuilding" in err[0], err
    onnx.checker.check_model(str(again))
    assert entry_problem(path.parent, "generator", path.parent.name.split("-", 1)[1]) is None
    out = OrtBackend(again)(torch.zeros(1, G.num_ws, G.w_dim))
    assert out.shape == (1, 3, 16, 16)
    assert not [p for p in engines.iterdir() if p.name.startswith(".")]   # no temporary or discarded folder left


RACE = """
import sys, torch
from livesound.live.backends.cache import cached_onnx
from livesound.models.stylegan2 import GeneratorConfig, build_generator
torch.set_num_threads(1)
G = build_generator(GeneratorConfig(**{cfg!r}), seed=5).eval()
sys.stdin.readline()   # both processes start exporting together
print(cached_onnx("generator", G))
"""


def test_two_processes_exporting_the_same_key(engines):
    env = os.environ | {"LIVESOUND_ENGINES": str(engines)}
    procs = [subprocess.Popen([sys.executable, "-c", RACE.format(cfg=CFG)], cwd=REPO, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in results]
    paths = {out.strip() for out, _ in results}
    assert len(paths) == 1
    (path,) = paths
    onnx.checker.check_model(path)
    assert [p.name for p in engines.iterdir()] == [os.path.basename(os.path.dirname(path))]
