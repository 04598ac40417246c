"""Each command's library entry point, called directly as a script or notebook would: one options object in,
the command's files out, the same errors the command line prints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

SR = 44100


def wav(path, seconds=1.0, freq=440.0):
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


def test_generate_images(tmp_path):
    from livesound.offline.generate import GenerateOptions, generate_images

    said = []
    s = generate_images(GenerateOptions(seeds="3,5", out=str(tmp_path / "g"), grid=True, device="cpu"), log=said.append)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["grid.png", "seed0003.png", "seed0005.png"]
    assert (s.images, s.written) == (2, 3) and s.seconds > 0
    assert said == [f"2 image(s) at 128 px, truncation 0.7, noise const, torch on cpu -> {tmp_path / 'g'}"]
    assert Image.open(tmp_path / "g" / "grid.png").size == (256, 128)
    with pytest.raises(ValueError, match="--batch must be at least 1"):
        generate_images(GenerateOptions(batch=0, out=str(tmp_path / "none")))
    assert not (tmp_path / "none").exists()


def test_embed_to_file_with_labels(tmp_path):
    from livesound.offline.embed import EmbedToFileOptions, embed_to_file

    files = [str(wav(tmp_path / "a.wav")), str(wav(tmp_path / "b.wav", freq=1000.0))]
    said = []
    s = embed_to_file(EmbedToFileOptions(files=files, out=str(tmp_path / "e.npy"), labels=["rain", "fire"], top=1),
                      log=said.append)
    emb = np.load(tmp_path / "e.npy")
    assert emb.shape == s.shape == (2, 512) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5) and s.kind == "unit"
    assert [f for f, _ in s.labels] == files
    assert all(len(best) == 1 and best[0][0] in ("rain", "fire") and -1 <= best[0][1] <= 1 for _, best in s.labels)
    assert any("untrained" in line for line in said)


def test_embed_to_file_refuses_before_encoding(tmp_path):
    from livesound.audio.io import AudioError
    from livesound.offline.embed import EmbedToFileOptions, embed_to_file

    good = str(wav(tmp_path / "a.wav"))
    with pytest.raises(ValueError, match="--labels is empty"):
        embed_to_file(EmbedToFileOptions(files=[good], out=str(tmp_path / "e.npy"), labels=[]))
    with pytest.raises(AudioError, match="missing.wav"):
        embed_to_file(EmbedToFileOptions(files=[good, str(tmp_path / "missing.wav")], out=str(tmp_path / "e.npy")))
    assert not (tmp_path / "e.npy").exists()


def test_interpolate_files(tmp_path):
    from livesound.offline.interpolate import InterpolateOptions, interpolate_files

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((1, 12, 128)).astype(np.float32))
    frames = interpolate_files(InterpolateOptions(a=str(tmp_path / "a.npy"), b=str(tmp_path / "b.npy"), steps=3,
                                                  mode="slerp", out=str(tmp_path / "out")))
    assert [p.name for p in frames] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    path = np.load(tmp_path / "out" / "path.npy")
    assert path.shape == (3, 12, 128) and np.array_equal(path[0], np.load(tmp_path / "a.npy")[0])


def test_optimize_targets_then_resume(tmp_path):
    from livesound.offline.targets import OptimizeOptions, optimize_targets

    opts = OptimizeOptions(text="a red sunset", steps=2, save_every=0, out=str(tmp_path / "o"))
    said = []
    s = optimize_targets(opts, log=said.append)
    assert s.written == ["text-a_red_sunset"] and not s.idle
    assert np.load(tmp_path / "o" / "text-a_red_sunset" / "result.npy").shape == (1, 12, 128)
    assert any(line.startswith("1 target(s) from seed 0") for line in said)
    again = optimize_targets(opts)
    assert again.idle and again.skipped == ["text-a_red_sunset"] and not again.written


def test_evaluate_latent_agreement(tmp_path):
    from livesound.eval.latent_agreement import (
        AgreementOptions,
        evaluate_latent_agreement,
    )

    for label in ("rain", "fire"):
        (tmp_path / "data" / label).mkdir(parents=True)
        wav(tmp_path / "data" / label / "x.wav", 0.5, 300.0 if label == "rain" else 900.0)
    report = evaluate_latent_agreement(AgreementOptions(data=str(tmp_path / "data"), steps=1, batch=4,
                                                        out=str(tmp_path / "agreement.json")))
    assert json.loads((tmp_path / "agreement.json").read_text()) == json.loads(json.dumps(report))
    overall = report["overall"]["offsets"]
    assert set(report["labels"]) == {"rain", "fire"} and overall["n"] + overall["undefined"] == 2


def test_export_networks_and_build_engines(tmp_path, tiny_generator):
    from exporters.onnx import ExportOptions, export_networks
    from exporters.tensorrt import EnginesOptions, build_engines, tensorrt_available
    from livesound.weights.checkpoint import save_own

    ckpt = save_own(tmp_path / "g.safetensors", "generator", tiny_generator.cfg.to_dict(),
                    tiny_generator.state_dict())
    said = []
    reports = export_networks(ExportOptions(generator=str(ckpt), out=str(tmp_path / "onnx")), log=said.append)
    assert [r["path"] for r in reports] == [str(tmp_path / "onnx" / "generator.onnx")]  # only what was named
    assert json.loads((tmp_path / "onnx" / "export.json").read_text()) == reports
    assert len(said) == 1 and said[0].startswith("generator.onnx: max abs error")

    with pytest.raises(ValueError, match="no .onnx graphs"):
        build_engines(EnginesOptions(onnx=str(tmp_path), out=str(tmp_path / "engines")))
    if not tensorrt_available():  # up to TensorRT itself: the graphs pass the op check, then TensorRT is missing
        with pytest.raises(RuntimeError, match="TensorRT"):
            build_engines(EnginesOptions(onnx=str(tmp_path / "onnx"), out=str(tmp_path / "engines")))
        assert not list(tmp_path.rglob("*.engine"))


def test_run_benchmark_writes_json_and_plot(tmp_path):
    from livesound.bench.run import BenchOptions, run_benchmark

    out, png = run_benchmark(BenchOptions(backends="torch", frames=2, warmup=0, threads=1,
                                          json=str(tmp_path / "b" / "bench.json")), log=lambda s: None)
    assert (out, png) == (tmp_path / "b" / "bench.json", tmp_path / "b" / "bench.png")
    d = json.loads(out.read_text())
    assert set(d["backends"]) == {"torch"} and "_total_ms" not in d["backends"]["torch"]
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="--generator needs --stages generator"):
        run_benchmark(BenchOptions(generator="G.pt", json=str(tmp_path / "x.json")))
    with pytest.raises(ValueError, match="--frames must be at least 1"):
        run_benchmark(BenchOptions(frames=0, json=str(tmp_path / "x.json")))
    assert not (tmp_path / "x.json").exists()


def test_a_show_goes_headless_without_a_display(tmp_path, monkeypatch, capsys):
    from livesound.live.build import LiveOptions
    from livesound.rig.show import ShowOptions, prepare_show

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    sound = wav(tmp_path / "s.wav", 2.0)
    show = prepare_show(ShowOptions(live=LiveOptions(source=str(sound), pin_threads="off"), frames=3,
                                    out=str(tmp_path / "frames"), stats=str(tmp_path / "stats.json")))
    assert show.headless
    result = show.run_headless()
    assert result.headless and result.code == 0 and result.stats["frames"] == 3
    assert "no display found; running headless" in capsys.readouterr().err
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 3
    assert json.loads((tmp_path / "stats.json").read_text())["mode"] == "fixed-step"
    with pytest.raises(ValueError, match="no such audio file"):
        prepare_show(ShowOptions(live=LiveOptions(source=str(tmp_path / "gone.wav")), headless=True))


def test_presets_and_convert(tmp_path, tiny_generator):
    from livesound.models.presets import describe_presets
    from livesound.models.stylegan2 import convert_generator, load_generator
    from livesound.weights.checkpoint import save_own

    assert describe_presets().splitlines()[0].split() == ["demo", "embedded", "(no", "files", "needed)"]
    assert "demo" in [p["name"] for p in json.loads(describe_presets(as_json=True))]
    src = save_own(tmp_path / "g.safetensors", "generator", tiny_generator.cfg.to_dict(), tiny_generator.state_dict())
    with pytest.raises(ValueError, match="must be a .safetensors file"):
        convert_generator(src, tmp_path / "g.bin")
    out = convert_generator(src, tmp_path / "copy.safetensors")
    G = load_generator(out)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), tiny_generator.state_dict().values()))
