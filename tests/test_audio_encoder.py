"""The audio encoder: the paper's released-checkpoint layout, livesound's own format, and hostile files."""

import os
import pickle
import warnings

import pytest
import timm
import torch
from torch import nn

from livesound.models.audio_encoder import (
    AudioEncoder,
    AudioEncoderConfig,
    build_audio_encoder,
    infer_config,
    load_audio_encoder,
    save_audio_encoder,
)
from livesound.weights.checkpoint import CheckpointError, save_own

SMALL = (2, 1, 32, 48)  # the backbone pools globally, so small spectrograms test the same arithmetic faster


class PaperEncoder(nn.Module):
    """The paper's module as its soundclip/models.py writes it (ImageNet init off: no network here)."""

    def __init__(self, backbone="resnet18", embed_dim=512):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, (3, 3))
        self.feature_extractor = timm.create_model(backbone, num_classes=embed_dim, pretrained=False)

    def forward(self, x):
        return self.feature_extractor(self.conv(x))


def _paper_module(seed=0, backbone="resnet18", embed_dim=512):
    torch.manual_seed(seed)
    m = PaperEncoder(backbone, embed_dim)
    with torch.no_grad():  # trained-looking BatchNorm statistics, so buffers matter for the outputs
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(scope="module")
def paper():
    return _paper_module(seed=0)


@pytest.fixture(scope="module")
def spec():
    return torch.rand(*SMALL, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def paper_out(paper, spec):
    with torch.no_grad():
        return paper(spec)


def _same(a: nn.Module, b: nn.Module | torch.Tensor, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a(x), b if isinstance(b, torch.Tensor) else b(x))


@pytest.mark.parametrize("layout", ["bare", "module_prefix", "nested_state_dict", "nested_model"])
def test_paper_checkpoint_loads_unchanged(tmp_path, paper, paper_out, spec, layout):
    sd = paper.state_dict()
    if layout == "module_prefix":  # what a DataParallel-wrapped training run saves
        sd = nn.DataParallel(paper).state_dict()
        assert all(k.startswith("module.") for k in sd)
    obj = {"bare": sd, "module_prefix": sd, "nested_state_dict": {"epoch": 57, "state_dict": sd},
           "nested_model": {"model": sd, "optimizer": {"lr": 0.1}}}[layout]
    path = tmp_path / "resnet18_57.pth"
    torch.save(obj, path)
    enc = load_audio_encoder(path)
    assert enc.cfg == AudioEncoderConfig(backbone="resnet18", embed_dim=512)
    assert not enc.training
    assert _same(enc, paper_out, spec)


def test_architecture_inferred_for_other_resnets(tmp_path):
    m = _paper_module(seed=2, backbone="resnet34", embed_dim=256)
    torch.save(m.state_dict(), tmp_path / "r34.pth")
    enc = load_audio_encoder(tmp_path / "r34.pth")
    assert (enc.cfg.backbone, enc.cfg.embed_dim) == ("resnet34", 256)
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), m.state_dict().values()))
    with torch.device("meta"):  # names and shapes only
        r50, r10t = PaperEncoder("resnet50"), PaperEncoder("resnet10t")
    assert infer_config(r50.state_dict()).backbone == "resnet50"
    assert infer_config(r10t.state_dict()) is None  # deep stem: not a plain ResNet, needs a config


def test_wrong_backbone_is_a_clear_error(tmp_path, paper):
    torch.save(paper.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError) as e:
        load_audio_encoder(tmp_path / "r18.pth", config={"backbone": "resnet34"})
    msg = str(e.value)
    assert "r18.pth" in msg and "missing tensors" in msg and "\n" not in msg
    with pytest.raises(CheckpointError, match="wrong shapes.*feature_extractor.fc.weight"):
        load_audio_encoder(tmp_path / "r18.pth", config={"backbone": "resnet18", "embed_dim": 256})


def test_unknown_backbone_needs_a_config(tmp_path, spec):
    m = _paper_module(seed=3, backbone="mobilenetv3_small_050", embed_dim=512)
    torch.save(m.state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(CheckpointError, match="mobilenet.pth.*pass the encoder config"):
        load_audio_encoder(tmp_path / "mobilenet.pth")
    enc = load_audio_encoder(tmp_path / "mobilenet.pth", config=AudioEncoderConfig(backbone="mobilenetv3_small_050"))
    assert _same(enc, m, spec)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no_tensors", "torchscript"])
def test_broken_files_are_clear_errors(tmp_path, paper, damage):
    path = tmp_path / "broken.pth"
    torch.save(paper.state_dict(), path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_text("this is not a checkpoint\n")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "no_tensors":
        torch.save({"epoch": 3, "note": "optimizer only"}, path)
    else:  # loading one would run its TorchScript code
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(nn.Linear(2, 2), torch.zeros(1, 2)).save(str(path))
    with pytest.raises(CheckpointError) as e:
        load_audio_encoder(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch_save", "raw_pickle"])
def test_malicious_pickle_is_refused(tmp_path, marker, paper, writer):
    sd = dict(paper.state_dict())
    sd["conv.weight"] = _Evil(marker)
    path = tmp_path / "evil.pth"
    if writer == "torch_save":
        torch.save(sd, path)
    else:
        path.write_bytes(pickle.dumps(sd, protocol=2))
    with pytest.raises(CheckpointError, match="evil.pth: refused"):
        load_audio_encoder(path)
    assert not marker.exists()


def test_own_format_round_trip_is_exact(tmp_path, spec):
    enc = build_audio_encoder(AudioEncoderConfig(), seed=5)
    path = save_audio_encoder(enc, tmp_path / "enc.safetensors")
    back = load_audio_encoder(path)
    assert back.cfg == enc.cfg
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), back.state_dict().values()))
    assert _same(enc, back, spec)


def test_own_format_checks_kind_and_config(tmp_path):
    save_own(tmp_path / "g.safetensors", "generator", {}, {"x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="holds a generator, not a audio_encoder"):
        load_audio_encoder(tmp_path / "g.safetensors")
    save_own(tmp_path / "e.safetensors", "audio_encoder", {"backbone": "resnet18", "layers": 3}, {})
    with pytest.raises(CheckpointError, match="e.safetensors: bad audio encoder config"):
        load_audio_encoder(tmp_path / "e.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        load_audio_encoder(tmp_path / "absent.pth")


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    cfg = AudioEncoderConfig()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = build_audio_encoder(cfg, seed=7), build_audio_encoder(cfg, seed=7), build_audio_encoder(cfg, seed=8)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.conv.weight, c.conv.weight)


def test_output_shape_and_unit_embedding():
    enc = build_audio_encoder(AudioEncoderConfig(), seed=0)
    x = torch.rand(2, 1, 128, 512)
    assert tuple(enc.example_input(2).shape) == (2, 1, 128, 512)
    with torch.no_grad():
        assert enc(x).shape == (2, 512)
        x = x[..., :32, :48]
        raw, unit = enc(x), enc.embed(x)
    assert torch.allclose(unit.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(unit, raw / raw.norm(dim=-1, keepdim=True), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 1, n_mels, frames\]"):
        enc(torch.rand(2, 128, 512))


def test_other_backbone_by_config_round_trips(tmp_path, spec):
    cfg = AudioEncoderConfig(backbone="mobilenetv3_small_050", embed_dim=256)
    enc = build_audio_encoder(cfg, seed=1)
    with torch.no_grad():
        assert enc(spec).shape == (2, 256)
    back = load_audio_encoder(save_audio_encoder(enc, tmp_path / "mnv3.safetensors"))
    assert back.cfg == cfg and _same(enc, back, spec)
    no_stem = build_audio_encoder(AudioEncoderConfig(backbone="resnet18", in_conv=False), seed=1)
    assert no_stem.conv is None and no_stem.feature_extractor.conv1.in_channels == 1
    with pytest.raises(ValueError, match="timm has no model"):
        AudioEncoder(AudioEncoderConfig(backbone="not_a_net"))


def test_presets_build_or_find_the_encoder(tmp_path, monkeypatch, paper, paper_out, spec):
    from livesound.models.presets import PresetError, encoder_from_preset, load_preset

    demo = load_preset("demo")
    a, b = encoder_from_preset(demo), encoder_from_preset(demo)
    assert a.cfg == AudioEncoderConfig(backbone="lcnet_050", embed_dim=512)  # light, for live frame rates
    assert torch.equal(a.conv.weight, b.conv.weight)
    monkeypatch.setenv("LIVESOUND_MODELS", str(tmp_path))
    faces = load_preset("ffhq-1024")  # no encoder entry: the paper's released checkpoint
    with pytest.raises(PresetError, match="resnet18_57.pth.*--encoder PATH"):
        encoder_from_preset(faces)
    torch.save(paper.state_dict(), tmp_path / "resnet18_57.pth")
    assert _same(encoder_from_preset(faces), paper_out, spec)
