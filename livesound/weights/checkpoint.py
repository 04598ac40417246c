"""livesound's own weight format and the checks every loaded state dict goes through.

Own format: one ``.safetensors`` file whose header metadata carries ``livesound_kind`` (generator,
encoder, mapper, ...) and ``livesound_config`` (the model's typed config as JSON). safetensors holds only
tensors and strings, so reading it never runs code. Files are written to a temporary name and renamed
into place, so a kill mid-write leaves any previous file intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from livesound.files import atomic_write

FORMAT_VERSION = "1"


class CheckpointError(Exception):
    """A weights file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def save_own(path: Path | str, kind: str, config: dict, state: Mapping[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {"livesound_format": FORMAT_VERSION, "livesound_kind": kind,
            "livesound_config": json.dumps(config, sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def load_own(path: Path | str, kind: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read (config, state) from an own-format file of the given kind."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"unreadable safetensors file ({e})") from None
    found = meta.get("livesound_kind")
    if found is None or "livesound_config" not in meta:
        raise CheckpointError(path, "safetensors file without livesound metadata (kind and config); "
                                    "convert the original checkpoint with `livesound convert`")
    if found != kind:
        raise CheckpointError(path, f"holds a {found}, not a {kind}")
    try:
        config = json.loads(meta["livesound_config"])
    except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: a hostile, deeply nested config
        raise CheckpointError(path, f"config in the header is not valid JSON ({e})") from None
    return config, state


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: Path | str) -> None:
    """Copy ``state`` into ``module`` after checking that every name and shape matches exactly."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
             for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"missing tensors {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_short(wrong)}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        problems.append(f"non-finite values in {_short(bad)}")
    if problems:
        raise CheckpointError(source, "does not match the architecture: " + "; ".join(problems))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def _short(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
