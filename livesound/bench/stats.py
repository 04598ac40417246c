"""The one statistics and plotting helper of every benchmark: timed calls, percentile summaries, figures.

``percentiles`` is the live path's own (`livesound.live.timing`), so a benchmark's p99 and the overlay's p99
are computed the same way. ``figure`` opens a matplotlib figure on the Agg backend (no display needed) and writes
it atomically when the block ends, so a killed benchmark never leaves half a PNG; matplotlib is imported there
only, so a benchmark that never plots does not need it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from livesound.files import atomic_write
from livesound.live.timing import percentiles

__all__ = ["figure", "mark_percentiles", "p50_bars", "percentiles", "summary", "summary_ms", "time_calls"]

# One colour per percentile wherever a plot marks them, so p99 reads the same in every figure.
PERCENTILE_COLOURS = {50: "g", 95: "orange", 99: "r"}


def summary(values: Iterable[float], unit: str = "ms", peak: bool = False, count: bool = False) -> dict:
    """p50/p95/p99 and the mean, keys suffixed with ``unit`` ("p50_ms"; "" gives bare "p50"); ``peak`` adds
    the max and ``count`` adds "n". Empty input gives {} (plus "n": 0 with ``count``)."""
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), float)
    out = percentiles(v, unit=unit, mean=True)
    if out and peak:
        out[f"max_{unit}" if unit else "max"] = float(v.max())
    if count:
        out["n"] = int(v.size)
    return out


def summary_ms(values: Iterable[float], peak: bool = False, count: bool = False) -> dict[str, float]:
    """p50/p95/p99 and the mean, in milliseconds: the shape of every benchmark's per-stage entry (``peak`` and
    ``count`` add "max_ms" and "n", the shape of the scenario tables)."""
    return summary(values, "ms", peak, count)


def time_calls(fn: Callable[[int], object], n: int, warmup: int) -> np.ndarray:
    """Milliseconds of ``fn(i)`` for ``n`` calls after ``warmup`` untimed ones (``i`` counts from 0 over both)."""
    ms = np.empty(n)
    for i in range(warmup + n):
        t0 = time.perf_counter()
        fn(i)
        if i >= warmup:
            ms[i - warmup] = (time.perf_counter() - t0) * 1e3
    return ms


@contextmanager
def figure(path: Path | str, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (8, 4),
           dpi: int = 100, **kwargs) -> Iterator[tuple]:
    """``with figure(png, 1, 2, (11, 4)) as (fig, axes): ...``; the PNG is written when the block ends.

    ``kwargs`` go to ``plt.subplots`` (``sharex``, ``squeeze``, ``gridspec_kw``, ...). Nothing is written when
    the block raises.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(f"{path}: writing this plot needs matplotlib (pip install matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)


def mark_percentiles(ax, values: Sequence[float], qs: tuple[int, ...] = (50, 95, 99), unit: str = "ms",
                     fmt: str = ".1f", vertical: bool = True) -> dict[str, float]:
    """A labelled line at each percentile of ``values`` on ``ax`` (vertical over a histogram, horizontal over
    a series); returns the percentiles drawn."""
    pct = percentiles(values, qs, unit)
    line = ax.axvline if vertical else ax.axhline
    for q in qs:
        v = pct[f"p{q}_{unit}"]
        line(v, color=PERCENTILE_COLOURS.get(q, "gray"), ls="-" if vertical else "--",
             label=f"p{q} {v:{fmt}} {unit}")
    return pct


def p50_bars(ax, x, entries: Sequence[dict], width: float = 0.8, capsize: float = 4, **kwargs):
    """Bars at each entry's p50 with a whisker up to its p99 (entries are ``summary_ms`` dicts)."""
    p50 = np.array([e["p50_ms"] for e in entries])
    p99 = np.array([e["p99_ms"] for e in entries])
    return ax.bar(x, p50, width, yerr=[np.zeros_like(p50), p99 - p50], capsize=capsize, **kwargs)
