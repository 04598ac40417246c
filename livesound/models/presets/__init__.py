"""Named presets: JSON files beside this module (``livesound/models/presets/*.json``) saying which networks to build
or load.

A network entry either builds from a seed (``{"seed": S, "config": {...}}``, no files needed; this is how
the embedded ``demo`` preset works) or names a checkpoint file (``{"checkpoint": NAME}``) looked up in the
models folder: ``$LIVESOUND_MODELS``, else ``~/.cache/livesound/models``. A ``--generator PATH`` on the
command line always wins over the preset's entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from livesound.models.audio_encoder import (
    AudioEncoderConfig,
    build_audio_encoder,
    load_audio_encoder,
)
from livesound.models.clip import ClipModel
from livesound.models.mapper import MapperConfig, build_mapper, load_mapper
from livesound.models.stylegan2 import (
    NOISE_MODES,
    GeneratorConfig,
    build_generator,
    load_generator,
)
from livesound.weights import fields


class PresetError(Exception):
    pass


@dataclass
class Preset:
    name: str
    description: str
    generator: dict
    truncation_psi: float = 0.7
    noise_mode: str = "const"
    extra: dict = field(default_factory=dict)  # entries later stages read (encoder, mapper, ...)
    source: str = ""                           # where it was read from, for error messages

    @property
    def embedded(self) -> bool:
        return "checkpoint" not in self.generator


def models_dir() -> Path:
    return Path(os.environ.get("LIVESOUND_MODELS") or Path.home() / ".cache" / "livesound" / "models")


def list_presets() -> list[Preset]:
    files = sorted(p.name for p in resources.files(__name__).iterdir()
                   if p.name.endswith(".json"))
    return [load_preset(f[:-5]) for f in files]


def describe_presets(as_json: bool = False) -> str:
    """``livesound presets``: each preset with where its generator is (embedded, found or needed), whether each
    network is trained (a file) or untrained (seeded), and how it steers by default; or all of it as JSON."""
    presets = list_presets()
    if as_json:
        return json.dumps([{"name": p.name, "description": p.description, "generator": p.generator,
                            "networks": {k: {"trained": s.trained, "from": s.source}
                                         for k, s in network_states(p).items()},
                            "steering": default_steering(p)} for p in presets], indent=2)
    lines = []
    for p in presets:
        if p.embedded:
            where = "embedded (no files needed)"
        else:
            ckpt = models_dir() / p.generator["checkpoint"]
            where = f"{'found' if ckpt.is_file() else 'needs'} {ckpt}"
        nets = ", ".join(f"{k} {'trained' if s.trained else 'UNTRAINED'} ({s.source})"
                         for k, s in network_states(p).items())
        lines.append(f"{p.name:16s} {where}\n{'':16s} {p.description}\n{'':16s} networks: {nets}\n"
                     f"{'':16s} steering: {default_steering(p)}")
    return "\n".join(lines)


@dataclass
class NetworkState:
    trained: bool                     # False: built from a seed (random weights)
    source: str                       # "file NAME", "seed S", "--generator PATH", ...


def network_states(preset: Preset, generator: str | None = None, encoder: str | None = None,
                   clip: str | None = None, mapper: str | None = None) -> dict[str, NetworkState]:
    """For each network (generator, encoder, clip, mapper): trained (from a file) or untrained (seeded), given the
    command line's overrides (a path always means a file)."""
    def state(entry: dict, override: str | None, flag: str, default: dict) -> NetworkState:
        if override is not None:
            return NetworkState(True, f"{flag} {Path(override).name}")
        entry = entry if entry is not None else default
        if "checkpoint" in entry:
            return NetworkState(True, f"file {entry['checkpoint']}")
        if "seed" in entry:
            return NetworkState(False, f"seed {entry['seed']}")
        return NetworkState(True, f"{entry.get('model', PAPER_CLIP['model'])} {entry.get('weights', '')}".strip())

    x = preset.extra
    return {"generator": state(preset.generator, generator, "--generator", {}),
            "encoder": state(x.get("encoder"), encoder, "--encoder", PAPER_ENCODER),
            "clip": state(x.get("clip"), clip, "--clip", PAPER_CLIP),
            "mapper": state(x.get("mapper"), mapper, "--mapper", {"seed": 0})}


def default_steering(preset: Preset) -> str:
    """How ``livesound live`` steers with this preset and no options (livesound.live.steer_choice's rule)."""
    if network_states(preset)["mapper"].trained:
        return "mapper (trained)"
    if "bank" in preset.extra:
        how = "built on first use" if "build" in preset.extra["bank"] else f"file {preset.extra['bank'].get('file')}"
        return f"bank ({how})"
    return ("mapper (UNTRAINED: moves with the sound, not by its meaning; give a bank: "
            f"livesound bank build --preset {preset.name} ..., then live --bank FILE)")


def load_preset(name_or_path: str) -> Preset:
    """A packaged preset by name, or a preset JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        text, where = path.read_text(), str(path)
    else:
        res = resources.files(__name__).joinpath(f"{name_or_path}.json")
        if not res.is_file():
            names = [p.name[:-5] for p in resources.files(__name__).iterdir()
                     if p.name.endswith(".json")]
            raise PresetError(f"unknown preset {name_or_path!r}; available: {', '.join(sorted(names))}")
        text, where = res.read_text(), f"preset {name_or_path}"
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise PresetError(f"{where}: not valid JSON ({str(e)[:200] or 'nested too deeply'})") from None
    try:
        preset = _preset_from_json(d)
    except ValueError as e:  # fields.FieldError and the configs' own checks, each naming its field
        raise PresetError(f"{where}: {e}") from None
    preset.source = where
    return preset


_SEED = fields.Bounds(0, 2**32 - 1)
_NETWORKS = ("generator", "encoder", "mapper", "clip")


def _preset_from_json(d) -> Preset:
    """A Preset from a preset file's JSON, every field it uses checked (FieldError names the field)."""
    d = dict(fields.obj(d, "preset"))
    for key in ("name", "generator"):
        if key not in d:
            raise fields.FieldError(key, "missing")
    for key in _NETWORKS + ("live",):
        if key in d:
            fields.obj(d[key], key)
    gen = d.pop("generator")
    preset = Preset(name=fields.text(d.pop("name"), "name"),
                    description=fields.text(d.pop("description", ""), "description"), generator=gen,
                    truncation_psi=fields.number(d.pop("truncation_psi", 0.7), "truncation_psi",
                                                 fields.Bounds(-5, 5)),
                    noise_mode=fields.text(d.pop("noise_mode", "const"), "noise_mode",
                                           fields.Bounds(choices=NOISE_MODES)), extra=d)
    if ("checkpoint" in gen) == ("config" in gen):
        raise fields.FieldError("generator", "needs either 'checkpoint' or 'seed' + 'config'")
    configs = {"generator": GeneratorConfig.from_dict, "encoder": AudioEncoderConfig.from_dict,
               "mapper": MapperConfig.from_dict}
    for key in _NETWORKS:
        entry = gen if key == "generator" else d.get(key, {})
        for name in ("checkpoint", "source", "model", "weights"):
            if name in entry:
                fields.text(entry[name], f"{key}.{name}")
        if "seed" in entry:
            fields.integer(entry["seed"], f"{key}.seed", _SEED)
        if "config" in entry and key in configs:
            if key == "mapper" and set(fields.obj(entry["config"], "mapper.config")) & _SET_BY_NETWORKS:
                raise fields.FieldError("mapper.config", f"{sorted(_SET_BY_NETWORKS)} come from the generator "
                                                         "and the encoder, not the preset")
            try:
                configs[key](entry["config"])
            except fields.FieldError as e:
                raise fields.FieldError(".".join(filter(None, (key, "config", e.field))), e.problem) from None
            except ValueError as e:  # the config's own consistency checks (__post_init__)
                raise fields.FieldError(f"{key}.config", str(e)) from None
    if "calibrate_rgb" in gen:
        fields.number(gen["calibrate_rgb"], "generator.calibrate_rgb", fields.Bounds(0, 10, above=True))
    return preset


_SET_BY_NETWORKS = {"num_ws", "w_dim", "clip_dim"}


def generator_from_preset(preset: Preset, path: str | Path | None = None, device: str = "cpu"):
    """The preset's generator: ``path`` if given, else its checkpoint from the models folder, else seeded."""
    if path is not None:
        return load_generator(path, device)
    if "checkpoint" in preset.generator:
        ckpt = models_dir() / preset.generator["checkpoint"]
        if not ckpt.is_file():
            src = preset.generator.get("source", "the model's authors")
            raise PresetError(
                f"preset {preset.name!r} needs {ckpt.name} in {ckpt.parent} (get it from {src}; this "
                f"machine may have no network), or pass --generator PATH; set LIVESOUND_MODELS to use "
                f"another folder")
        return load_generator(ckpt, device)
    cfg = GeneratorConfig.from_dict(preset.generator["config"])
    G = build_generator(cfg, seed=int(preset.generator.get("seed", 0)))
    if preset.generator.get("calibrate_rgb"):
        calibrate_rgb(G, target_std=float(preset.generator["calibrate_rgb"]))
    return G.to(device)


def calibrate_rgb(G, target_std: float = 0.5, samples: int = 64) -> None:
    """Give an untrained generator's pictures zero mean and ``target_std`` per colour channel.

    Random weights sum to a strong colour cast that saturates every frame; the skip path is linear in the
    ToRGB weights and biases, so scaling them all and shifting the last bias fixes it without changing the
    network's shape. Deterministic: uses seeds 0..samples-1 at truncation 0.7.
    """
    import torch

    with torch.no_grad():
        img = G.synthesis(G.mapping(G.z_from_seeds(range(samples)), truncation_psi=0.7))
        mean, std = img.mean((0, 2, 3)), img.std((0, 2, 3))
        k = target_std / std
        for t in G.synthesis.torgbs:
            t.weight.mul_(k[:, None, None, None])
            t.bias.mul_(k)
        G.synthesis.torgbs[-1].bias.sub_(mean * k)


# The paper's released encoder (its README links it); presets without an "encoder" entry use it.
PAPER_ENCODER = {"checkpoint": "resnet18_57.pth",
                 "source": "https://kr.object.ncloudstorage.com/cvpr2022/resnet18_57.pth (the paper's README)"}
PAPER_CLIP = {"model": "ViT-B-32", "weights": "openai"}


def encoder_from_preset(preset: Preset, path: str | Path | None = None, device: str = "cpu"):
    """The preset's audio encoder: ``path`` if given, else its checkpoint from the models folder, else seeded.

    A preset's ``encoder`` entry is ``{"seed": S, "config": {...}}`` or ``{"checkpoint": NAME}``; without
    one, the paper's released ``resnet18_57.pth`` is looked up in the models folder.
    """

    entry = preset.extra.get("encoder", PAPER_ENCODER)
    if path is not None:
        return load_audio_encoder(path, device=device)
    if "checkpoint" in entry:
        ckpt = models_dir() / entry["checkpoint"]
        if not ckpt.is_file():
            src = entry.get("source", "the model's authors")
            raise PresetError(
                f"preset {preset.name!r} needs the audio encoder {ckpt.name} in {ckpt.parent} (get it from "
                f"{src}; this machine may have no network), or pass --encoder PATH; set LIVESOUND_MODELS to "
                f"use another folder")
        return load_audio_encoder(ckpt, config=entry.get("config"), device=device)
    if "config" not in entry:
        raise PresetError(f"preset {preset.name!r}: encoder needs either 'checkpoint' or 'seed' + 'config'")
    enc = build_audio_encoder(AudioEncoderConfig.from_dict(entry["config"]), seed=int(entry.get("seed", 0)))
    return enc.to(device)


def clip_from_preset(preset: Preset, weights: str | Path | None = None, device: str = "cpu"):
    """The preset's CLIP. ``{"seed": S}`` (the ``demo`` preset) is ``ClipModel.tiny``: UNTRAINED, random
    weights with CLIP's shapes and tokenizer, so its similarities mean nothing. ``{"model", "weights"}`` (the
    default: the paper's ViT-B-32 ``openai``) loads open_clip weights from a local file or open_clip's cache.
    ``weights`` (a path or tag, e.g. from ``--clip``) overrides the entry and always means real weights.
    """

    entry = preset.extra.get("clip", PAPER_CLIP)
    if weights is None and "seed" in entry:
        return ClipModel.tiny(seed=int(entry["seed"])).to(device)
    return ClipModel.load(entry.get("model", PAPER_CLIP["model"]),
                          weights if weights is not None else entry.get("weights"), device=device)


def mapper_from_preset(preset: Preset, G, clip_dim: int, path: str | Path | None = None):
    """The preset's mapper: ``path`` if given, else its checkpoint, else seeded to fit the generator."""
    entry = preset.extra.get("mapper", {"seed": 0})
    if path is None and "checkpoint" in entry:
        path = models_dir() / entry["checkpoint"]
        if not Path(path).is_file():
            raise PresetError(f"preset {preset.name!r} needs the mapper {Path(path).name} in {Path(path).parent}, "
                              f"or pass --mapper PATH (train one with `livesound train-mapper`)")
    if path is not None:
        mapper = load_mapper(path)
    else:
        cfg = MapperConfig(num_ws=G.num_ws, w_dim=G.w_dim, clip_dim=clip_dim, **entry.get("config", {}))
        mapper = build_mapper(cfg, seed=int(entry.get("seed", 0)))
    if (mapper.num_ws, mapper.w_dim, mapper.clip_dim) != (G.num_ws, G.w_dim, clip_dim):
        raise ValueError(f"the mapper takes w+ [{mapper.num_ws}, {mapper.w_dim}] and {mapper.clip_dim}-d "
                         f"embeddings; the generator has [{G.num_ws}, {G.w_dim}] and the encoder {clip_dim}-d")
    return mapper.eval()


def mapper_is_trained(preset: Preset, path: str | Path | None = None) -> bool:
    """Whether the mapper ``mapper_from_preset`` gives comes from a file (trained) or a seed (untrained)."""
    return network_states(preset, mapper=str(path) if path is not None else None)["mapper"].trained
