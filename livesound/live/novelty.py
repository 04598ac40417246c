"""Meaning that arrives fast: notice when the sound changes, and let the encoder hear only the new sound.

The encoder's window is 2.5 s: after a switch from one sound to another, the window holds mostly the old sound
for over a second, so the embedding (and the picture) follows late. Shortening the window for good would make
the picture nervous, since one short window of a sound says less about it than a long one. Instead:

1. **Change detection** (``ChangeDetector.update``): each new log-mel frame of the live stream (the frames
   `StreamLogMel` already computes, pooled into ``BANDS`` bands, in dB, floored ``FLOOR_DB`` below the frame's own
   peak) is compared with the recent past. For each of the newest ``RECENT_S`` of frames, the nearest frame of
   the ``REFERENCE_S`` before them (and after the last change) is found; the novelty is the median of those
   nearest distances (mean absolute dB over the bands). A steady sound, even a sweeping chirp or sparse clicks,
   has a near twin for every frame within the last second (novelty ~0-1 dB); a different sound does not (10+
   dB). Above ``threshold_db`` a change is declared, placed at the first recent frame with no near twin in the
   past (where the new sound began), and the detector re-arms once the novelty falls below half the threshold.
2. **Re-windowing** (``window``): after a change the encoder sees only the frames since it, repeated to fill
   the usual window length (not zero-padded: a window that is mostly padding reads, to the encoder, as a
   different sound than a full window of the same sound, which would move the picture for no reason). Once
   the new sound fills the window, it is the usual newest window again. The stream's start counts as a change.
3. **A short lag at the change** (``envelope``): the embedding smoother's time constant is divided by
   ``1 + change_smoothing * envelope``; the envelope is 1 at a change and decays with ``RELEASE_S``. Between
   changes the smoothing (and so the picture's calm) is what it was.

With ``threshold_db`` 0 none of this happens: the window is the newest ``window_s``, as before.

Not thread-safe: ``update`` and ``window`` run on the thread that pushes the stream (the engine's listener); the
renderer reads ``envelope``, a float replaced whole.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from livesound.audio.features import StreamLogMel, unit_db

BANDS = 16            # mel bands pooled for the comparison (8 mel bins each): spectral shape, not fine detail
FLOOR_DB = 60.0       # each frame's bands are floored this far below its own peak
RECENT_S = 0.2        # the newest frames judged
REFERENCE_S = 1.0     # the past they are compared with
MIN_REFERENCE_S = 0.5  # less past than this (the stream's start, just after a change): no judgement
RELEASE_S = 0.3       # the envelope's decay after a change
SKIP_FRAMES = 1       # frames after a change left out of the tiled window (they straddle the change)


class ChangeDetector:
    """Nearest-neighbour novelty of the live stream's frames, and the encoder window it implies."""

    def __init__(self, stream: StreamLogMel, threshold_db: float = 8.0, sample_rate: int = 44100):
        self.stream, self.threshold_db = stream, float(threshold_db)
        frame_s = stream.hop / sample_rate
        self.recent = max(2, round(RECENT_S / frame_s))
        self.reference = max(2, round(REFERENCE_S / frame_s))
        self.min_reference = max(1, round(MIN_REFERENCE_S / frame_s))
        self._decay = math.exp(-frame_s / RELEASE_S)
        n_mels = stream.frames.n_mels
        if n_mels % BANDS:
            raise ValueError(f"{n_mels} mel bins do not pool into {BANDS} bands")
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.threshold_db > 0

    def reset(self, seen: int | None = None) -> None:
        """Forget what was heard; ``seen``: the stream frames already judged (default: all so far)."""
        self._seen = self.stream.frames_total if seen is None else seen
        self.start = self._seen          # stream frame where the current sound began (the last change)
        self.armed = True
        self.novelty = 0.0
        self.envelope = 0.0
        self.changes = 0

    def update(self) -> bool:
        """Judge the frames the stream computed since the previous call; True if a change was found in them."""
        total = self.stream.frames_total
        if total < self._seen:  # the stream was reset (its frames count from 0 again): so is what was heard of it
            self.reset(seen=0)
        new = min(total - self._seen, self.stream.capacity - self.recent - self.reference)
        self._seen = total
        if new <= 0 or not self.enabled:
            return False
        span = min(total, new + self.recent + self.reference - 1)
        db = _band_db(self.stream.power(span).numpy())                     # [span, BANDS], oldest first
        first = total - span                                               # stream index of db[0]
        found = False
        for f in range(total - new, total):
            self.envelope *= self._decay
            lo, hi = max(self.start, f - self.recent - self.reference + 1), f - self.recent + 1
            if hi - lo < self.min_reference:
                continue
            recent = db[f - self.recent + 1 - first:f + 1 - first]         # [R, BANDS]
            past = db[lo - first:hi - first]                               # [P, BANDS]
            nearest = np.abs(recent[:, None, :] - past[None, :, :]).mean(-1).min(-1)
            self.novelty = float(np.median(nearest))
            if self.armed and self.novelty > self.threshold_db:
                new_from = int(np.argmax(nearest > self.threshold_db))     # the first recent frame unlike the past
                self.start, self.armed, self.envelope = f - self.recent + 1 + new_from, False, 1.0
                self.changes += 1
                found = True
            elif self.novelty < self.threshold_db / 2:
                self.armed = True
        return found

    def window(self, n_frames: int) -> torch.Tensor:
        """The encoder's window, [n_mels, n_frames] in [0, 1]: the newest ``n_frames``, or after a change the frames
        since it, repeated to ``n_frames`` (see the module docstring)."""
        # An STFT frame spans n_fft samples: the first frames after a change still hold some of the old sound,
        # and tiling would repeat that through the whole window.
        since = self.stream.frames_total - self.start - SKIP_FRAMES
        if not self.enabled or since >= n_frames or since <= 0:
            return self.stream.window(n_frames)
        power = self.stream.power(max(1, since))                            # [n_mels, m]
        reps = -(-n_frames // power.shape[-1])
        return unit_db(power.repeat(1, reps)[None, :, -n_frames:])[0]


def _band_db(power: np.ndarray) -> np.ndarray:
    """[n_mels, F] mel power -> [F, BANDS] dB, each frame floored FLOOR_DB below its peak."""
    bands = power.T.reshape(power.shape[1], BANDS, -1).mean(-1).astype(np.float64)
    db = 10.0 * np.log10(np.maximum(bands, 1e-10))
    return np.maximum(db, db.max(axis=1, keepdims=True) - FLOOR_DB)
