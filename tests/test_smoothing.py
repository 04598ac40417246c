"""Frame-rate independent embedding smoothing, onset envelope and band levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from livesound.live.smoothing import (
    EmbeddingSmoother,
    OnsetEnvelope,
    band_levels,
    slerp,
)

TAU = 0.2
TARGET = 1 - math.exp(-1)  # ~0.632


def run_step(method: str, dts, e0: torch.Tensor, e1: torch.Tensor, **kw) -> torch.Tensor:
    s = EmbeddingSmoother(time_constant_s=TAU, method=method, **kw)
    s.update(e0, 0.0)
    for dt in dts:
        out = s.update(e1, dt)
        assert torch.allclose(out.norm(dim=-1), torch.ones(()), atol=1e-5)
    return out


@pytest.mark.parametrize("fps", [30, 120])
def test_ema_time_constant_holds_at_any_frame_rate(fps):
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    out = run_step("ema", [1 / fps] * round(TAU * fps), e0, e1)
    fraction = out[1] / (out[0] + out[1])  # the EMA's mixing weight of the new embedding
    assert fraction == pytest.approx(TARGET, rel=0.01)


def test_ema_time_constant_holds_with_jittery_frames():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    dts = np.random.default_rng(0).uniform(0.2, 1.8, 40)
    dts *= TAU / dts.sum()
    out = run_step("ema", dts.tolist(), e0, e1)
    assert (out[1] / out.sum()).item() == pytest.approx(TARGET, rel=0.01)


@pytest.mark.parametrize("fps", [30, 120])
def test_slerp_angle_decays_with_the_time_constant(fps):
    g = torch.Generator().manual_seed(0)
    e0, e1 = (torch.nn.functional.normalize(torch.randn(512, generator=g), dim=0) for _ in range(2))
    angle = lambda a, b: torch.acos((a * b).sum().clamp(-1, 1)).item()  # noqa: E731
    out = run_step("slerp", [1 / fps] * round(TAU * fps), e0, e1)
    travelled = 1 - angle(out, e1) / angle(e0, e1)
    assert travelled == pytest.approx(TARGET, rel=0.02)


def test_output_is_unit_norm_and_batched():
    g = torch.Generator().manual_seed(1)
    for method in ("ema", "slerp"):
        s = EmbeddingSmoother(0.25, method=method)
        for i in range(20):
            e = torch.randn(3, 16, generator=g) * (i + 1)  # not unit: the smoother normalises
            out = s.update(e, 1 / 60, onset=0.5 * (i % 2))
            assert out.shape == (3, 16)
            assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_onset_shortens_the_time_constant():
    s = EmbeddingSmoother(TAU, onset_gain=1.0)
    assert s.time_constant(1.0) == pytest.approx(TAU / 2)
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    s.update(e0, 0.0)
    for _ in range(12):
        out = s.update(e1, 1 / 120, onset=1.0)  # 0.1 s at tau / 2
    assert (out[1] / out.sum()).item() == pytest.approx(TARGET, rel=0.01)


def test_slerp_endpoints():
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    assert torch.allclose(slerp(a, a, 0.5), a)


SR = 48000


def test_onset_envelope_jumps_on_a_click_and_releases():
    env = OnsetEnvelope(SR, release_s=0.3, max_boost=2.0)
    dt = 1 / 60
    hop = SR // 60
    silence = np.zeros(hop, np.float32)
    for _ in range(30):
        level, onset, e = env.update(silence, dt)
    assert e == 0.0 and env.strength_boost == 0.0
    click = silence.copy()
    click[100:148] = 0.5
    level, onset, e = env.update(click, dt)
    assert onset == 1.0 and e == 1.0 and level > 0  # within the same update
    assert env.strength_boost == 2.0 and env.boosted(0.1) == pytest.approx(0.3)
    n = round(0.3 / dt)
    for _ in range(n):
        _, onset, e = env.update(silence, dt)
        assert onset == 0.0
    assert e == pytest.approx(math.exp(-n * dt / 0.3), rel=1e-6)  # exp(-1) after the release time


def test_onset_settles_on_steady_sound_and_ignores_gain():
    t = np.arange(SR * 3) / SR
    hop = SR // 50
    for gain in (0.01, 0.8):
        env = OnsetEnvelope(SR, release_s=0.2)
        tone = (gain * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        onsets = [env.update(tone[i:i + hop], hop / SR).onset for i in range(0, len(tone) - hop + 1, hop)]
        assert onsets[0] == 1.0  # sound after silence
        assert max(onsets[-50:]) == 0.0 and env.envelope < 0.01  # steady: no onsets after a second


@pytest.mark.parametrize("freq, band", [(100, 0), (1000, 1), (8000, 2)])
def test_band_levels(freq, band):
    sr, n = 44100, 4096
    x = 0.5 * np.sin(2 * np.pi * freq * np.arange(n) / sr)
    levels = band_levels(x, sr)
    assert levels.shape == (3,) and levels.dtype == np.float32
    assert levels[band] == pytest.approx(0.5 / math.sqrt(2), rel=0.03)
    others = np.delete(levels, band)
    assert (others < 0.01 * levels[band]).all()
    stereo = np.stack([x, x], axis=1)
    assert np.allclose(band_levels(stereo, sr), levels)
