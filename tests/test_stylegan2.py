"""Behaviour of the generator itself: widths, shapes, truncation, style mixing, noise modes, W vs W+."""

import pytest
import torch

from livesound.models.stylegan2 import (
    GeneratorConfig,
    build_generator,
    style_mix,
    truncate,
)


def test_channel_tables_match_both_conventions():
    rosi = GeneratorConfig(resolution=256, channel_multiplier=2)
    assert rosi.channels == [512, 512, 512, 512, 512, 256, 128]
    assert GeneratorConfig(resolution=1024, channel_multiplier=1).channels[-1] == 16
    nv = GeneratorConfig(resolution=1024, channel_base=32768, channel_max=512)
    assert nv.channels == [512, 512, 512, 512, 512, 256, 128, 64, 32]
    assert (nv.num_ws, nv.num_layers) == (18, 17)
    assert GeneratorConfig(resolution=256).num_ws == 14
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(resolution=100)
    with pytest.raises(ValueError, match="unknown generator config keys"):
        GeneratorConfig.from_dict({"resolution": 64, "colour": 1})


def test_shapes_and_seeded_build(tiny_generator):
    G = tiny_generator
    z = G.z_from_seeds([0, 1, 2])
    with torch.no_grad():
        ws = G.mapping(z)
        img = G.synthesis(ws)
    assert ws.shape == (3, G.num_ws, G.w_dim) and img.shape == (3, 3, 32, 32)
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    again = build_generator(G.cfg, seed=3)
    for (k, a), b in zip(G.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    other = build_generator(G.cfg, seed=4)
    assert not torch.equal(other.synthesis.const, G.synthesis.const)
    assert torch.equal(G.z_from_seeds([5]), G.z_from_seeds([5]))


def test_truncation_pulls_towards_w_avg(tiny_generator):
    G = tiny_generator
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        w1 = G.mapping(z)
        w0 = G.mapping(z, truncation_psi=0.0)
        wh = G.mapping(z, truncation_psi=0.5)
        wc = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    assert torch.allclose(wh, 0.5 * (w1 + w0), atol=1e-5)
    assert torch.allclose(wc[:, :2], w0[:, :2]) and torch.equal(wc[:, 2:], w1[:, 2:])
    assert torch.equal(truncate(w1, G.mapping.w_avg, 1.0), w1)
    # w_avg is the mapping's mean: far from zero for the seeded demo build, so truncation matters
    assert G.mapping.w_avg.abs().mean() > 0.01


def test_style_mixing_takes_coarse_and_fine_from_each(tiny_generator):
    G = tiny_generator
    with torch.no_grad():
        a, b = G.mapping(torch.randn(2, G.z_dim)).chunk(2)
        mixed = style_mix(a, b, 4)
        img_mixed, img_a, img_b = (G.synthesis(x) for x in (mixed, a, b))
    assert torch.equal(mixed[:, :4], a[:, :4]) and torch.equal(mixed[:, 4:], b[:, 4:])
    assert not torch.allclose(img_mixed, img_a) and not torch.allclose(img_mixed, img_b)
    assert torch.equal(style_mix(a, b, 0), b) and torch.equal(style_mix(a, b, G.num_ws), a)
    with pytest.raises(ValueError):
        style_mix(a, b, G.num_ws + 1)


def test_noise_modes(tiny_generator):
    G = tiny_generator
    for layer in G.synthesis.layers:  # make noise visible in the output
        layer.noise_strength.data.fill_(0.5)
    ws = G.mapping(torch.randn(2, G.z_dim)).detach()
    with torch.no_grad():
        const1, const2 = G.synthesis(ws, "const"), G.synthesis(ws, "const")
        r1, r2 = G.synthesis(ws, "random"), G.synthesis(ws, "random")
        s1 = G.synthesis(ws, "random", generator=torch.Generator().manual_seed(1))
        s2 = G.synthesis(ws, "random", generator=torch.Generator().manual_seed(1))
        none = G.synthesis(ws, "none")
        for layer in G.synthesis.layers:
            layer.noise_strength.data.zero_()
        silent = G.synthesis(ws, "const")
    assert torch.equal(const1, const2)
    assert not torch.allclose(r1, r2) and torch.equal(s1, s2)
    assert not torch.allclose(const1, none)
    assert torch.allclose(none, silent, atol=1e-6)
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, "loud")


def test_w_input_equals_broadcast_w_plus_and_batches_are_independent(tiny_generator):
    G = tiny_generator
    w = torch.randn(3, G.w_dim)
    with torch.no_grad():
        from_w = G.synthesis(w)
        from_wplus = G.synthesis(w[:, None].repeat(1, G.num_ws, 1))
        one_by_one = torch.cat([G.synthesis(w[i:i + 1]) for i in range(3)])
    assert torch.equal(from_w, from_wplus)
    assert torch.allclose(from_w, one_by_one, atol=1e-5)
    with pytest.raises(Exception, match="ws must be"):
        G.synthesis(torch.randn(1, G.num_ws + 1, G.w_dim))
    with pytest.raises(ValueError, match="z must be"):
        G.mapping(torch.randn(1, G.z_dim + 1))
