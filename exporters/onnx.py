"""Every network stage of livesound as its own ONNX graph, each checked in ONNX Runtime right after export.

Graphs (opset 17, dynamic batch axis ``batch`` on every input and output):

| file                     | inputs                                                   | outputs                        |
|--------------------------|----------------------------------------------------------|--------------------------------|
| generator.onnx           | ws [N, num_ws, w_dim] float32                            | image [N, 3, R, R], ~[-1, 1]   |
| generator_styles.onnx    | ws, style_delta [N, total style channels] (a StyleSpace edit) | image (as generator.onnx) |
| mapper.onnx              | ws [N, num_ws, w_dim], e [N, clip_dim] (unit), strength [N] | ws_edit [N, num_ws, w_dim]  |
| encoder.onnx             | spec [N, 1, 128, 512] (the paper's encoder input)        | embedding [N, 512], raw        |
| audio.onnx               | wave [N, T] float32 at 44.1 kHz (T fixed at export)      | embedding [N, 512], unit       |
| embedding_to_image.onnx  | ws, e, strength (as mapper.onnx)                         | image (fused mapper+generator) |
| upscaler.onnx            | frame [N, 3, S, S] in [-1, 1] (S fixed at export)        | image [N, 3, kS, kS], [-1, 1] |

``generator_styles`` is the generator with a second input added to the convolutions' styles (StyleCLIP's
global directions, ``--steer directions``); the one-input ``generator`` stays the graph of every other mode.
The generator bakes in the checkpoint's constant noise (an ONNX RandomNormal is unseeded in TensorRT). The
audio graph computes the paper's log-mel with a Conv1d DFT basis (no STFT/DFT ops, so every runtime takes
it). ``fp16=True`` also writes ``*_fp16.onnx`` (weights and activations in half precision; meant for GPUs:
fp16 graphs run slower than fp32 on x86 CPUs) for every graph but the audio one, whose dB floor (1e-10)
underflows in half precision. The upscaler is a Real-ESRGAN network (`livesound.models.realesrgan`) for the
generator's frames: S is the generator's resolution and k its scale (4 for the public files).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from livesound.audio.features import PaperLogMel
from livesound.files import atomic_write
from livesound.models.audio_encoder import load_audio_encoder
from livesound.models.mapper import load_mapper
from livesound.models.presets import (
    encoder_from_preset,
    generator_from_preset,
    load_preset,
    mapper_from_preset,
)
from livesound.models.realesrgan import FrameUpscaler, load_upscaler
from livesound.models.stylegan2 import load_generator

OPSET = 17


@dataclass
class ExportOptions:
    """``livesound export onnx``: the networks given by path, or (none given) all of a preset's."""
    preset: str = "demo"
    generator: str | None = None
    encoder: str | None = None
    mapper: str | None = None
    out: str = "engines"
    fp16: bool = False                # also *_fp16.onnx graphs
    fused: bool = False               # also the fused embedding -> image graph
    styles: bool = False              # also the generator with a style-offset input (generator_styles)
    device: str = "auto"              # where torch traces and runs the parity reference (livesound.live.device)
    upscaler: str | None = None       # Real-ESRGAN weights: also upscaler.onnx
    frame_size: int | None = None     # the upscaler's input side; None: the generator's resolution


@dataclass
class GraphSpec:
    name: str
    module: nn.Module
    inputs: dict[str, Callable[[int], torch.Tensor]]   # name -> example maker for a batch size
    outputs: list[str]
    atol: float


class _Synthesis(nn.Module):
    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, ws):
        return self.G.synthesis(ws, noise_mode="const")


class _StyledSynthesis(nn.Module):
    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, ws, style_delta):
        return self.G.synthesis(ws, noise_mode="const", style_delta=style_delta)


class _Mapper(nn.Module):
    def __init__(self, mapper):
        super().__init__()
        self.mapper = mapper

    def forward(self, ws, e, strength):
        return self.mapper.edit(ws, e, strength)


class _Audio(nn.Module):
    def __init__(self, encoder):
        super().__init__()

        self.features = PaperLogMel(dft="conv")
        self.encoder = encoder

    def forward(self, wave):
        return nn.functional.normalize(self.encoder(self.features(wave)), dim=-1)


class _EmbeddingToImage(nn.Module):
    def __init__(self, G, mapper):
        super().__init__()
        self.G, self.mapper = G, mapper

    def forward(self, ws, e, strength):
        return self.G.synthesis(self.mapper.edit(ws, e, strength), noise_mode="const")


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def stage_specs(G=None, encoder=None, mapper=None, audio_seconds: float = 2.5, fused: bool = False,
                styles: bool = False, upscaler: FrameUpscaler | None = None) -> list[GraphSpec]:
    """The graphs to export for whichever networks are given (``styles``: also ``generator_styles``)."""
    specs = []
    gen = lambda *s: (lambda n: torch.randn(n, *s, generator=torch.Generator().manual_seed(n)))  # noqa: E731
    if G is not None:
        specs.append(GraphSpec("generator", _Synthesis(G), {"ws": gen(G.num_ws, G.w_dim)}, ["image"], 5e-3))
    if G is not None and styles:  # edits of a few deviations' size, as the directions steerer makes them
        s_inputs = {"ws": gen(G.num_ws, G.w_dim), "style_delta": lambda n: 0.3 * torch.randn(
            n, sum(G.synthesis.style_channels), generator=torch.Generator().manual_seed(100 + n))}
        specs.append(GraphSpec("generator_styles", _StyledSynthesis(G), s_inputs, ["image"], 5e-3))
    if mapper is not None:
        m_inputs = {"ws": gen(mapper.num_ws, mapper.w_dim), "e": lambda n: _unit(n, mapper.clip_dim, n),
                    "strength": lambda n: torch.full((n,), 0.5)}
        specs.append(GraphSpec("mapper", _Mapper(mapper), m_inputs, ["ws_edit"], 1e-3))
        if fused and G is not None:
            specs.append(GraphSpec("embedding_to_image", _EmbeddingToImage(G, mapper), m_inputs, ["image"], 5e-3))
    if encoder is not None:
        specs.append(GraphSpec("encoder", encoder, {"spec": lambda n: torch.rand(n, 1, 128, 512,
                               generator=torch.Generator().manual_seed(n))}, ["embedding"], 1e-3))
        length = int(audio_seconds * 44100)
        specs.append(GraphSpec("audio", _Audio(encoder), {"wave": lambda n: 0.1 * torch.randn(
            n, length, generator=torch.Generator().manual_seed(n))}, ["embedding"], 1e-3))
    if upscaler is not None:
        s = upscaler.frame_size
        specs.append(GraphSpec("upscaler", upscaler, {"frame": lambda n: torch.rand(
            n, 3, s, s, generator=torch.Generator().manual_seed(n)) * 2 - 1}, ["image"], 2e-3))
    return specs


def export_graph(spec: GraphSpec, out_dir: Path, fp16: bool = False, check: bool = True) -> dict:
    """Export one graph, check it, and return its report (path, inputs, outputs, parity errors)."""
    import onnx

    suffix = "_fp16" if fp16 else ""
    path = Path(out_dir) / f"{spec.name}{suffix}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    module = spec.module.eval()
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        import copy

        module = copy.deepcopy(module).half()
    device = _device_of(module)
    example = tuple(make(2).to(device, dtype) for make in spec.inputs.values())
    axes = {name: {0: "batch"} for name in [*spec.inputs, *spec.outputs]}
    # Written under a temporary name and renamed only once checked: a kill or a failed check mid-export
    # leaves the previous graph at ``path`` intact.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape asserts read sizes as Python values while tracing; the batch axis stays dynamic regardless.
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(tmp), input_names=list(spec.inputs),
                              output_names=spec.outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
        report = {"path": str(path), "inputs": _io(spec.inputs, example), "outputs": spec.outputs,
                  "opset": OPSET, "precision": "fp16" if fp16 else "fp32"}
        if check:
            report |= parity(spec, tmp, fp16)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def export_generator(G, out_dir: Path, fp16: bool = False) -> dict:
    """``out_dir/generator.onnx``: the generator's synthesis (w+ -> image, stored noise baked in), checked."""
    spec = next(s for s in stage_specs(G=G) if s.name == "generator")
    return export_graph(spec, out_dir, fp16=fp16)


def parity(spec: GraphSpec, path: Path, fp16: bool = False) -> dict:
    """Run the graph in ONNX Runtime (CPU) against the fp32 torch module for batches 1 and 3; raise above
    the stage's tolerance (x20 for fp16)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst_abs = worst_rel = 0.0
    for batch in (1, 3):
        inputs = [make(batch) for make in spec.inputs.values()]
        with torch.no_grad():
            want = spec.module(*[x.to(_device_of(spec.module)) for x in inputs]).float().cpu().numpy()
        feed = {n: x.numpy().astype(np.float16 if fp16 else np.float32) for n, x in zip(spec.inputs, inputs)}
        got = sess.run([spec.outputs[0]], feed)[0].astype(np.float32)
        err = float(np.abs(got - want).max())
        worst_abs = max(worst_abs, err)
        worst_rel = max(worst_rel, err / (float(np.abs(want).max()) + 1e-12))
    tol = spec.atol * (20 if fp16 else 1)
    if not worst_abs <= tol:
        raise RuntimeError(f"{path}: ONNX Runtime differs from torch by {worst_abs:.3g} (tolerance {tol:.3g})")
    return {"max_abs_error": worst_abs, "max_rel_error": worst_rel, "tolerance": tol}


def _device_of(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _io(inputs: dict, example: tuple) -> dict:
    return {n: ["batch", *list(x.shape[1:])] for n, x in zip(inputs, example)}


def export_all(out_dir: Path, G=None, encoder=None, mapper=None, fp16: bool = False, fused: bool = False,
               log: Callable[[str], None] = print, styles: bool = False,
               upscaler: FrameUpscaler | None = None) -> list[dict]:
    """Export (and check) every given stage into ``out_dir``; writes ``out_dir/export.json``."""
    reports = []
    for spec in stage_specs(G, encoder, mapper, fused=fused, styles=styles, upscaler=upscaler):
        # The log-mel's dB floor (1e-10) underflows in half precision: the audio graph stays fp32.
        for half in ([False, True] if fp16 and spec.name != "audio" else [False]):
            r = export_graph(spec, out_dir, fp16=half)
            log(f"{Path(r['path']).name}: max abs error {r['max_abs_error']:.3g}, "
                f"relative {r['max_rel_error']:.3g} (tolerance {r['tolerance']:.3g})")
            reports.append(r)

    atomic_write(Path(out_dir) / "export.json",
                 lambda tmp: tmp.write_text(json.dumps(reports, indent=2) + "\n"))
    return reports


def export_networks(opts: ExportOptions, log: Callable[[str], None] = print) -> list[dict]:
    """Load the networks ``opts`` names (only those, when any path is given; else the preset's generator,
    encoder and mapper) and ``export_all`` of them into ``opts.out``; ``opts.upscaler`` adds the upscaler for
    frames of ``opts.frame_size`` (default: that generator's resolution)."""
    from livesound.live.device import resolve_device

    device = resolve_device(opts.device)
    G = encoder = mapper = upscaler = None
    if opts.generator or opts.encoder or opts.mapper:
        G = load_generator(opts.generator) if opts.generator else None
        encoder = load_audio_encoder(opts.encoder) if opts.encoder else None
        mapper = load_mapper(opts.mapper) if opts.mapper else None
    elif not opts.upscaler:
        preset = load_preset(opts.preset)
        G, encoder = generator_from_preset(preset), encoder_from_preset(preset)
        mapper = mapper_from_preset(preset, G, encoder.embed_dim)
    if opts.upscaler:
        size = opts.frame_size or (G or generator_from_preset(load_preset(opts.preset))).resolution
        upscaler = FrameUpscaler(load_upscaler(opts.upscaler), size).to(device)
    G, encoder, mapper = (None if m is None else m.to(device) for m in (G, encoder, mapper))
    return export_all(Path(opts.out), G, encoder, mapper, fp16=opts.fp16, fused=opts.fused, log=log,
                      styles=opts.styles, upscaler=upscaler)
