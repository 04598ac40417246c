"""``livesound bank build``: sounds and texts into a direction bank (`livesound.offline.bank.build_bank`)."""

from __future__ import annotations

from livesound.cli.common import add_loop_args, add_model_args, model_options, say, split_list, sub

BANK_EXAMPLE = ("livesound bank build --preset demo --sounds sounds/ --texts 'thunder;birdsong' --steps 40 "
                "--out bank.safetensors --images bank_images/\n  "
                "python -m torch.distributed.run --standalone --nproc_per_node 4 -m livesound bank build "
                "--preset ffhq-1024 --sounds vggsound/ --device cuda --out ffhq_bank.safetensors")


def add_parsers(subs) -> None:
    bk = sub(subs, "bank", "direction banks: sounds and texts optimised once, blended live by meaning", BANK_EXAMPLE)
    bank_subs = bk.add_subparsers(dest="bank_what", metavar="action", required=True)
    b = sub(bank_subs, "build", "optimise one w+ offset per sound or text (the paper's loss) into a bank file",
            BANK_EXAMPLE)
    b.set_defaults(run=run_bank_build)
    add_model_args(b)
    b.add_argument("--sounds", nargs="+", default=[], metavar="FILE|DIR",
                   help="sound anchors: audio files and/or folders of .wav/.flac/.ogg (label: the file name)")
    b.add_argument("--synth", metavar="KINDS", help="synthetic sound anchors, e.g. chirp,noise,sine,clicks")
    b.add_argument("--texts", metavar="'A;B'", help="text anchors, separated by ';' (label: the text)")
    add_loop_args(b)
    b.add_argument("--seed", type=int, default=0, help="seed of the source latent (live's default seed)")
    b.add_argument("--trunc", type=float, default=None, help="truncation of the source latent (default: the "
                                                              "preset's)")
    b.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="live window a sound is heard through (default: the preset's live window)")
    b.add_argument("--centre", action="store_true", help="aim each anchor at its embedding minus its kind's mean "
                                                         "(tells apart sounds whose embeddings crowd together)")
    b.add_argument("--batch", type=int, default=8, help="anchors optimised together")
    b.add_argument("--out", default="bank.safetensors", help="the bank file (finished anchors are kept in "
                                                             "OUT.parts/ so a rerun resumes)")
    b.add_argument("--images", metavar="DIR", help="also write DIR/<label>.png per anchor and DIR/contact_sheet.png")


def run_bank_build(args) -> int:
    from livesound.offline.bank import BankOptions, BankSettings, build_bank

    texts = [t.strip() for t in (args.texts or "").split(";") if t.strip()]
    opts = BankOptions(models=model_options(args), sounds=args.sounds, synth=split_list(args.synth), texts=texts,
                       settings=BankSettings(steps=args.steps, lr=args.lr, l2=args.l2, batch=args.batch,
                                             centre=args.centre),
                       window_s=args.window, seed=args.seed, trunc=args.trunc, out=args.out, images=args.images)
    s = build_bank(opts, log=say("bank build"))
    if s.out is None:  # a torchrun rank other than 0: rank 0 writes the bank
        return 0
    per = f", {s.seconds_per_anchor:.2f} s per anchor" if s.built else ""
    say("bank build")(f"wrote {s.out}: {s.anchors} anchors ({len(s.built)} optimised in {s.seconds:.1f} s{per}; "
                      f"{len(s.reused)} reused)" + (f"; images in {s.images}" if s.images else ""))
    return 0
