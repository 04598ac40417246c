"""Latent optimisation: the loss falls, L2 holds the source, mixing touches only its layers, outputs resume.

Tiny seeded generators and ``ClipModel.tiny`` (untrained: the loss is a real objective with meaningless
semantics). Torch runs on one thread here: on a small shared CPU two threads per tiny op are slower.
"""

import argparse
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from livesound.offline.optimize import (
    AUDIO_SCALE,
    OptimizeConfig,
    Target,
    TargetPart,
    clip_image_embedding,
    group_layers,
    mixed_parts,
    optimize,
    paper_lr,
    parse_mix,
    source_latent,
)
from livesound.weights.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def models():
    from livesound.models.clip import ClipModel
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    # 64 px: 10 ws, so coarse 0-3, medium 4-7 and fine 8-9 all exist.
    cfg = GeneratorConfig(resolution=64, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
    return build_generator(cfg, seed=3), ClipModel.tiny(seed=0)


def text_target(clip, text, name="t", layers=None):
    return Target(name, [TargetPart("text", clip.encode_text([text])[0], layers, text)])


def test_paper_lr_schedule():
    assert paper_lr(0.0, 0.05) == 0.0                          # ramp-up from 0 (the paper's first step)
    assert paper_lr(0.025, 0.05) == pytest.approx(0.025)       # halfway up the 5% ramp-up
    assert paper_lr(0.5, 0.05) == pytest.approx(0.05)          # flat middle
    assert paper_lr(0.875, 0.05) == pytest.approx(0.025)       # halfway down the 25% cosine ramp-down
    assert AUDIO_SCALE == pytest.approx(np.exp(0.07))


def test_loss_falls(models):
    G, clip = models
    src = source_latent(G, seed=1)
    r = optimize(G, clip, src, [text_target(clip, "a red flower")], OptimizeConfig(steps=30), progress=False)
    clip_loss = [row["clip"] for row in r.log[0]]
    assert len(r.log[0]) == 30 and set(r.log[0][0]) >= {"total", "clip", "l2", "id", "lr"}
    assert clip_loss[-1] < clip_loss[0] - 0.01
    assert r.log[0][-1]["total"] < r.log[0][0]["total"]
    assert r.ws.shape == (1, G.num_ws, G.w_dim) and r.images.shape == (1, 64, 64, 3)


def test_l2_keeps_result_nearer_source(models):
    G, clip = models
    src = source_latent(G, seed=2)
    target = text_target(clip, "thunder")
    dist = []
    for lam in (0.0, 0.1, 10.0):
        r = optimize(G, clip, src, [target], OptimizeConfig(steps=15, l2_lambda=lam, lr=0.1), progress=False)
        dist.append(float((r.ws - src.ws).norm()))
    assert dist[0] > dist[1] > dist[2] > 0, dist


def test_mix_changes_only_named_layers(models):
    G, clip = models
    src = source_latent(G, seed=4)
    groups = group_layers(G.num_ws)
    assert groups == {"coarse": (0, 1, 2, 3), "medium": (4, 5, 6, 7), "fine": (8, 9)}
    e_text, e_audio = clip.encode_text(["snow"])[0], torch.nn.functional.normalize(torch.randn(512), dim=0)
    only_coarse = Target("c", mixed_parts(parse_mix("coarse=text"), {"text": e_text}, {}, G.num_ws))
    r = optimize(G, clip, src, [only_coarse], OptimizeConfig(steps=6, lr=0.1), progress=False)
    moved = (r.ws[0] != src.ws[0]).any(-1)                      # [num_ws]
    assert moved[:4].all() and not moved[4:].any()              # medium and fine exactly at the source

    two = Target("m", mixed_parts(parse_mix("coarse=text, fine=audio"), {"text": e_text, "audio": e_audio},
                                  {}, G.num_ws))
    assert [p.kind for p in two.parts] == ["text", "audio"]
    r = optimize(G, clip, src, [two], OptimizeConfig(steps=6, lr=0.1), progress=False)
    moved = (r.ws[0] != src.ws[0]).any(-1)
    assert moved[:4].all() and moved[8:].all() and not moved[4:8].any()
    assert {"clip_text", "clip_audio"} <= set(r.log[0][-1])


def test_mix_errors(models):
    G, _ = models
    with pytest.raises(ValueError, match="GROUP=KIND"):
        parse_mix("coarse=video")
    with pytest.raises(ValueError, match="no audio target"):
        mixed_parts({"fine": "audio"}, {"text": torch.ones(512)}, {}, G.num_ws)
    with pytest.raises(ValueError, match="no fine layers"):
        mixed_parts({"fine": "text"}, {"text": torch.ones(512)}, {}, 8)


def test_batch_equals_separate_runs(models):
    G, clip = models
    src = source_latent(G, seed=5)
    a, b = text_target(clip, "fire", "a"), text_target(clip, "wind", "b")
    cfg = OptimizeConfig(steps=4, lr=0.1, adaptive_mask=True)
    both = optimize(G, clip, src, [a, b], cfg, progress=False).ws
    alone = optimize(G, clip, src, [b], cfg, progress=False).ws
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1])


def test_small_generator_reaches_clip_at_224(models):
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    _, clip = models
    G = build_generator(GeneratorConfig(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64,
                                        channel_max=8), seed=0)
    img = G.synthesis(source_latent(G, seed=0).ws)              # 16 px: 7 * 16 < 224
    assert clip_image_embedding(clip, img).shape == (1, 512)


def test_sources(models, tmp_path):
    G, _ = models
    mean = source_latent(G, mean=True)
    assert mean.kind == "mean" and torch.equal(mean.ws[0, 3], G.mapping.w_avg)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    np.save(tmp_path / "ws.npy", ws.numpy())
    saved = source_latent(G, latent=tmp_path / "ws.npy", index=1)
    assert torch.equal(saved.ws[0], ws[1])
    with pytest.raises(ValueError, match="one source"):
        source_latent(G, seed=1, mean=True)


# ------------------------------------------------------------------------------------- identity loss

def test_missing_identity_weights_give_clear_error(tmp_path):
    from livesound.models.arcface import load_arcface

    with pytest.raises(CheckpointError, match="model_ir_se50.pth") as e:
        load_arcface(tmp_path / "model_ir_se50.pth")
    assert "no such file" in str(e.value) and "\n" not in str(e.value)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        load_arcface(tmp_path / "wrong.pth")


def test_identity_weights_load_and_loss(tmp_path, models):
    from livesound.models.arcface import ArcFace, IdentityLoss, load_arcface

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = ArcFace().state_dict()
    assert {"input_layer.0.weight", "body.23.res_layer.5.fc2.weight", "output_layer.3.weight"} <= set(state)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "model_ir_se50.pth")
    loss = IdentityLoss(load_arcface(tmp_path / "model_ir_se50.pth"))
    G, _ = models
    src = source_latent(G, seed=0)
    with torch.no_grad():
        img = G.synthesis(src.ws.repeat(2, 1, 1))
        feats = loss.features(img[:1])
        other = G.synthesis(source_latent(G, seed=9).ws)
    assert feats.shape == (1, 512)
    other.requires_grad_(True)
    assert loss(img, feats).abs().max() < 1e-5                  # same face: no identity loss
    value = loss(other, feats)
    value.sum().backward()
    assert value.item() > 0 and other.grad.abs().sum() > 0


# ------------------------------------------------------------------------------ CLI, outputs and resume

def write_wavs(folder, n=2, seconds=0.5):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(int(22050 * seconds)) / 22050
        sf.write(folder / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 300 * i) * t)
                                             + 0.05 * rng.standard_normal(t.size)).astype(np.float32), 22050)
    return folder


def parse(*argv):
    from livesound.cli.offline import add_eval_parsers, add_parsers

    p = argparse.ArgumentParser()
    subs = p.add_subparsers(dest="command")
    add_parsers(subs)
    add_eval_parsers(subs)
    return p.parse_args(list(argv))


def test_cli_optimize_writes_outputs_and_resumes(tmp_path, capsys):
    from livesound.cli.offline import run_optimize

    sounds, out = write_wavs(tmp_path / "sounds"), tmp_path / "out"
    args = parse("optimize", "--preset", "demo", "--audio", str(sounds), "--text", "rain", "--mix",
                 "coarse=text,fine=audio", "--seed", "3", "--steps", "3", "--save-every", "1", "--batch", "2",
                 "--out", str(out))
    assert run_optimize(args) == 0
    for name in ("clip0", "clip1"):
        d = out / name
        assert {p.name for p in d.iterdir()} == {"source.png", "result.png", "side_by_side.png", "result.npy",
                                                 "log.json", "steps"}
        assert sorted(p.name for p in (d / "steps").iterdir()) == ["step_0000.png", "step_0001.png",
                                                                  "step_0002.png"]
        log = json.loads((d / "log.json").read_text())
        assert len(log["steps"]) == 3 and {"total", "clip", "l2", "id", "lr"} <= set(log["steps"][0])
        ws = np.load(d / "result.npy")
        assert ws.shape == (1, 12, 128) and ws.dtype == np.float32
        from PIL import Image
        assert Image.open(d / "side_by_side.png").size == (256, 128)
    src = np.load(out / "clip0" / "result.npy")  # medium layers (4-7) are not named: still the source's
    from livesound.models.presets import generator_from_preset, load_preset
    G = generator_from_preset(load_preset("demo"))
    with torch.no_grad():
        w_src = G.mapping(G.z_from_seeds([3]), truncation_psi=0.7).numpy()
    assert np.array_equal(src[0, 4:8], w_src[0, 4:8]) and not np.array_equal(src[0, :4], w_src[0, :4])

    mtimes = {n: os.stat(out / n / "result.npy").st_mtime_ns for n in ("clip0", "clip1")}
    capsys.readouterr()
    assert run_optimize(args) == 0
    assert "skipped 2" in capsys.readouterr().err
    assert mtimes == {n: os.stat(out / n / "result.npy").st_mtime_ns for n in ("clip0", "clip1")}


def test_cli_optimize_errors(tmp_path):
    from livesound.cli.offline import run_optimize

    with pytest.raises(ValueError, match="give a target"):
        run_optimize(parse("optimize", "--steps", "1"))
    with pytest.raises(ValueError, match="--mix gives it no layers"):
        run_optimize(parse("optimize", "--text", "x", "--audio", str(write_wavs(tmp_path / "s", 1)),
                           "--mix", "fine=audio"))
    with pytest.raises(CheckpointError, match="no such file"):
        run_optimize(parse("optimize", "--text", "x", "--id-weights", str(tmp_path / "none.pth"),
                           "--out", str(tmp_path / "o")))


def test_latent_agreement_cli(tmp_path, capsys):
    from livesound.cli.offline import run_latent_agreement

    data = tmp_path / "data"
    write_wavs(data / "rain", 1)
    write_wavs(data / "dog_bark", 1)
    out = tmp_path / "agreement.json"
    assert run_latent_agreement(parse("latent-agreement", "--data", str(data), "--steps", "2",
                                      "--out", str(out))) == 0
    report = json.loads(out.read_text())
    assert set(report["labels"]) == {"rain", "dog_bark"}
    for s in [*report["labels"].values(), report["overall"]]:
        for m in ("codes", "offsets"):  # the paper's Table 2 measure (codes) and the edits' (offsets)
            assert {"n", "mean", "std"} <= set(s[m]) and -1 <= s[m]["mean"] <= 1 and s[m]["std"] >= 0
    assert report["overall"]["offsets"]["n"] == 2 and len(report["files"]) == 2
    assert "dog_bark" in capsys.readouterr().out
