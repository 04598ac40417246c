"""The generator's CPU fast paths as one switch: which ones, applied once, and what each is worth.

``benchmarks/bench_generator_techniques.py`` weighs each technique on its own and cumulatively; the ones that
won there are the defaults of ``FastPaths`` and are what ``livesound bench --stages generator`` and the live
engine run (``torch.compile`` is a backend: `livesound.live.backends.torch_stage.compile_synthesis`). Measured
(process CPU time per 256 px frame, 1 thread, cm 1): fused epilogue -4 %, channels-last -5 %, both -12 %; the folded FIR +50 % (a stride-2 transposed 3x3 followed by the 4x4 blur becomes a 6x6
kernel: 4x the multiply-adds of the upsampling convolutions, which the cheap depthwise blur never cost), so
it stays an option, off. ``livesound.models.stylegan2`` documents the arithmetic of each; every one keeps
parity with the plain path (``tests/test_fast_generator.py``).

Heap retention is a process setting, not a model one: glibc returns every freed block above its mmap
threshold (at most 32 MiB) to the kernel, so each frame's large activations fault their pages in afresh.
Raising the threshold and the trim threshold keeps freed blocks in the heap for the next frame: the
"preallocated buffers" of the issue, without rewriting every op as ``out=``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from dataclasses import asdict, dataclass

log = logging.getLogger("livesound")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)


@dataclass
class FastPaths:
    fused_act: bool = True        # bias + const noise + gain + leaky ReLU as one multiply-add and one in-place op
    channels_last: bool = True    # NHWC memory
    fold_fir: bool = False        # FIR folded into the upsampling conv: 4x its multiply-adds, slower on CPUs
    retain_heap: bool = False     # keep freed activation memory in the heap between frames (glibc only)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def plain(cls) -> "FastPaths":
        return cls(fused_act=False, channels_last=False, fold_fir=False, retain_heap=False)


def apply_fast_paths(G, paths: FastPaths | None = None):
    """Switch ``G``'s synthesis network to ``paths`` (default: the measured winners); returns ``G``."""
    paths = paths or FastPaths()
    G.synthesis.set_fast_paths(fold_fir=paths.fold_fir, fused_act=paths.fused_act,
                               channels_last=paths.channels_last)
    if paths.retain_heap:
        retain_freed_memory()
    return G


def retain_freed_memory(bytes_: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``bytes_`` in the heap (see the module docstring).

    Process-wide and lasting; False (and nothing changed) where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(min(bytes_, 2**31 - 1))) == 1
    ok = ok and mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(2 * bytes_, 2**31 - 1))) == 1
    if not ok:
        log.info("livesound: mallopt refused the heap retention settings; left as they were")
    return ok
