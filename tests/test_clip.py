"""The CLIP wrapper: the tiny seeded model, the paper's image path, and weights that are (not) on this machine."""

import json
import os
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from livesound.models.clip import (
    PAPER_TEMPLATES,
    SOUND_TEMPLATES,
    TINY_CONFIG,
    ClipModel,
    ClipUnavailable,
    paper_resize_to,
)
from livesound.weights.checkpoint import CheckpointError

open_clip = pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def tiny():
    return ClipModel.tiny(seed=0)


@pytest.fixture
def tiny_registered(tmp_path, monkeypatch):
    """The tiny architecture under an open_clip model name, as a user's own config file would add it."""
    from open_clip import factory

    name = "livesound-tiny-test"
    monkeypatch.setattr(factory, "_MODEL_CONFIG_PATHS", list(factory._MODEL_CONFIG_PATHS))
    monkeypatch.setattr(factory, "_MODEL_CONFIGS", dict(factory._MODEL_CONFIGS))
    (tmp_path / f"{name}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    return name


def test_text_embeddings_are_unit_norm_and_seeded(tiny):
    e = tiny.encode_text(["dog barking", "rain", "thunderstorm"])
    assert e.shape == (3, 512) == (3, tiny.embed_dim)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    again, other = ClipModel.tiny(seed=0), ClipModel.tiny(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), again.state_dict().values()))
    assert torch.equal(again.encode_text(["rain"]), tiny.encode_text(["rain"]))
    assert not torch.allclose(other.encode_text(["rain"]), tiny.encode_text(["rain"]))
    assert PAPER_TEMPLATES == ("{}",)


def test_template_averaging(tiny):
    templates = ("{}", "a sound of {}.")
    got = tiny.encode_text(["fire", "wind"], templates)
    for i, word in enumerate(["fire", "wind"]):
        singles = torch.cat([tiny.encode_text([t.format(word)], ("{}",)) for t in templates])
        assert torch.allclose(got[i], F.normalize(singles.mean(0), dim=-1), atol=1e-6)
    assert tiny.encode_text(["fire"], SOUND_TEMPLATES).shape == (1, 512)


def test_image_path_is_differentiable_and_unit_norm(tiny):
    img = (torch.rand(2, 3, 64, 48) * 2 - 1).requires_grad_(True)  # non-square: resized and centre-cropped
    e = tiny.encode_image(img)
    assert e.shape == (2, 512)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    e[:, :8].sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny.parameters())


def test_paper_resize_matches_the_papers_modules(tiny):
    img = torch.rand(1, 3, 256, 256) * 2 - 1
    paper = nn.AvgPool2d(kernel_size=256 // 32)(nn.Upsample(scale_factor=7)(img))
    assert torch.equal(paper_resize_to(img, 224), paper)
    assert paper_resize_to(torch.rand(1, 3, 32, 32), 224).shape == (1, 3, 224, 224)
    with pytest.raises(ValueError, match="paper_resize"):
        paper_resize_to(torch.rand(1, 3, 100, 100), 224)
    x = img[:, :, :64, :64].clone().requires_grad_(True)
    tiny.encode_image(x, paper_resize=True, clip_normalize=False).sum().backward()
    assert x.grad.abs().sum() > 0


def test_logit_scale_and_sizes(tiny):
    assert tiny.image_size == 224 and tiny.embed_dim == 512
    assert tiny.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's initial temperature


def test_missing_weights_fail_fast_and_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ClipUnavailable) as e:
        ClipModel.load("ViT-B-32", "openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert "ViT-B-32" in msg and "openai" in msg and "open_clip.create_model" in msg and "--clip" in msg
    with pytest.raises(ClipUnavailable, match="tags: openai"):
        ClipModel.load("ViT-B-32", "no-such-tag", cache_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match="absent.safetensors: no such CLIP weights file"):
        ClipModel.load("ViT-B-32", tmp_path / "absent.safetensors")


def test_local_weights_file_loads(tmp_path, tiny, tiny_registered):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(path))
    clip = ClipModel.load(tiny_registered, path)
    assert torch.equal(clip.encode_text(["rain"]), tiny.encode_text(["rain"]))


def test_weights_found_in_open_clips_cache(tmp_path, tiny, tiny_registered, monkeypatch):
    """A tag resolves to the Hugging Face cache layout open_clip downloads into, with no network call."""
    from open_clip import pretrained
    from safetensors.torch import save_file

    monkeypatch.setitem(pretrained._PRETRAINED, tiny_registered, {"fake": {"hf_hub": "livesound/tiny-test/"}})
    repo = tmp_path / "models--livesound--tiny-test"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(snap / "open_clip_model.safetensors"))
    clip = ClipModel.load(tiny_registered, "fake", cache_dir=str(tmp_path))
    assert torch.equal(clip.encode_text(["wind"]), tiny.encode_text(["wind"]))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_clip_file_is_refused(tmp_path, marker, tiny_registered):
    path = tmp_path / "evil.pt"
    torch.save({"logit_scale": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.pt: cannot load.*refused") as e:
        ClipModel.load(tiny_registered, path)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_tokenizer_works_offline(tiny):
    tokens = tiny.tokenizer(["a sound of rain"])
    assert tokens.shape == (1, 77) and tokens[0, 0] == 49406  # <start_of_text> from the BPE vocab in the wheel


def test_presets_pick_tiny_or_real_clip(tmp_path, monkeypatch):
    import huggingface_hub

    from livesound.models.presets import clip_from_preset, load_preset

    demo = clip_from_preset(load_preset("demo"))
    assert demo.name == "tiny" and demo.embed_dim == 512
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(ClipUnavailable, match="ViT-B-32 pretrained=openai"):
        clip_from_preset(load_preset("ffhq-1024"))
    with pytest.raises(CheckpointError, match="no such CLIP weights file"):
        clip_from_preset(load_preset("demo"), weights=tmp_path / "mine.safetensors")
