"""Read NVIDIA network pickles (StyleGAN2-ADA / StyleGAN3 ``.pkl``) as plain data, running no code from them.

NVIDIA pickles rebuild their modules with ``torch_utils.persistence._reconstruct_persistent_obj(meta)``,
which executes the source code stored in ``meta["module_src"]``. Here that name resolves to a function that
returns a ``PersistentObject`` record of the class name and the module's ``__dict__`` instead; the source is
kept as an inert string and never compiled. Every other global the pickle names must be on a short
allow-list of data constructors (tensors, storages, ordered dicts, NumPy dtypes and scalars, EasyDict);
anything else (``os.system``, ``builtins.eval``, arbitrary classes) stops loading at once. Each tensor's
shape, strides and offset are checked against its storage before the tensor is built, and the tensors' bytes
together against the pickle's size (`livesound.weights.untrusted.layout_problem`), so a stride-0 or overlapping
view cannot describe a giant that a later copy would materialise.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from livesound.weights.untrusted import TENSOR_SLACK_BYTES, layout_problem, prescan_pickle


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""
    def __init__(self, module: str, name: str):
        super().__init__(f"refused to load {module}.{name}: not on the allow-list of data constructors "
                         "(the file may try to run code)")
        self.global_name = f"{module}.{name}"


class TensorSizeError(pickle.UnpicklingError):
    """A tensor whose layout or size the pickle's bytes cannot back (checked before it is built)."""


@dataclass
class PersistentObject:
    """What NVIDIA's persistence would have rebuilt, as data: its class name and its ``__dict__``."""
    class_name: str
    state: dict
    module_src: str = field(repr=False, default="")

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and persistent buffers of this module and its children, by dotted name."""
        out: dict[str, torch.Tensor] = {}
        skip = self.state.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, t in (self.state.get(group) or {}).items():
                if isinstance(t, torch.Tensor) and not (group == "_buffers" and name in skip):
                    out[prefix + name] = t
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{name}."))
        return out

    def child(self, name: str) -> "PersistentObject | None":
        c = (self.state.get("_modules") or {}).get(name)
        return c if isinstance(c, PersistentObject) else None


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a dict that also reads keys as attributes."""
    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object record of an unknown type")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("persistent object state is not a dict")
    return PersistentObject(str(meta.get("class_name")), state, str(meta.get("module_src") or ""))


def _load_from_bytes(b: bytes):
    # NB: torch's own version calls torch.load(weights_only=False) on these bytes; never do that.
    return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return data  # a parameter's value is all a loader needs


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("NumPy scalar of an object dtype refused")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(obj, align=False, copy=False):
    dt = np.dtype(obj)
    if dt.hasobject:
        raise pickle.UnpicklingError("NumPy object dtype refused")
    return dt


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol 2 pickles spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode arguments")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("torch", "device"): torch.device,
    ("_codecs", "encode"): _codecs_encode,
}
_TORCH_DTYPES = {"float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"}


class RestrictedUnpickler(pickle.Unpickler):
    """``budget_bytes``: the most tensor data the pickle may describe (its own size: values are stored once)."""

    def __init__(self, file, budget_bytes: int):
        super().__init__(file)
        self.budget_bytes, self.tensor_bytes = budget_bytes, 0

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 pickles written by Python 3 use Python 2's module names (__builtin__, copy_reg).
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module == "numpy.dtypes" and name.endswith("DType") and name != "ObjectDType":
            import numpy.dtypes

            return getattr(numpy.dtypes, name)
        raise UnsafePickleError(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not used by network pickles")

    def _rebuild_tensor(self, storage, storage_offset, size, stride, *rest):
        """torch's ``_rebuild_tensor_v2``, after the layout and the running total have been checked."""
        if not isinstance(storage, torch.storage.TypedStorage):
            raise pickle.UnpicklingError(f"a tensor over a {type(storage).__name__}, not a storage")
        itemsize = storage.dtype.itemsize  # (TypedStorage.size() and element_size() warn of deprecation)
        problem = layout_problem(size, stride, storage_offset, storage._untyped_storage.nbytes() // itemsize)
        if problem:
            raise TensorSizeError(f"refused a tensor that lies about its size: {problem}")
        numel = 1
        for n in size:
            numel *= int(n)
        self.tensor_bytes += numel * itemsize
        if self.tensor_bytes > self.budget_bytes:
            raise TensorSizeError(f"its tensors describe more than {self.tensor_bytes} bytes of values, "
                                         f"more than the file's {self.budget_bytes - TENSOR_SLACK_BYTES} bytes hold")
        return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *rest)


def safe_load_pickle(f) -> Any:
    """Unpickle a NVIDIA network pickle from a binary file object; raise on anything not allowed.

    The whole pickle is read (its size is the file's) and pre-scanned first: CPython allocates the length a
    bytes opcode declares before reading it, so a 100 GB declaration must be refused before unpickling."""

    data = f.read()
    prescan_pickle(data)
    return RestrictedUnpickler(io.BytesIO(data), len(data) + TENSOR_SLACK_BYTES).load()
