"""The training and evaluation commands: ``train-encoder``, ``train-mapper``, ``eval zero-shot``,
``eval linear-probe`` and ``eval mapper``.

Wiring (done in ``livesound/cli``): ``add_parsers(subs, sub_helper)`` adds the two trainers,
``add_eval_parsers(eval_subs, sub_helper)`` the three evaluations, and ``COMMANDS`` / ``EVALS`` map names to
the ``cmd_*`` functions. Each command builds one options object from its flags (``*_options(args)``) and
calls one library function: ``livesound.train.encoder.train_encoder``, ``livesound.train.mapper.train_mapper``,
``livesound.eval.reports.run_zero_shot`` / ``run_linear_probe`` / ``run_mapper_eval``. Those raise ValueError
(DatasetError among them), CheckpointError, AudioError or PresetError with one-line messages for ``main`` to
print; their notes arrive here as lines for stderr.
"""

from __future__ import annotations

import sys
from dataclasses import fields

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
    e.add_argument("--optimizer", choices=["auto", "sgd", "adamw"], default="auto",
                   help="sgd: the paper's (momentum, weight decay); adamw: moves a network in tens of steps; "
                        "auto: sgd for runs of >= 4000 steps, else adamw (the choice is said at start)")
    e.add_argument("--lr", type=float, default=None, help="the cyclic learning rate's low end (default: sgd "
                                                          "1e-3, the paper's; adamw 3e-4)")
    e.add_argument("--max-lr", type=float, default=None, help="the cyclic learning rate's high end (default: "
                                                              "sgd 0.1, the paper's; adamw 3e-3)")
    e.add_argument("--cycle-steps", type=int, default=None, help="steps from low to high learning rate "
                                                                 "(default: the paper's 2000 when the run holds "
                                                                 "a whole cycle, else half the run)")
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
            p.add_argument("--labels", default=None, metavar="A,B,...",
                           help="probe these labels only and add the per-label table in the shape of the "
                                "paper's Table 1 (giggling, sobbing, nose blowing, wind, fire crackling, "
                                "underwater bubbling, explosion, thunderstorm)")

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


# --------------------------------------------------------------------------------------------- commands
# Each command builds one options object from its flags and calls one library function (imported here, not at
# the top: `livesound --help` must not load torch).

def _options(cls, args, **renamed):
    """``cls`` from the parsed flags whose names are its fields, and ``renamed`` (flags read another way)."""
    flags = vars(args)
    return cls(**{f.name: flags[f.name] for f in fields(cls) if f.name in flags and f.name not in renamed},
               **renamed)


def _reporter(cmd: str):
    return lambda text: _say(cmd, text)


def _show(written, cmd: str) -> int:
    print(written.markdown)
    _say(cmd, f"wrote {written.json_path} and {written.markdown_path}")
    return 0


def train_encoder_options(args):
    from livesound.train.encoder import TrainEncoderOptions

    return _options(TrainEncoderOptions, args, spec_aug=not args.no_spec_aug, amp=not args.no_amp,
                    progress=not args.quiet)


def cmd_train_encoder(args) -> int:
    from livesound.train.encoder import train_encoder

    train_encoder(train_encoder_options(args), report=_reporter("train-encoder"))
    return 0


def train_mapper_options(args):
    from livesound.train.mapper import TrainMapperOptions

    return _options(TrainMapperOptions, args, progress=not args.quiet)


def cmd_train_mapper(args) -> int:
    from livesound.train.mapper import train_mapper

    train_mapper(train_mapper_options(args), report=_reporter("train-mapper"))
    return 0


def zero_shot_options(args):
    from livesound.eval.reports import ZeroShotOptions

    return _options(ZeroShotOptions, args)


def cmd_zero_shot(args) -> int:
    from livesound.eval.reports import run_zero_shot

    return _show(run_zero_shot(zero_shot_options(args), report=_reporter("eval zero-shot")), "eval zero-shot")


def linear_probe_options(args):
    from livesound.eval.reports import LinearProbeOptions

    return _options(LinearProbeOptions, args)


def cmd_linear_probe(args) -> int:
    from livesound.eval.reports import run_linear_probe

    return _show(run_linear_probe(linear_probe_options(args), report=_reporter("eval linear-probe")),
                 "eval linear-probe")


def mapper_eval_options(args):
    from livesound.eval.reports import MapperEvalOptions

    return _options(MapperEvalOptions, args)


def cmd_mapper_eval(args) -> int:
    from livesound.eval.reports import run_mapper_eval

    return _show(run_mapper_eval(mapper_eval_options(args), report=_reporter("eval mapper")), "eval mapper")


COMMANDS = {"train-encoder": cmd_train_encoder, "train-mapper": cmd_train_mapper}
EVALS = {"zero-shot": cmd_zero_shot, "linear-probe": cmd_linear_probe, "mapper": cmd_mapper_eval}
