"""The paper's log-mel features: pure-torch modules against librosa + OpenCV doing what the paper's code does.

`paper_reference` below is the paper's own preprocessing (kuai-lab/sound-guided-semantic-image-manipulation,
optimization/run_optimization.py lines 38-60) written out with librosa and cv2, except that its random crop of a
long clip is the centre crop the module documents, and that its librosa 0.8.1 padded with "reflect", which
librosa >= 0.9 does only when asked.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from livesound.audio import features as ft

librosa = pytest.importorskip("librosa")
cv2 = pytest.importorskip("cv2")

SR = ft.SAMPLE_RATE
AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"


def paper_reference(y: np.ndarray, pad_mode: str = "reflect", crop: str = "center") -> np.ndarray:
    S = librosa.feature.melspectrogram(y=y, sr=SR, n_mels=128, pad_mode=pad_mode)
    S = librosa.power_to_db(S, ref=np.max) / 80.0 + 1
    w = S.shape[1]
    if w >= 864:
        j = (w - 864) // 2 if crop == "center" else 0
        S = S[:, j:j + 864]
    else:
        zero = np.zeros((128, 864))
        zero[:, :w] = S
        S = zero
    return cv2.resize(S, (128, 512)).reshape(1, 1, 128, 512).astype(np.float32)


def signal(name: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t = np.arange(441000) / SR
    if name == "noise":
        y = 0.1 * rng.standard_normal(441000)
    elif name == "sines":  # a tone, a high partial and a quiet chirp: wide dynamic range across mel bands
        y = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 6000 * t)
        y += 0.001 * np.sin(2 * np.pi * (100 + 800 * t) * t)
    elif name == "silence":
        y = np.zeros(441000)
    elif name == "short":  # 1.1 s: zero-padded to 864 frames
        y = 0.3 * rng.standard_normal(50000) * np.hanning(50000)
    elif name == "tiny":  # shorter than n_fft / 2: the reflect padding repeats
        y = rng.standard_normal(700)
    elif name == "long":  # 13.6 s: 1172 frames, centre-cropped, dB reference over the whole clip
        y = rng.standard_normal(600000) * np.linspace(0.01, 1.0, 600000)
    return y.astype(np.float32)


def paper(y: np.ndarray, **kw) -> np.ndarray:
    with torch.no_grad():
        return ft.PaperLogMel(**kw)(torch.from_numpy(y)[None]).numpy()


# ------------------------------------------------------------------------------------------ building blocks

@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(44100, 2048, 128, 0.0, None), (22050, 1024, 64, 30.0, 8000.0),
                                                       (16000, 512, 40, 0.0, None)])
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = ft.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape,dsize", [((128, 864), (128, 512)), ((128, 300), (128, 512)), ((7, 5), (3, 13)),
                                         ((40, 100), (90, 33)), ((1, 9), (4, 4))])
def test_resize_matches_cv2(shape, dsize):
    a = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref = cv2.resize(a, dsize)  # dsize = (width, height)
    ours = ft.resize_bilinear(torch.from_numpy(a), height=dsize[1], width=dsize[0]).numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_window_is_scipy_periodic_hann():
    scipy_signal = pytest.importorskip("scipy.signal")
    np.testing.assert_allclose(ft.periodic_hann(2048), scipy_signal.get_window("hann", 2048, fftbins=True), atol=1e-15)


def test_conv_and_fft_frames_agree():
    chunk = torch.from_numpy(signal("sines")[: 2048 + 9 * 512])[None]
    with torch.no_grad():
        conv, fft = ft.LogMelFrames(dft="conv")(chunk), ft.LogMelFrames(dft="fft")(chunk)
    assert conv.shape == (1, 128, 10)
    np.testing.assert_allclose(conv.numpy(), fft.numpy(), rtol=0, atol=1e-5 * float(fft.max()))


def test_unit_db_matches_power_to_db_including_silence():
    rng = np.random.default_rng(1)
    S = (rng.random((128, 50)) ** 8 * 1e3).astype(np.float32)
    S[:, :5] = 0.0
    for spec in (S, np.zeros_like(S)):  # librosa: all-zero power is 0 dB everywhere, i.e. 1.0
        ref = librosa.power_to_db(spec, ref=np.max) / 80.0 + 1
        np.testing.assert_allclose(ft.unit_db(torch.from_numpy(spec)[None])[0].numpy(), ref, atol=1e-6)
    assert float(ft.unit_db(torch.zeros(1, 128, 4)).min()) == 1.0


# ------------------------------------------------------------------------------------------ paper pipeline

@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
@pytest.mark.parametrize("name", ["noise", "sines", "silence", "short", "tiny", "long"])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_paper_features_match_librosa_cv2(name, pad_mode):
    y = signal(name)
    ours = paper(y, pad_mode=pad_mode)
    ref = paper_reference(y, pad_mode)
    assert ours.shape == (1, 1, 128, 512) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-4


@pytest.mark.parametrize("name", ["noise", "sines"])
def test_paper_features_conv_form_matches_too(name):
    y = signal(name)
    assert np.abs(paper(y, dft="conv") - paper_reference(y)).max() <= 1e-4


def test_long_clip_start_crop_and_batch():
    y = signal("long")
    assert np.abs(paper(y, crop="start") - paper_reference(y, crop="start")).max() <= 1e-4
    batch = np.stack([signal("noise"), signal("sines")])
    with torch.no_grad():
        out = ft.PaperLogMel()(torch.from_numpy(batch)).numpy()
    for i in range(2):  # the dB reference is per clip, not per batch
        assert np.abs(out[i:i + 1] - paper_reference(batch[i])).max() <= 1e-4


@pytest.mark.skipif(not AUDIO.is_dir() or not list(AUDIO.glob("*.wav")), reason="no example clips in ../shared/audio")
def test_real_clips_match_librosa_cv2():
    sf = pytest.importorskip("soundfile")
    for path in sorted(AUDIO.glob("*.wav")):
        y, sr = sf.read(path, dtype="float32", always_2d=True)
        y = y.mean(axis=1)  # librosa.to_mono
        if sr != SR:
            y = librosa.resample(y, orig_sr=sr, target_sr=SR)
        err = np.abs(paper(y) - paper_reference(y)).max()
        assert err <= 1e-4, f"{path.name}: max abs error {err:.2e}"


# ------------------------------------------------------------------------------------------------ streaming

def push_in_blocks(stream: ft.StreamLogMel, y: np.ndarray, sizes=(1, 37, 512, 4096, 3, 1000)) -> None:
    pos, i = 0, 0
    while pos < y.size:
        stream.push(y[pos:pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1


def whole_frames(y: np.ndarray, pad_mode: str) -> torch.Tensor:
    with torch.no_grad():
        return ft.PaperLogMel(pad_mode=pad_mode).mel_power(torch.from_numpy(y)[None])[0]  # [128, F]


def test_stream_frames_equal_whole_signal_frames():
    y = signal("sines")[:100_000] + signal("noise")[:100_000]
    stream = ft.StreamLogMel()
    push_in_blocks(stream, y)
    n = stream.frames_total
    assert n == (y.size - 1024) // 512 + 1  # every frame whose last sample has arrived, no more
    got = stream.power(n)
    zeros_start = whole_frames(y, "constant")[:, :n]
    np.testing.assert_allclose(got.numpy(), zeros_start.numpy(), rtol=1e-5, atol=1e-7 * float(got.max()))
    reflect = whole_frames(y, "reflect")[:, :n]  # the paper's padding only touches frames 0 and 1
    np.testing.assert_allclose(got[:, 2:].numpy(), reflect[:, 2:].numpy(), rtol=1e-5, atol=1e-7 * float(got.max()))
    assert not torch.allclose(got[:, :2], reflect[:, :2])

    win = stream.window(150)  # the newest 150 frames, dB reference over them
    np.testing.assert_allclose(win.numpy(), ft.unit_db(zeros_start[None, :, -150:])[0].numpy(), atol=1e-6)
    ref_input = ft.to_encoder_input(ft.PaperLogMel().fit_frames(ft.unit_db(zeros_start[None])))  # < 864: padded
    np.testing.assert_allclose(stream.encoder_input().numpy(), ref_input.numpy(), atol=1e-6)


def test_stream_one_sample_at_a_time():
    y = signal("noise")[:4000]
    stream = ft.StreamLogMel(capacity=16)
    counts = [stream.push(y[i:i + 1]) for i in range(y.size)]
    assert sum(counts) == stream.frames_total == (4000 - 1024) // 512 + 1
    assert [i for i, c in enumerate(counts) if c] == [1023 + 512 * k for k in range(stream.frames_total)]
    np.testing.assert_allclose(stream.power(16).numpy(), whole_frames(y, "constant")[:, :stream.frames_total].numpy(),
                               rtol=1e-5, atol=1e-9)


def test_stream_ring_wraps_and_big_blocks():
    y = signal("noise")[:120_000]
    stream = ft.StreamLogMel(capacity=50, block_frames=8)
    stream.push(torch.from_numpy(y))  # one block much larger than the pending buffer, as a tensor
    ref = whole_frames(y, "constant")[:, : stream.frames_total]
    for n in (50, 37, 1):
        np.testing.assert_allclose(stream.power(n).numpy(), ref[:, -n:].numpy(), rtol=1e-5, atol=1e-9)
    for size in (5000, 512, 3):  # and keeps doing so as the write position wraps
        stream.push(signal("noise")[:size])
        y = np.concatenate([y, signal("noise")[:size]])
        ref = whole_frames(y, "constant")[:, : stream.frames_total]
        np.testing.assert_allclose(stream.power(37).numpy(), ref[:, -37:].numpy(), rtol=1e-5, atol=1e-9)


def test_stream_window_before_enough_frames():
    stream = ft.StreamLogMel()
    assert torch.equal(stream.window(), torch.zeros(128, 864))
    stream.push(signal("noise")[:1024 + 512 * 9])
    win = stream.window()
    assert stream.frames_total == 10 and win.shape == (128, 864)
    assert float(win[:, :10].max()) == 1.0 and not win[:, 10:].any()  # zero-padded at the end, as the paper pads
    with pytest.raises(ValueError):
        stream.push(np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        stream.window(865)


class CountingFrames(ft.LogMelFrames):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[int, int]] = []  # (chunk samples, frames computed) per call

    def forward(self, chunk):
        out = super().forward(chunk)
        self.calls.append((chunk.shape[-1], out.shape[-1]))
        return out


@pytest.mark.parametrize("capacity", [64, 864, 8640])
def test_stream_per_hop_cost_is_one_frame_whatever_the_window(capacity):
    stream = ft.StreamLogMel(capacity=capacity, frames=CountingFrames())
    y = signal("noise")
    stream.push(y[:50_000])
    stream.frames.calls.clear()
    for k in range(20):
        assert stream.push(y[50_000 + 512 * k: 50_000 + 512 * (k + 1)]) == 1
    assert stream.frames.calls == [(2048, 1)] * 20
    stream.frames.calls.clear()
    assert stream.push(y[60_240:60_240 + 4096]) == 8
    assert stream.frames.calls == [(2048 + 7 * 512, 8)]


# ---------------------------------------------------------------------------------------------------- ONNX

def export(module: torch.nn.Module, example: torch.Tensor, path: Path, names, dynamic) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about the fixed sizes, which are intended
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=False, opset_version=17,
                          input_names=[names[0]], output_names=[names[1]], dynamic_axes=dynamic)


def op_types(path: Path) -> set[str]:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return {n.op_type for n in model.graph.node}


def test_onnx_frames_stage(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "frames.onnx"
    export(ft.LogMelFrames(), torch.zeros(1, 2048 + 3 * 512), path, ("chunk", "mel_power"),
           {"chunk": {0: "batch", 1: "samples"}, "mel_power": {0: "batch", 2: "frames"}})
    ops = op_types(path)
    assert "Conv" in ops and not ops & {"STFT", "DFT"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for k in (1, 9):
        chunk = torch.from_numpy(signal("sines")[: 2 * (2048 + (k - 1) * 512)].reshape(2, -1))
        got = sess.run(None, {"chunk": chunk.numpy()})[0]
        with torch.no_grad():
            ref = ft.LogMelFrames(dft="fft")(chunk).numpy()
        assert got.shape == (2, 128, k)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * float(ref.max()))


def test_onnx_paper_pipeline(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "paper.onnx"
    export(ft.PaperLogMel(), torch.zeros(1, 441000), path, ("wave", "spec"), {"wave": {0: "batch"}, "spec": {0: "batch"}})
    assert not op_types(path) & {"STFT", "DFT"}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = signal("noise")
    got = sess.run(None, {"wave": y[None]})[0]
    assert got.shape == (1, 1, 128, 512)
    assert np.abs(got - paper_reference(y)).max() <= 1e-4
