"""Ending a run cleanly on Ctrl+C or SIGTERM, so what it was writing is finished, not cut.

A service manager, a closing terminal or a user's `kill` sends SIGTERM; Python's default for it is to die at
once, which leaves a video without its index (unplayable) and a half-written PNG. ``stop_requested`` turns
SIGINT and SIGTERM into an event the run loop polls: the loop stops, the recorder is closed (its encoder
flushed and the file renamed into place) and the process exits normally. A second signal while the first
is being handled falls through to the previous handler, so a stuck shutdown can still be interrupted.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set by the first SIGINT/SIGTERM while the block runs (handlers restored after it).

    Off the main thread (where Python cannot install handlers) the event is returned and never set by a signal.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handler(signum, frame):
        if event.is_set():  # second signal: the default behaviour (or whatever was there before)
            prev = previous[signum]
            if callable(prev):
                prev(signum, frame)
            elif prev == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)
            return
        event.set()

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield event
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev)
