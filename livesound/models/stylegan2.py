"""StyleGAN2 generator in plain PyTorch ops (exports to ONNX, runs on any device).

One arithmetic serves both public layouts: rosinality's ``stylegan2-pytorch`` and NVIDIA's
``stylegan2-ada-pytorch``. They differ only in names, in where the equalised-lr weight gain of a
demodulated convolution is applied (which demodulation cancels), and in NVIDIA's optional activation
clamp; foreign checkpoints are renamed into this module's layout by ``livesound.weights.stylegan2``.

Modulated convolutions are computed as "scale activations by the styles, convolve with the shared weight,
multiply by the demodulation coefficients" (NVIDIA's ``fused_modconv=False``). It gives the same numbers
as the per-sample grouped convolution, and keeps the batch size out of exported graphs.

Fast paths (``SynthesisNetwork.set_fast_paths``), each with the plain path beside it and parity-tested; they
are for inference (gradients reach the activations and styles, not the weights they precompute from):
- ``fold_fir``: the 2x upsampling convolution (transposed 3x3 then the 4x4 FIR blur) as ONE 3x3 convolution at
  the input resolution with 4x the output channels (the four sub-pixel phases of the combined 6x6 kernel),
  then a pixel shuffle. One dense convolution, but 4x the multiply-adds of the transposed one: on CPUs it
  loses to the cheap depthwise blur (``livesound.models.fast_paths`` has the figures), so it is off by default.
- ``fused_act``: bias, const noise and the sqrt(2) gain folded into one precomputed per-layer tensor and the
  demodulation scale, so the epilogue is one multiply-add and an in-place leaky ReLU (2 passes instead of 6).
- ``channels_last``: NHWC activations and weights, oneDNN's native layout on the CPU.
``modconv="grouped"`` is the reference implementations' per-sample grouped convolution, for comparison only.

Reduced precision is ``torch.autocast`` around the synthesis (fp16 on GPUs, bf16 on CPUs): the convolutions run
in it, while the modulation arithmetic (styles, demodulation), the image skip path (ToRGB and its upsampling)
and the checkpoint's clamps stay in fp32. Under autocast the styles are divided by their largest magnitude per
sample before modulating (demodulation cancels the factor exactly), which keeps fp16 activations far from
overflow, as stylegan2-ada does for its fp16 layers.

Style offsets: ``SynthesisNetwork.forward(ws, style_delta=...)`` adds an edit to every modulated convolution's
styles, ``styles = affine(w) + delta`` (StyleSpace, as StyleCLIP's global directions edit it; the ToRGB styles are
left alone). ``style_channels`` gives each convolution's width; a zero or absent delta draws exactly what w+ draws.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights import fields
from livesound.weights.checkpoint import CheckpointError, load_state_checked, save_own
from livesound.weights.stylegan2 import read_generator_checkpoint
from livesound.weights.untrusted import check_shapes_before_building

NoiseMode = Literal["const", "random", "none"]
NOISE_MODES = ("const", "random", "none")
SQRT2 = math.sqrt(2.0)

# rosinality's channel table: 512 up to 32 px, then halving, scaled by channel_multiplier from 64 px.
_ROSINALITY_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


@dataclass
class GeneratorConfig:
    resolution: int = 256
    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0                    # NVIDIA conditional models only; 0 = unconditional
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    channels: list[int] = field(default_factory=list)  # one per block, 4 px first; empty = derive
    channel_multiplier: int | None = None               # rosinality's width knob
    channel_base: int | None = None                     # NVIDIA's width knobs: min(base // res, max)
    channel_max: int = 512
    img_channels: int = 3
    conv_clamp: float | None = None   # NVIDIA clamps activations at +-conv_clamp; rosinality never does
    blur_kernel: list[float] = field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])

    def __post_init__(self) -> None:
        log2 = int(math.log2(self.resolution)) if self.resolution > 0 else 0
        if self.resolution < 4 or 2**log2 != self.resolution:
            raise ValueError(f"resolution must be a power of two >= 4, got {self.resolution}")
        resolutions = [2**i for i in range(2, log2 + 1)]
        if not self.channels:
            if self.channel_base is not None:
                self.channels = [min(self.channel_base // r, self.channel_max) for r in resolutions]
            else:
                cm = self.channel_multiplier if self.channel_multiplier is not None else 2
                if self.resolution > 1024:
                    raise ValueError("rosinality's channel table stops at 1024 px; give channel_base instead")
                self.channels = [_ROSINALITY_CHANNELS[r] * (cm if r >= 64 else 1) for r in resolutions]
        self.channels = [int(c) for c in self.channels]
        if len(self.channels) != len(resolutions):
            raise ValueError(f"{len(self.channels)} channel widths given for {len(resolutions)} blocks")
        if min(self.channels) < 1:
            raise ValueError(f"every block needs at least one channel, got {self.channels}")
        if not sum(self.blur_kernel) > 0:  # the kernel is normalised by its sum
            raise ValueError(f"blur_kernel must have a positive sum, got {self.blur_kernel}")

    @property
    def num_blocks(self) -> int:
        return len(self.channels)

    @property
    def num_layers(self) -> int:
        """Modulated 3x3 convolutions: one at 4 px, two per later block."""
        return 2 * self.num_blocks - 1

    @property
    def num_ws(self) -> int:
        return self.num_layers + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        """From a file's JSON: types and ranges checked (``livesound.fields``), so NaN, inf or -5 layers fail
        with the field's name."""
        return fields.from_dict(cls, d, _GENERATOR_BOUNDS, "generator config")


_SIZE = fields.Bounds(1, 8192)
_GENERATOR_BOUNDS = {
    "resolution": fields.Bounds(4, 8192), "z_dim": _SIZE, "w_dim": _SIZE, "c_dim": fields.Bounds(0, 100_000),
    "mapping_layers": fields.Bounds(1, 64), "mapping_lr_mul": fields.Bounds(0, 1000, above=True),
    "channels": fields.Bounds(1, 65536, items=(0, 12)), "channel_multiplier": fields.Bounds(1, 64),
    "channel_base": fields.Bounds(1, 2**26), "channel_max": fields.Bounds(1, 65536),
    "img_channels": fields.Bounds(1, 4), "conv_clamp": fields.Bounds(0, 1e9, above=True),
    "blur_kernel": fields.Bounds(0, 1e6, items=(1, 16)),
}


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm over features (dim 1)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _fir_kernel(taps: Sequence[float]) -> torch.Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(k, k)
    return k / k.sum()


def _depthwise_fir(kernel: torch.Tensor, channels: int, gain: float) -> torch.Tensor:
    """[channels, 1, k, k] weights that make conv2d apply ``kernel`` as a true convolution with ``gain``."""
    return (kernel * gain).flip([0, 1])[None, None].repeat(channels, 1, 1, 1).contiguous()


def _fir2d(x: torch.Tensor, fir: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Depthwise FIR filter (weights from ``_depthwise_fir``), padding (pad0, pad1) on both axes."""
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, fir.to(x.dtype), groups=fir.shape[0])


def _autocasting(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


def _fp32(x: torch.Tensor):
    """Autocast off for the block (the arithmetic that must stay fp32 in a reduced-precision frame)."""
    return torch.autocast(x.device.type, enabled=False) if _autocasting(x) else contextlib.nullcontext()


def upsample2d(x: torch.Tensor, fir: torch.Tensor) -> torch.Tensor:
    """2x zero-insertion upsampling then the FIR filter (built with gain 4), as upfirdn2d(up=2)."""
    n, c, h, w = x.shape
    kw = fir.shape[-1]
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, 1, 0, 0, 0, 1])
    x = x.reshape(n, c, 2 * h, 2 * w)
    return _fir2d(x, fir, ((kw + 1) // 2, (kw - 2) // 2))


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: y = x @ (W * lr_mul / sqrt(in)).T + b * lr_mul."""

    def __init__(self, in_features: int, out_features: int, lr_mul: float = 1.0, bias_init: float = 0.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        if self.activation:
            x = F.leaky_relu(x, 0.2) * SQRT2
        return x


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ c [N, c_dim]) -> w [N, num_ws, w_dim]; truncation pulls w towards ``w_avg``."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = cfg.z_dim, cfg.c_dim, cfg.w_dim, cfg.num_ws
        embed = cfg.w_dim if cfg.c_dim > 0 else 0
        if cfg.c_dim > 0:
            self.embed = EqualLinear(cfg.c_dim, embed)
        dims = [cfg.z_dim + embed] + [cfg.w_dim] * cfg.mapping_layers
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=cfg.mapping_lr_mul, activation=True)
            for i in range(cfg.mapping_layers)
        )
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [N, {self.z_dim}], got {list(z.shape)}")
        x = normalize_2nd_moment(z.float())
        if self.c_dim > 0:
            if c is None or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"this generator is conditional: pass c [N, {self.c_dim}]")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c.float()))], dim=1)
        for layer in self.layers:
            x = layer(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        return truncate(ws, self.w_avg, truncation_psi, truncation_cutoff)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """Move w+ codes towards the average: w_avg + psi * (w - w_avg), on layers below ``cutoff`` only."""
    if psi == 1.0:
        return ws
    if cutoff is None:
        return w_avg.lerp(ws, psi)
    ws = ws.clone()
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


def style_mix(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """Coarse layers [0, crossover) from ``ws_a``, the rest from ``ws_b``. Both [N, num_ws, w_dim]."""
    if ws_a.shape != ws_b.shape or ws_a.ndim != 3:
        raise ValueError(f"style mixing needs two w+ of one shape, got {list(ws_a.shape)} and {list(ws_b.shape)}")
    if not 0 <= crossover <= ws_a.shape[1]:
        raise ValueError(f"crossover must lie in [0, {ws_a.shape[1]}], got {crossover}")
    return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)


class ModulatedConv(nn.Module):
    """Modulated 3x3 convolution (optionally 2x up), noise, bias, leaky ReLU x sqrt(2), optional clamp."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool,
                 blur: torch.Tensor, conv_clamp: float | None):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if up:
            self.register_buffer("blur", _depthwise_fir(blur, out_ch, gain=4.0), persistent=False)
        self.weight_gain = 1.0 / math.sqrt(in_ch * 9)
        self.up, self.resolution, self.conv_clamp = up, resolution, conv_clamp
        self.fold_fir, self.fused_act, self.modconv = False, False, "shared"
        # Fast-path tensors derived from the weights, built by prepare_fast_paths(); buffers, so that .to()
        # and .half() carry them along, but never saved.
        self.register_buffer("_folded", None, persistent=False)
        self.register_buffer("_bias_noise", None, persistent=False)
        self.register_load_state_dict_post_hook(ModulatedConv._after_load)

    @staticmethod
    def _after_load(module: "ModulatedConv", _incompatible) -> None:
        module.prepare_fast_paths()

    def prepare_fast_paths(self) -> None:
        """(Re)build the tensors the fast paths use from the current weights; call after changing them
        in place (loading a state dict does it by itself)."""
        self._folded = self._bias_noise = None
        with torch.no_grad():
            fmt = torch.channels_last if self.weight.is_contiguous(memory_format=torch.channels_last) \
                and not self.weight.is_contiguous() else torch.contiguous_format
            if self.fold_fir and self.up:
                self._folded = self.folded_weight().contiguous(memory_format=fmt)
            if self.fused_act:  # [1, out, H, W]
                self._bias_noise = (SQRT2 * (self.bias[None, :, None, None] + self.noise_const * self.noise_strength)
                                    ).contiguous(memory_format=fmt)

    def folded_weight(self) -> torch.Tensor:
        """[out * 4, in, 3, 3]: conv_transpose(stride 2) + FIR as one 3x3 convolution per sub-pixel phase.

        The combined kernel is the full 2-D convolution of the 3x3 weight with the (gain 4) FIR, 6x6; output
        pixel (2m + py, 2n + px) takes the taps ``g[py::2, px::2]`` flipped, over the input's 3x3
        neighbourhood of (m, n). Channels are in ``pixel_shuffle``'s order: out * 4 + py * 2 + px.
        """
        w = self.weight * self.weight_gain                                        # [out, in, 3, 3]
        o, i = w.shape[:2]
        fir = self.blur[0, 0].flip([0, 1])                                        # [4, 4], as given
        g = w.new_zeros(o, i, 6, 6)
        for a in range(3):  # full convolution, tap by tap: 9 whole-tensor ops, not o * i tiny convolutions
            for b in range(3):
                g[:, :, a:a + 4, b:b + 4] += w[:, :, a, b, None, None] * fir
        phases = [g[:, :, py::2, px::2].flip([2, 3]) for py in (0, 1) for px in (0, 1)]
        return torch.stack(phases, 1).reshape(o * 4, i, 3, 3)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None,
                const_noise: bool = False, style_delta: torch.Tensor | None = None) -> torch.Tensor:
        """``const_noise``: ``noise`` is this layer's ``noise_const`` (the fused epilogue has it baked in).
        ``style_delta`` [N or 1, in]: added to the styles (a StyleSpace edit); None leaves them untouched."""
        low = _autocasting(x)
        with _fp32(x):
            styles = self.affine(w)                               # [N, in]
            if style_delta is not None:
                styles = styles + style_delta
            if low:  # demodulation cancels the per-sample factor; fp16 activations stay small
                styles = styles / styles.abs().amax(dim=1, keepdim=True)
            weight = self.weight * self.weight_gain               # [out, in, 3, 3]
            dcoefs = (styles.square() @ weight.square().sum([2, 3]).t() + 1e-8).rsqrt()  # [N, out]
        if self.modconv == "grouped":
            x = self._grouped_conv(x, styles, weight, dcoefs)
        else:
            x = x * styles[:, :, None, None]
            if self.up and self._folded is not None:
                x = F.pixel_shuffle(F.conv2d(x, self._folded, padding=1), 2)
            elif self.up:
                x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
                x = _fir2d(x, self.blur, (1, 1))
            else:
                x = F.conv2d(x, weight, padding=1)
        if self._bias_noise is not None and const_noise and self.modconv != "grouped":
            # leaky_relu(y) * sqrt2 == leaky_relu(y * sqrt2): the gain rides on the demodulation scale
            x = torch.addcmul(self._bias_noise, x, (dcoefs * SQRT2)[:, :, None, None])
            x = F.leaky_relu_(x, 0.2) if not x.requires_grad else F.leaky_relu(x, 0.2)
        else:
            if self.modconv != "grouped":
                x = x * dcoefs[:, :, None, None]
            if noise is not None:
                x = x + noise * self.noise_strength
            x = F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x

    def _grouped_conv(self, x: torch.Tensor, styles: torch.Tensor, weight: torch.Tensor,
                      dcoefs: torch.Tensor) -> torch.Tensor:
        """The reference form: per-sample modulated, demodulated weights as one grouped convolution."""
        n, cin, h, wd = x.shape
        wt = weight[None] * styles[:, None, :, None, None] * dcoefs[:, :, None, None, None]  # [N, out, in, 3, 3]
        x = x.reshape(1, n * cin, h, wd)
        if self.up:
            wt = wt.transpose(1, 2).reshape(n * cin, -1, 3, 3)
            x = F.conv_transpose2d(x, wt, stride=2, groups=n)
            x = x.reshape(n, -1, *x.shape[2:])
            return _fir2d(x, self.blur, (1, 1))
        x = F.conv2d(x, wt.reshape(-1, cin, 3, 3), padding=1, groups=n)
        return x.reshape(n, -1, h, wd)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to image channels, no demodulation."""

    def __init__(self, in_ch: int, img_channels: int, w_dim: int, conv_clamp: float | None):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_ch)
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]
        if self.conv_clamp is not None:
            x = x.clamp(-self.conv_clamp, self.conv_clamp)
        return x


class SynthesisNetwork(nn.Module):
    """w+ [N, num_ws, w_dim] (or w [N, w_dim]) -> image [N, img_channels, R, R], about [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.num_ws, self.w_dim, self.resolution = cfg.num_ws, cfg.w_dim, cfg.resolution
        blur = _fir_kernel(cfg.blur_kernel)
        self.register_buffer("skip_up", _depthwise_fir(blur, cfg.img_channels, gain=4.0), persistent=False)
        ch = cfg.channels
        self.const = nn.Parameter(torch.randn(ch[0], 4, 4))
        layers = [ModulatedConv(ch[0], ch[0], cfg.w_dim, 4, False, blur, cfg.conv_clamp)]
        torgbs = [ToRGB(ch[0], cfg.img_channels, cfg.w_dim, cfg.conv_clamp)]
        for b in range(1, cfg.num_blocks):
            res = 4 * 2**b
            layers.append(ModulatedConv(ch[b - 1], ch[b], cfg.w_dim, res, True, blur, cfg.conv_clamp))
            layers.append(ModulatedConv(ch[b], ch[b], cfg.w_dim, res, False, blur, cfg.conv_clamp))
            torgbs.append(ToRGB(ch[b], cfg.img_channels, cfg.w_dim, cfg.conv_clamp))
        self.layers = nn.ModuleList(layers)
        self.torgbs = nn.ModuleList(torgbs)
        self.channels_last = False

    def set_fast_paths(self, fold_fir: bool = False, fused_act: bool = False, channels_last: bool = False,
                       modconv: str = "shared") -> "SynthesisNetwork":
        """Switch the fast paths (module docstring) on or off; all off is the plain reference path."""
        if modconv not in ("shared", "grouped"):
            raise ValueError(f"modconv must be 'shared' or 'grouped', got {modconv!r}")
        self.channels_last = channels_last
        self.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        for layer in self.layers:
            layer.fold_fir, layer.fused_act, layer.modconv = fold_fir, fused_act, modconv
            layer.prepare_fast_paths()
        return self

    @property
    def fast_paths(self) -> dict:
        first = self.layers[0]
        return {"fold_fir": first.fold_fir, "fused_act": first.fused_act, "channels_last": self.channels_last,
                "modconv": first.modconv}

    @property
    def style_channels(self) -> list[int]:
        """Width of each modulated convolution's style vector, in layer order. These are the channels a
        ``style_delta`` edits (StyleSpace without the ToRGB styles, as StyleCLIP's global directions)."""
        return [int(layer.affine.weight.shape[0]) for layer in self.layers]

    def styles(self, ws: torch.Tensor) -> torch.Tensor:
        """The convolutions' styles ``affine(w)`` of w+ [N, num_ws, w_dim], concatenated: [N, sum(style_channels)]."""
        return torch.cat([layer.affine(ws[:, i].to(self.const.dtype)) for i, layer in enumerate(self.layers)], 1)

    def _split_styles(self, style_delta: torch.Tensor | None) -> list[torch.Tensor | None]:
        if style_delta is None:
            return [None] * len(self.layers)
        widths = self.style_channels
        torch._assert(style_delta.ndim == 2 and style_delta.shape[1] == sum(widths),
                      f"style_delta must be [N, {sum(widths)}] (one value per style channel)")
        style_delta = style_delta.to(self.const.dtype)
        out, start = [], 0
        for n in widths:
            out.append(style_delta[:, start:start + n])
            start += n
        return out

    def make_noise(self, batch: int, mode: NoiseMode, generator: torch.Generator | None = None
                   ) -> list[torch.Tensor | None]:
        if mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
        if mode == "none":
            return [None] * len(self.layers)
        if mode == "const":
            return [layer.noise_const[None, None] for layer in self.layers]  # [1, 1, r, r]
        dev = self.const.device
        return [torch.randn(batch, 1, l.resolution, l.resolution, device=dev, generator=generator)
                for l in self.layers]

    def forward(self, ws: torch.Tensor, noise_mode: NoiseMode = "const",
                generator: torch.Generator | None = None, style_delta: torch.Tensor | None = None) -> torch.Tensor:
        """``style_delta`` [N or 1, sum(style_channels)]: an edit added to the convolutions' styles
        (``styles = affine(w) + delta``); None (or zeros) draws exactly what w+ alone draws."""
        if ws.ndim == 2:
            ws = ws.unsqueeze(1).repeat(1, self.num_ws, 1)
        torch._assert(ws.ndim == 3 and ws.shape[1] == self.num_ws and ws.shape[2] == self.w_dim,
                      f"ws must be [N, {self.num_ws}, {self.w_dim}] (or [N, {self.w_dim}])")
        ws = ws.to(self.const.dtype)
        noise = self.make_noise(ws.shape[0], noise_mode, generator)
        delta = self._split_styles(style_delta)
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # [N, C, 4, 4]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        const = noise_mode == "const"
        x = self.layers[0](x, ws[:, 0], noise[0], const, delta[0])
        img = self._skip(None, 0, x, ws[:, 1])
        for b in range(1, len(self.torgbs)):
            i = 2 * b - 1
            x = self.layers[i](x, ws[:, i], noise[i], const, delta[i])
            x = self.layers[i + 1](x, ws[:, i + 1], noise[i + 1], const, delta[i + 1])
            img = self._skip(img, b, x, ws[:, i + 2])
        return img

    def _skip(self, img: torch.Tensor | None, b: int, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The image so far, upsampled, plus block ``b``'s ToRGB; in fp32 even under autocast (the image is the
        sum of every block's contribution, and fp16's rounding would show as banding)."""
        if _autocasting(x):
            x, w = x.float(), w.float()
        with _fp32(x):
            rgb = self.torgbs[b](x, w)
            return rgb if img is None else upsample2d(img, self.skip_up) + rgb


class Generator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg)

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    @property
    def w_dim(self) -> int:
        return self.cfg.w_dim

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                noise_mode: NoiseMode = "const") -> torch.Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi), noise_mode=noise_mode)

    def z_from_seeds(self, seeds: Sequence[int]) -> torch.Tensor:
        """One z per seed, the same on every machine (NumPy's RandomState, as NVIDIA's scripts do)."""
        import numpy as np

        z = [np.random.RandomState(s).randn(self.z_dim) for s in seeds]
        return torch.from_numpy(np.stack(z)).float().to(self.synthesis.const.device)


def build_generator(cfg: GeneratorConfig, seed: int | None = None) -> Generator:
    """A freshly initialised generator; with ``seed`` every weight, noise map and w_avg is reproducible."""
    if seed is None:
        return Generator(cfg).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = Generator(cfg).eval()
        with torch.no_grad():
            z = torch.randn(4096, cfg.z_dim)
            c = torch.eye(cfg.c_dim)[torch.randint(cfg.c_dim, (4096,))] if cfg.c_dim else None
            G.mapping.w_avg.copy_(G.mapping(z, c)[:, 0].mean(0))
    return G


def load_generator(path: str | Path, device: str | torch.device = "cpu", mapping_lr_mul: float | None = None
                   ) -> Generator:
    """The one door for generator weights: rosinality ``.pt``, NVIDIA ``.pkl`` or livesound safetensors.

    Every format is read without executing code from the file (``livesound.weights.stylegan2``); a bad file
    raises ``CheckpointError`` naming the file and the problem. ``mapping_lr_mul`` is for rosinality files of
    generators built with a non-default ``lr_mlp``, which their state dict does not record.
    """
    path = Path(path)
    config, state = read_generator_checkpoint(path, mapping_lr_mul)
    try:
        cfg = GeneratorConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"bad generator config ({e})") from None
    stored_avg = "mapping.w_avg" in state
    # No huge model from a config: the shapes are compared on the meta device before anything is allocated.
    check_shapes_before_building(lambda: Generator(cfg), state, path, optional={"mapping.w_avg"})
    G = Generator(cfg)
    load_state_checked(G, state if stored_avg else state | {"mapping.w_avg": G.mapping.w_avg}, source=path)
    if not stored_avg:
        G.mapping.w_avg.copy_(estimate_w_avg(G.mapping))
    return G.eval().to(device)


def estimate_w_avg(mapping: MappingNetwork, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """Mean w of ``n`` seeded z (rosinality's ``mean_latent``), for checkpoints that store no average."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return mapping(torch.randn(n, mapping.z_dim, generator=gen))[:, 0].mean(0)


def convert_generator(src: Path | str, dst: Path | str, mapping_lr_mul: float | None = None) -> Path:
    """Write any readable generator checkpoint in livesound's own format (``dst`` must be a .safetensors file)."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"{dst}: the output must be a .safetensors file")
    G = load_generator(src, mapping_lr_mul=mapping_lr_mul)
    return save_own(dst, "generator", G.cfg.to_dict(), G.state_dict())
