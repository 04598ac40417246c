"""ONNX export of every stage, ONNX Runtime backends in the live path, the engine cache, and `livesound bench`."""

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import (
    REPO,
    golden,
    nvidia_state,
    state_from,
    write_nvidia,
    write_rosinality,
)


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "livesound", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env=env)


def test_export_contract_matches_the_reference_implementation(tmp_path):
    """`export onnx --generator G.pt`: generator.onnx reproduces rosinality's own numbers in ONNX Runtime."""
    ref = golden("rosinality")
    ckpt = write_rosinality(tmp_path / "G.pt", state_from(ref), torch.from_numpy(ref["latent_avg"]))
    r = cli("export", "onnx", "--generator", ckpt, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "max abs error" in r.stdout
    path = tmp_path / "out" / "generator.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    first_in, first_out = model.graph.input[0], model.graph.output[0]
    dims = [d.dim_param or d.dim_value for d in first_in.type.tensor_type.shape.dim]
    assert first_in.name == "ws" and dims == ["batch", 10, 32] and first_out.name == "image"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    img = sess.run(None, {"ws": ref["ws"]})[0]
    assert img.shape == ref["img_const"].shape
    assert np.abs(img - ref["img_const"]).max() <= 5e-3
    assert not [n for n in model.graph.node if n.op_type.startswith("Random")]


def test_export_nvidia_pickle_and_every_demo_stage(tmp_path, marker):
    from exporters.onnx import export_all
    from livesound.models.presets import (
        encoder_from_preset,
        generator_from_preset,
        load_preset,
        mapper_from_preset,
    )

    kw = dict(z_dim=12, w_dim=16, c_dim=0, img_resolution=32, img_channels=3, mapping_kwargs={"num_layers": 2},
              synthesis_kwargs={"channel_base": 256, "channel_max": 16, "conv_clamp": 256})
    pkl = write_nvidia(tmp_path / "nv.pkl", nvidia_state(32, 12, 16, 2, 256, 16), kw, marker)
    r = cli("export", "onnx", "--generator", pkl, "--out", tmp_path / "nv", "--fp16")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "nv" / "generator.onnx").exists() and (tmp_path / "nv" / "generator_fp16.onnx").exists()

    preset = load_preset("demo")
    G, enc = generator_from_preset(preset), encoder_from_preset(preset)
    reports = export_all(tmp_path / "demo", G, enc, mapper_from_preset(preset, G, 512), fused=True,
                         log=lambda line: None)
    names = {r["path"].rsplit("/", 1)[1] for r in reports}
    assert names == {"generator.onnx", "mapper.onnx", "embedding_to_image.onnx", "encoder.onnx", "audio.onnx"}
    assert all(r["max_abs_error"] <= r["tolerance"] for r in reports)
    audio_ops = {n.op_type for n in onnx.load(str(tmp_path / "demo" / "audio.onnx")).graph.node}
    assert not audio_ops & {"STFT", "DFT"}
    assert json.loads((tmp_path / "demo" / "export.json").read_text())[0]["opset"] >= 17


def test_onnxruntime_backend_gives_the_same_frames_and_caches_graphs(tmp_path):
    import os
    from pathlib import Path

    from livesound.live.backends import parse_backend_choice
    from livesound.live.backends.ort_stage import OrtBackend
    from livesound.live.build import LiveOptions, build_pipeline
    from livesound.live.pipeline import run_fixed_step

    engines = Path(os.environ["LIVESOUND_ENGINES"])  # the session's cache (conftest); bench reuses it
    audio = (0.3 * np.sin(np.arange(44100) * 0.05)).astype(np.float32)
    eager = build_pipeline(LiveOptions(backend="torch", steer="mapper"))  # the mapper: a bank's map stays in torch
    accel = build_pipeline(LiveOptions(backend="onnxruntime", steer="mapper"))
    assert all(isinstance(accel.runners[s], OrtBackend) for s in ("encode", "map", "synthesize"))
    a = [f.rgb.astype(int) for f in run_fixed_step(eager, audio, 4, 1470)]
    b = [f.rgb.astype(int) for f in run_fixed_step(accel, audio, 4, 1470)]
    assert max(np.abs(x - y).max() for x, y in zip(a, b)) <= 2
    # The session's cache may also hold other tests' graphs (generator_styles, upscaler): these three must be there.
    cached = sorted(p for p in engines.glob("*/*.onnx") if p.parent.name.split("-")[0] in ("encoder", "mapper",
                                                                                           "generator"))
    assert {p.parent.name.split("-")[0] for p in cached} == {"encoder", "mapper", "generator"}
    mtimes = [p.stat().st_mtime for p in cached]
    build_pipeline(LiveOptions(backend="synthesize=onnxruntime"))  # same weights: the cache is reused
    assert [p.stat().st_mtime for p in cached] == mtimes
    assert parse_backend_choice("encode=onnxruntime")["synthesize"] == "torch"
    with pytest.raises(ValueError, match="unknown backend"):
        parse_backend_choice("synthesize=cuda")


def test_bench_writes_the_documented_json_and_a_plot(tmp_path):
    import os

    r = cli("bench", "--preset", "demo", "--backends", "torch,onnxruntime", "--frames", "4", "--warmup", "1",
            "--json", tmp_path / "out.json", env={**os.environ})
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "out.json").read_text())
    assert set(d["backends"]) == {"torch", "onnxruntime"}
    for b in d["backends"].values():
        assert b["fps"] > 0
        assert set(b["stages"]) == {"features", "encoder", "mapper", "generator", "total"}
        assert all(set(s) >= {"p50_ms", "p95_ms", "p99_ms"} for s in b["stages"].values())
        assert b["stages"]["total"]["p50_ms"] >= b["stages"]["generator"]["p50_ms"]
    assert {"torch", "onnxruntime", "threads", "processor"} <= set(d["machine"])
    assert (tmp_path / "out.png").stat().st_size > 1000
