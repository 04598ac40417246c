"""The offline commands: ``generate``, ``embed``, ``convert``, ``presets``, ``optimize``, ``project``,
``interpolate`` and ``eval latent-agreement``. Each ``run_*`` builds one options object and calls one library
function."""

from __future__ import annotations

import argparse
from pathlib import Path

from livesound.cli.common import (
    add_device_arg,
    add_loop_args,
    add_model_args,
    model_options,
    say,
    split_list,
    sub,
    tell,
)

GENERATE_EXAMPLE = "livesound generate --preset demo --seeds 0-3 --out out/demo --grid"
EMBED_EXAMPLE = "livesound embed sound.wav other.flac --preset demo --out emb.npy"
CONVERT_EXAMPLE = "livesound convert stylegan2-ffhq-config-f.pt ffhq.safetensors"
OPTIMIZE_EXAMPLE = ("livesound optimize --preset demo --audio sound.wav --steps 300 --out out/optimize\n  "
                    "livesound optimize --audio sounds/ --text 'a snowy mountain' --mix coarse=text,fine=audio")
INTERPOLATE_EXAMPLE = ("livesound interpolate out/optimize/rain/result.npy out/optimize/fire/result.npy "
                       "--steps 48 --mode slerp --out out/path --video out/path.mp4")
PROJECT_EXAMPLE = ("livesound project photo.png --preset demo --steps 300 --out out/project\n  "
                   "livesound project --text 'a snowy mountain' --clip ViT-B-32.pt --out out/mountain")
LATENT_AGREEMENT_EXAMPLE = "livesound eval latent-agreement --data sounds_by_label/ --steps 300 --out agreement.json"


# ---------------------------------------------------------------------------------------------- parsers

def add_generate_parser(subs) -> None:
    """``generate`` alone: it heads the command list (the first command a newcomer runs)."""
    g = sub(subs, "generate", "render StyleGAN2 images from seeds or saved latents", GENERATE_EXAMPLE)
    g.set_defaults(run=run_generate)
    g.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    g.add_argument("--generator", metavar="CKPT", help="generator checkpoint (.pt, .pkl, .safetensors); "
                                                       "overrides the preset's")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-7 or 1,5,9")
    src.add_argument("--latents", metavar="NPY", help="w+ array [N, num_ws, w_dim] (.npy or .pt)")
    g.add_argument("--trunc", type=float, default=None, help="truncation psi (default: the preset's)")
    g.add_argument("--noise-mode", choices=["const", "random", "none"], default=None,
                   help="noise: stored maps, fresh random, or none (default: the preset's)")
    g.add_argument("--out", default="out/generate", help="output folder")
    g.add_argument("--grid", action="store_true", help="also write all images as one grid.png")
    g.add_argument("--grid-only", action="store_true", help="write only grid.png")
    g.add_argument("--batch", type=int, default=8, help="images computed at once")
    add_device_arg(g)
    g.add_argument("--backend", default="torch",
                   help="the generator's backend: torch, torch-bf16, torch-fp16, onnxruntime, openvino, "
                        "openvino-bf16, tensorrt, ... or auto (livesound live --backend's names; const noise)")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")


def add_parsers(subs) -> None:
    """``embed``, ``convert``, ``presets``, ``optimize`` and ``interpolate``."""
    e = sub(subs, "embed", "audio files -> CLIP-space embeddings (.npy, one row per file)", EMBED_EXAMPLE)
    e.set_defaults(run=run_embed)
    e.add_argument("files", nargs="+", help="audio files (WAV/FLAC/OGG, any rate, mono or multichannel)")
    e.add_argument("--preset", default="demo", help="preset whose encoder (and CLIP) to use")
    e.add_argument("--encoder", metavar="CKPT", help="audio encoder: the paper's .pth or livesound .safetensors")
    e.add_argument("--preprocess", choices=["paper", "stream"], default="paper",
                   help="paper: the paper's whole-clip log-mel (first/centre 10 s); stream: the live loop's "
                        "rolling log-mel at the end of the file")
    e.add_argument("--out", default="embeddings.npy", help="output .npy, float32 [files, dim]")
    e.add_argument("--raw", action="store_true", help="write raw encoder outputs instead of unit vectors")
    e.add_argument("--clean-nonfinite", action="store_true",
                   help="replace NaN/inf samples with 0 (with a warning) instead of refusing the file")
    e.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag) for --labels")
    e.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    e.add_argument("--labels", help="comma-separated labels: print each file's top labels by cosine")
    e.add_argument("--top", type=int, default=3, help="how many labels to print per file")
    e.add_argument("--batch", type=int, default=8, help="files encoded at once")
    add_device_arg(e)
    e.add_argument("--max-audio-seconds", type=float, metavar="S",
                   help="refuse longer files (a small compressed file can decode to gigabytes; default 600)")

    c = sub(subs, "convert", "convert a foreign checkpoint to livesound's safetensors format", CONVERT_EXAMPLE)
    c.set_defaults(run=run_convert)
    c.add_argument("src", help="rosinality .pt, NVIDIA .pkl or livesound .safetensors generator")
    c.add_argument("dst", help="output .safetensors file")
    c.add_argument("--mapping-lr-mul", type=float, default=None,
                   help="mapping lr multiplier of a rosinality generator built with a non-default lr_mlp "
                        "(its .pt does not record it; default: rosinality's 0.01)")

    pr = sub(subs, "presets", "list the named presets", "livesound presets")
    pr.set_defaults(run=run_presets)
    pr.add_argument("--json", action="store_true", help="print the presets as JSON")

    o = sub(subs, "optimize", "sound-guided latent optimisation (the paper's full-quality path)", OPTIMIZE_EXAMPLE)
    o.set_defaults(run=run_optimize)
    add_model_args(o)
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
    add_loop_args(o)
    o.add_argument("--id-weights", metavar="PTH", help="IR-SE50 ArcFace weights (model_ir_se50.pth) for the "
                                                       "identity loss on faces")
    o.add_argument("--id-lambda", type=float, default=None, help="identity loss weight (default 0.005 with "
                                                                 "--id-weights)")
    o.add_argument("--adaptive-mask", action="store_true", help="the paper's adaptive layer masking of the L2 term")
    o.add_argument("--save-every", type=int, default=20, help="intermediate image every K steps (0: none)")
    o.add_argument("--batch", type=int, default=4, help="targets optimised together")
    o.add_argument("--out", default="out/optimize", help="output folder (one subfolder per target)")

    pj = sub(subs, "project", "find the w+ whose picture matches an image (or free-generate toward a phrase), "
                              "as a source latent for `livesound live --latent`", PROJECT_EXAMPLE)
    pj.set_defaults(run=run_project)
    pj.add_argument("image", nargs="?", metavar="IMAGE", help="image to project (PNG/JPEG/...; centre-cropped square)")
    pj.add_argument("--text", metavar="PHRASE", help="instead of an image: start from the mean latent and follow "
                                                     "CLIP toward the phrase (the paper's free generation)")
    pj.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    pj.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    pj.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    pj.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    pj.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    pj.add_argument("--steps", type=int, default=300, help="optimisation steps")
    pj.add_argument("--lr", type=float, default=0.1, help="peak Adam learning rate (ramped as the paper's)")
    pj.add_argument("--clip-lambda", type=float, default=0.1, help="image mode: weight of the CLIP "
                                                                   "image-embedding term beside the pixel MSE")
    pj.add_argument("--out", default="out/project", help="folder for latent.npy, projected.png, "
                                                         "side_by_side.png and log.json")

    i = sub(subs, "interpolate", "render the path between two w+ latents to PNGs and a video", INTERPOLATE_EXAMPLE)
    i.set_defaults(run=run_interpolate)
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


def add_eval_parsers(evs) -> None:
    """``eval latent-agreement`` (the paper's Table 2 measure) under the ``eval`` command's subparsers."""
    p = sub(evs, "latent-agreement", "cosine between sound-guided and text-guided latent codes and offsets, "
                                     "per label, beside the paper's Table 2",
            LATENT_AGREEMENT_EXAMPLE)
    p.set_defaults(run=run_latent_agreement)
    add_latent_agreement_args(p)


def add_latent_agreement_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--data", required=True, metavar="DIR", help="audio files in one folder per label")
    p.add_argument("--csv", metavar="CSV", help="file,label rows instead of folder names (paths relative to it)")
    add_model_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the one source latent")
    p.add_argument("--trunc", type=float, default=None, help="truncation (default: the preset's)")
    add_loop_args(p)
    p.add_argument("--batch", type=int, default=4, help="optimisations run together")
    p.add_argument("--out", default="latent_agreement.json", help="JSON report")
    return p


# --------------------------------------------------------------------------------------------- commands

def run_generate(args) -> int:
    from livesound.offline.generate import GenerateOptions, generate_images

    opts = GenerateOptions(preset=args.preset, generator=args.generator, seeds=args.seeds, latents=args.latents,
                           trunc=args.trunc, noise_mode=args.noise_mode, out=args.out, grid=args.grid,
                           grid_only=args.grid_only, batch=args.batch, device=args.device, backend=args.backend,
                           threads=args.threads)
    s = generate_images(opts, log=tell("generate"))
    print(f"livesound generate: wrote {s.written} file(s) in {s.seconds:.2f} s ({s.images / s.seconds:.1f} images/s)")
    return 0


def run_embed(args) -> int:
    from livesound.offline.embed import EmbedToFileOptions, embed_to_file

    opts = EmbedToFileOptions(files=args.files, preset=args.preset, encoder=args.encoder, preprocess=args.preprocess,
                              raw=args.raw, clean_nonfinite=args.clean_nonfinite, out=args.out, clip=args.clip,
                              clip_model=args.clip_model, labels=split_list(args.labels) if args.labels else None,
                              top=args.top, batch=args.batch, device=args.device,
                              max_audio_seconds=args.max_audio_seconds)
    s = embed_to_file(opts, log=say("embed"))
    print(f"livesound embed: wrote {s.out} ({s.shape[0]} x {s.shape[1]} float32, {s.kind}, "
          f"{s.preprocess} preprocessing)")
    for path, best in s.labels:
        print(f"{path}: " + ", ".join(f"{label} {score:.3f}" for label, score in best))
    return 0


def run_convert(args) -> int:
    from livesound.models.stylegan2 import convert_generator

    dst = convert_generator(args.src, args.dst, args.mapping_lr_mul)
    print(f"livesound convert: wrote {dst}")
    return 0


def run_presets(args) -> int:
    from livesound.models.presets import describe_presets

    print(describe_presets(as_json=args.json))
    return 0


def run_optimize(args) -> int:
    from livesound.offline.targets import OptimizeOptions, optimize_targets

    opts = OptimizeOptions(models=model_options(args), audio=args.audio, text=args.text, mix=args.mix,
                           seed=args.seed, latent=args.latent, mean=args.mean, trunc=args.trunc, steps=args.steps,
                           lr=args.lr, l2=args.l2, id_weights=args.id_weights, id_lambda=args.id_lambda,
                           adaptive_mask=args.adaptive_mask, save_every=args.save_every, batch=args.batch,
                           out=args.out)
    s = optimize_targets(opts, log=say("optimize"))
    if s.idle:
        say("optimize")(f"wrote 0 result(s), skipped {len(s.skipped)} finished ({Path(opts.out)})")
    else:
        say("optimize")(f"wrote {len(s.written)} result(s), skipped {len(s.skipped)} finished, in {s.seconds:.1f} s")
    return 0


def run_project(args) -> int:
    from livesound.offline.networks import ModelOptions
    from livesound.offline.project import ProjectConfig, ProjectOptions, project_to_folder

    opts = ProjectOptions(image=args.image, text=args.text, out=args.out,
                          models=ModelOptions(preset=args.preset, generator=args.generator, clip=args.clip,
                                              clip_model=args.clip_model, device=args.device),
                          config=ProjectConfig(steps=args.steps, lr=args.lr, clip_lambda=args.clip_lambda))
    s = project_to_folder(opts, log=say("project"))
    fit = f", PSNR {s.psnr:.2f} dB" if s.psnr is not None else ""
    say("project")(f"{s.steps} steps in {s.seconds:.1f} s, loss {s.first_loss:.4f} -> {s.last_loss:.4f}{fit}")
    print(f"livesound project: wrote {s.out / 'latent.npy'} (start a live run: livesound live --latent "
          f"{s.out / 'latent.npy'})")
    return 0


def run_interpolate(args) -> int:
    from livesound.offline.interpolate import InterpolateOptions, interpolate_files

    opts = InterpolateOptions(a=args.a, b=args.b, steps=args.steps, mode=args.mode, out=args.out, video=args.video,
                              fps=args.fps, preset=args.preset, generator=args.generator, device=args.device)
    frames = interpolate_files(opts)
    video = f" and {args.video}" if args.video else ""
    say("interpolate")(f"wrote {len(frames)} frames ({args.mode}) to {Path(args.out)}{video}")
    return 0


def run_latent_agreement(args) -> int:
    from livesound.eval.latent_agreement import (
        AgreementOptions,
        evaluate_latent_agreement,
        format_table,
    )

    opts = AgreementOptions(data=args.data, csv=args.csv, models=model_options(args), seed=args.seed,
                            trunc=args.trunc, steps=args.steps, lr=args.lr, l2=args.l2, batch=args.batch,
                            out=args.out)
    report = evaluate_latent_agreement(opts, log=say("eval latent-agreement"))
    print(format_table(report))
    say("eval latent-agreement")(f"wrote {Path(args.out)}")
    return 0
