"""The offline commands: ``optimize``, ``interpolate`` and ``eval latent-agreement``.

Wiring (done in ``livesound/cli.py``): ``add_parsers(subs, _Formatter, _sub)`` adds ``optimize`` and
``interpolate``; ``add_eval_latent_agreement(parser)`` adds the options of ``eval latent-agreement`` to a
subparser; ``main`` dispatches to ``cmd_optimize`` / ``cmd_interpolate`` / ``cmd_latent_agreement``. Like the
other commands these build one options object, call library functions, and raise ValueError,
CheckpointError, AudioError or PresetError with one-line messages for ``main`` to print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

OPTIMIZE_EXAMPLE = ("livesound optimize --preset demo --audio sound.wav --steps 300 --out out/optimize\n  "
                    "livesound optimize --audio sounds/ --text 'a snowy mountain' --mix coarse=text,fine=audio")
INTERPOLATE_EXAMPLE = ("livesound interpolate out/optimize/rain/result.npy out/optimize/fire/result.npy "
                       "--steps 48 --mode slerp --out out/path --video out/path.mp4")
LATENT_AGREEMENT_EXAMPLE = "livesound eval latent-agreement --data sounds_by_label/ --steps 300 --out agreement.json"


def add_parsers(subs, formatter_class, sub_helper) -> None:
    """Add ``optimize`` and ``interpolate`` to ``subs`` through the CLI's ``sub_helper(subs, name, help, example)``."""
    del formatter_class  # sub_helper already applies the CLI's formatter
    o = sub_helper(subs, "optimize", "sound-guided latent optimisation (the paper's full-quality path)",
                   OPTIMIZE_EXAMPLE)
    _model_args(o)
    o.add_argument("--audio", metavar="FILE|DIR", help="audio target: a file, or a folder of .wav/.flac/.ogg "
                                                      "(one result each, batched, resumable)")
    o.add_argument("--text", help="text target (alone it is one more target; with --mix it steers its layers)")
    o.add_argument("--mix", metavar="SPEC", help="layer groups per modality, e.g. coarse=text,fine=audio "
                                                 "(coarse 0-3, medium 4-7, fine 8+; groups not named stay "
                                                 "at the source)")
    src = o.add_mutually_exclusive_group()
    src.add_argument("--seed", type=int, default=None, help="source latent from this seed (default 0)")
    src.add_argument("--latent", metavar="NPY", help="source w+ (.npy or .pt; the first row)")
    src.add_argument("--mean", action="store_true", help="start from the mean latent (the paper's free "
                                                         "generation: CLIP loss only, no L2 or identity)")
    o.add_argument("--trunc", type=float, default=None, help="truncation of a seed's latent (default: the "
                                                             "preset's; the paper 0.7)")
    _loop_args(o)
    o.add_argument("--id-weights", metavar="PTH", help="IR-SE50 ArcFace weights (model_ir_se50.pth) for the "
                                                       "identity loss on faces")
    o.add_argument("--id-lambda", type=float, default=None, help="identity loss weight (default 0.005 with "
                                                                 "--id-weights)")
    o.add_argument("--adaptive-mask", action="store_true", help="the paper's adaptive layer masking of the L2 term")
    o.add_argument("--save-every", type=int, default=20, help="intermediate image every K steps (0: none)")
    o.add_argument("--batch", type=int, default=4, help="targets optimised together")
    o.add_argument("--out", default="out/optimize", help="output folder (one subfolder per target)")

    i = sub_helper(subs, "interpolate", "render the path between two w+ latents to PNGs and a video",
                   INTERPOLATE_EXAMPLE)
    i.add_argument("a", metavar="A.npy", help="start latent (.npy or .pt; the first row)")
    i.add_argument("b", metavar="B.npy", help="end latent")
    i.add_argument("--steps", type=int, default=32, help="frames on the path, both ends included")
    i.add_argument("--mode", choices=["linear", "slerp"], default="linear", help="path in W+")
    i.add_argument("--out", default="out/interpolate", help="folder for frame_XXXX.png and path.npy")
    i.add_argument("--video", metavar="PATH", help="also write a video (.mp4/.mkv/.mov)")
    i.add_argument("--fps", type=float, default=24, help="video frame rate")
    i.add_argument("--preset", default="demo", help="preset whose generator renders the path")
    i.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    i.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def add_eval_latent_agreement(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``livesound eval latent-agreement`` (the paper's Table 2 measure)."""
    p.add_argument("--data", required=True, metavar="DIR", help="audio files in one folder per label")
    p.add_argument("--csv", metavar="CSV", help="file,label rows instead of folder names (paths relative to it)")
    _model_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the one source latent")
    p.add_argument("--trunc", type=float, default=None, help="truncation (default: the preset's)")
    _loop_args(p)
    p.add_argument("--batch", type=int, default=4, help="optimisations run together")
    p.add_argument("--out", default="latent_agreement.json", help="JSON report")
    return p


def _model_args(p) -> None:
    p.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    p.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    p.add_argument("--encoder", metavar="CKPT", help="audio encoder checkpoint (overrides the preset's)")
    p.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def _loop_args(p) -> None:
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (paper: 300)")
    p.add_argument("--lr", type=float, default=0.05, help="peak Adam learning rate (paper: 0.05; landscape 0.1)")
    p.add_argument("--l2", type=float, default=0.008, help="weight of ||w - w_src||^2 (paper: 0.008; "
                                                           "landscape 0.002)")


# ------------------------------------------------------------------------------------------ commands

def _say(cmd: str, text: str) -> None:
    print(f"livesound {cmd}: {text}", file=sys.stderr)


def _models(args, cmd: str, need_encoder: bool):
    from livesound.models.clip import ClipModel
    from livesound.models.presets import clip_from_preset, encoder_from_preset, generator_from_preset, load_preset

    preset = load_preset(args.preset)
    G = generator_from_preset(preset, args.generator, device=args.device)
    encoder = encoder_from_preset(preset, args.encoder, device=args.device).eval() if need_encoder else None
    if args.clip is not None:
        clip = ClipModel.load(args.clip_model, args.clip, device=args.device)
    else:
        clip = clip_from_preset(preset, device=args.device)
        if clip.weights is None:
            _say(cmd, f"note: preset {preset.name!r} has an untrained CLIP, so the guidance means nothing; "
                      "pass --clip WEIGHTS for real results")
    return preset, G, encoder, clip


def cmd_optimize(args) -> int:
    from livesound.audio.io import check_readable
    from livesound.offline.optimize import OptimizeConfig, parse_mix, source_latent
    from livesound.offline.targets import audio_files, is_complete, run_targets, slug

    if not args.audio and not args.text:
        raise ValueError("give a target: --audio FILE|DIR, --text TEXT, or both with --mix")
    mix = parse_mix(args.mix) if args.mix else None
    files = audio_files(args.audio) if args.audio else []
    if mix is not None:
        for kind, given in (("audio", bool(files)), ("text", bool(args.text))):
            if given and kind not in mix.values():
                raise ValueError(f"--{kind} is given but --mix gives it no layers")
    if args.id_lambda is not None and args.id_lambda > 0 and not args.id_weights:
        raise ValueError("--id-lambda needs --id-weights (IR-SE50 ArcFace weights, model_ir_se50.pth)")
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    # One target per audio file (mixed with the text when --mix names both), plus a text-only target.
    text_name = f"text-{slug(args.text)}" if args.text else None
    if mix is not None and "audio" in mix.values():
        plan = [(f.stem, f) for f in files]
    else:
        plan = [(f.stem, f) for f in files if mix is None] + ([(text_name, None)] if text_name else [])
    out = Path(args.out)
    if all(is_complete(out / name) for name, _ in plan):  # nothing to do: build no network
        _say("optimize", f"wrote 0 result(s), skipped {len(plan)} finished ({out})")
        return 0
    for f in files:  # fail on an unreadable file before any network is built
        check_readable(f)

    identity = None
    if args.id_weights:
        from livesound.models.arcface import IdentityLoss, load_arcface

        identity = IdentityLoss(load_arcface(args.id_weights, args.device))
    preset, G, encoder, clip = _models(args, "optimize", need_encoder=bool(files))
    psi = preset.truncation_psi if args.trunc is None else args.trunc
    cfg = OptimizeConfig(steps=args.steps, lr=args.lr, l2_lambda=args.l2, truncation=psi,
                         id_lambda=OptimizeConfig.id_lambda if args.id_lambda is None else args.id_lambda,
                         mode="free" if args.mean else "edit", adaptive_mask=args.adaptive_mask,
                         save_every=args.save_every, seed=args.seed or 0, noise_mode=preset.noise_mode)
    source = source_latent(G, seed=None if (args.latent or args.mean) else args.seed, latent=args.latent,
                           mean=args.mean, truncation=psi)
    specs = [_target_spec(name, f, args.text, mix, G, clip, encoder) for name, f in plan]
    _say("optimize", f"{len(specs)} target(s) from {source.label}, {cfg.steps} steps at lr {cfg.lr}, "
                     f"{G.resolution} px -> {out}")
    summary = run_targets(G, clip, source, specs, cfg, out, batch=args.batch, identity=identity,
                          report=lambda s: _say("optimize", s))
    _say("optimize", f"wrote {len(summary.written)} result(s), skipped {len(summary.skipped)} finished, "
                     f"in {summary.seconds:.1f} s")
    return 0


def _target_spec(name: str, audio: Path | None, text: str | None, mix, G, clip, encoder):
    """A lazily built target: the audio is encoded only if the target is not already done."""
    from livesound.offline.optimize import Target, TargetPart, audio_embedding, mixed_parts, text_embedding
    from livesound.offline.targets import TargetSpec

    def make() -> Target:
        emb, labels = {}, {}
        if text and (mix is not None or audio is None):  # a text target, or text mixed into this one
            emb["text"], labels["text"] = text_embedding(clip, text), text
        if audio is not None:
            emb["audio"], labels["audio"] = audio_embedding(encoder, audio), str(audio)
        if mix is not None:
            return Target(name, mixed_parts(mix, emb, labels, G.num_ws))
        kind = "audio" if audio is not None else "text"
        return Target(name, [TargetPart(kind, emb[kind], label=labels[kind])])

    return TargetSpec(name, make)


def cmd_interpolate(args) -> int:
    from livesound.offline.generate import load_latents
    from livesound.offline.interpolate import interpolate, render_path
    from livesound.files import write_npy
    from livesound.models.presets import generator_from_preset, load_preset

    preset = load_preset(args.preset)
    G = generator_from_preset(preset, args.generator, device=args.device)
    a, b = (load_latents(p, G.num_ws, G.w_dim)[0] for p in (args.a, args.b))
    path = interpolate(a, b, args.steps, args.mode)
    out = Path(args.out)
    frames = render_path(G, path.to(args.device), out, video=args.video, fps=args.fps,
                         noise_mode=preset.noise_mode)

    write_npy(out / "path.npy", path.numpy())
    video = f" and {args.video}" if args.video else ""
    _say("interpolate", f"wrote {len(frames)} frames ({args.mode}) to {out}{video}")
    return 0


def cmd_latent_agreement(args) -> int:
    from livesound.eval.latent_agreement import format_table, labelled_files, latent_agreement
    from livesound.offline.optimize import OptimizeConfig, source_latent
    from livesound.files import write_json

    files = labelled_files(args.data, args.csv)
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    preset, G, encoder, clip = _models(args, "eval latent-agreement", need_encoder=True)
    psi = preset.truncation_psi if args.trunc is None else args.trunc
    cfg = OptimizeConfig(steps=args.steps, lr=args.lr, l2_lambda=args.l2, truncation=psi,
                         noise_mode=preset.noise_mode)
    source = source_latent(G, seed=args.seed, truncation=psi)
    labels = sorted({f.label for f in files})
    _say("eval latent-agreement", f"{len(files)} file(s) in {len(labels)} label(s), {cfg.steps} steps each")
    report = latent_agreement(G, clip, encoder, files, source, cfg, batch=args.batch)
    out = Path(args.out)
    write_json(out, report)
    print(format_table(report))
    _say("eval latent-agreement", f"wrote {out}")
    return 0
