"""StyleCLIP's global-direction files (Patashnik et al. 2021, section 6), read as untrusted arrays.

What StyleCLIP publishes and writes for a generator (its ``global_directions/`` code, read for these facts):

- ``npy/<dataset>/fs3.npy``: per style channel, its unit CLIP image direction, ``[channels, 512]`` float32.
  The channels are the modulated convolutions' styles in layer order (4x4 conv, then conv0 and conv1 of each
  later resolution), without the ToRGB styles: 6048 for the FFHQ 1024 generator (StyleSpace's 9088 less its
  3040 ToRGB channels). Read with ``np.load(allow_pickle=False)``: a pickled object array is refused.
- ``npy/<dataset>/S_mean_std``: ``[means, deviations]``, each a list with one float32 array per style layer
  in StyleGAN2's style order *with* the ToRGB layers (conv, torgb at 4 px; conv0, conv1, torgb after: 26 for
  FFHQ 1024), computed over 100,000 mapped latents. StyleCLIP writes it with ``pickle.dump``. It is never
  unpickled here: ``read_style_stats`` walks its opcodes (``pickletools.genops`` parses, it runs nothing) and
  accepts only lists and tuples of NumPy arrays of a plain numeric dtype built by NumPy's own array
  reconstructors; any other global, opcode or object dtype is refused by name.

Both readers check every shape against the generator's style layout and raise ``CheckpointError`` (one line,
naming the file) on anything else.
"""

from __future__ import annotations

import io
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from livesound.weights.checkpoint import CheckpointError
from livesound.weights.untrusted import prescan_pickle

FS3_NAME, STATS_NAME = "fs3.npy", "S_mean_std"
MAX_STATS_BYTES = 64 * 2**20   # 9088 float32 channels twice is ~73 kB; anything this large is not the file


def read_fs3(path: Path | str, channels: int, clip_dim: int) -> np.ndarray:
    """``fs3.npy`` as float32 ``[channels, clip_dim]`` with unit rows; anything else raises CheckpointError."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise CheckpointError(path, "holds pickled Python objects, not a numeric array; refused") from None
        raise CheckpointError(path, f"not a .npy array ({e})") from None
    except OSError as e:
        raise CheckpointError(path, f"cannot read ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
        raise CheckpointError(path, f"expected a float array, found dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.shape != (channels, clip_dim):
        raise CheckpointError(path, f"shape {list(arr.shape)} does not fit this generator and CLIP: expected "
                                    f"[{channels}, {clip_dim}] (style channels without ToRGB, CLIP dims)")
    if not np.isfinite(arr).all():
        raise CheckpointError(path, "holds NaN or inf")
    arr = arr.astype(np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)


def read_style_stats(path: Path | str, layer_widths: list[int], conv_layers: list[int]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``S_mean_std`` -> (means, deviations) of the convolutions' style channels, each float32 ``[channels]``.

    ``layer_widths``: the width of every style layer in StyleGAN2's order, ToRGB included; ``conv_layers``:
    the indices of the convolutions among them (the ones ``fs3.npy`` covers), in order.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_STATS_BYTES:
            raise CheckpointError(path, f"{path.stat().st_size} bytes is far too large for style statistics")
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, f"cannot read ({e})") from None
    try:
        prescan_pickle(data)
        obj = _ArrayPickleReader(data).read()
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise CheckpointError(path, f"not StyleCLIP's style statistics ({e})") from None
    if isinstance(obj, (list, tuple)) and len(obj) == 3:   # the torch port's (names, means, deviations)
        obj = obj[1:]
    if not (isinstance(obj, (list, tuple)) and len(obj) == 2 and all(isinstance(x, list) for x in obj)):
        raise CheckpointError(path, "expected [means, deviations], two lists with one array per style layer")
    stats = []
    for what, layers in zip(("means", "deviations"), obj):
        if len(layers) != len(layer_widths):
            raise CheckpointError(path, f"{len(layers)} {what} layers; this generator has {len(layer_widths)} "
                                        "style layers (ToRGB included)")
        for i, (a, n) in enumerate(zip(layers, layer_widths)):
            if not isinstance(a, np.ndarray) or a.shape != (n,):
                shape = list(a.shape) if isinstance(a, np.ndarray) else type(a).__name__
                raise CheckpointError(path, f"{what} of style layer {i}: {shape}, expected [{n}]")
        flat = np.concatenate([layers[i] for i in conv_layers]).astype(np.float32)
        if not np.isfinite(flat).all():
            raise CheckpointError(path, f"{what} hold NaN or inf")
        stats.append(flat)
    if (stats[1] < 0).any():
        raise CheckpointError(path, "negative deviations")
    return stats[0], stats[1]


# ------------------------------------------------------------------------------------------ the opcode walker

_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}
_ALLOWED = _RECONSTRUCT | _FROMBUFFER | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _Global:
    def __init__(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise ValueError(f"refused global {module}.{name} (only NumPy arrays are read)")
        self.key = (module, name)


class _PendingArray:
    """``_reconstruct(ndarray, ...)``'s empty array, filled by the BUILD that follows it."""
    array: np.ndarray | None = None


class _Dtype:
    def __init__(self, spec: Any):
        if not isinstance(spec, str):
            raise ValueError("dtype given by a non-string")
        dt = np.dtype(spec)
        if dt.hasobject or dt.kind not in "fiub":
            raise ValueError(f"refused dtype {spec!r} (only plain numbers)")
        self.dtype = dt


class _ArrayPickleReader:
    """Interprets the few pickle opcodes that lists of NumPy arrays use, building arrays from their bytes.
    Nothing is called but ``np.dtype`` on a string and ``np.frombuffer`` on bytes."""

    _MARK = object()

    def __init__(self, data: bytes):
        self.data = data
        self.stack: list = []
        self.memo: dict[int, Any] = {}

    def read(self) -> Any:
        for op, arg, _pos in pickletools.genops(io.BytesIO(self.data)):
            name = op.name
            if name == "STOP":
                return _resolve(self.stack.pop())
            if name in _PUSH:
                self.stack.append(arg if _PUSH[name] is _ARG else _PUSH[name])
            elif name in _STRUCTURE:
                _STRUCTURE[name](self, arg)
            else:
                raise ValueError(f"refused pickle opcode {name}")
        raise ValueError("no STOP opcode")

    def pop_mark(self) -> list:
        items = []
        while (x := self.stack.pop()) is not self._MARK:
            items.append(x)
        return items[::-1]

    def pop_n(self, n: int) -> tuple:
        items = tuple(self.stack[len(self.stack) - n:])
        del self.stack[len(self.stack) - n:]
        return items

    def append(self, items: list) -> None:
        if not isinstance(self.stack[-1], list):
            raise ValueError("APPEND to something other than a list")
        self.stack[-1].extend(items)

    def global_(self, module: Any, name: Any) -> None:
        if not (isinstance(module, str) and isinstance(name, str)):
            raise ValueError("a global named by non-strings")
        self.stack.append(_Global(module, name))

    def reduce(self) -> None:
        args, fn = self.stack.pop(), self.stack.pop()
        if not isinstance(fn, _Global) or not isinstance(args, tuple):
            raise ValueError("a call of something that is not an allowed NumPy constructor")
        if fn.key == ("numpy", "dtype"):
            self.stack.append(_Dtype(args[0] if args else None))
        elif fn.key in _RECONSTRUCT:
            if not (args and isinstance(args[0], _Global) and args[0].key == ("numpy", "ndarray")):
                raise ValueError("_reconstruct of something other than ndarray")
            self.stack.append(_PendingArray())
        elif fn.key in _FROMBUFFER:   # protocol 5: (buffer, dtype, shape, order)
            if len(args) != 4:
                raise ValueError("unexpected _frombuffer arguments")
            buf, dt, shape, order = args
            self.stack.append(_array(buf, dt, shape, order == "F"))
        else:   # _codecs.encode(text, "latin1"): how protocol 2 spells bytes
            if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
                raise ValueError("unexpected _codecs.encode arguments")
            self.stack.append(args[0].encode("latin1"))

    def build(self) -> None:
        state, target = self.stack.pop(), self.stack[-1]
        if isinstance(target, _Dtype):   # (version, byte order, ...): only the byte order matters
            if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">"):
                target.dtype = target.dtype.newbyteorder(state[1])
        elif isinstance(target, _PendingArray):
            if not (isinstance(state, tuple) and len(state) == 5):
                raise ValueError("array state of an unknown form")
            _version, shape, dt, fortran, raw = state
            target.array = _array(raw, dt, shape, bool(fortran))
        else:
            raise ValueError("BUILD on something other than an array or a dtype")


_ARG = object()
# Opcodes that push a constant, or (_ARG) their own argument: numbers, strings, bytes.
_PUSH = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False, "EMPTY_TUPLE": (), "BININT": _ARG, "BININT1": _ARG,
         "BININT2": _ARG, "SHORT_BINUNICODE": _ARG, "BINUNICODE": _ARG, "BINUNICODE8": _ARG,
         "SHORT_BINBYTES": _ARG, "BINBYTES": _ARG, "BINBYTES8": _ARG, "BYTEARRAY8": _ARG}
_STRUCTURE = {
    "PROTO": lambda r, a: None,
    "FRAME": lambda r, a: None,
    "MARK": lambda r, a: r.stack.append(r._MARK),
    "EMPTY_LIST": lambda r, a: r.stack.append([]),
    "LIST": lambda r, a: r.stack.append(r.pop_mark()),
    "TUPLE": lambda r, a: r.stack.append(tuple(r.pop_mark())),
    "TUPLE1": lambda r, a: r.stack.append(r.pop_n(1)),
    "TUPLE2": lambda r, a: r.stack.append(r.pop_n(2)),
    "TUPLE3": lambda r, a: r.stack.append(r.pop_n(3)),
    "APPEND": lambda r, a: r.append([r.stack.pop()]),
    "APPENDS": lambda r, a: r.append(r.pop_mark()),
    "BINPUT": lambda r, a: r.memo.__setitem__(a, r.stack[-1]),
    "LONG_BINPUT": lambda r, a: r.memo.__setitem__(a, r.stack[-1]),
    "MEMOIZE": lambda r, a: r.memo.__setitem__(len(r.memo), r.stack[-1]),
    "BINGET": lambda r, a: r.stack.append(r.memo[a]),
    "LONG_BINGET": lambda r, a: r.stack.append(r.memo[a]),
    "GLOBAL": lambda r, a: r.global_(*a.split(" ", 1)),
    "STACK_GLOBAL": lambda r, a: r.global_(*reversed((r.stack.pop(), r.stack.pop()))),
    "REDUCE": lambda r, a: r.reduce(),
    "BUILD": lambda r, a: r.build(),
}


def _array(raw: Any, dt: Any, shape: Any, fortran: bool) -> np.ndarray:
    if not isinstance(dt, _Dtype):
        raise ValueError("array without a plain dtype")
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError("array data is not bytes")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ValueError("array shape is not a tuple of sizes")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dt.dtype.itemsize != len(raw):
        raise ValueError(f"array of shape {list(shape)} declares {count} items but holds {len(raw)} bytes")
    return np.frombuffer(bytes(raw), dtype=dt.dtype).reshape(shape, order="F" if fortran else "C").copy()


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise ValueError("an array without its data")
        return obj.array
    if isinstance(obj, (_Global, _Dtype)):
        raise ValueError("a bare global or dtype where data was expected")
    if isinstance(obj, list):
        return [_resolve(x) for x in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(x) for x in obj)
    return obj
