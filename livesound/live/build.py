"""Build the live path from a preset and the command line's options: networks, pipeline and the audio source."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from livesound.audio.io import AudioError
from livesound.audio.mic import Microphone
from livesound.audio.sources import FileSource, SynthSource
from livesound.live.affinity import parse_pin, plan
from livesound.live.backends import parse_backend_choice
from livesound.live.output import FITS, FrameResize, frame_upscaler, parse_size
from livesound.live.pipeline import LiveSettings, Pipeline
from livesound.live.steering import MapperSteer, Steerer
from livesound.models.fast_paths import apply_fast_paths
from livesound.models.presets import (
    Preset,
    PresetError,
    clip_from_preset,
    encoder_from_preset,
    generator_from_preset,
    load_preset,
    mapper_from_preset,
    mapper_is_trained,
)
from livesound.offline.generate import load_latents


@dataclass
class LiveOptions:
    preset: str = "demo"
    source: str = "auto"             # auto | mic | synth | a file path
    device: str | None = None
    generator: str | None = None
    encoder: str | None = None
    mapper: str | None = None
    clip: str | None = None
    labels: list[str] = field(default_factory=list)
    strength: float | None = None
    smoothing_s: float | None = None
    seed: int = 0
    synth_kind: str = "chirp"
    backend: str | None = None       # "torch", "onnxruntime" or per stage "encode=onnxruntime,synthesize=torch";
                                     # None: the preset's live.backend (torch if it names none)
    backend_threads: int = 1         # ONNX Runtime intra-op threads (one per worker thread in the live engine)
    pin_threads: str = "auto"        # off | auto | "RENDER,LISTEN": a core per live worker (livesound.live.affinity)
    size: str | None = None          # "WxH" output size (livesound.live.output); None: the generator's own
    fit: str = "cover"               # cover | contain, when the aspect differs
    upscaler: str | None = None      # Real-ESRGAN weights (.pth): super-resolution before the resize
    latent: str | None = None        # w+ (.npy/.pt, first row) as the source latent instead of the seed's

    def __post_init__(self) -> None:  # told before minutes of building networks, not after
        plan(parse_pin(self.pin_threads))
        if self.size is not None:
            parse_size(self.size)
        if self.fit not in FITS:
            raise ValueError(f"--fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        for flag, path in (("--upscaler", self.upscaler), ("--latent", self.latent)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{path}: no such file ({flag})")


def steerer_from_preset(preset: Preset, G, clip_dim: int, mapper_path: str | Path | None = None) -> Steerer:
    """The steering the preset and options ask for (today: the conditional mapper)."""
    mapper = mapper_from_preset(preset, G, clip_dim, mapper_path)
    return steerer_for_mapper(mapper, trained=mapper_is_trained(preset, mapper_path))


def steerer_for_mapper(mapper, trained: bool) -> Steerer:
    return MapperSteer(mapper.eval(), trained=trained)


def live_settings(preset: Preset, opts: "LiveOptions") -> LiveSettings:
    """``LiveSettings`` from its defaults, the preset's ``live`` section, then the command line."""
    live = dict(preset.extra.get("live", {}))
    live.pop("backend", None)  # the stages' backends, not a setting of the frame
    unknown = set(live) - LiveSettings.names()
    if unknown:
        raise PresetError(f"preset {preset.name!r}: unknown live settings {sorted(unknown)}; known: "
                          f"{', '.join(sorted(LiveSettings.names()))}")
    settings = LiveSettings(**live)
    settings.truncation_psi, settings.noise_mode = preset.truncation_psi, preset.noise_mode
    settings.seed, settings.labels = opts.seed, list(opts.labels)
    if opts.strength is not None:
        settings.strength = opts.strength
    if opts.smoothing_s is not None:
        settings.smoothing_s = opts.smoothing_s
    return settings


def build_pipeline(opts: LiveOptions) -> Pipeline:
    preset = load_preset(opts.preset)
    settings = live_settings(preset, opts)
    G = apply_fast_paths(generator_from_preset(preset, opts.generator))  # the measured CPU winners, parity-tested
    encoder = encoder_from_preset(preset, opts.encoder).eval()
    steerer = steerer_from_preset(preset, G, encoder.embed_dim, opts.mapper)
    clip = clip_from_preset(preset, opts.clip)
    backend = opts.backend if opts.backend is not None else preset.extra.get("live", {}).get("backend")
    upscaler = frame_upscaler(opts.upscaler, G.resolution) if opts.upscaler else None
    resizer = FrameResize(*parse_size(opts.size), opts.fit) if opts.size else None
    pipeline = Pipeline(G, encoder, steerer, clip, settings, backends=parse_backend_choice(backend),
                        backend_threads=opts.backend_threads, upscaler=upscaler, resizer=resizer)
    if opts.latent:
        pipeline.set_source(load_latents(opts.latent, G.num_ws, G.w_dim)[:1], opts.seed)
    return pipeline


def open_source(opts: LiveOptions):
    """The audio source: ``auto`` takes the microphone when one works, else the synthetic source.

    The microphone (`livesound.audio.mic.Microphone`) survives the device going away and reconnects by itself."""
    if opts.source == "synth":
        return SynthSource(opts.synth_kind)
    if opts.source in ("mic", "auto"):
        try:
            # A live instrument wants the short buffer; a stage wants the show to survive a pulled cable.
            return Microphone(opts.device, latency="low")
        except AudioError as e:
            if opts.source == "mic":
                hint = "" if "--source" in e.problem else " (or play a file: --source FILE.wav)"
                raise AudioError(e.where, e.problem + hint) from None
            print(f"livesound live: no microphone ({e.problem}); using the synthetic source", file=sys.stderr)
            return SynthSource(opts.synth_kind)
    return FileSource(opts.source, realtime=True, loop=True)
