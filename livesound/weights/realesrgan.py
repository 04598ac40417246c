"""Real-ESRGAN weight files read safely into plain data: the architecture's kind, its config and the tensors.

The public files (``RealESRGAN_x4plus.pth``, ``realesr-general-x4v3.pth``, ...) are ``torch.save``'d dicts holding
the state dict under ``params_ema`` (preferred, as Real-ESRGAN's own loader does) or ``params``. They are read with
``torch.load(weights_only=True)`` after the zip records are checked against the file's size, so a file that asks
to run code or to allocate what it does not hold is refused before anything from it runs. No config is stored in
these files: the layout is inferred from tensor names and shapes, and the model side
(``livesound.models.realesrgan.load_upscaler``) compares every shape on the meta device before building.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from pathlib import Path

import torch

from livesound.weights.checkpoint import CheckpointError
from livesound.weights.untrusted import check_torch_zip

STATE_KEYS = ("params_ema", "params")
# RRDB input channels over output channels -> scale: x2 and x1 pixel-unshuffle the input (4x, 16x channels).
_RRDB_SCALE = {1: 4, 4: 2, 16: 1}


def read_upscaler_checkpoint(path: Path | str) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """("rrdb" | "compact", config dict, state dict in the public names)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size < 8:
        raise CheckpointError(path, f"empty or truncated file ({path.stat().st_size} bytes)")
    state = _state_dict(path, _torch_load(path))
    try:
        if "conv_first.weight" in state:
            return "rrdb", _rrdb_layout(state), state
        if "body.0.weight" in state:
            return "compact", _compact_layout(path, state), state
    except (KeyError, IndexError, ValueError) as e:
        raise CheckpointError(path, f"unusable Real-ESRGAN layout ({type(e).__name__}: {e})") from None
    raise CheckpointError(path, "not a Real-ESRGAN generator (no conv_first.* (RRDB) or body.0.* (compact) "
                                f"tensors; found {', '.join(sorted(state)[:4]) or 'none'})")


def _torch_load(path: Path):
    if zipfile.is_zipfile(path):
        check_torch_zip(path)  # declared record sizes against the file's bytes, before torch reads any
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("\n")[0]
        raise CheckpointError(path, f"refused: the file asks to run code or build objects that are not plain "
                                    f"data ({first}); nothing from it was executed") from None
    except Exception as e:  # noqa: BLE001 - torch's reader on damaged bytes raises anything
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(path, f"truncated or corrupt torch file ({first})") from None


def _state_dict(path: Path, obj) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"expected a dict with 'params_ema' or 'params', found {type(obj).__name__}")
    sd = next((obj[k] for k in STATE_KEYS if k in obj), obj)  # a bare state dict is fine too
    if not isinstance(sd, dict):
        raise CheckpointError(path, f"'{next(k for k in STATE_KEYS if k in obj)}' is a {type(sd).__name__}, "
                                    "not a state dict")
    bad = [str(k) for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(path, f"entries that are not named tensors: {', '.join(bad[:4])}")
    return dict(sd)


def _rrdb_layout(sd: dict[str, torch.Tensor]) -> dict:
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    out_ch, ratio = int(last.shape[0]), first.shape[1] / last.shape[0]
    if ratio not in _RRDB_SCALE:
        raise ValueError(f"conv_first takes {first.shape[1]} channels for {out_ch} out: not x4 (equal), x2 (4x) "
                         "or x1 (16x)")
    return {"in_ch": out_ch, "out_ch": out_ch, "num_feat": int(first.shape[0]),
            "num_block": _count(sd, r"body\.(\d+)\.rdb1\.conv1\.weight"),
            "num_grow_ch": int(sd["body.0.rdb1.conv1.weight"].shape[0]), "scale": _RRDB_SCALE[int(ratio)]}


def _compact_layout(path: Path, sd: dict[str, torch.Tensor]) -> dict:
    convs = sorted(int(m.group(1)) for k, v in sd.items()
                   if (m := re.fullmatch(r"body\.(\d+)\.weight", k)) and v.ndim == 4)
    if convs != list(range(0, 2 * len(convs), 2)):
        raise ValueError(f"convolutions at body positions {convs[:6]}...; expected 0, 2, 4, ...")
    if "body.1.weight" not in sd:
        raise CheckpointError(path, "a compact layout without PReLU weights (ReLU / leaky ReLU variants) is "
                                    "not supported; realesr-general-x4v3 and realesr-animevideov3 use PReLU")
    first, last = sd["body.0.weight"], sd[f"body.{convs[-1]}.weight"]
    in_ch = int(first.shape[1])
    scale = math.isqrt(int(last.shape[0]) // in_ch)
    if scale < 1 or scale * scale * in_ch != last.shape[0]:
        raise ValueError(f"the last convolution makes {last.shape[0]} channels: not {in_ch} x scale^2")
    return {"in_ch": in_ch, "out_ch": in_ch, "num_feat": int(first.shape[0]), "num_conv": len(convs) - 2,
            "scale": scale}


def _count(sd: dict, pattern: str) -> int:
    """How many consecutive indices from 0 match ``pattern`` (its one group is the index)."""
    found = {int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))}
    n = 0
    while n in found:
        n += 1
    return n
