"""Checks that run on an untrusted weights file before anything it declares is allocated.

A hostile or corrupt file can declare sizes it does not hold: a pickle opcode announcing a 100 GB byte string,
a zip record claiming terabytes, a config asking for a 2^20-pixel generator, a tensor whose shape and strides
describe a giant over four bytes of storage (``zeros(1).expand(N, N)`` pickles as stride 0, and every copy of it
is N x N). Readers that trust the declaration allocate first and fail later (or never). Each check here compares
what the file declares with the bytes it actually has, or builds the model on PyTorch's ``meta`` device (shapes
only, no memory) and compares its tensor shapes with the file's, so the real model is only built when the file's
own tensors can fill it.
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
# Bytes of tensor data a file may describe beyond its own size: headers and alignment aside, a tensor's values
# are stored once, so every distinct tensor together fits in the file.
TENSOR_SLACK_BYTES = 4096


def layout_problem(shape, stride, offset: int, storage_elems: int) -> str | None:
    """Why a tensor of ``shape``/``stride``/``offset`` over ``storage_elems`` elements is refused, or None.

    Refused: a stride of 0 on a dimension longer than 1 (one stored value repeated), strides that make two
    indices share an element (a sparse file value read many times), and an extent beyond the storage. Checked on
    plain integers, before any tensor exists."""
    try:
        shape, stride, offset = [int(s) for s in shape], [int(s) for s in stride], int(offset)
    except (TypeError, ValueError):
        return "shape, strides and offset must be integers"
    if len(shape) != len(stride) or any(s < 0 for s in (*shape, *stride)) or offset < 0 or len(shape) > 16:
        return f"inconsistent layout (shape {shape[:16]}, strides {stride[:16]}, offset {offset})"
    if 0 in shape:
        return None
    reach = 0  # the furthest element reached by the dimensions seen so far, smallest stride first
    for size, st in sorted(((n, st) for n, st in zip(shape, stride) if n > 1), key=lambda d: d[1]):
        if st == 0:
            return f"stride 0 repeats one stored value {size} times (shape {shape})"
        if st <= reach:
            return f"overlapping strides {stride} for shape {shape} (elements are read more than once)"
        reach += (size - 1) * st
    if offset + reach + 1 > storage_elems:
        return (f"shape {shape} with strides {stride} needs {offset + reach + 1} elements, its storage holds "
                f"{storage_elems}")
    return None


def check_loaded_tensors(obj, source: Path | str, budget_bytes: int) -> None:
    """Every tensor in a ``torch.load`` result (dicts, lists and tuples walked) must have an honest layout, and
    their distinct views together at most ``budget_bytes``: a file cannot hold more values than bytes."""
    total, seen, stack = 0, set(), [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, torch.Tensor):
            key = (item.untyped_storage().data_ptr(), item.storage_offset(), tuple(item.shape), item.stride(),
                   item.dtype)
            if key in seen:
                continue
            seen.add(key)
            problem = layout_problem(item.shape, item.stride(), item.storage_offset(),
                                     item.untyped_storage().nbytes() // max(1, item.element_size()))
            if problem:
                raise CheckpointError(source, f"refused a tensor that lies about its size: {problem}")
            total += item.numel() * item.element_size()
            if total > budget_bytes:
                raise CheckpointError(source, f"its tensors describe more than {total} bytes of values, more "
                                              f"than the file's {budget_bytes - TENSOR_SLACK_BYTES} bytes hold")


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
