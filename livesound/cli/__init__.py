"""The ``livesound`` command: parsing only. Each subcommand builds one options object and calls one library
function (its ``run_*`` in the command group's module); ``main`` is the one place errors become one line and
exit codes.

Command groups: ``offline`` (generate, embed, convert, presets, optimize, interpolate, eval latent-agreement),
``bank`` (bank build), ``live``, ``directions`` (build), ``export``, ``bench``, ``train`` (train-encoder, train-mapper and the other
evaluations).
"""

from __future__ import annotations

import argparse
import sys

from livesound import __version__
from livesound.cli import bank, bench, directions, export, live, offline, train
from livesound.cli.common import Formatter, sub


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="livesound", formatter_class=Formatter,
        description="Turn live sound into images: audio -> CLIP space -> StyleGAN2.",
        epilog="example:\n  livesound generate --preset demo --seeds 0-3 --out out/demo\n"
               "  livesound <command> --help   shows each command's options and an example")
    p.add_argument("--version", action="version", version=f"livesound {__version__}")
    p.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    subs = p.add_subparsers(dest="command", metavar="command")

    offline.add_generate_parser(subs)
    live.add_parsers(subs)
    directions.add_parsers(subs)
    export.add_parsers(subs)
    bench.add_parsers(subs)
    offline.add_parsers(subs)
    bank.add_parsers(subs)
    train.add_parsers(subs, sub)
    for name, run in train.COMMANDS.items():
        subs.choices[name].set_defaults(run=run)

    ev = sub(subs, "eval", "evaluations: the paper's latent agreement (Table 2), zero-shot and linear-probe "
                           "classification (ESC-50 / UrbanSound8K), the mapper against optimisation",
             offline.LATENT_AGREEMENT_EXAMPLE + "\n  " + train.ZERO_SHOT_EXAMPLE)
    evs = ev.add_subparsers(dest="eval_what", metavar="evaluation")
    offline.add_eval_parsers(evs)
    train.add_eval_parsers(evs, sub)
    for name, run in train.EVALS.items():
        evs.choices[name].set_defaults(run=run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        return list_devices()
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "eval" and args.eval_what is None:
        parser.parse_args(["eval", "--help"])
    # Imported once a command runs, not for --help: these pull in torch.
    from livesound.audio.io import AudioError
    from livesound.live.device import DeviceUnavailable
    from livesound.models.presets import PresetError
    from livesound.weights.checkpoint import CheckpointError

    try:
        return args.run(args)
    except DeviceUnavailable as e:  # the machine lacks what was asked for: a usage problem, as argparse's are
        print(f"livesound {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (AudioError, CheckpointError, PresetError, ValueError, OSError) as e:
        print(f"livesound {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"livesound {args.command}: interrupted", file=sys.stderr)
        return 130


def list_devices() -> int:
    from livesound.audio.io import AudioError
    from livesound.audio.sources import format_device_list

    try:
        print(format_device_list())
    except AudioError as e:
        print(f"livesound: error: {e}", file=sys.stderr)
        return 1
    return 0
