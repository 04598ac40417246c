"""`livesound embed` against the contract: the paper's own pipeline, row order, and one-line errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

SHARED_AUDIO = REPO.parent / "shared" / "audio"


def embed(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "livesound", "embed", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def paper_checkpoint(tmp_path_factory):
    """A released-layout checkpoint (conv.* + feature_extractor.*, DataParallel prefix) with seeded weights."""
    import timm
    from torch import nn

    torch.manual_seed(0)
    conv, fe = nn.Conv2d(1, 3, 3), timm.create_model("resnet18", num_classes=512, pretrained=False)
    with torch.no_grad():
        for m in fe.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    sd = {f"module.conv.{k}": v for k, v in conv.state_dict().items()}
    sd.update({f"module.feature_extractor.{k}": v for k, v in fe.state_dict().items()})
    path = tmp_path_factory.mktemp("enc") / "resnet18_57.pth"
    torch.save(sd, path)
    return path, conv.eval(), fe.eval()


def paper_pipeline(path: Path) -> np.ndarray:
    """The paper's preprocessing written out with librosa and OpenCV, as its pinned librosa 0.8.1 behaved
    (reflect padding, resampy's kaiser_best resampler)."""
    import cv2
    import librosa

    y, sr = librosa.load(str(path), sr=44100, res_type="kaiser_best")  # librosa 0.8's default resampler
    spec = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128, n_fft=2048, hop_length=512, pad_mode="reflect")
    spec = librosa.power_to_db(spec, ref=np.max) / 80.0 + 1.0
    if spec.shape[1] >= 864:
        start = (spec.shape[1] - 864) // 2
        spec = spec[:, start:start + 864]
    else:
        spec = np.pad(spec, ((0, 0), (0, 864 - spec.shape[1])))
    spec = cv2.resize(spec, (128, 512))
    return spec.reshape(1, 1, 128, 512).astype(np.float32)


def clips() -> list[Path]:
    return sorted(SHARED_AUDIO.glob("*.wav")) if SHARED_AUDIO.is_dir() else []


@pytest.mark.skipif(not clips(), reason="the shared example clips (../shared/audio) are absent")
def test_embed_matches_the_papers_pipeline_on_real_clips(tmp_path, paper_checkpoint):
    ckpt, conv, fe = paper_checkpoint
    files = clips()
    r = embed(*files, "--encoder", ckpt, "--preprocess", "paper", "--out", tmp_path / "emb.npy")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "emb.npy")
    assert got.shape == (len(files), 512) and got.dtype == np.float32
    with torch.no_grad():
        want = torch.cat([fe(conv(torch.from_numpy(paper_pipeline(f)))) for f in files]).numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.999, dict(zip([f.name for f in files], cos.round(5)))
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)  # unit rows by default
    # rows are per file, in order, and the files really differ
    assert np.abs(got[0] - got[1]).max() > 1e-3


def test_embed_synthetic_clip_matches_paper_and_raw_option(tmp_path, paper_checkpoint):
    ckpt, conv, fe = paper_checkpoint
    t = np.arange(int(48000 * 3.2)) / 48000
    x = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(tmp_path / "chirp.flac", np.stack([x, 0.5 * x], 1), 48000, subtype="PCM_24")
    r = embed(tmp_path / "chirp.flac", "--encoder", ckpt, "--raw", "--out", tmp_path / "raw.npy")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "raw.npy")[0]
    with torch.no_grad():
        want = fe(conv(torch.from_numpy(paper_pipeline(tmp_path / "chirp.flac"))))[0].numpy()
    assert np.dot(got, want) / np.linalg.norm(got) / np.linalg.norm(want) >= 0.999
    # raw: the encoder's own scale, not a unit vector
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_embed_stream_preprocessing_and_labels(tmp_path):
    sf.write(tmp_path / "a.wav", 0.2 * np.sin(np.arange(44100 * 2) * 0.05).astype(np.float32), 44100)
    sf.write(tmp_path / "b.wav", np.zeros(44100, np.float32), 44100)  # silence is valid input
    r = embed(tmp_path / "a.wav", tmp_path / "b.wav", "--preprocess", "stream", "--labels", "rain,fire,wind",
              "--top", "2", "--out", tmp_path / "e.npy")
    assert r.returncode == 0, r.stderr
    e = np.load(tmp_path / "e.npy")
    assert e.shape == (2, 512) and np.isfinite(e).all()
    lines = [l for l in r.stdout.splitlines() if l.startswith(str(tmp_path))]
    assert len(lines) == 2 and all(len(l.split(": ")[1].split(", ")) == 2 for l in lines)
    assert "untrained" in r.stderr


@pytest.mark.parametrize("case, message", [
    ("empty", "empty audio file"),
    ("text", "not a readable audio file"),
    ("nan", "non-finite samples"),
    ("one", "too short"),
    ("missing", "file not found"),
])
def test_bad_inputs_give_one_line_and_nonzero_exit(tmp_path, case, message):
    p = tmp_path / f"{case}.wav"
    if case == "empty":
        sf.write(p, np.zeros((0, 1), np.float32), 44100)
    elif case == "text":
        p.write_text("these are notes, not sound\n")
    elif case == "nan":
        x = np.full(44100, 0.1, np.float32)
        x[10] = np.nan
        sf.write(p, x, 44100, subtype="FLOAT")
    elif case == "one":
        sf.write(p, np.zeros(1, np.float32), 44100)
    r = embed(p, "--out", tmp_path / "e.npy")
    assert r.returncode == 1
    assert message in r.stderr and str(p) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "e.npy").exists()
