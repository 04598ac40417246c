"""``livesound export``: ONNX graphs (`exporters.onnx.export_networks`) or TensorRT engines
(`exporters.tensorrt.build_engines`)."""

from __future__ import annotations

from pathlib import Path

from livesound.cli.common import add_device_arg, sub, tell

EXPORT_EXAMPLE = ("livesound export onnx --generator stylegan2-ffhq-config-f.pt --out engines/\n  "
                  "livesound export onnx --preset demo --out engines/ --fp16 --fused\n  "
                  "livesound export onnx --upscaler realesr-general-x4v3.pth --frame-size 256 --out engines/\n  "
                  "livesound export tensorrt --onnx engines/ --precision fp16")


def add_parsers(subs) -> None:
    ex = sub(subs, "export", "export network stages to ONNX (with parity checks) or build TensorRT engines",
             EXPORT_EXAMPLE)
    ex.set_defaults(run=run_export)
    ex.add_argument("format", choices=["onnx", "tensorrt"], help="what to write")
    ex.add_argument("--preset", default="demo", help="preset whose networks to export (when no path is given)")
    ex.add_argument("--generator", metavar="CKPT", help="export this generator (.pt, .pkl, .safetensors)")
    ex.add_argument("--encoder", metavar="CKPT", help="export this audio encoder (+ the audio graph)")
    ex.add_argument("--mapper", metavar="CKPT", help="export this mapper")
    ex.add_argument("--upscaler", metavar="PTH", help="export this Real-ESRGAN upscaler (RealESRGAN_x4plus.pth, "
                                                      "realesr-general-x4v3.pth) as upscaler.onnx")
    ex.add_argument("--frame-size", type=int, metavar="PX", help="the upscaler's input frame side (default: the "
                                                                 "generator's resolution, given or the preset's)")
    ex.add_argument("--out", default="engines", help="output folder")
    ex.add_argument("--fp16", action="store_true", help="also write *_fp16.onnx graphs (for GPUs)")
    ex.add_argument("--fused", action="store_true", help="also write the fused embedding -> image graph")
    ex.add_argument("--styles", action="store_true", help="also write generator_styles.onnx (a style-offset input, "
                                                          "for --steer directions)")
    ex.add_argument("--onnx", metavar="DIR", help="tensorrt: folder of .onnx graphs to build engines from")
    ex.add_argument("--precision", choices=["fp32", "fp16", "bf16"], default="fp16", help="tensorrt precision")
    ex.add_argument("--max-batch", type=int, default=4, help="tensorrt: largest batch of the profile")
    add_device_arg(ex)


def run_export(args) -> int:
    return run_export_tensorrt(args) if args.format == "tensorrt" else run_export_onnx(args)


def run_export_onnx(args) -> int:
    from exporters.onnx import ExportOptions, export_networks

    opts = ExportOptions(preset=args.preset, generator=args.generator, encoder=args.encoder, mapper=args.mapper,
                         out=args.out, fp16=args.fp16, fused=args.fused, device=args.device,
                         styles=args.styles, upscaler=args.upscaler, frame_size=args.frame_size)
    export_networks(opts, log=tell("export"))
    print(f"livesound export: wrote {Path(opts.out)} (graphs and export.json)")
    return 0


def run_export_tensorrt(args) -> int:
    from exporters.tensorrt import EnginesOptions, build_engines

    build_engines(EnginesOptions(onnx=args.onnx, out=args.out, precision=args.precision, max_batch=args.max_batch,
                                 device=args.device), log=tell("export"))
    return 0
