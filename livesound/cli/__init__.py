"""The ``livesound`` command: each subcommand builds one options object and calls library functions."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from livesound import __version__


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _sub(subs, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return subs.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                           formatter_class=_Formatter)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="livesound", formatter_class=_Formatter,
        description="Turn live sound into images: audio -> CLIP space -> StyleGAN2.",
        epilog="example:\n  livesound generate --preset demo --seeds 0-3 --out out/demo\n"
               "  livesound <command> --help   shows each command's options and an example")
    p.add_argument("--version", action="version", version=f"livesound {__version__}")
    p.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    subs = p.add_subparsers(dest="command", metavar="command")

    g = _sub(subs, "generate", "render StyleGAN2 images from seeds or saved latents",
             "livesound generate --preset demo --seeds 0-3 --out out/demo --grid")
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
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    lv = _sub(subs, "live", "play the live instrument: sound -> encoder -> mapper -> StyleGAN2, in a window",
              "livesound live --preset demo --source synth\n  "
              "livesound live --source sound.wav --headless --frames 24 --out out/frames\n  "
              "livesound live --source synth --osc-in 127.0.0.1:9000 --osc-out 127.0.0.1:9001 --ndi")
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
    lv.add_argument("--pin-threads", default="auto", metavar="off|auto|R,L",
                    help="pin the renderer and listener threads to a core each (auto: the first two cores this "
                         "process may use; or RENDER,LISTEN core numbers; default auto)")

    ex = _sub(subs, "export", "export network stages to ONNX (with parity checks) or build TensorRT engines",
              "livesound export onnx --generator stylegan2-ffhq-config-f.pt --out engines/\n  "
              "livesound export onnx --preset demo --out engines/ --fp16 --fused\n  "
              "livesound export tensorrt --onnx engines/ --precision fp16")
    ex.add_argument("format", choices=["onnx", "tensorrt"], help="what to write")
    ex.add_argument("--preset", default="demo", help="preset whose networks to export (when no path is given)")
    ex.add_argument("--generator", metavar="CKPT", help="export this generator (.pt, .pkl, .safetensors)")
    ex.add_argument("--encoder", metavar="CKPT", help="export this audio encoder (+ the audio graph)")
    ex.add_argument("--mapper", metavar="CKPT", help="export this mapper")
    ex.add_argument("--out", default="engines", help="output folder")
    ex.add_argument("--fp16", action="store_true", help="also write *_fp16.onnx graphs (for GPUs)")
    ex.add_argument("--fused", action="store_true", help="also write the fused embedding -> image graph")
    ex.add_argument("--onnx", metavar="DIR", help="tensorrt: folder of .onnx graphs to build engines from")
    ex.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp16", help="tensorrt precision")
    ex.add_argument("--max-batch", type=int, default=4, help="tensorrt: largest batch of the profile")

    bn = _sub(subs, "bench", "time every stage per frame on each backend, side by side, or the generator alone, "
                             "or sound-to-picture latency (JSON + plot)",
              "livesound bench --preset demo --backends torch,onnxruntime --frames 40 --json out.json\n  "
              "livesound bench --generator G.pt --stages generator --backends torch,onnxruntime --frames 10 "
              "--json out.json\n  "
              "livesound bench --stages generator --sizes 256:1,256:2 --backends torch,onnxruntime --frames 10\n  "
              "livesound bench latency --preset demo --json lat.json")
    bn.add_argument("what", nargs="?", choices=["stages", "latency"], default="stages",
                    help="stages: time each stage of a frame; latency: sound onset to frame ready, live")
    bn.add_argument("--preset", default="demo")
    bn.add_argument("--stages", choices=["all", "generator"], default="all",
                    help="generator: the generator alone, as a fraction of this machine's measured fp32 peak")
    bn.add_argument("--generator", metavar="CKPT", help="--stages generator: this checkpoint, not the preset's")
    bn.add_argument("--sizes", metavar="R:CM,...", help="--stages generator: seeded random generators of these "
                                                         "resolution:channel-multiplier pairs, e.g. 256:1,256:2")
    bn.add_argument("--backends", default="torch,onnxruntime",
                    help="comma-separated: torch, onnxruntime, tensorrt (--stages generator: torch, torch-plain, "
                         "onnxruntime, torch-compile)")
    bn.add_argument("--frames", type=int, default=200, help="timed frames per backend")
    bn.add_argument("--warmup", type=int, default=10, help="untimed frames first")
    bn.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    bn.add_argument("--json", default="bench.json", help="where the JSON report goes")
    bn.add_argument("--plot", help="PNG plot (default: next to the JSON)")
    bn.add_argument("--seconds", type=float, default=10.0, help="latency: seconds of clicks (real time)")
    bn.add_argument("--path", choices=["auto", "pulseaudio", "file"], default="auto",
                    help="latency: capture path (auto: a PulseAudio null sink where available, else a file "
                         "source paced in real time)")
    bn.add_argument("--blocksize", type=int, default=256, help="latency: capture block size, samples")
    bn.add_argument("--latency", default="low",
                    help="latency: capture device latency, low|high|SECONDS (default low, as `livesound live`)")
    bn.add_argument("--backend", help="latency: stage backends as for `livesound live --backend` "
                                      "(default: the preset's)")

    e = _sub(subs, "embed", "audio files -> CLIP-space embeddings (.npy, one row per file)",
             "livesound embed sound.wav other.flac --preset demo --out emb.npy")
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

    c = _sub(subs, "convert", "convert a foreign checkpoint to livesound's safetensors format",
             "livesound convert stylegan2-ffhq-config-f.pt ffhq.safetensors")
    c.add_argument("src", help="rosinality .pt, NVIDIA .pkl or livesound .safetensors generator")
    c.add_argument("dst", help="output .safetensors file")
    c.add_argument("--mapping-lr-mul", type=float, default=None,
                   help="mapping lr multiplier of a rosinality generator built with a non-default lr_mlp "
                        "(its .pt does not record it; default: rosinality's 0.01)")

    pr = _sub(subs, "presets", "list the named presets", "livesound presets")
    pr.add_argument("--json", action="store_true", help="print the presets as JSON")

    from livesound.cli import offline as cli_offline, train as cli_train

    cli_offline.add_parsers(subs, _Formatter, _sub)
    cli_train.add_parsers(subs, _sub)
    ev = _sub(subs, "eval", "evaluations: the paper's latent agreement (Table 2), zero-shot and linear-probe "
                            "classification (ESC-50 / UrbanSound8K), the mapper against optimisation",
              cli_offline.LATENT_AGREEMENT_EXAMPLE + "\n  " + cli_train.ZERO_SHOT_EXAMPLE)
    evs = ev.add_subparsers(dest="eval_what", metavar="evaluation")
    cli_offline.add_eval_latent_agreement(
        _sub(evs, "latent-agreement", "cosine between sound-guided and text-guided latent offsets, per label",
             cli_offline.LATENT_AGREEMENT_EXAMPLE))
    cli_train.add_eval_parsers(evs, _sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        return cmd_list_devices()
    if args.command is None:
        parser.print_help()
        return 2
    from livesound.audio.io import AudioError
    from livesound.weights.checkpoint import CheckpointError
    from livesound.models.presets import PresetError

    if args.command == "eval" and args.eval_what is None:
        parser.parse_args(["eval", "--help"])
    from livesound.cli import offline as cli_offline, train as cli_train

    commands = {"generate": cmd_generate, "live": cmd_live, "embed": cmd_embed, "export": cmd_export,
                "bench": cmd_bench, "optimize": cli_offline.cmd_optimize, "interpolate": cli_offline.cmd_interpolate,
                "eval": lambda a: cli_train.EVALS.get(a.eval_what, cli_offline.cmd_latent_agreement)(a),
                "convert": cmd_convert, "presets": cmd_presets, **cli_train.COMMANDS}
    try:
        return commands[args.command](args)
    except (AudioError, CheckpointError, PresetError, ValueError, OSError) as e:
        print(f"livesound {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"livesound {args.command}: interrupted", file=sys.stderr)
        return 130


def cmd_generate(args) -> int:
    import torch
    from tqdm import tqdm

    from livesound.files import save_png
    from livesound.offline.generate import grid, load_latents, parse_seeds, render
    from livesound.models.presets import generator_from_preset, load_preset

    if args.batch < 1:
        raise ValueError("--batch must be at least 1")
    preset = load_preset(args.preset)
    psi = preset.truncation_psi if args.trunc is None else args.trunc
    noise_mode = args.noise_mode or preset.noise_mode
    G = generator_from_preset(preset, args.generator, device=args.device)
    if args.latents:
        ws = load_latents(args.latents, G.num_ws, G.w_dim)
        names = [f"latent{i:04d}.png" for i in range(ws.shape[0])]
    else:
        seeds = parse_seeds(args.seeds)
        with torch.no_grad():
            ws = G.mapping(G.z_from_seeds(seeds), truncation_psi=psi)
        names = [f"seed{s:04d}.png" for s in seeds]
    out = Path(args.out)
    print(f"livesound generate: {len(names)} image(s) at {G.resolution} px, truncation {psi}, "
          f"noise {noise_mode} -> {out}")
    images = []
    t0 = time.perf_counter()
    bar = tqdm(render(G, ws, args.batch, noise_mode), total=len(names), unit="img",
               disable=len(names) < 4 or None, file=sys.stderr)
    for name, img in zip(names, bar):
        if not args.grid_only:
            save_png(img, out / name)
        if args.grid or args.grid_only:
            images.append(img)
    dt = time.perf_counter() - t0
    if images:
        save_png(grid(images), out / "grid.png")
    written = (0 if args.grid_only else len(names)) + (1 if images else 0)
    print(f"livesound generate: wrote {written} file(s) in {dt:.2f} s ({len(names) / dt:.1f} images/s)")
    return 0


def cmd_live(args) -> int:
    import json
    import os

    from livesound.live.build import LiveOptions, build_pipeline, open_source
    from livesound.rig.headless import run_headless
    from livesound.rig.rig import Rig, RigOptions

    opts = LiveOptions(preset=args.preset, source=args.source, device=args.device, generator=args.generator,
                       encoder=args.encoder, mapper=args.mapper, clip=args.clip,
                       labels=[x.strip() for x in (args.labels or "").split(",") if x.strip()],
                       strength=args.strength, smoothing_s=args.smoothing, seed=args.seed, synth_kind=args.synth,
                       backend=args.backend, pin_threads=args.pin_threads)
    rig_opts = RigOptions(osc_in=args.osc_in, osc_out=args.osc_out, midi=args.midi, ndi=args.ndi, v4l2=args.v4l2,
                          preset_file=args.preset_file)
    if args.frames < 1:
        raise ValueError("--frames must be at least 1")
    headless = args.headless
    if not headless and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                             or os.environ.get("QT_QPA_PLATFORM")):
        print("livesound live: no display found; running headless (pass --headless to say so)", file=sys.stderr)
        headless = True
    live_source = opts.source in ("auto", "mic", "synth")
    if not live_source and not Path(opts.source).is_file():
        raise ValueError(f"{opts.source}: no such audio file (sources: auto, mic, synth, or a file)")
    # Open the device before building the networks: a missing device is told at once.
    source = open_source(opts) if live_source else None
    stages = build_pipeline(opts)
    if headless:
        stats = run_headless(stages, opts, args.frames, Path(args.out), args.hop_fps, source=source,
                             rig_opts=rig_opts, record=Path(args.record) if args.record else None)
        print(f"livesound live: wrote {stats['frames']} frames to {args.out} ({stats['fps']:.1f} frames/s)"
              + (" (interrupted)" if stats.get("interrupted") else ""))
    else:
        from livesound.app.window import run_window
        from livesound.live.engine import LiveEngine

        engine = LiveEngine(stages, source or open_source(opts), pin_threads=opts.pin_threads)
        rig = Rig(engine, rig_opts).attach(engine)  # always: keys 1-9 store and recall presets in memory
        try:
            code = run_window(engine, title=f"livesound - {args.preset}", fullscreen=args.fullscreen,
                              record_path=args.record, rig=rig)
        finally:
            rig.close()
        stats = engine.stats()
        if code:
            return code
    if args.stats:
        from livesound.files import atomic_write

        atomic_write(Path(args.stats), lambda tmp: tmp.write_text(json.dumps(stats, indent=2) + "\n"))
    return 130 if stats.get("interrupted") else 0


def cmd_export(args) -> int:
    out = Path(args.out)
    if args.format == "tensorrt":
        from exporters.tensorrt import build_engine

        src = Path(args.onnx or args.out)
        graphs = sorted(src.glob("*.onnx"))
        if not graphs:
            raise ValueError(f"{src}: no .onnx graphs to build engines from (run `livesound export onnx` first)")
        for g in graphs:
            info = build_engine(g, out / g.with_suffix(".engine").name, precision=args.precision,
                                batch=(1, 1, args.max_batch), timing_cache=out / "timing.cache")
            print(f"livesound export: {g.name} -> {info.get('engine', g.with_suffix('.engine').name)}")
        return 0
    from exporters.onnx import export_all
    from livesound.models.presets import encoder_from_preset, generator_from_preset, load_preset

    G = encoder = mapper = None
    if args.generator or args.encoder or args.mapper:
        if args.generator:
            from livesound.models.stylegan2 import load_generator

            G = load_generator(args.generator)
        if args.encoder:
            from livesound.models.audio_encoder import load_audio_encoder

            encoder = load_audio_encoder(args.encoder)
        if args.mapper:
            from livesound.models.mapper import load_mapper

            mapper = load_mapper(args.mapper)
    else:
        from livesound.live.build import mapper_from_preset

        preset = load_preset(args.preset)
        G, encoder = generator_from_preset(preset), encoder_from_preset(preset)
        mapper = mapper_from_preset(preset, G, encoder.embed_dim)
    export_all(out, G, encoder, mapper, fp16=args.fp16, fused=args.fused,
               log=lambda line: print(f"livesound export: {line}"))
    print(f"livesound export: wrote {out} (graphs and export.json)")
    return 0


def cmd_bench(args) -> int:
    import json
    import os

    if args.frames < 1 or args.warmup < 0:
        raise ValueError("--frames must be at least 1 and --warmup not negative")
    threads = args.threads or os.cpu_count() or 1
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if args.what == "latency":
        from livesound.bench.latency import plot_latency as plot, run_latency_bench

        result = run_latency_bench(args.preset, args.seconds, args.path, args.blocksize, args.latency,
                                   backend=args.backend, log=log)
    elif args.stages == "generator":
        from livesound.bench.generator import parse_sizes, plot_generator as plot, run_generator_bench, \
            run_generator_sizes

        if args.sizes and args.generator:
            raise ValueError("give --generator or --sizes, not both")
        if args.sizes:
            result = run_generator_sizes(parse_sizes(args.sizes), backends, args.frames, args.warmup, threads, log)
        else:
            result = run_generator_bench(args.generator, args.preset, backends, args.frames, args.warmup, threads,
                                         log=log)
    else:
        if args.generator:
            raise ValueError("--generator needs --stages generator (a whole frame runs the preset's networks)")
        from livesound.bench.stages import plot, run_bench

        result = run_bench(args.preset, backends, args.frames, args.warmup, threads, log=log)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = Path(args.plot) if args.plot else out.with_suffix(".png")
    plot(result, png)
    result = {k: v for k, v in result.items() if not k.startswith("_")}
    for size in [result, *result.get("sizes", [])]:
        for r in size.get("backends", {}).values():
            r.pop("_total_ms", None)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"livesound bench: wrote {out} and {png}")
    return 0


def cmd_embed(args) -> int:
    import warnings

    import numpy as np
    from tqdm import tqdm

    from livesound.files import atomic_write
    from livesound.offline.embed import EmbedOptions, embed_files, top_labels
    from livesound.models.presets import clip_from_preset, encoder_from_preset, load_preset

    from livesound.audio.io import check_readable

    for f in args.files:  # fail on a missing or undecodable file before any network is built
        check_readable(f)
    preset = load_preset(args.preset)
    encoder = encoder_from_preset(preset, args.encoder).eval()
    opts = EmbedOptions(files=args.files, preprocess=args.preprocess, normalize=not args.raw,
                        batch=max(1, args.batch), nonfinite="clean" if args.clean_nonfinite else "reject")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = embed_files(encoder, opts, lambda it: tqdm(it, unit="file", file=sys.stderr,
                                                         disable=len(args.files) < 4 or None))
    for w in caught:
        print(f"livesound embed: warning: {w.message}", file=sys.stderr)
    out = Path(args.out)
    atomic_write(out, lambda tmp: np.save(open(tmp, "wb"), emb))
    kind = "raw" if args.raw else "unit"
    print(f"livesound embed: wrote {out} ({emb.shape[0]} x {emb.shape[1]} float32, {kind}, "
          f"{args.preprocess} preprocessing)")
    if args.labels:
        labels = [x.strip() for x in args.labels.split(",") if x.strip()]
        if not labels:
            raise ValueError("--labels is empty")
        clip = clip_from_preset(preset, args.clip) if args.clip is None else _clip(args)
        if args.clip is None and preset.extra.get("clip", {}).get("seed") is not None:
            print("livesound embed: note: the demo preset's CLIP is untrained; its labels mean nothing. "
                  "Pass --clip WEIGHTS for real ones.", file=sys.stderr)
        for path, best in zip(args.files, top_labels(emb, clip, labels, args.top)):
            print(f"{path}: " + ", ".join(f"{label} {score:.3f}" for label, score in best))
    return 0


def _clip(args):
    from livesound.models.clip import ClipModel

    return ClipModel.load(args.clip_model, args.clip)


def cmd_list_devices() -> int:
    from livesound.audio.io import AudioError
    from livesound.audio.sources import format_device_list

    try:
        print(format_device_list())
    except AudioError as e:
        print(f"livesound: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_convert(args) -> int:
    from livesound.models.stylegan2 import convert_generator

    dst = Path(args.dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"{dst}: the output must be a .safetensors file")
    convert_generator(args.src, dst, args.mapping_lr_mul)
    print(f"livesound convert: wrote {dst}")
    return 0


def cmd_presets(args) -> int:
    import json

    from livesound.models.presets import list_presets, models_dir

    presets = list_presets()
    if args.json:
        print(json.dumps([{"name": p.name, "description": p.description, "generator": p.generator}
                          for p in presets], indent=2))
        return 0
    for p in presets:
        if p.embedded:
            where = "embedded (no files needed)"
        else:
            ckpt = models_dir() / p.generator["checkpoint"]
            where = f"{'found' if ckpt.is_file() else 'needs'} {ckpt}"
        print(f"{p.name:16s} {where}\n{'':16s} {p.description}")
    return 0
