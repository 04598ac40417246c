"""Files livesound writes, all through one door: a temporary name in the same folder, then a rename.

A kill, a full disk, a crash or a power loss at any moment leaves either the previous file or the new one, never
half of one (the file and its folder are synced before and after the rename). Used by every part (weights, offline
results, rig presets, benchmarks, exporters), so it belongs to none.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` (same folder, same disk).

    The file gets the permissions a plain ``open`` would give it (0666 less the umask): ``mkstemp`` alone
    would leave results readable by their owner only.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        _fsync(tmp)            # the bytes reach the disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)        # and the rename itself survives a power loss
    return path


def _fsync(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _read_umask() -> int:
    # Read once at import, while no other thread can create a file with the briefly cleared mask.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes(path: Path | str, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path | str, obj: Any, indent: int = 2) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=indent) + "\n"))


def write_npy(path: Path | str, arr: np.ndarray) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # an open file: np.save would add .npy to a bare temporary name
            np.save(f, arr)

    return atomic_write(path, write)


def save_png(img: np.ndarray, path: Path | str) -> Path:
    """An [H, W, 3] (or [H, W, 1]) uint8 image as a PNG."""
    from PIL import Image

    image = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
