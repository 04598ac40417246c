"""StyleGAN2 synthesis to ONNX: w+ [N, num_ws, w_dim] -> image [N, 3, R, R], stored noise baked in.

Input ``ws`` and output ``image`` have a dynamic batch axis. Noise is the checkpoint's constant noise
(an ONNX RandomNormal would be unseeded in TensorRT). Parity with the torch module is checked in ONNX
Runtime right after export, and the export fails loudly above tolerance.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_NAME, OUTPUT_NAME = "ws", "image"


class _ConstNoiseSynthesis(nn.Module):
    def __init__(self, synthesis: nn.Module):
        super().__init__()
        self.synthesis = synthesis

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, noise_mode="const")


def export_synthesis(G, path: str | Path, opset: int = 17, atol: float = 1e-3) -> dict:
    """Write ``path`` and return the parity figures measured in ONNX Runtime (CPU)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _ConstNoiseSynthesis(G.synthesis).eval()
    example = torch.randn(2, G.num_ws, G.w_dim)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")  # renamed into place once checked
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Shape asserts read sizes as Python values while tracing; the batch axis stays dynamic regardless.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, (example,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              opset_version=opset, dynamo=False, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
        report = check_parity(module, tmp, G.num_ws, G.w_dim, atol)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def check_parity(module: nn.Module, path: Path, num_ws: int, w_dim: int, atol: float) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst_abs, worst_rel = 0.0, 0.0
    for batch in (1, 3):
        ws = torch.randn(batch, num_ws, w_dim, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            want = module(ws).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: ws.numpy()})[0]
        err = np.abs(got - want)
        worst_abs = max(worst_abs, float(err.max()))
        worst_rel = max(worst_rel, float(err.max() / (np.abs(want).max() + 1e-12)))
    if not worst_abs <= atol:
        raise RuntimeError(f"{path}: ONNX Runtime output differs from torch by {worst_abs:.3g} (> {atol})")
    return {"max_abs_error": worst_abs, "max_rel_error": worst_rel}
