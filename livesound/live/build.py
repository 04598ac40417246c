"""Build the live path from a preset and the command line's options: networks, stages and the audio source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from livesound.live.engine import LiveSettings, Stages


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

    def __post_init__(self) -> None:  # told before minutes of building networks, not after
        from livesound.live.affinity import parse_pin, plan

        plan(parse_pin(self.pin_threads))


def mapper_from_preset(preset, G, clip_dim: int, path: str | Path | None = None):
    """The preset's mapper: ``path`` if given, else its checkpoint, else seeded to fit the generator."""
    from livesound.models.mapper import MapperConfig, build_mapper, load_mapper
    from livesound.presets import PresetError, models_dir

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


def build_stages(opts: LiveOptions) -> Stages:
    from livesound.presets import (clip_from_preset, encoder_from_preset, generator_from_preset, load_preset)

    preset = load_preset(opts.preset)
    live = preset.extra.get("live", {})
    from livesound.fast_generator import apply_fast_paths

    G = apply_fast_paths(generator_from_preset(preset, opts.generator))  # the measured CPU winners, parity-tested
    encoder = encoder_from_preset(preset, opts.encoder).eval()
    mapper = mapper_from_preset(preset, G, encoder.embed_dim, opts.mapper)
    clip = clip_from_preset(preset, opts.clip)
    settings = LiveSettings(
        strength=opts.strength if opts.strength is not None else float(live.get("strength", 0.5)),
        smoothing_s=opts.smoothing_s if opts.smoothing_s is not None else float(live.get("smoothing_s", 0.25)),
        window_s=float(live.get("window_s", 2.5)), truncation_psi=preset.truncation_psi,
        noise_mode=preset.noise_mode, seed=opts.seed, labels=list(opts.labels))
    from livesound.live.backends import parse_backend_choice

    backend = opts.backend if opts.backend is not None else live.get("backend")
    return Stages(G, encoder, mapper, clip, settings, backends=parse_backend_choice(backend),
                  backend_threads=opts.backend_threads)


def open_source(opts: LiveOptions):
    """The audio source: ``auto`` takes the microphone when one works, else the synthetic source.

    The microphone is a ``ResilientMic``: it survives the device going away and reconnects by itself."""
    from livesound.audio.io import AudioError
    from livesound.audio.resilient import ResilientMic
    from livesound.audio.sources import FileSource, SynthSource

    if opts.source == "synth":
        return SynthSource(opts.synth_kind)
    if opts.source in ("mic", "auto"):
        try:
            # A live instrument wants the short buffer; a stage wants the show to survive a pulled cable.
            return ResilientMic(opts.device, latency="low")
        except AudioError as e:
            if opts.source == "mic":
                hint = "" if "--source" in e.problem else " (or play a file: --source FILE.wav)"
                raise AudioError(e.where, e.problem + hint) from None
            import sys

            print(f"livesound live: no microphone ({e.problem}); using the synthetic source", file=sys.stderr)
            return SynthSource(opts.synth_kind)
    return FileSource(opts.source, realtime=True, loop=True)
