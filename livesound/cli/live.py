"""``livesound live``: the instrument in a window (`livesound.app`), or headless into files (`livesound.rig.show`)."""

from __future__ import annotations

from livesound.cli.common import split_list, sub

LIVE_EXAMPLE = ("livesound live --preset demo --source synth\n  "
                "livesound live --preset ffhq-1024 --bank bank.safetensors --source mic\n  "
                "livesound live --source sound.wav --headless --frames 24 --out out/frames\n  "
                "livesound live --source synth --osc-in 127.0.0.1:9000 --osc-out 127.0.0.1:9001 --ndi")


def add_parsers(subs) -> None:
    lv = sub(subs, "live", "play the live instrument: sound -> encoder -> mapper -> StyleGAN2, in a window",
             LIVE_EXAMPLE)
    lv.set_defaults(run=run_live)
    lv.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    lv.add_argument("--source", default="auto", help="auto (microphone if any, else synth), mic, synth, or a file")
    lv.add_argument("--device", help="input device name (part of it) or index; see --list-devices")
    lv.add_argument("--synth", default="chirp", choices=["chirp", "noise", "sine", "clicks"],
                    help="signal of the synthetic source")
    lv.add_argument("--generator", metavar="CKPT", help="generator checkpoint (overrides the preset's)")
    lv.add_argument("--encoder", metavar="CKPT", help="audio encoder checkpoint")
    lv.add_argument("--mapper", metavar="CKPT", help="latent mapper checkpoint")
    lv.add_argument("--clip", metavar="WEIGHTS", help="CLIP weights for text steering and labels")
    lv.add_argument("--labels", help="comma-separated labels shown in the overlay (with --clip)")
    lv.add_argument("--strength", type=float, help="mapper strength (default: the preset's)")
    lv.add_argument("--smoothing", type=float, help="embedding time constant in seconds (default: the preset's)")
    lv.add_argument("--seed", type=int, default=0, help="seed of the source latent")
    lv.add_argument("--headless", action="store_true", help="no window: render frames to PNGs")
    lv.add_argument("--frames", type=int, default=120, help="frames to render headless")
    lv.add_argument("--out", default="out/live", help="folder for headless frames")
    lv.add_argument("--hop-fps", type=float, default=30.0,
                    help="headless with a file: audio advances 1/hop-fps seconds per frame (reproducible)")
    lv.add_argument("--stats", metavar="JSON", help="write per-stage timing percentiles of the run")
    lv.add_argument("--record", metavar="PATH", help="window: where R records (.mp4 or a PNG folder); "
                                                     "headless: also record every frame into this video")
    lv.add_argument("--fullscreen", action="store_true", help="open the window fullscreen")
    rig = lv.add_argument_group("the rig (OSC, MIDI, video out, live presets; README: 'Playing with the rig')")
    rig.add_argument("--osc-in", metavar="HOST:PORT", help="take /livesound/... control messages here")
    rig.add_argument("--osc-out", metavar="HOST:PORT", help="send per-frame features (/livesound/level ...) here")
    rig.add_argument("--midi", nargs="?", const="", metavar="PORT", help="MIDI input (first port, or part of a name)")
    rig.add_argument("--ndi", nargs="?", const="livesound", metavar="NAME", help="send frames as an NDI source")
    rig.add_argument("--v4l2", nargs="?", const="", metavar="DEVICE", help="send frames to a v4l2loopback camera")
    rig.add_argument("--preset-file", metavar="JSON", help="live presets 1-9 and the MIDI map (created on store)")
    lv.add_argument("--backend", help="onnxruntime or tensorrt for every accelerated stage, or per stage: "
                                      "encode=onnxruntime,map=torch,synthesize=onnxruntime (default torch)")
    lv.add_argument("--steer", choices=["mapper", "bank", "optimize", "directions"],
                    help="how the sound's meaning moves the picture (default: mapper when the preset's is trained, "
                         "else bank when one is given, else mapper with a warning)")
    lv.add_argument("--bank", metavar="FILE", help="direction bank from `livesound bank build` (steers by default "
                                                   "when the mapper is untrained)")
    lv.add_argument("--bank-temperature", type=float, metavar="T",
                    help="softmax temperature over cos(e, anchor) (default: the bank's calibrated one)")
    lv.add_argument("--bank-top-k", type=int, metavar="K", help="anchors blended per frame (default 3)")
    lv.add_argument("--pin-threads", default="auto", metavar="off|auto|R,L",
                    help="pin the renderer and listener threads to a core each (auto: the first two cores this "
                         "process may use; or RENDER,LISTEN core numbers; default auto)")


def run_live(args) -> int:
    from livesound.live.build import LiveOptions
    from livesound.rig.rig import RigOptions
    from livesound.rig.show import ShowOptions, prepare_show

    show = ShowOptions(
        live=LiveOptions(preset=args.preset, source=args.source, device=args.device, generator=args.generator,
                         encoder=args.encoder, mapper=args.mapper, clip=args.clip, labels=split_list(args.labels),
                         strength=args.strength, smoothing_s=args.smoothing, seed=args.seed, synth_kind=args.synth,
                         backend=args.backend, pin_threads=args.pin_threads, steer=args.steer, bank=args.bank,
                         bank_temperature=args.bank_temperature, bank_top_k=args.bank_top_k),
        rig=RigOptions(osc_in=args.osc_in, osc_out=args.osc_out, midi=args.midi, ndi=args.ndi, v4l2=args.v4l2,
                       preset_file=args.preset_file),
        headless=args.headless, frames=args.frames, out=args.out, hop_fps=args.hop_fps, record=args.record,
        stats=args.stats, fullscreen=args.fullscreen)
    show = prepare_show(show)
    if show.headless:
        result = show.run_headless()
    else:  # Qt loads only for a windowed show: headless runs and servers need no PyQt6
        from livesound.app.window import run_window

        engine, rig = show.for_window()
        code = 1  # a window that raises counts as a failed engine: no stats of a broken run
        try:
            code = run_window(engine, title=f"livesound - {args.preset}", fullscreen=args.fullscreen,
                              record_path=args.record, rig=rig)
        finally:
            result = show.finish(engine.stats(), code)
    if result.headless:
        print(f"livesound live: wrote {result.stats['frames']} frames to {args.out} "
              f"({result.stats['fps']:.1f} frames/s)" + (" (interrupted)" if result.stats.get("interrupted") else ""))
    return result.code
