"""Pulse and motion: the streaming percussive/harmonic split on synthetic drums and chords, and what it drives."""

import numpy as np
import pytest
import torch
from rig_helpers import fresh, shared_stages

from livesound.audio.features import StreamLogMel
from livesound.live.hpss import StreamingHPSS
from livesound.live.pipeline import run_fixed_step

SR = 44100
HOP = 1470  # 30 frames per second


def drums(seconds=2.0, seed=0) -> np.ndarray:
    """Clicks and short decaying noise bursts, four a second."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(SR * seconds), np.float32)
    for k in range(int(seconds * 4)):
        s, n = int(k * 0.25 * SR), int(0.04 * SR)
        x[s:s + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / SR * 80)
        x[s:s + 40] += 0.9
    return x


def chord(seconds=2.0) -> np.ndarray:
    """A sustained A major chord with a 50 ms fade-in."""
    t = np.arange(int(SR * seconds)) / SR
    x = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 440.0))
    return (x * np.minimum(1.0, t / 0.05)).astype(np.float32)


def envelopes(x: np.ndarray, settle_s: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    stream = StreamLogMel()
    hpss = StreamingHPSS(stream)
    pulse, motion = [], []
    for i in range(0, x.size, HOP):
        stream.push(x[i:i + HOP])
        hpss.update()
        if i >= settle_s * SR:  # past the chord's attack (which is a transient too, see the module)
            pulse.append(hpss.pulse)
            motion.append(hpss.motion)
    return np.array(pulse), np.array(motion)


def test_drums_raise_pulse_not_motion_and_a_chord_the_reverse():
    dp, dm = envelopes(drums())
    cp, cm = envelopes(chord())
    sp, sm = envelopes(np.zeros(SR, np.float32))
    assert dp.max() > 0.5 and dp.mean() > 0.2 and dm.max() < 0.1                # drums: pulse, no motion
    assert cm.mean() > 0.5 and cp.max() < 0.15                                   # chord: motion, no pulse
    assert dp.mean() > 5 * cp.mean() and cm.mean() > 5 * dm.mean()
    assert sp.max() == 0 and sm.max() == 0                                       # silence: neither


def test_pulse_follows_each_hit_and_level_does_not_matter_much():
    loud, _ = envelopes(drums(), settle_s=0)
    quiet, _ = envelopes(0.1 * drums(), settle_s=0)
    frames_per_hit = 0.25 * SR / HOP
    peaks = [i for i in range(1, loud.size) if loud[i] > 0.5 and loud[i - 1] <= 0.5]
    assert len(peaks) >= 7 and np.allclose(np.diff(peaks), frames_per_hit, atol=1.5)
    assert 0.5 * loud.max() < quiet.max() < loud.max()   # 20 dB quieter: smaller, still a clear pulse


def test_bands_come_from_the_spectrogram():
    stream = StreamLogMel()
    hpss = StreamingHPSS(stream)
    t = np.arange(SR // 2) / SR
    for f, band in ((100.0, 0), (1000.0, 1), (8000.0, 2)):
        stream.reset()
        hpss.reset()
        stream.push((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32))
        hpss.update()
        assert int(np.argmax(hpss.bands)) == band, (f, hpss.bands)
    assert hpss.bands[2] == pytest.approx(0.5, rel=0.5)  # amplitude 0.5 against a full-scale reference


@pytest.fixture
def stages():
    st = fresh(shared_stages())
    yield st
    fresh(st)


def test_gains_off_leave_frames_untouched_and_on_make_pulse_and_motion_drive_the_picture(stages):
    audio = np.concatenate([drums(0.35), chord(0.35)])
    st = fresh(stages)
    base = list(run_fixed_step(st, audio, 21, HOP))
    assert st.reactivity.source(st.ws_src) is st.ws_src                            # gains 0: the same tensor
    assert max(f.pulse for f in base[:10]) > 0.3 and max(f.motion for f in base[10:]) > 0.3

    st = fresh(stages)
    st.reactivity.gains.pulse_strength = 2.0
    st.reactivity.gains.pulse_kick = 1.0
    st.reactivity.gains.motion_walk = 3.0
    driven = list(run_fixed_step(st, audio, 21, HOP))
    hit = int(np.argmax([f.pulse for f in base[:10]]))
    assert driven[hit].strength > 1.5 * base[hit].strength                       # the pulse boosts strength
    assert np.abs(driven[hit].rgb.astype(float) - base[hit].rgb).mean() > 1      # and kicks the latent
    assert st.reactivity.phase > 0.1                                             # motion walked the latent
    walked = st.reactivity.source(st.ws_src)
    assert not torch.equal(walked, st.ws_src) and torch.isfinite(walked).all()
    fresh(stages)
