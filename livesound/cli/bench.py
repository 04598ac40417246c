"""``livesound bench``: stage, generator, latency or semantic benchmarks (`livesound.bench.run.run_benchmark`)."""

from __future__ import annotations

import sys

from livesound.cli.common import add_device_arg, sub

BENCH_EXAMPLE = ("livesound bench --preset demo --backends torch,onnxruntime --frames 40 --json out.json\n  "
                 "livesound bench --generator G.pt --stages generator --backends torch,onnxruntime --frames 10 "
                 "--json out.json\n  "
                 "livesound bench --stages generator --sizes 256:1,256:2 --backends torch,onnxruntime --frames 10\n  "
                 "livesound bench latency --preset demo --json lat.json\n  "
                 "livesound bench --backends torch --size 1920x1080 --upscaler realesr-general-x4v3.pth --frames 10\n  "
                 "livesound bench semantic --preset demo --bank bank.safetensors --json sem.json")


def add_parsers(subs) -> None:
    bn = sub(subs, "bench", "time every stage per frame on each backend, side by side, or the generator alone, "
                            "or sound-to-picture latency (JSON + plot)", BENCH_EXAMPLE)
    bn.set_defaults(run=run_bench)
    bn.add_argument("what", nargs="?", choices=["stages", "latency", "semantic"], default="stages",
                    help="stages: time each stage of a frame; latency: sound onset to frame ready, live; "
                         "semantic: a switch of sound to the picture half-way to the new anchor's")
    bn.add_argument("--preset", default="demo")
    bn.add_argument("--stages", choices=["all", "generator"], default="all",
                    help="generator: the generator alone, as a fraction of this machine's measured fp32 peak")
    bn.add_argument("--generator", metavar="CKPT", help="--stages generator: this checkpoint, not the preset's")
    bn.add_argument("--sizes", metavar="R:CM,...", help="--stages generator: seeded random generators of these "
                                                         "resolution:channel-multiplier pairs, e.g. 256:1,256:2")
    bn.add_argument("--backends", default="torch,onnxruntime",
                    help="comma-separated stage backends (torch, torch-bf16, torch-fp16, onnxruntime, "
                         "onnxruntime-tensorrt[-fp16], openvino, openvino-bf16, tensorrt[-fp16], auto; --stages "
                         "generator also torch-plain, torch-compile); one that cannot run here is reported "
                         "unavailable, with the reason")
    add_device_arg(bn)
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
    bn.add_argument("--backend", help="latency, semantic: stage backends as for `livesound live --backend` "
                                      "(default: the preset's)")
    bn.add_argument("--size", metavar="WxH", help="stages: output size, timing the resize stage (as `livesound "
                                                  "live --size`)")
    bn.add_argument("--fit", choices=["cover", "contain"], default="cover", help="stages: with --size, as "
                                                                                 "`livesound live --fit`")
    bn.add_argument("--upscaler", metavar="PTH", help="stages: Real-ESRGAN weights, timing the upscale stage")
    bn.add_argument("--bank", metavar="FILE", help="semantic: the direction bank (default: the preset's)")
    bn.add_argument("--anchors", metavar="A,B", help="semantic: sound anchors to switch between (default: the two "
                                                     "farthest apart)")
    bn.add_argument("--segment", type=float, default=4.0, help="semantic: seconds each sound plays")
    bn.add_argument("--switches", type=int, default=8, help="semantic: switches of sound")
    bn.add_argument("--fps", type=float, default=30.0, help="semantic: frames per second of audio")
    bn.add_argument("--change-db", type=float, help="semantic: change detection threshold, dB (default: the "
                                                    "preset's; 0: the plain newest window)")


def run_bench(args) -> int:
    from livesound.bench.run import BenchOptions, run_benchmark

    opts = BenchOptions(what=args.what, preset=args.preset, stages=args.stages, generator=args.generator,
                        sizes=args.sizes, backends=args.backends, frames=args.frames, warmup=args.warmup,
                        threads=args.threads, json=args.json, plot=args.plot, seconds=args.seconds, path=args.path,
                        blocksize=args.blocksize, latency=args.latency, backend=args.backend, device=args.device,
                        size=args.size, fit=args.fit, upscaler=args.upscaler, bank=args.bank, anchors=args.anchors,
                        segment=args.segment, switches=args.switches, fps=args.fps, change_db=args.change_db)
    out, png = run_benchmark(opts, log=lambda line: print(line, file=sys.stderr))
    print(f"livesound bench: wrote {out} and {png}")
    return 0
