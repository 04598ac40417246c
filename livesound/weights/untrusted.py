"""Checks that run on an untrusted weights file before anything it declares is allocated.

A hostile or corrupt file can declare sizes it does not hold: a pickle opcode announcing a 100 GB byte string,
a zip record claiming terabytes, a config asking for a 2^20-pixel generator. Readers that trust the declaration
allocate first and fail later (or never). Each check here compares what the file declares with the bytes it
actually has, or builds the model on PyTorch's ``meta`` device (shapes only, no memory) and compares its tensor
shapes with the file's, so the real model is only built when the file's own tensors can fill it.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Collection

import torch

from livesound.weights.checkpoint import CheckpointError

MAX_PICKLE_STACK = 50_000  # items on the unpickler's stack at once; network pickles stay near a thousand


def prescan_pickle(data: bytes) -> None:
    """Walk every opcode of ``data`` without building anything: each length the pickle declares must fit in
    the bytes that follow it, and the unpickler's stack (which deep nesting grows) stays under
    MAX_PICKLE_STACK. Raises ValueError."""
    stack, marks = 0, []
    try:
        for op, _arg, _pos in pickletools.genops(io.BytesIO(data)):
            before = op.stack_before
            if pickletools.markobject in op.stack_after:   # MARK
                marks.append(stack)
                continue
            if pickletools.stackslice in before:          # pops everything down to the newest mark
                if not marks:
                    raise ValueError(f"{op.name} without a MARK")
                stack = marks.pop()
                before = [x for x in before if x not in (pickletools.markobject, pickletools.stackslice)]
            stack = stack - len(before) + len(op.stack_after)
            if stack + len(marks) > MAX_PICKLE_STACK:
                raise ValueError(f"nested deeper than {MAX_PICKLE_STACK} items")
    except ValueError as e:  # pickletools reports a length beyond the data, an unknown opcode, a missing STOP
        raise ValueError(f"malformed pickle ({e})") from None


def check_torch_zip(path: Path) -> None:
    """A torch zip checkpoint's records must be stored (not compressed) and lie inside the file."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
        raise CheckpointError(path, f"corrupt torch zip file ({e})") from None
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise CheckpointError(path, f"record {info.filename!r} is compressed; torch never writes that")
        if info.header_offset + info.file_size > size:
            raise CheckpointError(path, f"record {info.filename!r} declares {info.file_size} bytes, more than "
                                        f"the file's {size}")


def check_shapes_before_building(build: Callable[[], torch.nn.Module], state: dict[str, torch.Tensor],
                                 source: Path | str, optional: Collection[str] = ()) -> None:
    """Build the model on the meta device (no memory) and refuse the file unless every tensor the model needs
    is in ``state`` with the same shape: so a config declaring a huge model cannot allocate it. Tensors named
    in ``optional`` may be absent (the caller fills them)."""
    try:
        with torch.device("meta"), _registration_budget(4 * len(state) + 256):
            expected = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    except _TooManyParts as e:
        raise CheckpointError(source, f"the config declares a model far larger than the file ({e})") from None
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, OverflowError, IndexError, KeyError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(source, f"the config does not describe a buildable model ({type(e).__name__}: "
                                      f"{first})") from None
    missing = [k for k in expected if k not in state and k not in optional]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(s)})" for k, s in expected.items()
             if k in state and tuple(state[k].shape) != s]
    if missing or wrong:
        what = (f"missing tensors {', '.join(missing[:4])}" if missing else "") + \
               ("; " if missing and wrong else "") + (f"wrong shapes {', '.join(wrong[:4])}" if wrong else "")
        raise CheckpointError(source, f"does not match the architecture: {what}")


class _TooManyParts(Exception):
    pass


@contextmanager
def _registration_budget(limit: int):
    """Abort building once more than ``limit`` modules, parameters and buffers were registered: even on the meta
    device, a config asking for a million layers would take minutes to build, and the file cannot fill them."""
    from torch.nn.modules import module as M

    count = [0]

    def hook(*_args):
        count[0] += 1
        if count[0] > limit:
            raise _TooManyParts(f"more than {limit} modules and tensors for {limit // 4 - 64} tensors in the file")

    handles = [M.register_module_module_registration_hook(hook), M.register_module_parameter_registration_hook(hook),
               M.register_module_buffer_registration_hook(hook)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
