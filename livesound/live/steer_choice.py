"""One steering choice, said out loud: which way the sound's meaning moves the picture, and why.

``--steer mapper|bank|optimize|directions``; without it the rule is: the mapper when the preset's (or
``--mapper``'s) is trained, else the bank when one is given (``--bank FILE`` or the preset's ``bank`` entry), else
the mapper, with a warning when the generator is real: a seeded mapper moves a real generator's pictures with the
sound, but not by what the sound means, and the warning says the command that fixes it.

Each way of steering is a builder in ``BUILDERS`` (kind -> ``builder(ctx) -> Steerer``); the frame recipe only
sees the ``Steerer`` (`livesound.live.steering`). A preset's ``bank`` entry is ``{"file": NAME}`` (looked up in the
models folder) or ``{"build": {...}}``: a bank built on first use from synthetic sources and texts and cached
under the engines folder, keyed by the fingerprints of the generator, encoder and CLIP and by the build
settings, so it is rebuilt exactly when one of them changes (the ``demo`` preset steers this way).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from livesound.live.backends import engines_dir, fingerprint
from livesound.live.bank import BankSteer, check_generator, load_bank
from livesound.live.steering import MapperSteer, Steerer
from livesound.models.presets import Preset, PresetError, mapper_from_preset, models_dir, network_states

STEER_KINDS = ("mapper", "bank", "optimize", "directions")
BUILD_VERSION = 1  # of how a preset's bank is built (livesound.offline.bank): a change rebuilds cached banks


@dataclass
class SteerContext:
    """What a steering builder may use: the preset, the options, and the networks already built."""
    preset: Preset
    opts: object                      # livesound.live.build.LiveOptions
    G: object
    encoder: object
    clip: object
    window_s: float                   # the live window (a built-on-first-use bank hears its sounds through it)


@dataclass
class SteeringChoice:
    kind: str
    why: str                          # how the kind was chosen
    untrained: list[str]              # networks built from a seed
    steerer: Steerer | None = None
    warning: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def overlay_lines(self) -> list[str]:
        """The overlay's: the steering, and the untrained networks if any."""
        desc = self.steerer.describe() if self.steerer is not None else self.kind
        untrained = [f"untrained {', '.join(self.untrained)} (seeded)"] if self.untrained else []
        return [f"steer    {desc}"] + untrained

    @property
    def line(self) -> str:
        """The start line and the overlay's: the steering, why, and which networks are untrained."""
        desc = self.steerer.describe() if self.steerer is not None else self.kind
        untrained = f"untrained (seeded): {', '.join(self.untrained)}" if self.untrained else "all networks trained"
        return f"steering: {desc} [{self.why}]; {untrained}"


def choose(preset: Preset, opts) -> SteeringChoice:
    """The steering kind for ``opts`` (see the module docstring), before anything is built."""
    states = network_states(preset, generator=opts.generator, encoder=opts.encoder, clip=opts.clip,
                            mapper=opts.mapper)
    untrained = [name for name, s in states.items() if not s.trained]
    mapper_trained = states["mapper"].trained
    has_bank = opts.bank is not None or "bank" in preset.extra
    if opts.steer is not None:
        if opts.steer not in STEER_KINDS:
            raise ValueError(f"--steer must be one of {', '.join(STEER_KINDS)}, not {opts.steer!r}")
        kind, why = opts.steer, "--steer"
    elif mapper_trained:
        kind, why = "mapper", "default: a trained mapper"
    elif has_bank:
        kind, why = "bank", "default: no trained mapper, " + ("--bank" if opts.bank else "the preset's bank")
    else:
        kind, why = "mapper", "default: no trained mapper and no bank"
    choice = SteeringChoice(kind, why, untrained if kind == "mapper" else [u for u in untrained if u != "mapper"])
    if kind == "mapper" and not mapper_trained and states["generator"].trained:
        choice.warning = (f"the mapper is untrained (seeded): the picture moves with the sound, not by what it "
                          f"means. Build a direction bank once: livesound bank build --preset {preset.name} "
                          f"--sounds SOUNDS_DIR --texts 'thunder;birdsong' --out bank.safetensors, then: "
                          f"livesound live --preset {preset.name} --bank bank.safetensors")
    if kind != "bank" and opts.bank is not None:
        choice.notes.append(f"--bank is not used: the steering is {kind}")
    return choice


def build_steerer(choice: SteeringChoice, ctx: SteerContext) -> Steerer:
    builder = BUILDERS.get(choice.kind)
    if builder is None:
        raise ValueError(f"--steer {choice.kind} is not available in this build (available: "
                         f"{', '.join(BUILDERS)})")
    choice.steerer = builder(ctx)
    return choice.steerer


def mapper_steerer(ctx: SteerContext) -> Steerer:
    mapper = mapper_from_preset(ctx.preset, ctx.G, ctx.encoder.embed_dim, ctx.opts.mapper)
    trained = network_states(ctx.preset, mapper=ctx.opts.mapper)["mapper"].trained
    return MapperSteer(mapper.eval(), trained=trained)


def bank_steerer(ctx: SteerContext) -> Steerer:
    opts = ctx.opts
    if opts.bank is not None:
        path = Path(opts.bank)
    elif "bank" in ctx.preset.extra:
        path = preset_bank(ctx)
    else:
        raise ValueError(f"--steer bank needs --bank FILE (preset {ctx.preset.name!r} has no bank): build one with "
                         f"livesound bank build --preset {ctx.preset.name} --sounds DIR --out bank.safetensors")
    bank = load_bank(path)
    check_generator(bank, ctx.G, path)
    if bank.shape[2] != ctx.encoder.embed_dim:
        raise ValueError(f"{path}: embeddings: {bank.shape[2]}-d, the encoder gives {ctx.encoder.embed_dim}-d")
    return BankSteer(bank, opts.bank_temperature, opts.bank_top_k, name=path.name)


def optimize_steerer(ctx: SteerContext) -> Steerer:
    from livesound.live.optimize_steer import optimize_steerer as build  # CLIP-in-the-loop: loaded when chosen

    return build(ctx)


def directions_steerer(ctx: SteerContext) -> Steerer:
    from livesound.live.directions_steer import directions_steerer as build

    return build(ctx)


# kind -> builder(ctx); the heavier builders import their module when called, so a choice costs only what it needs.
BUILDERS: dict[str, Callable[[SteerContext], Steerer]] = {
    "mapper": mapper_steerer, "bank": bank_steerer, "optimize": optimize_steerer, "directions": directions_steerer}


# ------------------------------------------------------------------------------------------ a preset's bank

def preset_bank(ctx: SteerContext, say: Callable[[str], None] | None = None) -> Path:
    """The preset's bank file: its ``file`` from the models folder, or its ``build`` from the cache (built on
    first use)."""
    say = say or (lambda text: print(f"livesound live: {text}", file=sys.stderr))
    entry = ctx.preset.extra["bank"]
    if not isinstance(entry, dict) or ("file" in entry) == ("build" in entry):
        raise PresetError(f"preset {ctx.preset.name!r}: bank needs either 'file' or 'build'")
    if "file" in entry:
        path = models_dir() / entry["file"]
        if not path.is_file():
            raise PresetError(f"preset {ctx.preset.name!r} needs the bank {path.name} in {path.parent}, or pass "
                              "--bank FILE (build one with `livesound bank build`)")
        return path
    from livesound.offline.bank import BankSettings, build_bank_for, plan_anchors

    spec = dict(entry["build"])
    try:
        anchors = plan_anchors(synth=spec.pop("synth", []), texts=spec.pop("texts", []))
        settings = BankSettings(window_s=ctx.window_s, truncation=ctx.preset.truncation_psi, **spec)
    except TypeError as e:
        raise PresetError(f"preset {ctx.preset.name!r}: bank build: {e}") from None
    key = hashlib.sha256(json.dumps({
        "version": BUILD_VERSION, "build": entry["build"], "window_s": ctx.window_s, "truncation": ctx.preset.truncation_psi,
        "noise_mode": ctx.preset.noise_mode, "generator": fingerprint(ctx.G), "encoder": fingerprint(ctx.encoder),
        "clip": fingerprint(ctx.clip)}, sort_keys=True).encode()).hexdigest()[:16]
    path = engines_dir() / f"bank-{ctx.preset.name}-{key}.safetensors"
    if path.is_file():
        return path
    say(f"building the {ctx.preset.name} preset's direction bank once ({len(anchors)} anchors x {settings.steps} "
        f"steps; cached in {engines_dir()})")
    t0 = time.perf_counter()
    build_bank_for(ctx.G, ctx.encoder, ctx.clip, anchors, settings, path, preset=ctx.preset.name,
                   noise_mode=ctx.preset.noise_mode, progress=False)
    say(f"built the bank in {time.perf_counter() - t0:.1f} s")
    return path
