"""The one statistics and plotting helper of every benchmark: percentile summaries and figures written safely.

``percentiles`` is the live path's own (`livesound.live.timing`), so a benchmark's p99 and the overlay's p99
are computed the same way. ``figure`` opens a matplotlib figure on the Agg backend (no display needed) and writes
it atomically when the block ends, so a killed benchmark never leaves half a PNG.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from livesound.files import atomic_write
from livesound.live.timing import percentiles

__all__ = ["figure", "percentiles", "summary_ms"]


def summary_ms(values: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99 and the mean, in milliseconds: the shape of every benchmark's per-stage entry."""
    return percentiles(values, mean=True)


@contextmanager
def figure(path: Path | str, nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (8, 4),
           dpi: int = 100, **kwargs) -> Iterator[tuple]:
    """``with figure(png, 1, 2, (11, 4)) as (fig, axes): ...``; the PNG is written when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=size, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        plt.close(fig)
