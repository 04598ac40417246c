"""A lock-free single-producer single-consumer ring of float32 samples between capture and analysis.

The producer is the audio callback (or a file/synth thread): it must never wait, so ``write`` takes no lock
and allocates no sample memory. When the consumer falls more than ``capacity`` behind, the oldest samples
are overwritten, and that loss is counted (``overruns``, ``dropped_samples``), never silent.

Two ways to consume:
- ``read_latest(n)``: the newest n samples, for the live loop, which wants the current window and treats
  older audio as stale. It does not consume unless asked (``consume=True``).
- ``read(n)`` / ``read_available()``: every sample once, in order, for recording and file analysis.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Single-producer single-consumer ring of float32 samples, ``capacity`` samples long.

    Positions are absolute sample counts that only grow: ``_written`` (samples published by the producer),
    ``_writing`` (end of the block the producer is copying now) and ``_read`` (samples consumed). Sample i
    lives in slot ``i % capacity``. Each counter has one writer: the producer owns ``_written``,
    ``_writing`` and ``overruns``; the consumer owns ``_read`` and ``_skipped``.

    Memory ordering. Under CPython's GIL, storing an int attribute is a single bytecode, so the other thread
    sees either the old or the new value, and the GIL's release/acquire at every switch orders the stores of
    one thread as written. NumPy may release the GIL inside a large copy, so the two copies can run truly in
    parallel; the counters make that safe:
    - the producer stores ``_writing = end`` *before* copying a block and ``_written = end`` *after*, so a
      consumer that reads ``_written`` finds every sample below it fully in the buffer;
    - the consumer reads ``_written``, copies, then reads ``_writing``: if ``_writing - capacity`` passed the
      start of what it copied, the producer may have overwritten those slots during the copy, and the
      consumer discards the copy and retries (a seqlock-style check). Without overwrite (the consumer within
      ``capacity``) no retry ever happens.
    This argument relies on the GIL; a free-threaded CPython build would need real atomics.
    """

    def __init__(self, capacity: int):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=np.float32)
        self._written = 0
        self._writing = 0
        self._read = 0
        self._skipped = 0  # unread samples the consumer found overwritten and stepped over
        self.overruns = 0  # write calls that overwrote samples the consumer had not read

    # ------------------------------------------------------------------------------------------ producer

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` ``[n]`` float32. Never blocks; overwrites the oldest samples when full.

        NB: called from the audio thread. Pass float32 to keep it allocation-free (other dtypes are
        converted, which allocates). A block longer than ``capacity`` keeps its newest ``capacity`` samples.
        """
        x = np.asarray(block, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"block must be 1-D [n], got shape {x.shape}")
        n = x.shape[0]
        if n == 0:
            return
        cap = self.capacity
        w = self._written
        end = w + n
        unread_from = max(self._read, w - cap)  # older samples were already lost (and counted) before
        if end - cap > unread_from:
            self.overruns += 1
        if n > cap:
            x = x[n - cap:]
        self._writing = end
        self._copy_in(end - x.shape[0], x)
        self._written = end

    def _copy_in(self, pos: int, x: np.ndarray) -> None:
        start = pos % self.capacity
        first = min(x.shape[0], self.capacity - start)
        self._buf[start:start + first] = x[:first]
        if first < x.shape[0]:
            self._buf[:x.shape[0] - first] = x[first:]

    # ------------------------------------------------------------------------------------------ consumer

    @property
    def total_written(self) -> int:
        """Samples written since creation: a monotonic clock in samples (the live loop's time base)."""
        return self._written

    @property
    def available(self) -> int:
        """Samples ``read`` would return now (unread ones still in the buffer)."""
        return min(self._written - self._read, self.capacity)

    @property
    def dropped_samples(self) -> int:
        """Unread samples lost to overwriting, including those not yet stepped over by the consumer."""
        return self._skipped + max(0, self._written - self.capacity - self._read)

    def read_latest(self, n: int, out: np.ndarray | None = None, *, consume: bool = False) -> np.ndarray:
        """The newest ``n`` samples ``[n]``, oldest first; zero-filled at the front until n are written.

        Does not consume by default. ``consume=True`` marks everything written so far as read, which tells
        the overrun count that older samples were skipped on purpose: only a consumer that comes back more
        than ``capacity`` samples later then counts as fallen behind.
        """
        if not 0 <= n <= self.capacity:
            raise ValueError(f"n must be in [0, capacity={self.capacity}], got {n}")
        if out is None:
            out = np.empty(n, dtype=np.float32)
        elif out.shape != (n,) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 [{n}], got {out.dtype} {list(out.shape)}")
        while True:
            w = self._written
            have = min(n, w)
            out[:n - have] = 0.0
            self._copy_out(w - have, out[n - have:])
            if self._writing - self.capacity <= w - have:
                break
        if consume:
            self._advance(w)
        return out

    def read(self, n: int) -> np.ndarray:
        """Consume up to ``n`` samples in order ``[<=n]``; fewer (maybe none) if fewer are available."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self._read_upto(n)

    def read_available(self) -> np.ndarray:
        """Consume every available sample, in order ``[available]``."""
        return self._read_upto(None)

    def _read_upto(self, n: int | None) -> np.ndarray:
        while True:
            w = self._written
            start = max(self._read, w - self.capacity)
            stop = w if n is None else min(w, start + n)
            out = np.empty(stop - start, dtype=np.float32)
            self._copy_out(start, out)
            if self._writing - self.capacity <= start:
                break
        self._skipped += start - self._read
        self._read = stop
        return out

    def _advance(self, to: int) -> None:
        oldest_kept = to - self.capacity  # unread samples below it were overwritten before we came back
        if oldest_kept > self._read:
            self._skipped += oldest_kept - self._read
        self._read = max(self._read, to)

    def _copy_out(self, pos: int, out: np.ndarray) -> None:
        m = out.shape[0]
        start = pos % self.capacity
        first = min(m, self.capacity - start)
        out[:first] = self._buf[start:start + first]
        if first < m:
            out[first:] = self._buf[:m - first]
