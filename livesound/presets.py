"""Named presets: JSON files in ``livesound/presets`` saying which networks to build or load.

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

PRESET_DIR = "presets"
NOISE_MODES = ("const", "random", "none")


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

    @property
    def embedded(self) -> bool:
        return "checkpoint" not in self.generator


def models_dir() -> Path:
    return Path(os.environ.get("LIVESOUND_MODELS") or Path.home() / ".cache" / "livesound" / "models")


def list_presets() -> list[Preset]:
    files = sorted(p.name for p in resources.files("livesound").joinpath(PRESET_DIR).iterdir()
                   if p.name.endswith(".json"))
    return [load_preset(f[:-5]) for f in files]


def load_preset(name_or_path: str) -> Preset:
    """A packaged preset by name, or a preset JSON file by path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        text, where = path.read_text(), str(path)
    else:
        res = resources.files("livesound").joinpath(PRESET_DIR, f"{name_or_path}.json")
        if not res.is_file():
            names = [p.name[:-5] for p in resources.files("livesound").joinpath(PRESET_DIR).iterdir()
                     if p.name.endswith(".json")]
            raise PresetError(f"unknown preset {name_or_path!r}; available: {', '.join(sorted(names))}")
        text, where = res.read_text(), f"preset {name_or_path}"
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise PresetError(f"{where}: not valid JSON ({e})") from None
    try:
        gen = d.pop("generator")
        preset = Preset(name=d.pop("name"), description=d.pop("description", ""), generator=gen,
                        truncation_psi=float(d.pop("truncation_psi", 0.7)),
                        noise_mode=d.pop("noise_mode", "const"), extra=d)
    except KeyError as e:
        raise PresetError(f"{where}: missing field {e}") from None
    if preset.noise_mode not in NOISE_MODES:
        raise PresetError(f"{where}: noise_mode must be one of {NOISE_MODES}")
    if ("checkpoint" in gen) == ("config" in gen):
        raise PresetError(f"{where}: generator needs either 'checkpoint' or 'seed' + 'config'")
    return preset


def generator_from_preset(preset: Preset, path: str | Path | None = None, device: str = "cpu"):
    """The preset's generator: ``path`` if given, else its checkpoint from the models folder, else seeded."""
    from livesound.models.stylegan2 import GeneratorConfig, build_generator, load_generator

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
