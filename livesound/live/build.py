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
from livesound.live.device import is_device_name, resolve_device
from livesound.live.output import FITS, FrameResize, frame_upscaler, parse_size
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
from livesound.offline.generate import load_latents
from livesound.weights import fields


@dataclass
class LiveOptions:
    preset: str = "demo"
    source: str = "auto"             # auto | mic | synth | a file path
    device: str = "auto"             # compute device: auto | cpu | cuda | cuda:N (livesound.live.device); for one
                                     # release any other value is taken as the audio input, with a note
    input: str | None = None         # audio input device: a name (part of it) or an index; None: the default
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
    max_audio_seconds: float | None = None  # a file source longer than this is refused (None: audio.io's default)
    steer: str | None = None         # mapper|bank|optimize|directions; None: the rule (livesound.live.steer_choice)
    bank: str | None = None          # a direction bank file (`livesound bank build`)
    bank_temperature: float | None = None  # None: the bank's calibrated temperature
    bank_top_k: int | None = None    # None: livesound.live.bank.DEFAULT_TOP_K
    directions: str | None = None    # --steer directions: fs3.npy (StyleCLIP) or `livesound directions build`'s file
    beta: float | None = None        # --steer directions: disentanglement threshold (None: the steerer's default)
    learn: str | None = None         # --steer optimize: a bank file that converged offsets are added to
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
        if self.device is not None and not is_device_name(self.device):
            if self.input is None:
                print(f"livesound live: note: --device {self.device!r} as the audio input is deprecated and goes in "
                      f"the next release; use --input {self.device!r} (--device now picks cpu or cuda)",
                      file=sys.stderr)
                self.input = self.device
            self.device = "auto"
        resolve_device(self.device)  # no GPU for --device cuda: one line now, not after the source opened
        if self.learn and self.steer != "optimize":
            raise ValueError("--learn works with --steer optimize (it keeps what the optimisation converged to)")
        if (self.directions or self.beta is not None) and self.steer != "directions":
            raise ValueError("--directions and --beta work with --steer directions")


def steerer_for_mapper(mapper, trained: bool) -> Steerer:
    return MapperSteer(mapper.eval(), trained=trained)


def live_settings(preset: Preset, opts: "LiveOptions") -> LiveSettings:
    """``LiveSettings`` from its defaults, the preset's ``live`` section, then the command line."""
    live = dict(preset.extra.get("live", {}))
    live.pop("backend", None)  # the stages' backends, not a setting of the frame
    live.pop("reactivity", None)  # the reactivity's gains (``preset_gains``)
    try:
        settings = fields.from_dict(LiveSettings, live, LIVE_BOUNDS, "live settings")
    except fields.FieldError as e:
        where = preset.source or f"preset {preset.name!r}"
        raise PresetError(f"{where}: live{'.' + e.field if e.field else ''}: {e.problem}") from None
    settings.truncation_psi, settings.noise_mode = preset.truncation_psi, preset.noise_mode
    settings.seed, settings.labels = opts.seed, list(opts.labels)
    if opts.strength is not None:
        settings.strength = opts.strength
    if opts.smoothing_s is not None:
        settings.smoothing_s = opts.smoothing_s
    return settings


# What a preset's ``live`` section may hold (a NaN strength or a 1e9 s window would reach the frame loop).
LIVE_BOUNDS = {
    "strength": fields.Bounds(0, 100), "smoothing_s": fields.Bounds(0, 60),
    "window_s": fields.Bounds(0, 60, above=True), "truncation_psi": fields.Bounds(-5, 5),
    "noise_mode": fields.Bounds(choices=("const", "random", "none")),
    "seed": fields.Bounds(0, 2**31 - 1), "onset_boost": fields.Bounds(0, 100), "release_s": fields.Bounds(0, 60),
    "labels": fields.Bounds(items=(0, 1000)), "embed_hz": fields.Bounds(0, 1000, above=True),
    "change_db": fields.Bounds(0, 100), "change_smoothing": fields.Bounds(0, 100),
}


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
    device = resolve_device(opts.device)  # a missing GPU is told before any network is built
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
        if backends["map"] not in ("torch", "auto"):
            choice.notes.append(f"the map stage runs in torch, not {backends['map']} "
                                f"(the {choice.kind} steerer is not one exportable network)")
        backends["map"] = "torch"
    upscaler = frame_upscaler(opts.upscaler, G.resolution) if opts.upscaler else None
    resizer = FrameResize(*parse_size(opts.size), opts.fit) if opts.size else None
    pipe = Pipeline(G, encoder, steerer, clip, settings, backends=backends, backend_threads=opts.backend_threads,
                    device=device, upscaler=upscaler, resizer=resizer)
    if opts.latent:
        pipe.set_source(load_latents(opts.latent, G.num_ws, G.w_dim)[:1].to(pipe.device), opts.seed)
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
            return Microphone(opts.input, latency="low")
        except AudioError as e:
            if opts.source == "mic":
                hint = "" if "--source" in e.problem else " (or play a file: --source FILE.wav)"
                raise AudioError(e.where, e.problem + hint) from None
            print(f"livesound live: no microphone ({e.problem}); using the synthetic source", file=sys.stderr)
            return SynthSource(opts.synth_kind)
    return FileSource(opts.source, realtime=True, loop=True, max_seconds=opts.max_audio_seconds)
