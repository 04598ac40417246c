"""The conditional latent mapper: shapes per generator size, layer groups, strength, seeding, own format."""

from __future__ import annotations

import json

import pytest
import torch

from livesound.models.mapper import (
    GROUPS,
    MapperConfig,
    build_mapper,
    load_mapper,
    save_mapper,
)
from livesound.weights.checkpoint import CheckpointError, save_own

W, C = 16, 8  # tiny widths: w_dim, clip_dim


def tiny(num_ws: int = 12, **kw) -> MapperConfig:
    return MapperConfig(num_ws=num_ws, w_dim=W, clip_dim=C, **kw)


def inputs(num_ws: int = 12, n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ws = torch.randn(n, num_ws, W, generator=g)
    e = torch.nn.functional.normalize(torch.randn(n, C, generator=g), dim=1)
    return ws, e


def unit(seed: int, n: int = 2) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, C, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.mark.parametrize("num_ws, groups", [(8, {"coarse": (0, 4), "medium": (4, 8), "fine": (8, 8)}),
                                            (12, {"coarse": (0, 4), "medium": (4, 8), "fine": (8, 12)}),
                                            (14, {"coarse": (0, 4), "medium": (4, 8), "fine": (8, 14)}),
                                            (18, {"coarse": (0, 4), "medium": (4, 8), "fine": (8, 18)})])
def test_shapes_and_groups(num_ws, groups):
    cfg = tiny(num_ws)
    assert cfg.group_slices == groups
    m = build_mapper(cfg, seed=0)
    assert set(m.mappers) == {g for g, (a, b) in groups.items() if b > a}
    ws, e = inputs(num_ws, n=3)
    with torch.no_grad():
        delta = m(ws, e)
        assert delta.shape == (3, num_ws, W)
        assert torch.isfinite(delta).all() and delta.abs().amax() > 0
        assert m(ws, e[:1]).shape == (3, num_ws, W)  # one embedding shared by the batch


def test_small_generators_have_only_their_groups():
    assert tiny(6).group_slices == {"coarse": (0, 4), "medium": (4, 6), "fine": (6, 6)}
    assert tiny(2).group_slices == {"coarse": (0, 2), "medium": (2, 2), "fine": (2, 2)}
    m = build_mapper(tiny(2), seed=0)
    ws, e = inputs(2)
    # embeddings for absent groups are accepted and unused
    assert m(ws, {"coarse": e, "fine": unit(5)}).shape == (2, 2, W)


def test_disabled_group_gives_exactly_zero_offset():
    m = build_mapper(tiny(12), seed=1)
    ws, e = inputs(12)
    with torch.no_grad():
        d = m(ws, e, enabled={"coarse": False, "medium": False})  # fine only
        assert torch.equal(d[:, :8], torch.zeros_like(d[:, :8]))
        assert torch.allclose(d[:, 8:], m(ws, e)[:, 8:])
        m.enabled["fine"] = False
        d = m(ws, e, enabled=None)
        assert torch.equal(d[:, 8:], torch.zeros_like(d[:, 8:])) and d[:, :8].abs().amax() > 0
    # a disabled group needs no embedding
    m2 = build_mapper(tiny(12, enabled=[False, False, True]), seed=1)
    with torch.no_grad():
        assert m2(ws, (None, None, e))[:, :8].abs().amax() == 0


def test_per_group_embeddings_change_only_their_layers():
    m = build_mapper(tiny(12), seed=2)
    ws, e = inputs(12)
    with torch.no_grad():
        base = m(ws, {"coarse": e, "medium": e, "fine": e})
        assert torch.allclose(base, m(ws, e))
        other = m(ws, (e, e, unit(7)))  # new fine embedding
        assert torch.equal(other[:, :8], base[:, :8])
        assert (other[:, 8:] - base[:, 8:]).abs().amax() > 1e-3


def test_strength_scales_offset_linearly():
    m = build_mapper(tiny(12), seed=3)
    ws, e = inputs(12)
    with torch.no_grad():
        delta = m(ws, e)
        for s in (0.0, 0.1, 0.5, 2.0):
            assert torch.allclose(m.edit(ws, e, strength=s) - ws, s * delta, atol=1e-6)
        per_sample = m.edit(ws, e, strength=torch.tensor([0.1, 1.0])) - ws
        assert torch.allclose(per_sample, torch.tensor([0.1, 1.0]).view(2, 1, 1) * delta, atol=1e-6)


def test_different_embeddings_give_different_offsets():
    m = build_mapper(tiny(12), seed=4)
    ws, _ = inputs(12, n=1)
    with torch.no_grad():
        d = torch.cat([m(ws, unit(s, n=1)) for s in range(4)]).flatten(1)
    cos = torch.nn.functional.cosine_similarity(d[:, None], d[None], dim=-1)
    assert (cos[~torch.eye(4, dtype=bool)] < 0.95).all()
    rms = d.square().mean(1).sqrt()
    assert ((rms > 0.2) & (rms < 5.0)).all()  # visible but bounded untrained offset


def test_seeded_build_is_reproducible():
    a, b, c = build_mapper(tiny(12), seed=9), build_mapper(tiny(12), seed=9), build_mapper(tiny(12), seed=10)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    before = torch.random.get_rng_state()
    build_mapper(tiny(12), seed=9)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is left alone


def test_film_zero_is_identity_modulation():
    m = build_mapper(tiny(12, film_init=0.0), seed=0)
    ws, _ = inputs(12)
    with torch.no_grad():
        assert torch.equal(m(ws, unit(1)), m(ws, unit(2)))


def test_own_format_round_trip(tmp_path):
    m = build_mapper(tiny(14, enabled=[True, False, True]), seed=5)
    path = save_mapper(m, tmp_path / "m.safetensors")
    m2 = load_mapper(path)
    assert m2.cfg == m.cfg and m2.enabled == {"coarse": True, "medium": False, "fine": True}
    ws, e = inputs(14)
    with torch.no_grad():
        assert torch.equal(m(ws, e), m2(ws, e))


def test_load_errors(tmp_path):
    m = build_mapper(tiny(12), seed=5)
    state, cfg = m.state_dict(), m.cfg.to_dict()

    def write(name, config, tensors, kind="mapper"):
        return save_own(tmp_path / name, kind, config, tensors)

    cases = {
        "missing": (cfg, {k: v for k, v in state.items() if k != "mappers.fine.film.weight"}, "missing"),
        "extra": (cfg, {**state, "mappers.extra.weight": torch.zeros(1)}, "unexpected"),
        "shape": (cfg, {**state, "mappers.coarse.layers.0.bias": torch.zeros(W + 1)}, "wrong shapes"),
        "nan": (cfg, {**state, "mappers.coarse.layers.0.bias": torch.full((W,), float("nan"))}, "non-finite"),
        "config": ({**cfg, "w_dim": 32}, state, "wrong shapes"),
        "badkey": ({**cfg, "depth": 3}, state, "bad mapper config"),
    }
    for name, (config, tensors, message) in cases.items():
        with pytest.raises(CheckpointError, match=message):
            load_mapper(write(f"{name}.safetensors", config, tensors))
    with pytest.raises(CheckpointError, match="not a mapper"):
        load_mapper(write("gen.safetensors", cfg, state, kind="generator"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError):
        load_mapper(junk)
    assert json.loads(json.dumps(cfg)) == cfg  # the config is plain JSON


def test_bad_inputs_are_named():
    m = build_mapper(tiny(12), seed=0)
    ws, e = inputs(12)
    with pytest.raises(Exception, match=r"ws must be"):
        m(ws[:, :10], e)
    with pytest.raises(Exception, match=r"embedding for coarse"):
        m(ws, torch.zeros(2, C + 1))
    with pytest.raises(ValueError, match="no embedding"):
        m(ws, {"coarse": e, "medium": e})
    with pytest.raises(ValueError, match="unknown layer groups"):
        m(ws, {"texture": e, **dict.fromkeys(GROUPS, e)})
    with pytest.raises(ValueError, match="group_bounds"):
        tiny(12, group_bounds=[8, 4])
