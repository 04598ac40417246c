"""The generator's own arithmetic, and this machine's fp32 peak, to report a fraction of peak.

``generator_flops`` counts the network's work as the fast-generator issue defines it, not what an
implementation executes. Per image, multiply-adds x 2 of:
- every modulated 3x3 convolution at the resolution it is computed at: ``in * out * 9 * H * W * 2``; the
  first convolution of each block from 8 px on is a stride-2 transposed convolution, counted at its INPUT
  resolution (``in * out * 9 * H_in * W_in * 2``: each input pixel meets the 3x3 kernel once);
- every ToRGB 1x1 convolution: ``in * img_channels * H * W * 2``;
- every modulation (affine) linear layer, convolutions' and ToRGBs' alike: ``w_dim * in * 2``;
- every demodulation: ``styles^2 @ sum_k(weight^2)^T``, ``in * out * 2`` (the weight sums are fixed by the
  checkpoint and not counted);
- the mapping network's linear layers, once per image (``in * out * 2`` each, the class embedding too).
Not counted: the 4x4 FIR blur after each transposed convolution and the skip path's FIR upsampling of the
image (an implementation may fold the blur into the convolution), and element-wise work (bias, noise,
activation, scaling by styles, pixel norm, truncation). For a 256 px, channel-multiplier-1 generator in
rosinality's channel table this comes to 29.8 GFLOP, 99.8% of it in the 3x3 convolutions.

``measure_peak_gflops`` measures the peak the same way a benchmark measures anything: best of several runs of
a large fp32 matmul and of a 3x3 convolution with the given number of torch threads.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def generator_flops(cfg) -> dict:
    """Floating-point operations of one image (``cfg``: a ``GeneratorConfig``), by kind and by layer.

    Returns ``{"total", "gflop", "parts": {kind: flops}, "layers": [{"name", "resolution", "flops"}]}``.
    """
    ch, w_dim, rgb = cfg.channels, cfg.w_dim, cfg.img_channels
    layers: list[dict] = []
    parts = {"conv3x3": 0, "conv3x3_up": 0, "torgb": 0, "affine": 0, "demod": 0, "mapping": 0}

    def add(kind: str, name: str, res: int, flops: int) -> None:
        parts[kind] += flops
        layers.append({"name": name, "kind": kind, "resolution": res, "flops": flops})

    def modconv(name: str, cin: int, cout: int, res: int, up: bool) -> None:
        add("affine", f"{name}.affine", res, w_dim * cin * 2)
        add("demod", f"{name}.demod", res, cin * cout * 2)
        if up:  # transposed stride-2 3x3, at its input resolution
            add("conv3x3_up", name, res, cin * cout * 9 * (res // 2) ** 2 * 2)
        else:
            add("conv3x3", name, res, cin * cout * 9 * res * res * 2)

    def torgb(name: str, cin: int, res: int) -> None:
        add("affine", f"{name}.affine", res, w_dim * cin * 2)
        add("torgb", name, res, cin * rgb * res * res * 2)

    embed = w_dim if cfg.c_dim > 0 else 0
    if cfg.c_dim > 0:
        add("mapping", "mapping.embed", 0, cfg.c_dim * embed * 2)
    dims = [cfg.z_dim + embed] + [w_dim] * cfg.mapping_layers
    for i in range(cfg.mapping_layers):
        add("mapping", f"mapping.{i}", 0, dims[i] * dims[i + 1] * 2)

    modconv("b4.conv", ch[0], ch[0], 4, up=False)
    torgb("b4.torgb", ch[0], 4)
    for b in range(1, cfg.num_blocks):
        res = 4 * 2**b
        modconv(f"b{res}.conv0", ch[b - 1], ch[b], res, up=True)
        modconv(f"b{res}.conv1", ch[b], ch[b], res, up=False)
        torgb(f"b{res}.torgb", ch[b], res)
    total = sum(parts.values())
    return {"total": total, "gflop": total / 1e9, "parts": parts, "layers": layers}


def _best_gflops(fn, flops: float, seconds: float, min_runs: int = 3) -> float:
    """Best rate of ``fn`` over at least ``min_runs`` runs and about ``seconds`` (after one warm-up run)."""
    fn()
    best, runs, t_end = float("inf"), 0, time.perf_counter() + seconds
    while runs < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return flops / best / 1e9


def measure_peak_gflops(threads: int, seconds: float = 2.0, matmul_n: int = 2048,
                        conv_shape: tuple[int, int, int, int] = (1, 256, 64, 64), conv_out: int = 256) -> dict:
    """This machine's fp32 GFLOP/s with ``threads`` torch threads: an ``n x n @ n x n`` matmul and a 3x3
    convolution ``conv_shape -> conv_out`` channels (padding 1), each best of runs over ``seconds``.

    ``peak_gflops`` is the larger of the two. torch's thread count is restored afterwards.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(matmul_n, matmul_n, generator=g), torch.randn(matmul_n, matmul_n, generator=g)
        out = torch.empty(matmul_n, matmul_n)
        mm = _best_gflops(lambda: torch.mm(a, b, out=out), 2.0 * matmul_n**3, seconds)
        n, cin, h, w = conv_shape
        x, k = torch.randn(*conv_shape, generator=g), torch.randn(conv_out, cin, 3, 3, generator=g)
        with torch.inference_mode():
            conv = _best_gflops(lambda: F.conv2d(x, k, padding=1), 2.0 * n * cin * conv_out * 9 * h * w, seconds)
    finally:
        torch.set_num_threads(before)
    return {"peak_gflops": max(mm, conv), "matmul_gflops": mm, "conv_gflops": conv, "peak_threads": threads,
            "peak_kernels": {"matmul": [matmul_n, matmul_n, matmul_n], "conv3x3": [*conv_shape, conv_out]}}
