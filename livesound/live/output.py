"""The picture's output size: an optional super-resolution network, then one resize, both before the host copy.

A generator draws squares of its own resolution (128 px on the demo preset); a projector, a capture card or a
streaming mixer wants 1920x1080. The frame is brought there on the device where it already is, in one pass,
and only the final picture crosses to the host (``Pipeline.to_rgb8``), so the window, recordings, NDI, the v4l2
camera and headless PNGs all carry the asked size:

    synthesize -> upscale (Real-ESRGAN, optional) -> resize -> to_rgb8

- ``upscale``: a Real-ESRGAN generator (`livesound.models.realesrgan`), x4 for the public files; a network stage
  like the others, on any backend.
- ``resize``: bicubic interpolation to the asked size in one pass, antialiased (PyTorch's separable
  antialiased bicubic, the Keys kernel with a = -0.5 as PIL's; when shrinking it widens with the scale and
  averages instead of sampling, so fine detail does not alias). ``fit`` says what happens when the aspect
  differs: ``cover`` fills the frame and crops the overhang (the crop is taken from the source before
  interpolating, so nothing is interpolated and then thrown away); ``contain`` shows the whole picture and pads
  the rest with black. The stage hands ``to_rgb8`` 8-bit pixels: on the CPU it quantises the (small) source
  first and resamples in 8 bits, channels-last, where PyTorch's vectorised kernels (torchvision's) run 15-45x
  faster than its float path on one thread (measured from 128 px to 512 px and to 1080p). That is PIL's
  arithmetic for 8-bit images, clipping between the two passes: within 2 levels of the float path on
  smooth pictures, more only on pixel-level noise, where bicubic overshoots anyway. On a GPU it resamples in
  float and quantises after. Channels-last 8 bits are already height x width x RGB in memory, so the host copy
  that follows is the only copy.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

FITS = ("cover", "contain")
MAX_SIDE = 8192  # a larger output is a typo, not a screen (and would allocate gigabytes a frame)


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080), as (width, height)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--size: expected WIDTHxHEIGHT such as 1920x1080, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ValueError(f"--size: each side must be 1..{MAX_SIDE} pixels, got {w}x{h}")
    return w, h


class FrameResize:
    """``resize(img)``: [N, C, h, w] in [-1, 1] -> [N, C, height, width] uint8 (channels-last), on ``img``'s
    device, in one interpolation."""

    def __init__(self, width: int, height: int, fit: str = "cover"):
        if fit not in FITS:
            raise ValueError(f"--fit must be one of {', '.join(FITS)}, got {fit!r}")
        self.width, self.height, self.fit = int(width), int(height), fit

    def plan(self, h: int, w: int) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple[int, int, int, int]]:
        """For a source of h x w: the source crop (top, left, height, width), the interpolated (height, width)
        and the padding (left, right, top, bottom) that complete the asked size."""
        H, W = self.height, self.width
        if self.fit == "cover":
            s = max(H / h, W / w)
            ch, cw = min(h, max(1, round(H / s))), min(w, max(1, round(W / s)))
            return ((h - ch) // 2, (w - cw) // 2, ch, cw), (H, W), (0, 0, 0, 0)
        s = min(H / h, W / w)
        nh, nw = min(H, max(1, round(h * s))), min(W, max(1, round(w * s)))
        top, left = (H - nh) // 2, (W - nw) // 2
        return (0, 0, h, w), (nh, nw), (left, W - nw - left, top, H - nh - top)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        (top, left, ch, cw), (nh, nw), (pad_left, _, pad_top, _) = self.plan(h, w)
        x = img[..., top:top + ch, left:left + cw]
        in_8_bits = x.device.type == "cpu"  # see the module docstring
        if in_8_bits:
            x = to_uint8(x)
        if (nh, nw) != (ch, cw):
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        if not in_8_bits:
            x = to_uint8(x)
        if (nh, nw) == (self.height, self.width):
            return x
        n, c = x.shape[:2]
        canvas = torch.zeros((n, self.height, self.width, c), dtype=torch.uint8, device=x.device)  # black bars
        canvas = canvas.permute(0, 3, 1, 2)
        canvas[..., pad_top:pad_top + nh, pad_left:pad_left + nw] = x
        return canvas

    def __repr__(self) -> str:
        return f"FrameResize({self.width}x{self.height}, {self.fit})"


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator pixels [N, C, H, W] in [-1, 1] -> uint8, channels-last, on the same device.

    One new buffer, already in height x width x channel order, then in-place arithmetic: a chain of
    out-of-place ops on a 1024 px frame costs several times as much (a new 12 MB tensor per op)."""
    n, c, h, w = img.shape
    x = torch.empty((n, h, w, c), dtype=img.dtype, device=img.device).copy_(img.permute(0, 2, 3, 1))
    x.add_(1).mul_(127.5).clamp_(0, 255).round_()
    return x.to(torch.uint8).permute(0, 3, 1, 2)                     # [N, C, H, W] view of NHWC memory


def frame_upscaler(path: str, frame_size: int, device: str | torch.device = "cpu"):
    """The Real-ESRGAN weights at ``path`` as the ``upscale`` stage for frames of ``frame_size`` px."""
    from livesound.models.realesrgan import FrameUpscaler, load_upscaler

    return FrameUpscaler(load_upscaler(path, device=device), frame_size).eval()
