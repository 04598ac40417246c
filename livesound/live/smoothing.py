"""Smoothing of the sound embedding over time, and the audio's onset envelope; both frame-rate independent.

The picture should drift with the character of the sound (a slow embedding) yet jump on its transients (a
fast strength boost). Both run once per video frame on the pipeline thread (never in the audio callback)
and take ``dt``, the actual seconds since their previous update, and every time constant is applied as
``alpha = 1 - exp(-dt / tau)``: N updates of dt decay exactly as one of N * dt, so a time constant means
the same at 30 fps, 120 fps or with jittery frame times.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch

SMOOTHING_METHODS = ("ema", "slerp")


def _alpha(dt: float, tau: float) -> float:
    return 1.0 if tau <= 0 else 1.0 - math.exp(-dt / tau)


class EmbeddingSmoother:
    """Follows unit embeddings e ([D] or [N, D] tensors) with a first-order lag of ``time_constant_s``.

    ``method="ema"``: an exponential moving average of the unit embeddings, kept unnormalised and returned
    renormalised. The average itself is linear, so its step response is exactly ``1 - exp(-t / tau)`` of
    the way (as mixing weights) at any frame rate; the output is its direction.
    ``method="slerp"``: moves along the great circle, ``slerp(s, e, alpha)``; the angle to a fixed target
    then shrinks exactly as ``exp(-t / tau)``.

    ``onset_gain`` lets transients hurry the embedding: with ``onset`` in [0, 1] (``OnsetEnvelope``'s
    envelope) the time constant becomes ``tau / (1 + onset_gain * onset)``, so a full onset at the default
    gain halves it. Set it to 0 for a constant lag. The first update returns its input.
    """

    def __init__(self, time_constant_s: float = 0.25, onset_gain: float = 1.0, method: str = "ema",
                 eps: float = 1e-6):
        if time_constant_s < 0 or onset_gain < 0:
            raise ValueError("time_constant_s and onset_gain must be non-negative")
        if method not in SMOOTHING_METHODS:
            raise ValueError(f"method must be one of {SMOOTHING_METHODS}, got {method!r}")
        self.time_constant_s, self.onset_gain, self.method, self.eps = time_constant_s, onset_gain, method, eps
        self.reset()

    def reset(self, e: torch.Tensor | None = None) -> None:
        """Forget the history; with ``e``, start from it."""
        self._acc: torch.Tensor | None = None  # the EMA before renormalisation (ema only)
        self._out: torch.Tensor | None = None
        if e is not None:
            self._out = _unit(torch.as_tensor(e).float(), self.eps)
            self._acc = self._out.clone()

    @property
    def value(self) -> torch.Tensor | None:
        """The latest smoothed unit embedding (None before the first update)."""
        return self._out

    def time_constant(self, onset: float = 0.0) -> float:
        return self.time_constant_s / (1.0 + self.onset_gain * max(0.0, float(onset)))

    def update(self, e: torch.Tensor, dt: float, onset: float = 0.0) -> torch.Tensor:
        """Take the newest embedding ``e``, ``dt`` seconds after the previous update; return the smoothed one."""
        e = _unit(torch.as_tensor(e).float(), self.eps)
        if self._out is None or self._out.shape != e.shape:
            self.reset(e)
            return self._out
        if self._out.device != e.device:
            self._out, self._acc = self._out.to(e.device), self._acc.to(e.device)
        a = _alpha(max(0.0, float(dt)), self.time_constant(onset))
        if self.method == "ema":
            self._acc = self._acc + a * (e - self._acc)
            norm = self._acc.norm(dim=-1, keepdim=True)
            # Inputs pulling in opposite directions can cancel the average: keep the last direction then.
            self._out = torch.where(norm > self.eps, self._acc / norm.clamp_min(self.eps), self._out)
        else:
            self._out = slerp(self._out, e, a, self.eps)
        return self._out


def _unit(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation between unit vectors (last dim); nearly parallel pairs fall back to nlerp."""
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    far = sin > 1e-4
    safe = torch.where(far, sin, torch.ones_like(sin))
    out = torch.where(far, (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / safe,
                      a + t * (b - a))
    return _unit(out, eps)


# ---------------------------------------------------------------------------------------------- onsets

BAND_NAMES = ("bass", "mid", "high")


def band_levels(block: np.ndarray, sample_rate: float, edges: Sequence[float] = (250.0, 4000.0)) -> np.ndarray:
    """RMS level of the block in three bands, [bass < 250 Hz, mid 250-4000 Hz, high >= 4000 Hz], float32 [3].

    ``block`` is [frames] or [frames, channels] (channels are averaged). Hann-windowed rfft; by Parseval the
    squares of the three levels add up to the block's mean square, so a sine of amplitude A reads A / sqrt(2)
    in its band.
    """
    x = np.asarray(block, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    n = x.shape[0]
    if n < 2:
        return np.zeros(3, np.float32)
    win = np.hanning(n + 1)[:n]  # periodic Hann: no zero at the block's last sample
    power = np.abs(np.fft.rfft(x * win)) ** 2
    power[1:(n + 1) // 2] *= 2.0  # one-sided spectrum: every bin but DC (and Nyquist, n even) counts twice
    power /= n * np.square(win).sum()
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    lo, hi = edges
    bands = [power[freqs < lo].sum(), power[(freqs >= lo) & (freqs < hi)].sum(), power[freqs >= hi].sum()]
    return np.sqrt(np.asarray(bands)).astype(np.float32)


class OnsetFrame(NamedTuple):
    level: float     # RMS of the newest block, linear (1.0 = full-scale square wave)
    onset: float     # this block's rise above the running level, mapped to [0, 1]
    envelope: float  # onset with an immediate attack and an exponential release, in [0, 1]


class OnsetEnvelope:
    """Transient detector for the newest audio block: a fast-attack / slow-release envelope in [0, 1].

    Per update, the block's three band levels (``band_levels``) are compared in dB with running levels
    (per band, an EMA of power with ``level_time_s``, starting from silence at ``floor_db``); the largest
    rise, less ``threshold_db``, over ``range_db`` and clipped to [0, 1], is the onset. Comparing per band
    catches a hi-hat over a loud bass line, and normalising by the running level makes the detector
    independent of input gain. The envelope takes a new onset at once (within the same update) and decays
    with ``release_s``. ``strength_boost = max_boost * envelope``: the pipeline edits with
    ``strength * (1 + strength_boost)`` (``boosted``), so transients kick the picture in one frame while
    the embedding moves slowly.
    """

    SUB = 512  # samples per level measurement (one STFT hop at 44.1 kHz)

    def __init__(self, sample_rate: float, release_s: float = 0.3, max_boost: float = 1.0,
                 level_time_s: float = 0.1, threshold_db: float = 3.0, range_db: float = 12.0,
                 floor_db: float = -70.0, band_edges: Sequence[float] = (250.0, 4000.0)):
        if sample_rate <= 0 or release_s < 0 or level_time_s < 0 or range_db <= 0 or max_boost < 0:
            raise ValueError("sample_rate and range_db must be positive; times and max_boost non-negative")
        self.sample_rate, self.release_s, self.max_boost = float(sample_rate), release_s, max_boost
        self.level_time_s, self.threshold_db, self.range_db = level_time_s, threshold_db, range_db
        self.floor_power = 10.0 ** (floor_db / 10.0)
        self.band_edges = tuple(band_edges)
        self.reset()

    def reset(self) -> None:
        self._running = np.full(3, self.floor_power)  # per-band power
        self.envelope = 0.0
        self.level = 0.0
        self.bands = np.zeros(3, np.float32)  # latest band levels (for OSC out)

    @property
    def strength_boost(self) -> float:
        """In [0, max_boost]."""
        return self.max_boost * self.envelope

    def boosted(self, strength: float) -> float:
        return strength * (1.0 + self.strength_boost)

    def update(self, block: np.ndarray, dt: float) -> OnsetFrame:
        """Take the samples that arrived since the previous update (``dt`` seconds ago)."""
        dt = max(0.0, float(dt))
        self.envelope *= math.exp(-dt / self.release_s) if self.release_s > 0 else 0.0
        x = np.asarray(block, dtype=np.float64)
        if x.size == 0:
            return OnsetFrame(self.level, 0.0, self.envelope)
        self.level = float(np.sqrt(np.mean(np.square(x))))
        # Judge the block in sub-blocks of SUB samples, each against the level just before it: the onset
        # time resolution is then ~12 ms whatever the frame rate, and a click is not diluted by the
        # silence around it in a long block.
        onset = 0.0
        sub_dt = dt * min(1.0, self.SUB / x.size)
        for start in range(0, x.size, self.SUB):
            chunk = x[start:start + self.SUB]
            if chunk.size < self.SUB // 4 and start > 0:
                break  # too short to measure a level; it is judged with the next block's samples
            self.bands = band_levels(chunk, self.sample_rate, self.band_edges)
            power = np.maximum(np.square(self.bands.astype(np.float64)), self.floor_power)
            rise_db = float(np.max(10.0 * np.log10(power / self._running)))
            onset = max(onset, min(1.0, max(0.0, (rise_db - self.threshold_db) / self.range_db)))
            self._running += _alpha(sub_dt, self.level_time_s) * (power - self._running)
        self.envelope = max(self.envelope, onset)
        return OnsetFrame(self.level, onset, self.envelope)
