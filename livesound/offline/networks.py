"""The networks an offline job needs: a preset's generator, audio encoder and CLIP, each overridable by a path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from livesound.models.clip import ClipModel
from livesound.models.presets import (
    Preset,
    clip_from_preset,
    encoder_from_preset,
    generator_from_preset,
    load_preset,
)


@dataclass
class ModelOptions:
    preset: str = "demo"
    generator: str | None = None     # checkpoint overriding the preset's
    encoder: str | None = None
    clip: str | None = None          # CLIP weights (file or open_clip tag); None: the preset's
    clip_model: str = "ViT-B-32"     # open_clip model name for ``clip``
    device: str = "cpu"


@dataclass
class Networks:
    preset: Preset
    G: object
    encoder: object | None
    clip: ClipModel


def load_networks(opts: ModelOptions, need_encoder: bool, log: Callable[[str], None] = lambda s: None) -> Networks:
    """Build the networks; ``log`` hears a note when the CLIP is untrained (its guidance then means nothing)."""
    preset = load_preset(opts.preset)
    G = generator_from_preset(preset, opts.generator, device=opts.device)
    encoder = encoder_from_preset(preset, opts.encoder, device=opts.device).eval() if need_encoder else None
    if opts.clip is not None:
        clip = ClipModel.load(opts.clip_model, opts.clip, device=opts.device)
    else:
        clip = clip_from_preset(preset, device=opts.device)
        if clip.weights is None:
            log(f"note: preset {preset.name!r} has an untrained CLIP, so the guidance means nothing; "
                "pass --clip WEIGHTS for real results")
    return Networks(preset, G, encoder, clip)
