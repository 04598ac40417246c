"""Build the live path from a preset and the command line's options: networks, pipeline and the audio source."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from livesound.audio.io import AudioError
from livesound.audio.mic import Microphone
from livesound.audio.sources import FileSource, SynthSource
from livesound.live.affinity import parse_pin, plan
from livesound.live.backends import parse_backend_choice
from livesound.live.pipeline import LiveSettings, Pipeline
from livesound.live.reactivity import ReactivityGains
from livesound.live.steer_choice import SteerContext, build_steerer, choose
from livesound.live.steering import MapperSteer, Steerer
from livesound.models.fast_paths import apply_fast_paths
from livesound.models.presets import (
    Preset,
    PresetError,
    clip_from_preset,
    encoder_from_preset,
    generator_from_preset,
    load_preset,
)


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
    steer: str | None = None         # mapper|bank|optimize|directions; None: the rule (livesound.live.steer_choice)
    bank: str | None = None          # a direction bank file (`livesound bank build`)
    bank_temperature: float | None = None  # None: the bank's calibrated temperature
    bank_top_k: int | None = None    # None: livesound.live.bank.DEFAULT_TOP_K

    def __post_init__(self) -> None:  # told before minutes of building networks, not after
        plan(parse_pin(self.pin_threads))


def steerer_for_mapper(mapper, trained: bool) -> Steerer:
    return MapperSteer(mapper.eval(), trained=trained)


def live_settings(preset: Preset, opts: "LiveOptions") -> LiveSettings:
    """``LiveSettings`` from its defaults, the preset's ``live`` section, then the command line."""
    live = dict(preset.extra.get("live", {}))
    live.pop("backend", None)  # the stages' backends, not a setting of the frame
    live.pop("reactivity", None)  # the reactivity's gains (``preset_gains``)
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


def preset_gains(preset: Preset) -> ReactivityGains:
    """The preset's ``live.reactivity`` gains (pulse, kick, walk); all off when it names none."""
    try:
        return ReactivityGains.from_dict(preset.extra.get("live", {}).get("reactivity", {}))
    except (ValueError, TypeError) as e:
        raise PresetError(f"preset {preset.name!r}: live.reactivity: {e}") from None


def build_pipeline(opts: LiveOptions, say=None) -> Pipeline:
    """The preset's networks and settings as a ``Pipeline``; ``say`` (default: stderr) hears the start line
    (the steering and the untrained networks) and any warning about the steering."""
    say = say or (lambda text: print(f"livesound live: {text}", file=sys.stderr))
    preset = load_preset(opts.preset)
    settings = live_settings(preset, opts)
    G = generator_from_preset(preset, opts.generator)
    encoder = encoder_from_preset(preset, opts.encoder).eval()
    clip = clip_from_preset(preset, opts.clip)
    choice = choose(preset, opts)
    steerer = build_steerer(choice, SteerContext(preset, opts, G, encoder, clip, settings.window_s))
    apply_fast_paths(G)  # the measured CPU winners, parity-tested (after a bank's optimisation: it needs autograd)
    backend = opts.backend if opts.backend is not None else preset.extra.get("live", {}).get("backend")
    backends = parse_backend_choice(backend)
    if steerer.network is None:  # nothing to export: the map stage runs the steerer in torch
        backends["map"] = "torch"
    pipe = Pipeline(G, encoder, steerer, clip, settings, backends=backends, backend_threads=opts.backend_threads)
    pipe.reactivity.gains = preset_gains(preset)
    pipe.steering = choice
    say(choice.line)
    for note in choice.notes:
        say(f"note: {note}")
    if choice.warning:
        say(f"warning: {choice.warning}")
    return pipe


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
