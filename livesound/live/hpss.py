"""Pulse and motion: a streaming percussive/harmonic split of the live mel spectrogram.

librosa's HPSS (Fitzgerald 2010) median-filters a whole spectrogram twice: across time, which keeps what is
steady in each frequency (harmonic: held notes, pads, drones), and across frequency, which keeps what is flat
in each frame (percussive: clicks, hits, noise bursts); soft Wiener-like masks then share every bin between
the two. Live, there is no future to filter over, so the time median here is causal: each new frame is judged
against the last ``time_frames`` frames of its own bins (about 0.1 s), and the frequency median runs over the
frame itself. The frames are the ones `StreamLogMel` already computes for the encoder (one per 512-sample hop,
mel power), so the split costs two small medians per hop and no STFT of its own.

From the split, per frame:
- ``pulse``: the percussive share of the frame times its loudness, with an instant attack and a short release
  (``pulse_release_s``): drum hits, clicks, consonants.
- ``motion``: the harmonic share times the loudness, smoothed with ``motion_time_s``: sustained tones and chords.
- ``bands``: bass/mid/high levels (mel bands below 250 Hz, 250-4000 Hz, above) as linear amplitudes.
Loudness is dB relative to a full-scale 1 kHz sine, mapped from ``floor_db`` (0) to 0 dB (1), so the numbers
mean the same whatever the input device.

A chord's attack is a transient too: it reads as a short pulse (about ``time_frames / 2`` hops) before its
harmonics settle into motion, as it does to the ear.

Not thread-safe: `update` runs on the thread that pushes the stream (the engine's listener); other threads only
read the float attributes, which are replaced whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from livesound.audio.features import (
    SAMPLE_RATE,
    LogMelFrames,
    StreamLogMel,
    _hz_to_mel,
    _mel_to_hz,
)


@dataclass
class HPSSConfig:
    time_frames: int = 9          # causal time median: the frame and the 8 before it (~0.1 s at hop 512)
    freq_bins: int = 17           # frequency median over this many mel bins
    mask_power: float = 2.0       # librosa's softmask power
    floor_db: float = -60.0       # loudness 0 at this level (dB re a full-scale sine), 1 at 0 dB
    pulse_release_s: float = 0.12
    motion_time_s: float = 0.4
    band_edges_hz: tuple[float, float] = (250.0, 4000.0)


def peak_weights(frames: LogMelFrames) -> np.ndarray:
    """Per mel bin, 1 / its filter's peak: undoes the Slaney area norm, so a sine reads the same power in any
    bin (the norm scales each filter by 2 / bandwidth, which would make highs read ~20 dB low). float64 [M]."""
    return 1.0 / frames.mel.numpy().astype(np.float64).max(axis=1)


def full_scale_reference(frames: LogMelFrames, sr: int = SAMPLE_RATE) -> float:
    """Total (peak-weighted) mel power of one frame of a full-scale 1 kHz sine: the 0 dB of loudness."""
    t = np.arange(frames.n_fft) / sr
    chunk = torch.from_numpy(np.sin(2 * np.pi * 1000.0 * t).astype(np.float32))[None]
    with torch.no_grad():
        return float(frames(chunk)[0, :, 0].numpy() @ peak_weights(frames))


class StreamingHPSS:
    """Percussive/harmonic split of each new `StreamLogMel` frame; ``pulse``, ``motion``, ``bands`` per hop."""

    def __init__(self, stream: StreamLogMel, config: HPSSConfig | None = None, sample_rate: int = SAMPLE_RATE):
        self.c = config or HPSSConfig()
        if self.c.time_frames % 2 == 0 or self.c.freq_bins % 2 == 0 or min(self.c.time_frames, self.c.freq_bins) < 1:
            raise ValueError("time_frames and freq_bins must be odd and positive (a median of odd length)")
        self.stream = stream
        self.frame_s = stream.hop / sample_rate
        self.ref_power = full_scale_reference(stream.frames, sample_rate)
        self._weights = peak_weights(stream.frames)
        n_mels = stream.frames.n_mels
        centres = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))[1:-1]
        lo, hi = self.c.band_edges_hz
        self._band_masks = np.stack([centres < lo, (centres >= lo) & (centres < hi), centres >= hi])  # [3, M]
        self._pulse_decay = math.exp(-self.frame_s / self.c.pulse_release_s) if self.c.pulse_release_s > 0 else 0.0
        self._motion_alpha = 1.0 - math.exp(-self.frame_s / self.c.motion_time_s) if self.c.motion_time_s > 0 else 1.0
        self.reset()

    def reset(self) -> None:
        self._seen = self.stream.frames_total
        self.pulse = 0.0
        self.motion = 0.0
        self.bands = (0.0, 0.0, 0.0)
        self.percussive_share = 0.0

    def update(self) -> int:
        """Judge the frames the stream computed since the previous call; returns how many."""
        total = self.stream.frames_total
        new = min(total - self._seen, self.stream.capacity - self.c.time_frames)
        self._seen = total
        if new <= 0:
            return 0
        t = self.c.time_frames
        power = self.stream.power(min(total, new + t - 1)).numpy().astype(np.float64)  # [M, <= new+t-1]
        if power.shape[1] < new + t - 1:  # the stream's start: silence before it, as StreamLogMel assumes
            power = np.pad(power, ((0, 0), (new + t - 1 - power.shape[1], 0)))
        s = power[:, t - 1:]                                                             # [M, new]
        harmonic = _median(np.lib.stride_tricks.sliding_window_view(power, t, axis=1))  # steady in time
        half = self.c.freq_bins // 2
        padded = np.pad(s, ((half, half), (0, 0)), mode="edge")
        percussive = _median(np.lib.stride_tricks.sliding_window_view(padded, self.c.freq_bins, axis=0))
        hp, pp = harmonic ** self.c.mask_power, percussive ** self.c.mask_power
        denom = hp + pp
        mask_p = np.divide(pp, denom, out=np.full_like(denom, 0.5), where=denom > 1e-30)
        s = s * self._weights[:, None]
        energy = s.sum(axis=0)                                                           # [new]
        share_p = np.divide((s * mask_p).sum(axis=0), energy, out=np.zeros_like(energy), where=energy > 1e-30)
        for e, share in zip(energy.tolist(), share_p.tolist()):  # the envelopes run frame by frame
            loud = self._loudness(e)
            self.pulse = max(self.pulse * self._pulse_decay, loud * share)
            self.motion += self._motion_alpha * (loud * (1.0 - share) - self.motion)
        self.percussive_share = float(share_p[-1])
        band_power = self._band_masks @ s[:, -1]
        self.bands = tuple(float(math.sqrt(max(b, 0.0) / self.ref_power)) for b in band_power)
        return new

    def _loudness(self, energy: float) -> float:
        if energy <= 0:
            return 0.0
        db = 10.0 * math.log10(energy / self.ref_power)
        return min(1.0, max(0.0, 1.0 - db / self.c.floor_db))


def _median(windows: np.ndarray) -> np.ndarray:
    """Median over the last axis of odd length: one partition, without np.median's NaN checks."""
    k = windows.shape[-1] // 2
    return np.partition(windows, k, axis=-1)[..., k]


__all__ = ["HPSSConfig", "StreamingHPSS", "full_scale_reference"]
