"""Log-mel features exactly as the paper computes them, in pure torch and exportable to any ONNX runtime.

The paper's preprocessing (kuai-lab/sound-guided-semantic-image-manipulation, `optimization/run_optimization.py`
and `soundclip/curate.py` + `soundclip/datasets.py`, run with librosa 0.8.1 and OpenCV 4.5.5 per its `env.yaml`)::

    y, sr = librosa.load(path, sr=44100)                        # mono float32
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128)  # n_fft 2048, hop 512, periodic Hann,
                                                                # centred with *reflect* padding (librosa < 0.9),
                                                                # power 2, Slaney mel scale and area norm
    S = librosa.power_to_db(S, ref=np.max) / 80.0 + 1           # ref and top_db 80 over the *whole* clip: [0, 1]
    S = S[:, j:j + 864] or zero-padded at the end to 864 frames # the crop comes after the dB scaling
    x = cv2.resize(S, (128, 512))                               # dsize=(width, height): [512, 128], INTER_LINEAR
    x = x.reshape(1, 1, 128, 512)                               # a reshape, not a transpose

Everything here reproduces that without librosa or OpenCV:

* the STFT is a `Conv1d` whose kernels are the periodic-Hann-windowed DFT basis (stride = hop), the mel
  projection a `MatMul` and the dB a `Log`, so graphs export with no ONNX STFT/DFT op (TensorRT has no DFT and
  only a restricted STFT). In eager mode the same frames come from `torch.fft.rfft`, which is ~25x cheaper on a
  CPU; `dft="conv"` forces the exportable form, and export always uses it.
* `cv2.resize` is two constant interpolation matrices (`resize_matrix`): OpenCV's float INTER_LINEAR to
  float32 rounding (~1e-7).

`PaperLogMel` is the whole pipeline on a clip; `StreamLogMel` keeps the same power-mel frames for a live stream,
computing only frames that became complete; `LogMelFrames` is the frame kernel both share (and the exported
stream stage).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 44100
N_FFT = 2048
HOP = 512
N_MELS = 128
PAPER_FRAMES = 864  # ~10.03 s of frames
PAPER_OUT = (128, 512)  # the encoder input's last two dims after the reshape
TOP_DB = 80.0
AMIN = 1e-10  # librosa.power_to_db's floor

__all__ = [
    "SAMPLE_RATE", "N_FFT", "HOP", "N_MELS", "PAPER_FRAMES", "PAPER_OUT", "TOP_DB", "AMIN",
    "mel_filterbank", "periodic_hann", "dft_kernels", "resize_matrix", "resize_bilinear", "unit_db",
    "to_encoder_input", "LogMelFrames", "PaperLogMel", "StreamLogMel",
]


# ----------------------------------------------------------------------------------------------- constants

def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    lin = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """librosa.filters.mel's defaults (Slaney scale, norm="slaney"): [n_mels, n_fft // 2 + 1] float32.

    Triangles between consecutive mel-spaced edge frequencies, each scaled by 2 / (its bandwidth in Hz) so that
    every filter has unit area. Computed in float64, rounded once at the end.
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def periodic_hann(n: int) -> np.ndarray:
    """scipy.signal.get_window("hann", n, fftbins=True), librosa's STFT window: float64 [n]."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dft_kernels(n_fft: int = N_FFT) -> Tensor:
    """Windowed real DFT basis as Conv1d weights: float32 [n_fft, 1, n_fft].

    Rows 0..n_fft/2 are the real parts of bins 0..n_fft/2; rows n_fft/2+1..n_fft-1 the imaginary parts of bins
    1..n_fft/2-1 (DC and Nyquist have none), so the conv has exactly n_fft output channels.
    """
    assert n_fft % 2 == 0, "n_fft must be even"
    n = np.arange(n_fft)
    k_re, k_im = np.arange(n_fft // 2 + 1), np.arange(1, n_fft // 2)
    # (k * n) mod n_fft keeps the angle exact before the float64 trig.
    angle = lambda k: 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft  # noqa: E731
    basis = np.concatenate([np.cos(angle(k_re)), -np.sin(angle(k_im))]) * periodic_hann(n_fft)[None, :]
    return torch.from_numpy(basis.astype(np.float32)).unsqueeze(1)


@lru_cache(maxsize=16)
def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """OpenCV INTER_LINEAR along one axis as a matrix: float32 [n_out, n_in], out = R @ in.

    cv2's rule for float images: source coordinate (dst + 0.5) * n_in / n_out - 0.5, two taps, coordinates
    clamped to the edge pixels, and no antialiasing when shrinking (864 -> 128 frames skips most frames).
    """
    scale = n_in / n_out
    src = (np.arange(n_out) + 0.5) * scale - 0.5
    i0 = np.floor(src).astype(np.int64)
    frac = src - i0
    lo_edge, hi_edge = i0 < 0, i0 >= n_in - 1
    frac[lo_edge | hi_edge] = 0.0
    i0 = np.clip(i0, 0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    r = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(r, (rows, i0), 1.0 - frac)
    np.add.at(r, (rows, i1), frac)
    r = r.astype(np.float32)
    r.setflags(write=False)
    return r


@lru_cache(maxsize=16)
def _resize_tensor(n_in: int, n_out: int) -> Tensor:
    return torch.from_numpy(resize_matrix(n_in, n_out).copy())


def resize_bilinear(x: Tensor, height: int, width: int) -> Tensor:
    """`cv2.resize(x, (width, height))` (INTER_LINEAR) on the last two dims of a float tensor: [..., h, w]."""
    # int(): under export tracing shapes are tensors; the matrices are constants of a fixed-size graph.
    ry = _resize_tensor(int(x.shape[-2]), height).to(x)  # [height, h]
    rx = _resize_tensor(int(x.shape[-1]), width).to(x)  # [width, w]
    return ry @ (x @ rx.T)  # time axis first, as cv2 does, and 5x fewer MACs than (ry @ x) @ rx.T for 864 -> 128


# ------------------------------------------------------------------------------------------------- stages

def unit_db(power: Tensor, top_db: float = TOP_DB, amin: float = AMIN) -> Tensor:
    """`librosa.power_to_db(S, ref=np.max, top_db=80) / 80 + 1` per clip: [B, M, F] -> [B, M, F] in [0, 1].

    The reference is each clip's own maximum over all of it. Silence follows librosa too: the maximum is below
    `amin`, every value is floored to it, and the whole clip comes out as 0 dB, i.e. 1.0.
    """
    ref = power.amax(dim=(-2, -1), keepdim=True)
    db = 10.0 * torch.log10(power.clamp_min(amin)) - 10.0 * torch.log10(ref.clamp_min(amin))
    db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - top_db)
    return db / 80.0 + 1.0


def to_encoder_input(spec: Tensor) -> Tensor:
    """The paper's last two steps: `cv2.resize(spec, (128, 512)).reshape(1, 1, 128, 512)` per clip.

    [B, 128, 864] -> resize to [B, 512, 128] (the mel axis stretched to 512 rows, time squeezed to 128 columns)
    -> reshape, not transpose, to [B, 1, 128, 512]: the encoder sees rows of that image laid end to end.
    """
    width, height = PAPER_OUT  # cv2 dsize = (128, 512) = (width, height)
    img = resize_bilinear(spec, height, width)  # [B, 512, 128]
    return img.reshape(-1, 1, *PAPER_OUT)


class LogMelFrames(nn.Module):
    """Mel power frames of an uncentred chunk: [B, n_fft + (k-1)*hop] -> [B, n_mels, k] (no dB).

    Frame j covers chunk samples [j*hop, j*hop + n_fft). `dft`: "conv" is the windowed DFT basis as a strided
    Conv1d (the exportable form, used whenever an export traces this module); "fft" is `torch.fft.rfft` over the
    same frames (far cheaper on CPUs); "auto" takes "fft" in eager mode and "conv" under export. Both give the
    same numbers to float32 rounding.
    """

    def __init__(self, sr: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP, n_mels: int = N_MELS,
                 dft: str = "auto"):
        super().__init__()
        if dft not in ("auto", "conv", "fft"):
            raise ValueError(f"dft must be 'auto', 'conv' or 'fft', not {dft!r}")
        self.n_fft, self.hop, self.n_mels, self.dft = n_fft, hop, n_mels, dft
        self.register_buffer("kernels", dft_kernels(n_fft), persistent=False)  # [n_fft, 1, n_fft]
        self.register_buffer("window", torch.from_numpy(periodic_hann(n_fft).astype(np.float32)), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(sr, n_fft, n_mels)), persistent=False)

    def _use_conv(self) -> bool:
        # torch.export (the dynamo ONNX path) reports is_compiling, so both exporters get the conv form.
        exporting = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling()
        return self.dft == "conv" or (self.dft == "auto" and exporting)

    def forward(self, chunk: Tensor) -> Tensor:
        assert chunk.dim() == 2, f"expected [B, samples], got {tuple(chunk.shape)}"
        half = self.n_fft // 2
        if self._use_conv():
            spec = F.conv1d(chunk.unsqueeze(1), self.kernels, stride=self.hop)  # [B, n_fft, k]
            re, im = spec[:, : half + 1], spec[:, half + 1:]
            return self.mel @ (re * re) + self.mel[:, 1:half] @ (im * im)  # [B, n_mels, k]
        frames = chunk.unfold(-1, self.n_fft, self.hop) * self.window  # [B, k, n_fft]
        power = torch.fft.rfft(frames).abs().square()  # [B, k, n_fft/2 + 1]
        return self.mel @ power.transpose(1, 2)


def _reflect_index(length: int, pad: int) -> np.ndarray:
    """Indices of np.pad(x, pad, mode="reflect") into x, repeating the reflection when pad >= length."""
    if length == 1:
        return np.zeros(length + 2 * pad, dtype=np.int64)
    period = 2 * (length - 1)
    j = np.mod(np.arange(-pad, length + pad), period)
    return np.where(j < length, j, period - j)


class PaperLogMel(nn.Module):
    """The paper's encoder input from a waveform: [B, T] float32 at 44.1 kHz -> [B, 1, 128, 512].

    Steps (module docstring): centred mel power frames (1 + T // 512 of them), `unit_db` over the whole clip,
    crop or zero-pad at the end to 864 frames, `to_encoder_input`.

    pad_mode: "reflect" (default) is what the paper's librosa 0.8.1 did and so what its released checkpoint saw;
        "constant" (zeros) is librosa >= 0.9's default and what `StreamLogMel` does at a stream's start. They
        differ only in the first and last two frames.
    crop: clips longer than 864 frames. The paper takes a random crop (`random.randint(0, w - 864)`) for
        training and even for its optimisation demo; this module is deterministic: "center" takes frames
        [(F - 864) // 2, +864), "start" the first 864. The dB reference is the whole clip's maximum either way,
        as in the paper, where power_to_db runs before the crop.
    """

    def __init__(self, pad_mode: str = "reflect", crop: str = "center", dft: str = "auto"):
        super().__init__()
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', not {pad_mode!r}")
        if crop not in ("center", "start"):
            raise ValueError(f"crop must be 'center' or 'start', not {crop!r}")
        self.pad_mode, self.crop = pad_mode, crop
        self.frames = LogMelFrames(dft=dft)

    def mel_power(self, wave: Tensor) -> Tensor:
        """librosa.feature.melspectrogram(y=wave, sr=44100, n_mels=128, pad_mode=...): [B, T] -> [B, 128, F]."""
        assert wave.dim() == 2, f"expected [B, T], got {tuple(wave.shape)}"
        # int(): a fixed-length export then gathers with constant indices (no Range/Shape ops).
        pad, length = self.frames.n_fft // 2, int(wave.shape[-1])
        if self.pad_mode == "constant":
            padded = F.pad(wave, (pad, pad))
        elif length > pad:  # the usual case: two small gathers instead of one as long as the clip
            left = torch.arange(pad, 0, -1, device=wave.device)
            right = torch.arange(length - 2, length - 2 - pad, -1, device=wave.device)
            padded = torch.cat([wave[:, left], wave, wave[:, right]], dim=-1)
        else:
            padded = wave[:, torch.from_numpy(_reflect_index(length, pad)).to(wave.device)]
        return self.frames(padded)

    def fit_frames(self, spec: Tensor) -> Tensor:
        """Crop or zero-pad (at the end) the time axis to 864 frames: [B, M, F] -> [B, M, 864]."""
        n = spec.shape[-1]
        if n >= PAPER_FRAMES:
            start = (n - PAPER_FRAMES) // 2 if self.crop == "center" else 0
            return spec[..., start:start + PAPER_FRAMES]
        return F.pad(spec, (0, PAPER_FRAMES - n))

    def forward(self, wave: Tensor) -> Tensor:
        spec = self.fit_frames(unit_db(self.mel_power(wave)))  # [B, 128, 864]
        return to_encoder_input(spec)  # [B, 1, 128, 512]


class StreamLogMel:
    """Rolling log-mel of a live stream, one STFT frame per hop as the samples arrive.

    Frame k covers stream samples [k*hop - n_fft/2, k*hop + n_fft/2) with zeros before the stream's start, i.e.
    librosa's centred frames with pad_mode="constant"; from frame 2 on (once n_fft/2 = 2 hops have passed) they
    equal `PaperLogMel`'s reflect-padded frames of the same samples exactly. A frame is computed once, when its
    last sample arrives, and its mel power is kept in a ring of `capacity` frames, so a push costs the frames it
    completes whatever the window length. The frames past the stream's current end (which a whole clip gets from
    its right padding) do not exist yet.

    capacity: frames kept (the longest `window`); block_frames: the most frames one `frames` call computes,
    which bounds the pending-sample buffer when a push brings many seconds at once. `frames_total` and
    `samples_total` count what has been processed since `reset`.

    Not thread-safe: push and read from one thread (the pipeline's), never from the audio callback.
    """

    def __init__(self, capacity: int = PAPER_FRAMES, block_frames: int = 64, frames: LogMelFrames | None = None):
        self.frames = frames if frames is not None else LogMelFrames()
        self.n_fft, self.hop = self.frames.n_fft, self.frames.hop
        self.capacity, self.block_frames = capacity, block_frames
        self._ring = torch.zeros(self.frames.n_mels, capacity)  # [n_mels, capacity] mel power
        self._pending = np.zeros(self.n_fft + (block_frames - 1) * self.hop, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget the stream; the next sample is sample 0 again."""
        self._fill = self.n_fft // 2  # zero history that centres frame 0 on sample 0
        self._pending[: self._fill] = 0.0
        self._ring.zero_()
        self.frames_total = 0  # frames computed since reset: frame k is stored at k % capacity
        self.samples_total = 0

    @torch.no_grad()
    def push(self, samples: np.ndarray | Tensor) -> int:
        """Append mono samples (any count) and compute the frames they complete; returns how many."""
        if isinstance(samples, Tensor):
            samples = samples.detach().cpu().numpy()
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"push takes mono samples [n], got shape {samples.shape}; mix down first")
        self.samples_total += samples.size
        new, pos = 0, 0
        while pos < samples.size:
            take = min(samples.size - pos, self._pending.size - self._fill)
            self._pending[self._fill:self._fill + take] = samples[pos:pos + take]
            self._fill += take
            pos += take
            new += self._compute_ready()
        return new

    def _compute_ready(self) -> int:
        k = (self._fill - self.n_fft) // self.hop + 1 if self._fill >= self.n_fft else 0
        if k == 0:
            return 0
        chunk = torch.from_numpy(self._pending[: self.n_fft + (k - 1) * self.hop]).unsqueeze(0)
        power = self.frames(chunk)[0]  # [n_mels, k]
        first = self.frames_total % self.capacity
        if first + k <= self.capacity:
            self._ring[:, first:first + k] = power
        else:
            self._ring[:, (first + torch.arange(k)) % self.capacity] = power
        self.frames_total += k
        used = k * self.hop
        self._pending[: self._fill - used] = self._pending[used:self._fill].copy()
        self._fill -= used
        return k

    def power(self, n_frames: int = PAPER_FRAMES) -> Tensor:
        """The newest frames' mel power, oldest first: [n_mels, min(n_frames, frames so far)]."""
        if not 0 < n_frames <= self.capacity:
            raise ValueError(f"n_frames must be in 1..{self.capacity}, got {n_frames}")
        n = min(n_frames, self.frames_total)
        start, end = (self.frames_total - n) % self.capacity, self.frames_total % self.capacity
        if n == 0 or start < end:
            return self._ring[:, start:start + n].clone()
        return torch.cat([self._ring[:, start:], self._ring[:, :end]], dim=1)  # the window wraps the ring

    def window(self, n_frames: int = PAPER_FRAMES) -> Tensor:
        """The newest frames in the paper's normalisation: [n_mels, n_frames] in [0, 1].

        `unit_db` with the reference over these frames; before n_frames frames exist, the available ones come
        first and zeros pad the end, as the paper pads a short clip.
        """
        power = self.power(n_frames)
        if power.shape[-1] == 0:
            return torch.zeros(self.frames.n_mels, n_frames)
        spec = unit_db(power.unsqueeze(0))[0]
        return F.pad(spec, (0, n_frames - spec.shape[-1]))

    def encoder_input(self) -> Tensor:
        """The newest 864 frames as the encoder's input: [1, 1, 128, 512]."""
        return to_encoder_input(self.window(PAPER_FRAMES).unsqueeze(0))
