"""``livesound live``: the instrument in a window (`livesound.app`), or headless into files (`livesound.rig.show`)."""

from __future__ import annotations

from livesound.cli.common import split_list, sub

LIVE_EXAMPLE = ("livesound live --preset demo --source synth\n  "
                "livesound live --input USB --device cuda --backend synthesize=torch-fp16\n  "
                "livesound live --preset ffhq-1024 --bank bank.safetensors --source mic\n  "
                "livesound live --source sound.wav --headless --frames 24 --out out/frames\n  "
                "livesound live --source synth --osc-in 127.0.0.1:9000 --osc-out 127.0.0.1:9001 --ndi\n  "
                "livesound live --latent out/project/latent.npy --size 1920x1080 --upscaler realesr-general-x4v3.pth")


def add_parsers(subs) -> None:
    lv = sub(subs, "live", "play the live instrument: sound -> encoder -> mapper -> StyleGAN2, in a window",
             LIVE_EXAMPLE)
    lv.set_defaults(run=run_live)
    lv.add_argument("--preset", default="demo", help="preset name or preset JSON file")
    lv.add_argument("--source", default="auto", help="auto (microphone if any, else synth), mic, synth, or a file")
    lv.add_argument("--input", help="audio input device: name (part of it) or index; see --list-devices")
    lv.add_argument("--device", default="auto",
                    help="where the networks run: auto (the GPU if torch sees one, else the CPU), cpu, cuda, cuda:N "
                         "(another value is taken as --input for one more release, with a note)")
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
    lv.add_argument("--max-audio-seconds", type=float, metavar="S",
                    help="refuse a longer --source file (it is decoded whole into memory; default 600)")
    lv.add_argument("--latent", metavar="NPY", help="source w+ (.npy or .pt, the first row; e.g. from `livesound "
                                                    "project`) instead of the seed's")
    out = lv.add_argument_group("output size (window, recordings, NDI, v4l2 and headless PNGs)")
    out.add_argument("--size", metavar="WxH", help="output size, e.g. 1920x1080 (default: the generator's own)")
    out.add_argument("--fit", choices=["cover", "contain"], default="cover",
                     help="other aspect: cover fills and crops, contain shows all and pads black")
    out.add_argument("--upscaler", metavar="PTH", help="Real-ESRGAN weights (RealESRGAN_x4plus.pth or "
                                                       "realesr-general-x4v3.pth): x4 super-resolution first")
    rig = lv.add_argument_group("the rig (OSC, MIDI, video out, live presets; README: 'Playing with the rig')")
    rig.add_argument("--osc-in", metavar="HOST:PORT", help="take /livesound/... control messages here")
    rig.add_argument("--osc-out", metavar="HOST:PORT", help="send per-frame features (/livesound/level ...) here")
    rig.add_argument("--midi", nargs="?", const="", metavar="PORT", help="MIDI input (first port, or part of a name)")
    rig.add_argument("--ndi", nargs="?", const="livesound", metavar="NAME", help="send frames as an NDI source")
    rig.add_argument("--v4l2", nargs="?", const="", metavar="DEVICE", help="send frames to a v4l2loopback camera")
    rig.add_argument("--preset-file", metavar="JSON", help="live presets 1-9 and the MIDI map (created on store)")
    rig.add_argument("--osc-listen-any", action="store_true",
                     help="allow --osc-in on an address beyond loopback (OSC has no authentication: see docs/rig.md)")
    rig.add_argument("--osc-allow-from", action="append", default=[], metavar="ADDR",
                     help="read OSC only from this sender address or host name (repeatable)")
    rig.add_argument("--osc-allow-path", action="append", default=[], metavar="DIR",
                     help="/generator and /mapper may also load checkpoints from this folder (repeatable; the "
                          "models folder always)")
    rig.add_argument("--record-max-mb", type=float, default=2048.0, metavar="MB",
                     help="a recording started by OSC/MIDI stops at this size (default %(default)g)")
    st = lv.add_argument_group("steering (docs/meaning.md)")
    st.add_argument("--steer", choices=["mapper", "bank", "optimize", "directions"],
                    help="how the sound's meaning moves the picture: the mapper, a direction bank, live optimisation "
                         "of the paper's loss, or StyleCLIP's global directions (default: mapper when the preset's "
                         "is trained, else bank when one is given, else mapper with a warning)")
    st.add_argument("--bank", metavar="FILE", help="direction bank from `livesound bank build` (steers by default "
                                                   "when the mapper is untrained)")
    st.add_argument("--bank-temperature", type=float, metavar="T",
                    help="softmax temperature over cos(e, anchor) (default: the bank's calibrated one)")
    st.add_argument("--bank-top-k", type=int, metavar="K", help="anchors blended per frame (default 3)")
    st.add_argument("--directions", metavar="FILE", help="--steer directions: StyleCLIP's fs3.npy (S_mean_std "
                                                         "beside it) or a file of `livesound directions build`")
    st.add_argument("--beta", type=float, help="--steer directions: disentanglement threshold (default 0.15)")
    st.add_argument("--learn", metavar="BANK", help="--steer optimize: add converged offsets to this bank file "
                                                    "(created if missing), saved at exit")
    lv.add_argument("--backend", help="one backend for every accelerated stage (torch, torch-bf16, torch-fp16, "
                                      "onnxruntime, openvino, openvino-bf16, tensorrt, ..., or auto: the fastest "
                                      "within tolerance, measured once), or per stage: "
                                      "encode=onnxruntime,map=torch,synthesize=auto (default: the preset's)")
    lv.add_argument("--pin-threads", default="auto", metavar="off|auto|R,L",
                    help="pin the renderer and listener threads to a core each (auto: the first two cores this "
                         "process may use; or RENDER,LISTEN core numbers; default auto)")


def run_live(args) -> int:
    from livesound.live.build import LiveOptions
    from livesound.rig.rig import RigOptions
    from livesound.rig.show import ShowOptions, prepare_show

    show = ShowOptions(
        live=LiveOptions(preset=args.preset, source=args.source, device=args.device, input=args.input,
                         generator=args.generator,
                         encoder=args.encoder, mapper=args.mapper, clip=args.clip, labels=split_list(args.labels),
                         strength=args.strength, smoothing_s=args.smoothing, seed=args.seed, synth_kind=args.synth,
                         backend=args.backend, pin_threads=args.pin_threads,
                         max_audio_seconds=args.max_audio_seconds, steer=args.steer, directions=args.directions,
                         beta=args.beta, learn=args.learn, size=args.size, fit=args.fit, upscaler=args.upscaler,
                         latent=args.latent, bank=args.bank, bank_temperature=args.bank_temperature,
                         bank_top_k=args.bank_top_k),
        rig=RigOptions(osc_in=args.osc_in, osc_out=args.osc_out, midi=args.midi, ndi=args.ndi, v4l2=args.v4l2,
                       preset_file=args.preset_file, osc_listen_any=args.osc_listen_any,
                       osc_allow_from=args.osc_allow_from, osc_allow_path=args.osc_allow_path,
                       record_max_mb=args.record_max_mb),
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
