"""Live presets (a round trip renders identical frames) and checkpoint swaps while the engine runs."""

import json
import time

import numpy as np
import pytest
import torch
from rig_helpers import fresh, shared_stages

from livesound.audio.sources import SynthSource
from livesound.live.engine import LiveEngine
from livesound.live.pipeline import run_fixed_step
from livesound.models.mapper import MapperConfig, build_mapper, save_mapper
from livesound.models.stylegan2 import build_generator
from livesound.rig.control import Controls, StepTarget
from livesound.rig.presets import LivePresetError, PresetBank, capture
from livesound.rig.rig import Rig, RigOptions
from livesound.rig.swap import CheckpointSwap
from livesound.weights.checkpoint import save_own

SR = 44100


@pytest.fixture
def stages():
    st = fresh(shared_stages())
    yield st
    fresh(st)


def audio(seconds=0.4) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    x[::11025] += 0.9  # clicks: the pulse and the kick take part
    return x.astype(np.float32)


def test_round_trip_restores_identical_frames(stages, tmp_path):
    target = StepTarget(stages)
    controls = Controls(target)
    for name, args in (("seed", (3,)), ("strength", (0.9,)), ("smoothing", (0.1,)), ("text", ("a red sunset",)),
                       ("mix", ("coarse,medium",)), ("pulse_gain", (1.0,)), ("kick", (0.5,)), ("walk", (2.0,))):
        controls.submit(name, *args)
    controls.apply_pending()
    stages.reactivity.phase = 1.0
    bank = PresetBank(tmp_path / "set.json")
    bank.store(2, target)
    first = [f.rgb for f in run_fixed_step(stages, audio(), 8, 1470, lambda: target.strength)]

    fresh(stages)                                           # back to the defaults: seed 0, no text, no gains
    target = StepTarget(stages)
    assert capture(target) != bank.slots[2]
    PresetBank(tmp_path / "set.json").recall(2, target)     # from the file
    assert capture(target) == bank.slots[2]
    again = [f.rgb for f in run_fixed_step(stages, audio(), 8, 1470, lambda: target.strength)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len({f.tobytes() for f in first}) == 8


def test_bad_preset_files_and_states_are_one_clear_error(stages, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LivePresetError, match="bad.json: cannot read the live presets"):
        PresetBank(bad)
    bad.write_text(json.dumps({"slots": {}}))
    with pytest.raises(LivePresetError, match="not a livesound live preset file"):
        PresetBank(bad)
    bank = PresetBank(tmp_path / "ok.json")
    target = StepTarget(stages)
    bank.store(1, target)
    before = capture(target)
    bank.slots[1]["ws_src"] = bank.slots[1]["ws_src"][:-1]    # a latent of another generator
    with pytest.raises(LivePresetError, match="source latent of shape"):
        bank.recall(1, target)
    with pytest.raises(LivePresetError, match="preset 4 is empty"):
        bank.recall(4, target)
    assert capture(target) == before                          # nothing changed


def test_osc_preset_recall_and_slot_one_at_start(stages, tmp_path):
    target = StepTarget(stages)
    rig = Rig(target, RigOptions(preset_file=str(tmp_path / "set.json")))
    rig.controls.submit("seed", 11)
    rig.controls.submit("preset_save", 1)
    rig.controls.submit("seed", 12)
    rig.controls.submit("preset_save", 5)
    rig.before_frame()
    rig.close()
    assert json.loads((tmp_path / "set.json").read_text())["slots"]["5"]["seed"] == 12
    fresh(stages)
    rig = Rig(StepTarget(stages), RigOptions(preset_file=str(tmp_path / "set.json")))
    rig.before_frame()
    assert stages.seed == 11                                  # a set starts from slot 1
    rig.controls.submit("preset", 5)
    rig.before_frame()
    assert stages.seed == 12
    rig.close()


def write_checkpoints(stages, tmp_path):
    G = stages.G
    g2 = build_generator(G.cfg, seed=77)
    gpath = save_own(tmp_path / "g2.safetensors", "generator", g2.cfg.to_dict(), g2.state_dict())
    m = stages.steerer
    m2 = build_mapper(MapperConfig(num_ws=m.num_ws, w_dim=m.w_dim, clip_dim=m.clip_dim), seed=78)
    return gpath, save_mapper(m2, tmp_path / "m2.safetensors")


def test_checkpoint_swap_under_load_loses_no_audio_and_no_frame(stages, tmp_path, caplog):
    gpath, mpath = write_checkpoints(stages, tmp_path)
    (tmp_path / "broken.safetensors").write_bytes(b"\0" * 64)
    engine = LiveEngine(stages, SynthSource("chirp"))
    rig = Rig(engine, RigOptions(osc_allow_path=[str(tmp_path)])).attach(engine)
    frames = []
    send = rig.after_frame
    rig.after_frame = lambda f: (frames.append((f.index, f.t_done, rig.swap.swaps, f.rgb)), send(f))
    engine.after_frame = rig.after_frame
    old_G = stages.G
    saved = snapshot(stages)
    stages.replace(generator=stages.G, steerer=stages.steerer)  # torch stages: no export here (the next test)
    engine.start()
    try:
        deadline = time.monotonic() + 120
        while len(frames) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.controls.submit("generator", str(tmp_path / "broken.safetensors"))   # refused, nothing changes
        # One swap in flight, the newest wins: the good one is asked for once the broken one was refused.
        while rig.swap.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.controls.submit("generator", str(gpath))
        while rig.swap.swaps < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.controls.submit("mapper", str(mpath))
        while rig.swap.swaps < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        n = len(frames)
        while len(frames) < n + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.error is None and engine.running
        new_G = stages.G
    finally:
        engine.stop()
        rig.close()
        restore(stages, saved)  # the shared pipeline goes back to the demo networks
    assert rig.swap.swaps == 2 and new_G is not old_G and "broken.safetensors" in rig.swap.last_error
    assert sum("broken.safetensors not loaded" in r.getMessage() for r in caplog.records) == 1
    assert engine.source.ring.overruns == 0 and engine.source.ring.dropped_samples == 0
    indices = [i for i, *_ in frames]
    assert indices == list(range(indices[0], indices[0] + len(indices)))      # every frame went out
    times = np.array([t for _, t, *_ in frames])
    assert rig.swap.last_apply_ms < np.median(np.diff(times)) * 1e3            # the takeover fits between frames
    before = [rgb for _, _, swaps, rgb in frames if swaps == 0]
    after = [rgb for _, _, swaps, rgb in frames if swaps == 2]
    assert np.abs(after[-1].astype(float) - before[-1]).mean() > 5             # the new networks draw


def test_swapping_an_accelerated_stage_keeps_its_backend(stages, tmp_path):
    """The new mapper is exported (in a child process) and runs on ONNX Runtime like the one it replaces."""
    from livesound.live.backends.ort_stage import OrtBackend

    _, mpath = write_checkpoints(stages, tmp_path)
    assert stages.backends["map"] == "onnxruntime"     # the shared stages' backend (rig_helpers)
    saved = snapshot(stages)
    swap = CheckpointSwap(stages)
    try:
        swap.request("mapper", str(mpath)).join(300)
        assert swap.last_error is None and swap.apply_pending()
        assert isinstance(stages.runners["map"], OrtBackend) and stages.backends["map"] == "onnxruntime"
        e = torch.nn.functional.normalize(torch.randn(1, stages.steerer.clip_dim), dim=-1)
        k = torch.full((1,), 0.5)
        ort = stages.runners["map"](stages.ws_src, e, k)
        ref = stages.torch_runners["map"](stages.ws_src, e, k)
        old = saved[3]["map"](stages.ws_src, e, k)
        assert torch.allclose(ort, ref, atol=1e-3) and not torch.allclose(ref, old)
    finally:
        restore(stages, saved)


def snapshot(pipeline):
    return (pipeline.G, pipeline.steerer, dict(pipeline.runners), dict(pipeline.torch_runners),
            dict(pipeline.backends))


def restore(pipeline, saved):
    G, steerer, runners, torch_runners, backends = saved
    pipeline.replace(generator=G, steerer=steerer)
    pipeline.runners, pipeline.torch_runners, pipeline.backends = runners, torch_runners, backends
