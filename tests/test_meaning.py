"""Meaning said out loud and arriving fast: the steering choice, what presets say about their networks, the
change-triggered window, and the semantic latency benchmark's report."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livesound.audio.features import StreamLogMel, unit_db
from livesound.audio.io import load_audio
from livesound.audio.sources import SynthSource
from livesound.live.build import LiveOptions
from livesound.live.novelty import SKIP_FRAMES, ChangeDetector
from livesound.live.steer_choice import choose
from livesound.models.presets import describe_presets, load_preset, network_states
from livesound.weights.checkpoint import save_own

SR = 44100


def stream_of(audio: np.ndarray, threshold_db: float = 8.0, hop: int = 1470):
    """Push ``audio`` block by block as the listener does; the frame index of each change found."""
    stream = StreamLogMel()
    detector = ChangeDetector(stream, threshold_db)
    found = []
    for i in range(0, audio.size, hop):
        stream.push(audio[i:i + hop])
        if detector.update():
            found.append(detector.start)
    return stream, detector, found


@pytest.mark.parametrize("kind", ["chirp", "noise", "sine", "clicks"])
def test_a_steady_sound_is_never_a_change(kind):
    """A sweeping chirp and sparse clicks included: each frame has a near twin within the last second."""
    _, detector, found = stream_of(SynthSource(kind).render(0, SR * 12))
    assert found == [] and detector.novelty < 4.0


def test_a_switch_of_sound_is_found_at_once_and_the_window_hears_only_the_new_sound():
    a, b = SynthSource("noise").render(0, SR * 3), SynthSource("sine", frequency=220.0).render(0, SR * 2)
    switch_frame = 3 * SR / 512
    stream, detector, found = stream_of(np.concatenate([a, b[:SR // 4]]))
    assert len(found) == 1 and abs(found[0] - switch_frame) <= 3                    # placed where the tone began
    assert detector.envelope > 0.5                                                   # the smoothing hurries
    n = 215
    window = detector.window(n)
    clean = stream.power(stream.frames_total - found[0] - SKIP_FRAMES)              # the tone's frames alone
    tiled = clean.repeat(1, -(-n // clean.shape[-1]))[:, -n:]
    assert torch.allclose(window, unit_db(tiled[None])[0])
    assert not torch.allclose(window, stream.window(n))                             # not the plain newest window

    _, off, none = stream_of(np.concatenate([a, b[:SR // 4]]), threshold_db=0)        # 0: the plain window, as before
    assert none == [] and torch.equal(off.window(n), off.stream.window(n))


def test_real_recordings_rarely_count_as_changes():
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "audio"       # as tests/test_audio_io.py
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        pytest.skip(f"the example recordings are not here ({folder})")
    seconds = changes = 0.0
    for f in files:
        audio = load_audio(f)
        seconds += audio.size / SR
        changes += len(stream_of(audio)[2])
    assert changes / seconds < 0.25, (changes, seconds)                              # under one every 4 s


def test_presets_say_which_networks_are_trained_and_how_they_steer():
    text = describe_presets()
    demo = text.split("\n")[:4]
    assert demo[0].split()[:2] == ["demo", "embedded"]
    assert "generator UNTRAINED (seed 20220612)" in demo[2] and "clip UNTRAINED (seed 20220614)" in demo[2]
    assert demo[3].strip() == "steering: bank (built on first use)"
    ffhq = text[text.index("ffhq-1024 "):]
    assert "generator trained (file stylegan2-ffhq-config-f.pt)" in ffhq and "mapper UNTRAINED (seed 0)" in ffhq
    assert "steering: mapper (UNTRAINED" in ffhq and "livesound bank build --preset ffhq-1024" in ffhq
    listed = {p["name"]: p for p in json.loads(describe_presets(as_json=True))}
    assert listed["demo"]["networks"]["encoder"] == {"trained": False, "from": "seed 20220613"}
    assert listed["ffhq-1024-ada"]["networks"]["generator"]["trained"] is True
    assert network_states(load_preset("demo"), mapper="m.safetensors")["mapper"].trained


@pytest.mark.parametrize("preset", ["ffhq-1024", "ffhq-1024-ada"])
def test_a_real_generator_without_a_trained_mapper_or_bank_warns_with_the_command(preset, tmp_path, tiny_generator):
    g = save_own(tmp_path / "g.safetensors", "generator", tiny_generator.cfg.to_dict(), tiny_generator.state_dict())
    p = load_preset(preset)
    choice = choose(p, LiveOptions(preset=preset, generator=str(g)))
    assert choice.kind == "mapper" and "mapper" in choice.untrained
    assert "untrained (seeded)" in choice.warning and f"livesound bank build --preset {preset}" in choice.warning
    with_bank = choose(p, LiveOptions(preset=preset, generator=str(g), bank="bank.safetensors"))
    assert (with_bank.kind, with_bank.warning, with_bank.untrained) == ("bank", None, [])
    trained = choose(p, LiveOptions(preset=preset, generator=str(g), mapper="m.safetensors"))
    assert (trained.kind, trained.warning) == ("mapper", None)
    assert choose(p, LiveOptions(preset=preset, steer="bank")).why == "--steer"
    demo = choose(load_preset("demo"), LiveOptions(steer="mapper"))
    assert demo.warning is None and "untrained (seeded): generator, encoder, clip, mapper" in demo.line


def test_the_semantic_bench_writes_the_documented_report(tmp_path):
    from livesound.bench.run import BenchOptions, run_benchmark
    from livesound.live.backends import fingerprint
    from livesound.offline.bank import BankSettings, build_bank_for, plan_anchors
    from livesound.offline.networks import ModelOptions, load_networks

    sf.write(tmp_path / "hiss.wav", SynthSource("noise").render(0, SR * 2), SR)
    sf.write(tmp_path / "tone.wav", SynthSource("sine", frequency=220.0).render(0, SR * 2), SR)
    nets = load_networks(ModelOptions(), need_encoder=True)
    bank = tmp_path / "bank.safetensors"
    build_bank_for(nets.G, nets.encoder, nets.clip, plan_anchors(sounds=[str(tmp_path)]),
                   BankSettings(steps=2, batch=2, centre=True), bank, progress=False)
    assert fingerprint(nets.G)  # the bank's generator is the preset's
    out = tmp_path / "sem.json"
    run_benchmark(BenchOptions(what="semantic", preset="demo", bank=str(bank), segment=1.5, switches=2, fps=20,
                               json=str(out)), log=lambda line: None)
    report = json.loads(out.read_text())
    assert report["switches"] == 2 and report["anchors"] in (["hiss", "tone"], ["tone", "hiss"])
    for key in ("half_way_ms", "ninety_ms"):
        assert 0 < report[key]["p50"] <= report[key]["p95"] < 1500, report[key]
    assert report["half_way_ms"]["p50"] <= report["ninety_ms"]["p50"]
    assert set(report["parts_ms"]) == {"window_fill", "encoder", "smoothing", "steering"}
    assert all("p50" in v and "p95" in v for v in report["parts_ms"].values())
    assert "_curves" not in report and out.with_suffix(".png").stat().st_size > 5000
