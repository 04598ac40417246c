"""Real-ESRGAN super-resolution generators, written from the papers and the public layer layout.

Two architectures, both loading the public weight files unchanged (names and shapes as BasicSR and Real-ESRGAN
save them; ``livesound.weights.realesrgan`` reads them safely and infers which is which):

- **RRDB** (ESRGAN's "residual in residual dense block" network; ``RealESRGAN_x4plus.pth``: 64 features,
  23 blocks, growth 32, x4). ``conv_first`` -> 23 RRDBs -> ``conv_body`` added back to the first features ->
  two (nearest x2, 3x3 conv, leaky ReLU 0.2) steps -> ``conv_hr`` + leaky ReLU -> ``conv_last``. An RRDB is
  three dense blocks, each five 3x3 convolutions over the concatenation of everything before it, the block's
  output scaled by 0.2 and added to its input; the RRDB adds its own 0.2-scaled residual around all three.
  For x2 and x1 the input is pixel-unshuffled first (x2: 4x the channels at half size; x1: 16x at a quarter),
  so the trunk always runs at a quarter of the output size.
- **Compact** (Real-ESRGAN's SRVGGNetCompact; ``realesr-general-x4v3.pth``: 64 features, 32 convolutions,
  x4, PReLU): a plain chain of 3x3 convolutions with a per-channel PReLU after each, all at the input size;
  the last convolution makes ``out_ch * scale^2`` channels, a pixel shuffle turns them into the picture, and
  the nearest-upsampled input is added (the network learns the residual).

Both take RGB in [0, 1] and return RGB at ``scale`` times the size, about [0, 1] (Real-ESRGAN clamps after).
``FrameUpscaler`` puts one of them between the generator and the screen: generator images in [-1, 1] in,
clamped [-1, 1] images out, for frames of one size (what an exported graph is built for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights.checkpoint import CheckpointError, load_state_checked
from livesound.weights.realesrgan import read_upscaler_checkpoint
from livesound.weights.untrusted import check_shapes_before_building

SCALES = (1, 2, 4)


@dataclass
class RRDBConfig:
    """ESRGAN's RRDB network; the defaults are ``RealESRGAN_x4plus``."""
    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    scale: int = 4

    def __post_init__(self) -> None:
        _check_positive(self, ("in_ch", "out_ch", "num_feat", "num_block", "num_grow_ch"))
        if self.scale not in SCALES:
            raise ValueError(f"RRDB scale must be one of {SCALES}, got {self.scale}")


@dataclass
class CompactConfig:
    """Real-ESRGAN's SRVGGNetCompact with PReLU; the defaults are ``realesr-general-x4v3``."""
    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 32
    scale: int = 4

    def __post_init__(self) -> None:
        _check_positive(self, ("in_ch", "out_ch", "num_feat", "num_conv", "scale"))


UpscalerConfig = RRDBConfig | CompactConfig
KINDS: dict[str, type] = {"rrdb": RRDBConfig, "compact": CompactConfig}


def _check_positive(cfg, names: tuple[str, ...]) -> None:
    bad = [f"{n}={getattr(cfg, n)}" for n in names if not isinstance(getattr(cfg, n), int) or getattr(cfg, n) < 1]
    if bad:
        raise ValueError(f"{type(cfg).__name__}: {', '.join(bad)} (each must be a positive integer)")


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


# ------------------------------------------------------------------------------------------------------- RRDB

class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing the block input and every earlier output; 0.2-scaled residual."""

    def __init__(self, num_feat: int, grow: int):
        super().__init__()
        for i in range(4):
            setattr(self, f"conv{i + 1}", _conv(num_feat + i * grow, grow))
        self.conv5 = _conv(num_feat + 4 * grow, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    def __init__(self, num_feat: int, grow: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(num_feat, grow) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """RGB [N, in_ch, H, W] in [0, 1] -> [N, out_ch, scale*H, scale*W]."""

    def __init__(self, cfg: RRDBConfig):
        super().__init__()
        self.cfg = cfg
        self.unshuffle = 4 // cfg.scale                      # x4: 1 (none), x2: 2, x1: 4
        nf = cfg.num_feat
        self.conv_first = _conv(cfg.in_ch * self.unshuffle ** 2, nf)
        self.body = nn.Sequential(*(RRDB(nf, cfg.num_grow_ch) for _ in range(cfg.num_block)))
        self.conv_body = _conv(nf, nf)
        self.conv_up1, self.conv_up2, self.conv_hr = _conv(nf, nf), _conv(nf, nf), _conv(nf, nf)
        self.conv_last = _conv(nf, cfg.out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            torch._assert(x.shape[-1] % self.unshuffle == 0 and x.shape[-2] % self.unshuffle == 0,
                          f"x{self.cfg.scale} RRDB needs sides divisible by {self.unshuffle}")
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2.0, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


# ---------------------------------------------------------------------------------------------------- compact

class CompactNet(nn.Module):
    """RGB [N, in_ch, H, W] in [0, 1] -> [N, out_ch, scale*H, scale*W]; ``body`` keeps the public indices
    (conv at even positions, PReLU at odd ones, the last conv at the end)."""

    def __init__(self, cfg: CompactConfig):
        super().__init__()
        self.cfg = cfg
        nf = cfg.num_feat
        layers: list[nn.Module] = [_conv(cfg.in_ch, nf), nn.PReLU(nf)]
        for _ in range(cfg.num_conv):
            layers += [_conv(nf, nf), nn.PReLU(nf)]
        layers.append(_conv(nf, cfg.out_ch * cfg.scale ** 2))
        self.body = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        base = F.interpolate(x, scale_factor=float(self.cfg.scale), mode="nearest")
        return F.pixel_shuffle(out, self.cfg.scale) + base


def build_upscaler(cfg: UpscalerConfig, seed: int | None = None) -> nn.Module:
    """A fresh network for ``cfg`` (PyTorch's default init; with ``seed``, reproducible)."""
    net_cls = RRDBNet if isinstance(cfg, RRDBConfig) else CompactNet
    if seed is None:
        return net_cls(cfg).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return net_cls(cfg).eval()


def load_upscaler(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The one door for super-resolution weights: a public Real-ESRGAN ``.pth`` (RRDB or compact layout),
    read without running code from it; the architecture comes from its tensor names and shapes."""
    path = Path(path)
    kind, config, state = read_upscaler_checkpoint(path)
    try:
        cfg = KINDS[kind](**config)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"bad upscaler layout ({e})") from None
    check_shapes_before_building(lambda: build_upscaler(cfg), state, path)
    net = build_upscaler(cfg)
    load_state_checked(net, state, source=path)
    return net.eval().requires_grad_(False).to(device)


def config_of(net: nn.Module) -> dict:
    return {"kind": "rrdb" if isinstance(net, RRDBNet) else "compact"} | asdict(net.cfg)


class FrameUpscaler(nn.Module):
    """Generator frames [N, 3, S, S] in [-1, 1] -> [N, 3, scale*S, scale*S] in [-1, 1], through ``net``.

    ``frame_size`` is the side of the frames it takes (the generator's resolution): an exported graph and a
    TensorRT engine are built for that one size, so it is part of the stage's identity."""

    def __init__(self, net: nn.Module, frame_size: int):
        super().__init__()
        self.net, self.frame_size, self.scale = net, int(frame_size), net.cfg.scale
        if self.frame_size < 1:
            raise ValueError(f"frame_size must be positive, got {frame_size}")

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        torch._assert(img.ndim == 4 and img.shape[1] == 3, "frames must be [N, 3, H, W]")
        x = ((img + 1) * 0.5).clamp(0, 1)                                 # [N, 3, S, S] in [0, 1]
        dtype = next(self.net.parameters()).dtype                            # fp16 on a GPU, if made so
        return self.net(x.to(dtype)).float().clamp(0, 1) * 2 - 1
