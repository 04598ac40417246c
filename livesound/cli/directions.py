"""``livesound directions build``: StyleCLIP's global directions for a generator
(`livesound.offline.directions.build_directions`), the file ``live --steer directions`` reads."""

from __future__ import annotations

from livesound.cli.common import say, sub

DIRECTIONS_EXAMPLE = ("livesound directions build --preset demo --samples 32 --out dirs.safetensors\n  "
                      "python -m torch.distributed.run --standalone --nproc_per_node 4 -m livesound directions build "
                      "--preset ffhq-1024 --clip openai --device cuda --samples 100 --out ffhq_dirs.safetensors")


def add_parsers(subs) -> None:
    d = sub(subs, "directions", "StyleCLIP's global directions: where each style channel moves CLIP "
                                "(for `live --steer directions`)", DIRECTIONS_EXAMPLE)
    d.set_defaults(run=lambda args: _no_action(d))
    actions = d.add_subparsers(dest="directions_what", metavar="action")
    b = sub(actions, "build", "compute the directions for a preset's generator and CLIP (batched, resumable, "
                              "split under torchrun)", DIRECTIONS_EXAMPLE.split("\n")[0])
    b.set_defaults(run=run_directions_build)
    b.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    b.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    b.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights (file or open_clip tag); default: the preset's")
    b.add_argument("--clip-model", default="ViT-B-32", help="open_clip model name for --clip")
    b.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (each torchrun rank takes "
                                                   "its own GPU)")
    b.add_argument("--samples", type=int, default=100, help="latents each channel's direction is averaged over "
                                                            "(StyleCLIP: 100)")
    b.add_argument("--sigma", type=float, default=5.0, help="how far each channel moves, in deviations (StyleCLIP: 5)")
    b.add_argument("--batch", type=int, default=32, help="channels per generator call (two images each)")
    b.add_argument("--stats-samples", type=int, default=20_000,
                   help="latents for the style means and deviations (StyleCLIP: 100000)")
    b.add_argument("--seed", type=int, default=0, help="first seed of the samples")
    b.add_argument("--out", default="directions.safetensors", help="output .safetensors file; an interrupted "
                                                                   "build resumes from <out>.partial-*")


def run_directions_build(args) -> int:
    from livesound.offline.directions import DirectionsOptions, build_directions
    from livesound.offline.networks import ModelOptions

    opts = DirectionsOptions(
        models=ModelOptions(preset=args.preset, generator=args.generator, clip=args.clip, clip_model=args.clip_model,
                            device=args.device),
        out=args.out, samples=args.samples, sigma=args.sigma, batch=args.batch, stats_samples=args.stats_samples,
        seed=args.seed)
    out = build_directions(opts, log=say("directions"))
    if out is not None:
        print(f"livesound directions: wrote {out}")
    return 0


def _no_action(parser) -> int:
    parser.print_help()
    return 2
