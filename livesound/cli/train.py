"""The training and evaluation commands: ``train-encoder``, ``train-mapper``, ``eval zero-shot``,
``eval linear-probe`` and ``eval mapper``.

Wiring (done in ``livesound/cli.py``): ``add_parsers(subs, sub_helper)`` adds the two trainers,
``add_eval_parsers(eval_subs, sub_helper)`` the three evaluations, and ``COMMANDS`` / ``EVALS`` map names to
the ``cmd_*`` functions. Like the other commands these build one options object and call library functions
(``livesound.train``, ``livesound.eval``), raising ValueError (DatasetError among them), CheckpointError,
AudioError or PresetError with one-line messages for ``main`` to print.
"""

from __future__ import annotations

import sys
from pathlib import Path

TRAIN_ENCODER_EXAMPLE = (
    "livesound train-encoder --data ESC-50-master/ --folds 1,2,3,4 --clip openai --out encoder.safetensors\n  "
    "python -m torch.distributed.run --standalone --nproc_per_node 4 -m livesound train-encoder "
    "--data vggsound/ --csv vggsound/vggsound.csv --folds train --batch 320 --run-dir runs/vgg")
TRAIN_MAPPER_EXAMPLE = ("livesound train-mapper --preset demo --prompts 'rain,fire,a dog barking' --steps-per-epoch 8 "
                        "--epochs 1 --batch 4 --out mapper.safetensors")
ZERO_SHOT_EXAMPLE = "livesound eval zero-shot --data ESC-50-master/ --encoder encoder.safetensors --out zs.json"
LINEAR_PROBE_EXAMPLE = "livesound eval linear-probe --data UrbanSound8K/ --encoder encoder.safetensors --out lp.json"
MAPPER_EVAL_EXAMPLE = ("livesound eval mapper --preset demo --prompts 'rain,fire' --seeds 0-1 --steps 50 "
                       "--out mapper_eval.json")


def _say(cmd: str, text: str) -> None:
    print(f"livesound {cmd}: {text}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- parsers

def _data_args(p, required: bool = True) -> None:
    p.add_argument("--data", required=required, metavar="DIR",
                   help="dataset root: label folders, ESC-50 (meta/esc50.csv) or UrbanSound8K "
                        "(metadata/UrbanSound8K.csv); with --csv the CSV's folder")
    p.add_argument("--csv", metavar="CSV", help="file,label[,frame[,fold]] rows, or VGGSound's vggsound.csv")
    p.add_argument("--layout", default="auto", choices=["auto", "folder", "csv", "vggsound", "esc50", "us8k"],
                   help="dataset layout (auto: from the metadata files present)")
    p.add_argument("--skip-missing", action="store_true",
                   help="drop listed clips whose files are missing (VGGSound) instead of refusing")


def _clip_args(p) -> None:
    p.add_argument("--preset", default=None, help="preset whose networks to use (demo: untrained, no files)")
    p.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag, e.g. openai); "
                                                     "default: the preset's, else ViT-B-32 openai")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")


def _loop_args(p, epochs: int, batch: int, every: int) -> None:
    p.add_argument("--run-dir", default=None, help="checkpoint, log.csv and TensorBoard events (default: "
                                                   "runs/<command>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--epochs", type=int, default=epochs, help="passes over the data")
    p.add_argument("--batch", type=int, default=batch, help="global batch (split over torchrun processes)")
    p.add_argument("--checkpoint-every", type=int, default=every, help="steps between checkpoints (0: at the end)")
    p.add_argument("--seed", type=int, default=0, help="seeds data order, augmentation and initial weights")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parsers(subs, sub_helper) -> None:
    e = sub_helper(subs, "train-encoder", "train the audio encoder contrastively into CLIP space (the paper's "
                                          "loss and recipe)", TRAIN_ENCODER_EXAMPLE)
    _data_args(e)
    e.add_argument("--folds", help="train on these folds only, e.g. 1,2,3,4 (ESC-50), train (VGGSound)")
    e.add_argument("--out", default="encoder.safetensors", help="the trained encoder (livesound format)")
    e.add_argument("--backbone", default="resnet18", help="timm backbone of a fresh encoder (paper: resnet18)")
    e.add_argument("--init", metavar="CKPT", help="start from these encoder weights instead (e.g. the paper's)")
    _clip_args(e)
    e.add_argument("--templates", choices=["paper", "sound"], default="paper",
                   help="label prompts: the paper's bare label, or a sound prompt ensemble")
    e.add_argument("--text-aug", type=float, default=0.0, help="probability of an EDA-style label variant")
    e.add_argument("--no-spec-aug", action="store_true", help="no SpecAugment term (audio-text only)")
    _loop_args(e, epochs=50, batch=320, every=500)
    e.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd",
                   help="sgd: the paper's (momentum, weight decay); adamw: often faster on small data")
    e.add_argument("--lr", type=float, default=1e-3, help="base learning rate (the cycle's low end)")
    e.add_argument("--max-lr", type=float, default=0.1, help="the cyclic learning rate's high end")
    e.add_argument("--cycle-steps", type=int, default=2000, help="steps from low to high learning rate")
    e.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (cycled 0.8-0.9 with the lr, as "
                                                                "CyclicLR does)")
    e.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay")
    e.add_argument("--cache", default=None, help="spectrogram cache folder (default: <run-dir>/spec_cache; "
                                                 "none: no cache)")
    e.add_argument("--workers", type=int, default=2, help="DataLoader worker processes (0: load in-process)")
    e.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (no autocast)")

    m = sub_helper(subs, "train-mapper", "train the conditional latent mapper over many target embeddings",
                   TRAIN_MAPPER_EXAMPLE)
    m.add_argument("--preset", default="demo", help="preset whose generator, encoder and CLIP to use")
    m.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    m.add_argument("--encoder", metavar="CKPT", help="audio encoder for --data targets (overrides the preset's)")
    m.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    m.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    m.add_argument("--prompts", help="text targets: comma-separated, or a .txt file with one per line")
    _data_args(m, required=False)
    m.add_argument("--distill", metavar="DIR", help="also fit these `livesound optimize` results (w+ .npy)")
    m.add_argument("--id-weights", metavar="PTH", help="IR-SE50 ArcFace weights: identity loss (faces)")
    m.add_argument("--init", metavar="CKPT", help="start from this mapper instead of a fresh one")
    m.add_argument("--out", default="mapper.safetensors", help="the trained mapper (loads with live --mapper)")
    _loop_args(m, epochs=10, batch=8, every=200)
    m.add_argument("--steps-per-epoch", type=int, default=128, help="batches per epoch")
    m.add_argument("--lr", type=float, default=0.5, help="Adam learning rate of the mapper body (StyleCLIP 0.5)")
    m.add_argument("--strength", type=float, default=0.1, help="edit step w + strength * M(w, e) (StyleCLIP 0.1)")
    m.add_argument("--trunc", type=float, default=None, help="truncation of sampled latents (default: preset's)")
    m.add_argument("--clip-lambda", type=float, default=1.0, help="weight of the CLIP loss")
    m.add_argument("--l2-lambda", type=float, default=0.8, help="weight of the offset's mean square")
    m.add_argument("--id-lambda", type=float, default=0.1, help="weight of the identity loss (--id-weights)")
    m.add_argument("--distill-lambda", type=float, default=1.0, help="weight of the distillation term")
    m.add_argument("--amp", action="store_true", help="autocast the generator and CLIP to float16 on CUDA")


def add_eval_parsers(evs, sub_helper) -> None:
    for name, help_text, example in (
            ("zero-shot", "zero-shot classification: audio embedding vs CLIP text of the class names, fold-wise",
             ZERO_SHOT_EXAMPLE),
            ("linear-probe", "linear probe: logistic regression on frozen embeddings, per fold and per class",
             LINEAR_PROBE_EXAMPLE)):
        p = sub_helper(evs, name, help_text, example)
        _data_args(p)
        p.add_argument("--encoder", metavar="CKPT", help="audio encoder (default: the preset's)")
        _clip_args(p)
        p.add_argument("--batch", type=int, default=16, help="clips encoded at once")
        p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
        p.add_argument("--cache", default=None, help="spectrogram cache folder (default: none, exact float32)")
        p.add_argument("--out", default=f"{name.replace('-', '_')}.json", help="JSON report (Markdown beside it)")
        if name == "zero-shot":
            p.add_argument("--templates", choices=["paper", "sound"], default="paper",
                           help="class prompts: the bare class name (paper), or a sound prompt ensemble")
        else:
            p.add_argument("--l2", type=float, default=1e-3, help="L2 penalty of the logistic regression")
            p.add_argument("--kfold", type=int, default=5, help="folds to make when the dataset has none")

    m = sub_helper(evs, "mapper", "the mapper's CLIP similarity and time per frame against full optimisation",
                   MAPPER_EVAL_EXAMPLE)
    m.add_argument("--preset", default="demo", help="preset whose networks to use")
    m.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    m.add_argument("--mapper", metavar="CKPT", help="mapper checkpoint (default: the preset's)")
    m.add_argument("--encoder", metavar="CKPT", help="audio encoder for --audio targets")
    m.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    m.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    m.add_argument("--prompts", help="text targets: comma-separated, or a .txt file with one per line")
    m.add_argument("--audio", metavar="FILE|DIR", help="audio targets")
    m.add_argument("--seeds", default="0", help="source latents, e.g. 0-3")
    m.add_argument("--strength", type=float, default=0.1, help="mapper strength")
    m.add_argument("--steps", type=int, default=300, help="optimisation steps (paper: 300)")
    m.add_argument("--lr", type=float, default=0.05, help="optimisation learning rate (paper: 0.05)")
    m.add_argument("--l2", type=float, default=0.008, help="optimisation L2 weight (paper: 0.008)")
    m.add_argument("--repeats", type=int, default=10, help="timed mapper frames per pair")
    m.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    m.add_argument("--out", default="mapper_eval.json", help="JSON report (Markdown beside it)")


# ---------------------------------------------------------------------------------------------- helpers

def _dataset(args, folds: str | None = None):
    from livesound.train.datasets import load_dataset

    ds = load_dataset(args.data, args.layout, args.csv, skip_missing=args.skip_missing)
    if folds:
        ds = ds.select(folds=[f.strip() for f in folds.split(",") if f.strip()])
    return ds


def _clip(args, cmd: str, device="cpu"):
    from livesound.models.clip import DEFAULT_MODEL, DEFAULT_WEIGHTS, ClipModel
    from livesound.models.presets import clip_from_preset, load_preset

    if args.clip is not None:
        return ClipModel.load(args.clip_model, args.clip, device=device)
    if args.preset is not None:
        clip = clip_from_preset(load_preset(args.preset), device=device)
        if clip.weights is None:
            _say(cmd, f"note: preset {args.preset!r} has an untrained CLIP; pass --clip WEIGHTS for real results")
        return clip
    return ClipModel.load(DEFAULT_MODEL, DEFAULT_WEIGHTS, device=device)


def _prompts(text: str | None) -> list[str]:
    if not text:
        return []
    path = Path(text)
    if path.suffix == ".txt":
        if not path.is_file():
            raise ValueError(f"{path}: no such prompt file")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [p.strip() for p in text.split(",") if p.strip()]


def _threads(n: int) -> None:
    import torch

    if n < 0:
        raise ValueError("--threads must not be negative")
    if n:
        torch.set_num_threads(n)


def _templates(name: str):
    from livesound.models.clip import PAPER_TEMPLATES, SOUND_TEMPLATES

    return PAPER_TEMPLATES if name == "paper" else SOUND_TEMPLATES


# --------------------------------------------------------------------------------------------- training

def cmd_train_encoder(args) -> int:
    import torch

    from livesound.models.audio_encoder import AudioEncoderConfig, build_audio_encoder, load_audio_encoder
    from livesound.train import loop
    from livesound.train.datasets import SpecCache
    from livesound.train.encoder import EncoderTask, EncoderTrainConfig

    _threads(args.threads)
    if args.workers < 0 or args.cycle_steps < 1 or not 0 < args.lr <= args.max_lr:
        raise ValueError("--workers must be >= 0, --cycle-steps >= 1 and 0 < --lr <= --max-lr")
    ds = _dataset(args, args.folds)
    run_dir = Path(args.run_dir or "runs/train-encoder")
    cfg = loop.LoopConfig(run_dir, args.epochs, args.batch, args.seed, args.checkpoint_every, args.resume,
                          amp=not args.no_amp, progress=not args.quiet,
                          identity={"clips": [str(c.path) for c in ds.clips[:3]], "backbone": args.backbone})
    dist = loop.setup_distributed(args.device)
    try:
        loop.check_plan(len(ds.clips), cfg, dist.world)
        clip = _clip(args, "train-encoder", dist.device)
        if args.init:
            encoder = load_audio_encoder(args.init)
        else:
            encoder = build_audio_encoder(AudioEncoderConfig(backbone=args.backbone, embed_dim=clip.embed_dim),
                                          seed=args.seed)
        cache = None if (args.cache or "").lower() == "none" else Path(args.cache or run_dir / "spec_cache")
        task = EncoderTask(ds, encoder, clip, EncoderTrainConfig(templates=_templates(args.templates),
                                                                 text_aug=args.text_aug,
                                                                 spec_aug=not args.no_spec_aug),
                           SpecCache(cache), dist.device, Path(args.out))
        sgd = args.optimizer == "sgd"
        if sgd:
            opt = torch.optim.SGD(task.model.parameters(), lr=args.lr, momentum=args.momentum,
                                  weight_decay=args.weight_decay)
        else:
            opt = torch.optim.AdamW(task.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=args.lr, max_lr=args.max_lr,
                                                  step_size_up=args.cycle_steps, cycle_momentum=sgd)
        if dist.main:
            _say("train-encoder", f"{ds.summary()}; {dist.world} process(es) on {dist.device}; batch {args.batch}, "
                                  f"{args.epochs} epochs -> {args.out}")
        summary = loop.run(task, opt, sched, cfg, dist, loader=task.loader(args.workers))
        if dist.main:
            last = summary["last"].get("loss", float("nan"))
            _say("train-encoder", f"{summary['steps']} steps, last loss {last:.4f}; wrote {args.out} and "
                                  f"{run_dir / loop.CHECKPOINT}")
    finally:
        loop.cleanup_distributed()
    return 0


def cmd_train_mapper(args) -> int:
    import torch

    from livesound.models.mapper import MapperConfig, build_mapper, load_mapper
    from livesound.models.presets import encoder_from_preset, generator_from_preset, load_preset
    from livesound.train import loop
    from livesound.train.mapper import (MapperTask, MapperTrainConfig, audio_targets, distill_targets, merge,
                                        mapper_optimizer, text_targets)

    _threads(args.threads)
    prompts = _prompts(args.prompts)
    clips = _dataset(args).clips if args.data else []
    if not prompts and not clips:
        raise ValueError("give targets: --prompts and/or --data (audio clips)")
    if args.steps_per_epoch < 1:
        raise ValueError("--steps-per-epoch must be at least 1")
    if args.distill and not any(Path(args.distill).glob("*/result.npy")):  # before building any network
        raise ValueError(f"{args.distill}: no <target>/result.npy from `livesound optimize` here")
    if args.id_weights is None and args.id_lambda != 0.1:
        _say("train-mapper", "note: --id-lambda has no effect without --id-weights")
    preset = load_preset(args.preset)
    run_dir = Path(args.run_dir or "runs/train-mapper")
    cfg = loop.LoopConfig(run_dir, args.epochs, args.batch, args.seed, args.checkpoint_every, args.resume,
                          amp=args.amp, progress=not args.quiet,
                          identity={"targets": len(prompts) + len(clips), "strength": args.strength})
    dist = loop.setup_distributed(args.device)
    try:
        loop.check_plan(args.steps_per_epoch * args.batch, cfg, dist.world)
        G = generator_from_preset(preset, args.generator, device=str(dist.device))
        clip = _clip(args, "train-mapper", dist.device)
        encoder = encoder_from_preset(preset, args.encoder, device=str(dist.device)) if clips or args.distill \
            else None
        pools = [text_targets(clip, prompts)]
        if clips:
            pools.append(audio_targets(encoder, [c.path for c in clips]))
        pool = merge(pools)
        distill = distill_targets(Path(args.distill), G, clip, encoder) if args.distill else None
        identity = None
        if args.id_weights:
            from livesound.models.arcface import IdentityLoss, load_arcface

            identity = IdentityLoss(load_arcface(args.id_weights, str(dist.device)))
        if args.init:
            mapper = load_mapper(args.init)
        else:
            mapper = build_mapper(MapperConfig(num_ws=G.num_ws, w_dim=G.w_dim, clip_dim=clip.embed_dim),
                                  seed=args.seed)
        psi = preset.truncation_psi if args.trunc is None else args.trunc
        tcfg = MapperTrainConfig(strength=args.strength, truncation=psi, clip_lambda=args.clip_lambda,
                                 l2_lambda=args.l2_lambda, id_lambda=args.id_lambda,
                                 distill_lambda=args.distill_lambda,
                                 samples_per_epoch=args.steps_per_epoch * args.batch, noise_mode=preset.noise_mode)
        task = MapperTask(mapper, G, clip, pool, tcfg, dist.device, Path(args.out), identity, distill)
        opt = mapper_optimizer(task.model, args.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        if dist.main:
            distilled = "" if distill is None else f", {distill.w_src.shape[0]} distilled"
            _say("train-mapper", f"{len(pool.names)} target(s) ({len(prompts)} text, {len(clips)} audio{distilled}); "
                                 f"{G.resolution} px generator; {dist.world} process(es) on {dist.device} -> "
                                 f"{args.out}")
        summary = loop.run(task, opt, sched, cfg, dist)
        if dist.main:
            last = summary["last"].get("loss", float("nan"))
            _say("train-mapper", f"{summary['steps']} steps, last loss {last:.4f}; wrote {args.out}")
    finally:
        loop.cleanup_distributed()
    return 0


# ------------------------------------------------------------------------------------------- evaluation

def _eval_embeddings(args, cmd: str):
    from tqdm import tqdm

    from livesound.eval.zero_shot import embed_clips
    from livesound.models.presets import encoder_from_preset, load_preset
    from livesound.train.datasets import SpecCache

    ds = _dataset(args)
    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    if args.encoder:
        from livesound.models.audio_encoder import load_audio_encoder

        encoder = load_audio_encoder(args.encoder)
    else:  # the preset's encoder, else the paper's released one from the models folder
        from livesound.models.presets import Preset

        preset = load_preset(args.preset) if args.preset else Preset("paper", "the paper's encoder", generator={})
        encoder = encoder_from_preset(preset)
    cache = SpecCache(None if (args.cache or "none").lower() == "none" else args.cache)
    _say(cmd, ds.summary())
    bar = lambda it: tqdm(it, unit="batch", file=sys.stderr, disable=None)  # noqa: E731
    emb = embed_clips(encoder, [c.path for c in ds.clips], cache, args.batch, args.device, bar)
    return ds, encoder, emb


def _write_report(out: Path, report: dict, markdown: str, cmd: str) -> None:
    from livesound.files import write_json
    from livesound.files import atomic_write

    write_json(out, report)
    md = out.with_suffix(".md")
    atomic_write(md, lambda tmp: tmp.write_text(markdown))
    print(markdown)
    _say(cmd, f"wrote {out} and {md}")


def _describe(args, ds, clip) -> dict:
    from livesound.eval.zero_shot import PREPROCESSING

    return {"dataset": ds.summary(), "encoder": args.encoder or f"preset {args.preset or 'paper'}",
            "clip": f"{clip.name} {clip.weights or '(untrained)'}", "preprocessing": PREPROCESSING}


def cmd_zero_shot(args) -> int:
    from livesound.eval.zero_shot import PUBLISHED, format_markdown, zero_shot
    from livesound.train.datasets import label_text

    ds, _, emb = _eval_embeddings(args, "eval zero-shot")
    clip = _clip(args, "eval zero-shot")
    text = clip.encode_text([label_text(c) for c in ds.classes], _templates(args.templates)).numpy()
    report = {**_describe(args, ds, clip), "templates": list(_templates(args.templates)),
              **zero_shot(emb, ds.targets(), text, ds.classes, [c.fold for c in ds.clips])}
    published = PUBLISHED.get(ds.layout, {}).get("zero-shot", [])
    report["published"] = dict(published)
    _write_report(Path(args.out), report, format_markdown(f"Zero-shot classification ({ds.layout})", report,
                                                          published), "eval zero-shot")
    return 0


def cmd_linear_probe(args) -> int:
    from livesound.eval.linear_probe import linear_probe
    from livesound.eval.zero_shot import PREPROCESSING, PUBLISHED, format_markdown
    from livesound.train.datasets import assign_folds

    ds, _, emb = _eval_embeddings(args, "eval linear-probe")
    had_folds = bool(ds.folds)
    ds = assign_folds(ds, args.kfold, seed=0)
    report = {"dataset": ds.summary() + ("" if had_folds else f" (folds made: {args.kfold}, stratified, seed 0)"),
              "encoder": args.encoder or f"preset {args.preset or 'paper'}",
              "preprocessing": PREPROCESSING,
              **linear_probe(emb, ds.targets(), ds.classes, [c.fold for c in ds.clips], l2=args.l2)}
    published = PUBLISHED.get(ds.layout, {}).get("linear-probe", [])
    report["published"] = dict(published)
    _write_report(Path(args.out), report, format_markdown(f"Linear probe ({ds.layout})", report, published),
                  "eval linear-probe")
    return 0


def cmd_mapper_eval(args) -> int:
    from livesound.eval.mapper_eval import EvalTarget, format_markdown, mapper_vs_optimisation
    from livesound.offline.generate import parse_seeds
    from livesound.live.build import mapper_from_preset
    from livesound.offline.optimize import OptimizeConfig, audio_embedding
    from livesound.offline.targets import audio_files
    from livesound.models.presets import encoder_from_preset, generator_from_preset, load_preset

    prompts = _prompts(args.prompts)
    files = audio_files(args.audio) if args.audio else []
    if not prompts and not files:
        raise ValueError("give targets: --prompts and/or --audio")
    if args.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    preset = load_preset(args.preset)
    G = generator_from_preset(preset, args.generator, device=args.device)
    clip = _clip(args, "eval mapper", args.device)
    mapper = mapper_from_preset(preset, G, clip.embed_dim, args.mapper)
    targets = [EvalTarget(f"text:{p}", "text", clip.encode_text([p])[0]) for p in prompts]
    if files:
        encoder = encoder_from_preset(preset, args.encoder, device=args.device).eval()
        targets += [EvalTarget(f"audio:{f.name}", "audio", audio_embedding(encoder, f)) for f in files]
    cfg = OptimizeConfig(steps=args.steps, lr=args.lr, l2_lambda=args.l2, truncation=preset.truncation_psi,
                         noise_mode=preset.noise_mode)
    report = mapper_vs_optimisation(G, clip, mapper, targets, parse_seeds(args.seeds), args.strength, cfg,
                                    repeats=args.repeats)
    report.update(device=args.device, mapper=args.mapper or f"preset {args.preset}", generator_px=G.resolution)
    _write_report(Path(args.out), report, format_markdown(report, args.device), "eval mapper")
    return 0


COMMANDS = {"train-encoder": cmd_train_encoder, "train-mapper": cmd_train_mapper}
EVALS = {"zero-shot": cmd_zero_shot, "linear-probe": cmd_linear_probe, "mapper": cmd_mapper_eval}
