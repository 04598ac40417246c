"""Config values from files: NaN, inf, absurd sizes, wrong types and deep nesting, in checkpoint configs, presets,
live presets and MIDI maps. Each was accepted (an all-black picture, a negative layer count) or crashed with a
TypeError/OverflowError/RecursionError before; each is now one line naming the file and the field."""

from __future__ import annotations

import argparse
import json
from importlib import resources

import pytest
import torch
from conftest import rosinality_state, write_rosinality

from livesound.live.build import LiveOptions, live_settings
from livesound.models.mapper import MapperConfig, build_mapper, load_mapper, save_mapper
from livesound.models.presets import PresetError, load_preset
from livesound.models.stylegan2 import GeneratorConfig, load_generator
from livesound.rig.presets import LivePresetError, PresetBank
from livesound.weights.checkpoint import CheckpointError, save_own

DEMO = json.loads(resources.files("livesound.models.presets").joinpath("demo.json").read_text())
HUGE = "HUGE"  # written into the file as the literal 1e400 (which JSON readers take for inf)


def dumps(obj) -> str:
    return json.dumps(obj).replace(f'"{HUGE}"', "1e400")


def one_line(err: pytest.ExceptionInfo, *words: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


def test_a_nan_lr_multiplier_in_a_rosinality_file_is_refused(tmp_path):
    """Before: loaded, and `livesound generate` wrote an all-black PNG with exit code 0."""
    sd = rosinality_state(16, 8, 2, {4: 8, 8: 8, 16: 4}, seed=1)
    path = write_rosinality(tmp_path / "nan.pt", sd, extra={"args": argparse.Namespace(lr_mlp=float("nan"))})
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    one_line(e, str(path), "mapping_lr_mul", "finite")


@pytest.mark.parametrize("key, value, words", [
    ("mapping_layers", -5, ["mapping_layers", "1..64", "-5"]),
    ("resolution", float("inf"), ["resolution", "finite"]),
    ("z_dim", "512", ["z_dim", "integer"]),
    ("channels", [8] * 1000, ["channels", "items"]),
    ("blur_kernel", [0.0, 0.0], ["blur_kernel", "positive sum"]),
    ("conv_clamp", float("nan"), ["conv_clamp", "finite"]),
])
def test_bad_generator_config_in_an_own_file_names_the_field(tmp_path, tiny_generator, key, value, words):
    cfg = tiny_generator.cfg.to_dict() | {key: value}
    path = save_own(tmp_path / "g.safetensors", "generator", cfg, tiny_generator.state_dict())
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    one_line(e, str(path), *words)


def test_bad_mapper_config_names_the_field(tmp_path):
    m = build_mapper(MapperConfig(num_ws=6, w_dim=8, clip_dim=8, num_layers=2), seed=0)
    path = save_mapper(m, tmp_path / "m.safetensors")
    from safetensors.torch import load_file, save_file

    cfg = m.cfg.to_dict() | {"enabled": [1, 0, 1]}  # integers are not booleans
    save_file({k: v.contiguous() for k, v in load_file(path).items()}, str(path),
              metadata={"livesound_format": "1", "livesound_kind": "mapper", "livesound_config": json.dumps(cfg)})
    with pytest.raises(CheckpointError) as e:
        load_mapper(path)
    one_line(e, str(path), "enabled[0]", "true or false")


def test_config_values_are_typed_on_the_way_in():
    cfg = GeneratorConfig.from_dict({"resolution": 64.0, "z_dim": 8, "w_dim": 8, "conv_clamp": 256})
    assert cfg.resolution == 64 and isinstance(cfg.resolution, int) and cfg.conv_clamp == 256.0


def _preset(tmp_path, text: str):
    path = tmp_path / "p.json"
    path.write_text(text)
    return path


def _demo(**changes) -> dict:
    d = json.loads(json.dumps(DEMO))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = d
        for p in parents:
            node = node[p]
        node[leaf] = value
    return d


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", ["preset", "JSON object", "list"]),
    (json.dumps(_demo(generator=5)), ["generator", "JSON object", "int"]),
    (dumps(_demo(truncation_psi=HUGE)), ["truncation_psi", "finite"]),
    (json.dumps(_demo(generator__config__mapping_layers=-5)), ["generator.config.mapping_layers", "-5"]),
    (json.dumps(_demo(encoder__config__embed_dim=float("nan"))), ["encoder.config.embed_dim", "finite"]),
    (json.dumps(_demo(mapper={"seed": 0, "config": {"num_ws": 3}})), ["mapper.config", "num_ws"]),
    (json.dumps(_demo(noise_mode="loud")), ["noise_mode", "one of"]),
    (json.dumps(_demo(generator__seed=-1)), ["generator.seed"]),
    ('{"name": "x", "generator": ' + "[" * 100_000 + "]" * 100_000 + "}", ["not valid JSON"]),
])
def test_bad_presets_name_the_file_and_the_field(tmp_path, text, words):
    path = _preset(tmp_path, text)
    with pytest.raises(PresetError) as e:
        load_preset(str(path))
    one_line(e, str(path), *words)


@pytest.mark.parametrize("live, words", [
    ({"strength": float("nan")}, ["live.strength", "finite"]),
    ({"window_s": 1e9}, ["live.window_s"]),
    ({"embed_hz": 0}, ["live.embed_hz", "above 0"]),
    ({"labels": "dog"}, ["live.labels", "list"]),
    ({"volume": 11}, ["unknown live settings keys", "volume"]),
])
def test_bad_live_sections_name_the_file_and_the_field(tmp_path, live, words):
    path = _preset(tmp_path, json.dumps(_demo(live=live)))
    with pytest.raises(PresetError) as e:
        live_settings(load_preset(str(path)), LiveOptions(pin_threads="off"))
    one_line(e, str(path), *words)


def _live_presets(tmp_path, slots=None, midi=None, raw: str | None = None):
    path = tmp_path / "set.json"
    path.write_text(raw if raw is not None else
                    json.dumps({"livesound_live_presets": 1, "slots": slots or {}, "midi": midi or []}))
    return path


STATE = {"seed": 3, "ws_src": [[0.1] * 8] * 6, "strength": 0.5, "text": None, "mix": "coarse", "smoothing_s": 0.25,
         "gains": {"pulse_strength": 0.0}, "walk_phase": 0.0}


@pytest.mark.parametrize("slots, midi, words", [
    ({}, [{"kind": "cc", "channel": HUGE, "number": 1, "param": "strength"}], ["midi[0].channel", "finite"]),
    ({}, [{"kind": "cc", "channel": 0, "number": 1, "param": "strength"}, 5], ["midi[1]", "JSON object"]),
    ({}, [{"kind": "cc", "channel": 16, "number": 1, "param": "strength"}], ["midi[0].channel", "0..15"]),
    ({"1": STATE | {"strength": float("nan")}}, [], ["slots.1.strength", "finite"]),
    ({"1": STATE | {"ws_src": [[0.1] * 8, [0.2] * 7]}}, [], ["slots.1.ws_src", "rows"]),
    ({"1": STATE | {"seed": "3"}}, [], ["slots.1.seed", "integer"]),
    ({"2": STATE | {"gains": {"pulse_kick": 1e300}}}, [], ["slots.2.gains.pulse_kick"]),
    ({"2": STATE | {"mix": "everything"}}, [], ["unknown layer group"]),
])
def test_bad_live_preset_files_name_the_file_and_the_field(tmp_path, slots, midi, words):
    path = _live_presets(tmp_path, raw=dumps({"livesound_live_presets": 1, "slots": slots, "midi": midi}))
    with pytest.raises(LivePresetError) as e:
        PresetBank(path)
    one_line(e, str(path), *words)


def test_deeply_nested_live_presets_are_one_clear_error(tmp_path):
    path = _live_presets(tmp_path, raw='{"livesound_live_presets": 1, "slots": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(LivePresetError) as e:
        PresetBank(path)
    one_line(e, str(path), "cannot read")


def test_a_good_live_preset_file_still_loads(tmp_path):
    path = _live_presets(tmp_path, slots={"1": STATE}, midi=[{"kind": "note", "channel": 9, "number": 36,
                                                               "param": "preset", "value": 2}])
    bank = PresetBank(path)
    assert bank.slots[1]["seed"] == 3 and torch.tensor(bank.slots[1]["ws_src"]).shape == (6, 8)
