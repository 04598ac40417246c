"""load_audio: every format, rate and channel layout decodes to the same 44.1 kHz mono signal; bad files fail clearly.

The reference is a 0.2 s sum of 40 random-phase sines between 80 Hz and 2 kHz (band-limited noise), evaluated
analytically at each rate, so every rate from 8 kHz up represents the same sound and resampled results can be
compared with the signal computed directly at 44.1 kHz.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livesound.audio.io import (
    MIN_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    describe,
    load_audio,
    resample,
)

SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
RATES = [8000, 16000, 22050, 44100, 48000, 96000, 192000]
DURATION = 0.2  # a whole number of samples at every rate; short, since resampling dominates test time
EDGE = int(0.02 * SAMPLE_RATE)  # resampling filters see zeros beyond the ends: compare inside them

_rng = np.random.default_rng(1234)
_F = _rng.uniform(80, 2000, 40)
_PHASE = _rng.uniform(0, 2 * np.pi, 40)
_AMP = _rng.uniform(0.2, 1.0, 40)


def reference(sr: int) -> np.ndarray:
    """The reference signal at ``sr``: float32 [DURATION * sr], peak 0.8 at 44.1 kHz (same scale at every rate)."""
    return _reference(sr).copy()


@functools.lru_cache(maxsize=None)
def _reference(sr: int) -> np.ndarray:
    def at(rate: int) -> np.ndarray:
        t = np.arange(int(round(DURATION * rate))) / rate
        return (_AMP[:, None] * np.sin(2 * np.pi * _F[:, None] * t + _PHASE[:, None])).sum(0)
    return (at(sr) * (0.8 / np.abs(at(SAMPLE_RATE)).max())).astype(np.float32)


# (format, subtype, extension, extra write options, max abs error when no resampling happens)
FORMATS = {
    "wav-pcm16": ("WAV", "PCM_16", "wav", {}, 1e-4),
    "wav-pcm24": ("WAV", "PCM_24", "wav", {}, 1e-6),
    "wav-float": ("WAV", "FLOAT", "wav", {}, 0.0),
    "flac": ("FLAC", "PCM_16", "flac", {}, 1e-4),
    "ogg-vorbis": ("OGG", "VORBIS", "ogg", {"compression_level": 0.0}, None),  # lossy: judged by SNR
}


def write(path: Path, x: np.ndarray, sr: int, fmt: str) -> Path:
    major, subtype, _, opts, _ = FORMATS[fmt]
    sf.write(str(path), x, sr, format=major, subtype=subtype, **opts)
    return path


def snr_db(ref: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((y - ref).astype(np.float64) ** 2)))


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_and_rate_gives_the_same_signal(tmp_path, fmt, sr, layout):
    x = reference(sr)
    data = x if layout == "mono" else np.stack([x, x], axis=1)  # [T] or [T, 2]
    path = write(tmp_path / f"ref.{FORMATS[fmt][2]}", data, sr, fmt)

    y = load_audio(path)
    want = reference(SAMPLE_RATE)
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.shape == want.shape  # DURATION at 44.1 kHz whatever the file's rate

    quant = FORMATS[fmt][4]
    if quant is None:
        assert snr_db(want[EDGE:-EDGE], y[EDGE:-EDGE]) > 20
    elif sr == SAMPLE_RATE:
        np.testing.assert_allclose(y, want, rtol=0, atol=quant)
    else:
        inner, ref_inner = y[EDGE:-EDGE], want[EDGE:-EDGE]
        assert np.abs(inner - ref_inner).max() < 3e-3 + quant
        assert snr_db(ref_inner, inner) > 50


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
@pytest.mark.parametrize("fmt", ["wav-pcm16", "wav-pcm24", "wav-float", "flac"])
def test_mono_and_identical_stereo_decode_identically(tmp_path, fmt, sr):
    x = reference(sr)
    mono = load_audio(write(tmp_path / f"m.{FORMATS[fmt][2]}", x, sr, fmt))
    stereo = load_audio(write(tmp_path / f"s.{FORMATS[fmt][2]}", np.stack([x, x], 1), sr, fmt))
    np.testing.assert_array_equal(mono, stereo)


def test_multichannel_is_the_mean_of_channels(tmp_path):
    left, right = reference(SAMPLE_RATE), 0.5 * reference(SAMPLE_RATE)[::-1]
    path = write(tmp_path / "lr.wav", np.stack([left, right, np.zeros_like(left)], 1), SAMPLE_RATE, "wav-float")
    np.testing.assert_allclose(load_audio(path), (left + right) / 3, rtol=0, atol=1e-7)


def test_load_at_another_rate_and_resample_helper(tmp_path):
    path = write(tmp_path / "x.wav", reference(48000), 48000, "wav-float")
    y = load_audio(path, sr=16000)
    want = reference(16000)
    assert y.shape == want.shape
    assert snr_db(want[320:-320], y[320:-320]) > 50
    x = reference(SAMPLE_RATE)
    assert resample(x, SAMPLE_RATE, SAMPLE_RATE) is x  # no work when the rates agree
    assert resample(x, SAMPLE_RATE, 22050).shape == (len(x) // 2,)


def test_silence_is_valid_and_describe_reads_the_header(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros((4410, 2), np.float32), 22050, subtype="PCM_24")
    y = load_audio(path)
    assert y.shape == (8820,) and not y.any()
    assert describe(path) == (22050, 2, 4410, "PCM_24")


def test_minimum_length_boundary(tmp_path):
    ok = write(tmp_path / "ok.wav", np.full(MIN_SAMPLES, 0.1, np.float32), SAMPLE_RATE, "wav-float")
    assert load_audio(ok).shape == (MIN_SAMPLES,)
    short = write(tmp_path / "short.wav", np.full(MIN_SAMPLES - 1, 0.1, np.float32), SAMPLE_RATE, "wav-float")
    with pytest.raises(AudioError, match="too short"):
        load_audio(short)


# ------------------------------------------------------------------------------------------- bad input

def _error(path: Path, **kw) -> str:
    with pytest.raises(AudioError) as info:
        load_audio(path, **kw)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg  # names the file, on one line
    return msg


def test_missing_file(tmp_path):
    assert "file not found" in _error(tmp_path / "nope.wav")


def test_directory(tmp_path):
    assert "directory" in _error(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros((0, 1), np.float32), SAMPLE_RATE, subtype="PCM_16")
    assert describe(path)[2] == 0
    assert "empty" in _error(path)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    assert "not a readable audio file" in _error(path)
    with pytest.raises(AudioError, match="not a readable audio file"):
        describe(path)


def test_one_sample_file_is_too_short(tmp_path):
    path = write(tmp_path / "one.wav", np.array([0.5], np.float32), SAMPLE_RATE, "wav-pcm16")
    assert "too short" in _error(path)


def _nan_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = reference(SAMPLE_RATE)
    x[[10, 500, 8000]] = np.nan
    x[7000] = np.inf
    return write(tmp_path / "nan.wav", x, SAMPLE_RATE, "wav-float"), x


def test_nonfinite_samples_rejected(tmp_path):
    path, _ = _nan_file(tmp_path)
    assert "4 non-finite samples" in _error(path)


def test_nonfinite_samples_cleaned_with_warning(tmp_path):
    path, x = _nan_file(tmp_path)
    with pytest.warns(UserWarning, match="replaced 4 non-finite samples") as rec:
        y = load_audio(path, nonfinite="clean")
    assert str(path) in str(rec[0].message)
    assert np.isfinite(y).all()
    assert (y[[10, 500, 7000, 8000]] == 0).all()
    ok = np.isfinite(x)
    np.testing.assert_array_equal(y[ok], x[ok])
    with pytest.raises(ValueError, match="nonfinite"):
        load_audio(path, nonfinite="ignore")


def test_clean_file_emits_no_warning(tmp_path):
    path = write(tmp_path / "ok.wav", reference(SAMPLE_RATE), SAMPLE_RATE, "wav-float")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(path, nonfinite="clean")


# ------------------------------------------------------------------------------------ shared real clips

@pytest.mark.skipif(not SHARED_AUDIO.is_dir(), reason=f"shared example audio not present at {SHARED_AUDIO}")
def test_shared_example_clips_load():
    clips = sorted(SHARED_AUDIO.glob("*.wav"))
    if not clips:
        pytest.skip(f"no .wav files in {SHARED_AUDIO}")
    for clip in clips:
        sr, channels, frames, _ = describe(clip)
        y = load_audio(clip)
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all(), clip
        assert abs(len(y) - frames * SAMPLE_RATE / sr) <= 1, clip
        assert 0 < np.abs(y).max() <= 1.0, clip
