"""What every command group shares: the help formatter, ``sub()``, shared argument groups, output helpers.

Nothing here imports torch: ``livesound --help`` and ``livesound <command> --help`` stay instant. Builders of
library options (``model_options``) import their dataclass inside the function for the same reason.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def sub(subs, name: str, help: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` prints its defaults and ends with a runnable example."""
    return subs.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=Formatter)


def say(cmd: str) -> Callable[[str], None]:
    """Progress and notes of ``livesound <cmd>``: one prefixed line each, on stderr (stdout carries results)."""
    return lambda text: print(f"livesound {cmd}: {text}", file=sys.stderr)


def tell(cmd: str) -> Callable[[str], None]:
    """Result lines of ``livesound <cmd>``, prefixed, on stdout."""
    return lambda text: print(f"livesound {cmd}: {text}")


def split_list(text: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c'] (comma-separated flag values)."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def device_name(text: str) -> str:
    """argparse ``type=`` of ``--device``: auto, cpu, cuda or cuda:N (whether that GPU exists is told at run)."""
    from livesound.live.device import check_device_name

    try:
        return check_device_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device``: where the command's networks run (`livesound.live.device`)."""
    p.add_argument("--device", type=device_name, default="auto",
                   help="where the networks run: auto (the GPU if torch sees one, else the CPU), cpu, cuda, cuda:N")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The networks of an optimisation: a preset, with paths that override its generator, encoder and CLIP."""
    p.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    p.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    p.add_argument("--encoder", metavar="CKPT", help="audio encoder checkpoint (overrides the preset's)")
    p.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def add_loop_args(p: argparse.ArgumentParser) -> None:
    """The optimisation loop's paper defaults."""
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (paper: 300)")
    p.add_argument("--lr", type=float, default=0.05, help="peak Adam learning rate (paper: 0.05; landscape 0.1)")
    p.add_argument("--l2", type=float, default=0.008, help="weight of ||w - w_src||^2 (paper: 0.008; "
                                                           "landscape 0.002)")


def model_options(args):
    """``livesound.offline.networks.ModelOptions`` from the arguments ``add_model_args`` added."""
    from livesound.offline.networks import ModelOptions

    return ModelOptions(preset=args.preset, generator=args.generator, encoder=args.encoder, clip=args.clip,
                        clip_model=args.clip_model, device=args.device)
