"""The one loading door: every format, round trips, and files that are broken or hostile."""

import os
import pickle

import pytest
import torch
from conftest import nvidia_state, rosinality_state, write_nvidia, write_rosinality

from livesound.models.stylegan2 import convert_generator, load_generator
from livesound.weights.checkpoint import CheckpointError, save_own

ROSI_CH = {4: 16, 8: 16, 16: 8, 32: 8}
NV_KW = dict(z_dim=12, w_dim=16, c_dim=0, img_resolution=32, img_channels=3,
             mapping_kwargs={"num_layers": 3}, synthesis_kwargs={"channel_base": 256, "channel_max": 16,
                                                                  "conv_clamp": 256, "architecture": "skip"})


def _same_outputs(G1, G2, seed=0):
    z = torch.randn(2, G1.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a = G1.synthesis(G1.mapping(z, truncation_psi=0.7))
        b = G2.synthesis(G2.mapping(z, truncation_psi=0.7))
    return torch.equal(a, b)


@pytest.fixture
def rosi_pt(tmp_path):
    sd = rosinality_state(32, 24, 3, ROSI_CH, seed=1)
    return write_rosinality(tmp_path / "rosi.pt", sd, torch.randn(24))


@pytest.fixture
def nv_pkl(tmp_path, marker):
    return write_nvidia(tmp_path / "nv.pkl", nvidia_state(32, 12, 16, 3, 256, 16, seed=2), NV_KW, marker)


def test_rosinality_architecture_is_inferred(rosi_pt):
    G = load_generator(rosi_pt)
    assert (G.resolution, G.z_dim, G.w_dim, G.num_ws) == (32, 24, 24, 8)
    assert G.cfg.channels == [16, 16, 8, 8] and G.cfg.mapping_layers == 3
    assert torch.equal(G.mapping.w_avg, torch.load(rosi_pt, weights_only=True)["latent_avg"])


def test_rosinality_without_latent_avg_estimates_it_deterministically(tmp_path):
    sd = rosinality_state(32, 24, 2, ROSI_CH, seed=3)
    p = write_rosinality(tmp_path / "train.pt", sd, extra={"g": sd, "args": __import__("argparse").Namespace(size=32)})
    G1, G2 = load_generator(p), load_generator(p)
    assert torch.equal(G1.mapping.w_avg, G2.mapping.w_avg)
    with torch.no_grad():
        w = G1.mapping(torch.randn(4096, 24))[:, 0].mean(0)
    assert torch.allclose(G1.mapping.w_avg, w, atol=0.2 * w.abs().mean().item())


def test_nvidia_pickle_architecture_is_inferred(nv_pkl, marker):
    G = load_generator(nv_pkl)
    assert (G.resolution, G.z_dim, G.w_dim, G.num_ws) == (32, 12, 16, 8)
    assert G.cfg.channels == [16, 16, 16, 8] and G.cfg.conv_clamp == 256.0
    assert G.cfg.mapping_lr_mul == 0.01
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_nvidia_pickle_any_protocol(tmp_path, marker, protocol):
    p = write_nvidia(tmp_path / "nv.pkl", nvidia_state(32, 12, 16, 3, 256, 16, seed=2), NV_KW, marker,
                     protocol=protocol)
    assert load_generator(p).resolution == 32


@pytest.mark.parametrize("fixture", ["rosi_pt", "nv_pkl"])
def test_round_trip_to_own_format_is_exact(request, tmp_path, fixture):
    src = request.getfixturevalue(fixture)
    dst = convert_generator(src, tmp_path / "g.safetensors")
    G1, G2 = load_generator(src), load_generator(dst)
    assert G1.cfg == G2.cfg
    for (k, a), b in zip(G1.state_dict().items(), G2.state_dict().values()):
        assert torch.equal(a, b), k
    assert _same_outputs(G1, G2)


def test_own_format_checks_every_name_and_shape(tmp_path, tiny_generator):
    G = tiny_generator
    sd = dict(G.state_dict())
    save_own(tmp_path / "ok.safetensors", "generator", G.cfg.to_dict(), sd)
    assert _same_outputs(G, load_generator(tmp_path / "ok.safetensors"))
    missing = {k: v for k, v in sd.items() if k != "synthesis.const"}
    save_own(tmp_path / "missing.safetensors", "generator", G.cfg.to_dict(), missing)
    with pytest.raises(CheckpointError, match=r"missing.safetensors.*missing tensors synthesis.const"):
        load_generator(tmp_path / "missing.safetensors")
    wrong = dict(sd, **{"synthesis.const": torch.zeros(3, 4, 4)})
    save_own(tmp_path / "wrong.safetensors", "generator", G.cfg.to_dict(), wrong)
    with pytest.raises(CheckpointError, match=r"wrong shapes synthesis.const \[3, 4, 4\]"):
        load_generator(tmp_path / "wrong.safetensors")
    nan = dict(sd, **{"synthesis.const": torch.full_like(sd["synthesis.const"], float("nan"))})
    save_own(tmp_path / "nan.safetensors", "generator", G.cfg.to_dict(), nan)
    with pytest.raises(CheckpointError, match="non-finite"):
        load_generator(tmp_path / "nan.safetensors")
    save_own(tmp_path / "enc.safetensors", "encoder", {}, sd)
    with pytest.raises(CheckpointError, match="holds a encoder, not a generator"):
        load_generator(tmp_path / "enc.safetensors")


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pt_is_refused_and_nothing_runs(tmp_path, marker):
    p = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1)}, "payload": _RunsCommand(marker)}, p)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused.*nothing from it was executed"):
        load_generator(p)
    assert not marker.exists()
    legacy = tmp_path / "evil_legacy.pt"
    torch.save(_RunsCommand(marker), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused"):
        load_generator(legacy)
    assert not marker.exists()


@pytest.mark.parametrize("payload", ["os_system", "eval", "in_state"])
def test_malicious_pkl_is_refused_and_nothing_runs(tmp_path, marker, payload):
    p = tmp_path / "evil.pkl"
    if payload == "os_system":
        data = pickle.dumps({"G_ema": _RunsCommand(marker)})
    elif payload == "eval":
        data = (b"\x80\x04cbuiltins\neval\n(Vopen(%r, 'w').write('x')\ntR." % str(marker).encode())
    else:  # hidden deep inside an otherwise valid-looking network pickle
        sd = nvidia_state(32, 12, 16, 3, 256, 16)
        write_nvidia(p, sd, dict(NV_KW, synthesis_kwargs={"evil": _RunsCommand(marker)}), marker)
        data = p.read_bytes()
    p.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"evil.pkl: refused: it names .* nothing from it was executed"):
        load_generator(p)
    assert not marker.exists()


def test_tensorflow_era_pickle_gets_a_hint(tmp_path):
    p = tmp_path / "stylegan2-ffhq-config-f.pkl"
    p.write_bytes(b"\x80\x03cdnnlib.tflib.network\n_reconstruct\nq\x00.")
    with pytest.raises(CheckpointError, match="TensorFlow-era StyleGAN2 pickle"):
        load_generator(p)


@pytest.mark.parametrize("fixture", ["rosi_pt", "nv_pkl"])
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_files_give_a_clear_error(request, tmp_path, fixture, keep):
    src = request.getfixturevalue(fixture)
    data = src.read_bytes()
    cut = tmp_path / f"cut{src.suffix}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.(pt|pkl): truncated or corrupt"):
        load_generator(cut)


def test_truncated_own_format(tmp_path, tiny_generator):
    p = save_own(tmp_path / "g.safetensors", "generator", tiny_generator.cfg.to_dict(),
                 tiny_generator.state_dict())
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="g.safetensors: unreadable safetensors"):
        load_generator(p)


def test_wrong_or_empty_files(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt: empty or truncated"):
        load_generator(tmp_path / "empty.pt")
    (tmp_path / "notes.pt").write_text("these are not weights at all\n")
    with pytest.raises(CheckpointError, match="notes.pt: not a StyleGAN2 checkpoint"):
        load_generator(tmp_path / "notes.pt")
    with pytest.raises(CheckpointError, match="nope.pt: no such file"):
        load_generator(tmp_path / "nope.pt")
    torch.save({"state_dict": {"conv.weight": torch.zeros(3)}}, tmp_path / "encoder.pt")
    with pytest.raises(CheckpointError, match="encoder.pt: torch file without 'g_ema'"):
        load_generator(tmp_path / "encoder.pt")
    sd = rosinality_state(32, 24, 2, ROSI_CH)
    del sd["convs.3.noise.weight"]
    write_rosinality(tmp_path / "partial.pt", sd)
    with pytest.raises(CheckpointError, match="partial.pt: missing tensor 'convs.3.noise.weight'"):
        load_generator(tmp_path / "partial.pt")
    sd = rosinality_state(32, 24, 2, ROSI_CH)
    sd["convs.1.conv.weight"] = torch.zeros(1, 8, 5, 3, 3)  # wrong input width
    write_rosinality(tmp_path / "shapes.pt", sd)
    with pytest.raises(CheckpointError, match="shapes.pt: does not match the architecture: wrong shapes"):
        load_generator(tmp_path / "shapes.pt")


def test_rosinality_lr_multiplier_hint_and_override(tmp_path):
    sd = rosinality_state(32, 24, 2, ROSI_CH)
    for k in ("style.1.weight", "style.2.weight"):
        sd[k] = sd[k] / 10  # stored as randn / lr_mul with lr_mul 0.1
    p = write_rosinality(tmp_path / "lr.pt", sd, torch.randn(24))
    with pytest.warns(UserWarning, match="suggests about 0.1"):
        assert load_generator(p).cfg.mapping_lr_mul == 0.01
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_generator(p, mapping_lr_mul=0.1).cfg.mapping_lr_mul == 0.1
    convert_generator(p, tmp_path / "lr.safetensors", mapping_lr_mul=0.1)
    assert load_generator(tmp_path / "lr.safetensors").cfg.mapping_lr_mul == 0.1
