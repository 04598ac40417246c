"""Decoding audio files into the one form the rest of livesound uses: float32 mono at a known rate.

Every file goes through ``load_audio``: soundfile decodes WAV/FLAC/OGG of any sample format, channels are
averaged to mono, and torchaudio resamples only when the file's rate differs from the one asked for. A file
that cannot be used raises ``AudioError`` whose one-line message names the file and the problem, so the CLI
can print it as is.

Compressed audio can be a bomb: FLAC stores a silent 8-channel block in a few bytes, so 108 KB can decode to
600 MB. Decoding is bounded by duration (``max_seconds``, ``MAX_AUDIO_SECONDS`` by default; the CLI's
``--max-audio-seconds`` raises it), judged first from the header and then while decoding block by block, each
block averaged to mono at once: memory stays at 4 bytes per second-sample of mono output plus one block, and a
file whose stream runs past its header's length stops at the bound instead of at the end of memory.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 44100  # the paper's rate; its encoder's mel settings assume it
# One STFT window (n_fft 2048 at 44.1 kHz): anything shorter gives no complete spectrogram frame.
MIN_SAMPLES = 2048
MIN_RATE, MAX_RATE = 1000, 768_000  # any real recording's rate lies between
MAX_SAMPLES_PER_BYTE = 8192
MAX_AUDIO_SECONDS = 600.0  # ten minutes: 106 MB of mono float32 at 44.1 kHz
BLOCK_FRAMES = 65536       # frames decoded at once (x channels x 4 bytes: 2 MB for 8 channels)

_NONFINITE = ("reject", "clean")


class AudioError(Exception):
    """Audio that cannot be used. ``where`` is a file path or an input device; the message is one line."""

    def __init__(self, where: Path | str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = where, problem


def describe(path: Path | str) -> tuple[int, int, int, str]:
    """(samplerate, channels, frames, subtype) of an audio file, read from its header only."""
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({_one_line(e)})") from None
    return info.samplerate, info.channels, info.frames, info.subtype


def check_readable(path: Path | str) -> None:
    """Fail early, from the header alone, on a missing, undecodable, empty or too short file."""
    samplerate, _, frames, _ = describe(path)
    _check_length(Path(path), frames, samplerate)


def _check_declared_size(path: Path) -> None:
    """Refuse a header declaring more samples than its bytes could hold, before decoding allocates them all.

    No codec stores audio denser than MAX_SAMPLES_PER_BYTE (FLAC's all-silent blocks come near: a few bytes of
    frame header per 4096-65535 samples); a damaged header (a flipped bit in FLAC's STREAMINFO) can declare hours.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({_one_line(e)})") from None
    size = path.stat().st_size
    if info.frames * info.channels > size * MAX_SAMPLES_PER_BYTE:
        raise AudioError(path, f"the header declares {info.frames} frames x {info.channels} channels, more than "
                               f"a {size}-byte file can hold (damaged header?)")


def _check_rate(path: Path, file_sr: int) -> None:
    if not MIN_RATE <= file_sr <= MAX_RATE:  # a damaged header's rate would make resampling explode or vanish
        raise AudioError(path, f"unsupported sample rate {file_sr} Hz (expected {MIN_RATE}-{MAX_RATE} Hz)")


def _check_length(path: Path, frames: int, file_sr: int) -> None:
    _check_rate(path, file_sr)
    if frames == 0:
        raise AudioError(path, "empty audio file (0 frames)")
    if frames * SAMPLE_RATE < MIN_SAMPLES * file_sr:  # judged in time, so the target rate does not matter
        raise AudioError(path, f"too short: {frames} frames at {file_sr} Hz ({frames / file_sr * 1000:.1f} ms); "
                               f"at least {MIN_SAMPLES / SAMPLE_RATE * 1000:.1f} ms are needed "
                               f"({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz, one spectrogram window)")


def load_audio(path: Path | str, sr: int = SAMPLE_RATE, *, nonfinite: str = "reject",
               max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono at ``sr``: ``[T]``, at least MIN_SAMPLES / SAMPLE_RATE seconds long.

    ``nonfinite`` says what to do with NaN/inf samples: "reject" raises, "clean" zeroes them and warns.
    Silence is valid audio and is returned as is. A file longer than ``max_seconds`` (None: MAX_AUDIO_SECONDS)
    is refused, before decoding when its header says so, else as soon as the decoder passes the bound.
    """
    if nonfinite not in _NONFINITE:
        raise ValueError(f"nonfinite must be one of {_NONFINITE}, not {nonfinite!r}")
    limit_s = MAX_AUDIO_SECONDS if max_seconds is None else float(max_seconds)
    if not limit_s > 0:
        raise ValueError(f"--max-audio-seconds must be positive, got {max_seconds}")
    path = Path(path)
    _check_exists(path)
    _check_declared_size(path)
    try:
        with sf.SoundFile(str(path)) as f:
            file_sr = f.samplerate
            _check_rate(path, file_sr)  # before decoding; the length once decoded
            limit = int(limit_s * file_sr)
            if f.frames > limit:
                raise AudioError(path, _too_long(f.frames / file_sr, limit_s))
            mono, n_bad, n_total = _decode_mono(f, limit, path, limit_s)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"not a readable audio file ({_one_line(e)})") from None

    _check_length(path, mono.shape[0], file_sr)
    if n_bad:
        if nonfinite == "reject":
            raise AudioError(path, f"{n_bad} non-finite samples (NaN/inf) of {n_total}; "
                                   "--clean-nonfinite (nonfinite='clean') replaces them with 0")
        warnings.warn(f"{path}: replaced {n_bad} non-finite samples (NaN/inf) with 0", stacklevel=2)
    return np.ascontiguousarray(resample(mono, file_sr, sr))


def _decode_mono(f: sf.SoundFile, limit: int, path: Path, limit_s: float) -> tuple[np.ndarray, int, int]:
    """(mono [frames], non-finite samples zeroed, samples decoded), block by block, stopping past ``limit``.

    Written into one array sized from the header, so the peak is the mono output plus one block."""
    out = np.empty(min(f.frames, limit), np.float32)
    frames, n_bad = 0, 0
    while True:
        data = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)  # [frames, channels]
        if not len(data):
            break
        n = len(data)
        if frames + n > limit:  # the stream runs past what its header declared
            raise AudioError(path, _too_long((frames + n) / f.samplerate, limit_s, decoded=True))
        bad = ~np.isfinite(data)
        if bad.any():
            n_bad += int(bad.sum())
            data[bad] = 0.0
        if frames + n > len(out):  # more than the header said (but within the bound): grow
            grown = np.empty(min(limit, max(frames + n, 2 * len(out))), np.float32)
            grown[:frames] = out[:frames]
            out = grown
        # Averaging keeps a channel-identical stereo file bit-identical to its mono version: (a + a) / 2 == a.
        out[frames:frames + n] = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        frames += n
    return out[:frames], n_bad, frames * f.channels


def _too_long(seconds: float, limit_s: float, decoded: bool = False) -> str:
    what = "decodes to more than" if decoded else "lasts"
    return f"{what} {seconds:.0f} s of audio, past the limit of {limit_s:g} s (--max-audio-seconds raises it)"


KAISER_BEST = dict(lowpass_filter_width=64, rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
                   beta=14.769656459379492)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited resampling of a float32 signal ``[T]`` with torchaudio's Kaiser-windowed sinc.

    The filter is torchaudio's documented equivalent of resampy's ``kaiser_best``, which librosa 0.8 (the
    paper's pinned version) used in ``librosa.load``: so files at other rates reach the encoder as they did
    in the paper.
    """
    x = np.asarray(x, dtype=np.float32)
    if sr_from == sr_to:
        return x
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    # torch is imported here, not at module level: decoding files at their own rate needs no torch at all.
    import torch
    import torchaudio.functional as AF

    p, q = _resample_ratio(int(sr_to), int(sr_from))
    with torch.no_grad():
        y = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), q, p, **KAISER_BEST)
    return y.numpy().astype(np.float32, copy=False)


MAX_PHASES = 1000


def _resample_ratio(sr_to: int, sr_from: int) -> tuple[int, int]:
    """(new, orig) in lowest terms for the polyphase resampler. Every common rate pair reduces to under a
    thousand phases (48000 -> 44100 is 147/160) and stays exact; an odd rate (a damaged header's 11332 Hz) would
    need 11025 phases and a kernel of half a gigabyte, so its ratio is approximated to within 1e-6."""
    exact = ratio = Fraction(sr_to, sr_from)
    limit = MAX_PHASES
    while ratio.numerator > MAX_PHASES or ratio.denominator > MAX_PHASES:
        ratio, limit = exact.limit_denominator(limit), limit // 2
    return ratio.numerator, ratio.denominator


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")


def _one_line(e: BaseException) -> str:
    # libsndfile's own wording ("Format not recognised.") without soundfile's repeat of the path.
    text = getattr(e, "error_string", None) or str(e)
    return " ".join(text.split()) or type(e).__name__
