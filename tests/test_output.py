"""The output size: one resize (after an optional upscaler) before the host copy, so every output carries it.

The picture reaches PNGs, recordings and the NDI sender at the asked size (each checked on the real thing: the
files decoded, the frame handed to cyndilib's sender); the resize and upscale stages are timed like the others;
the upscaler runs on ONNX Runtime through the engine cache like any accelerated stage; a glide moves the source
latent over the frames' own time.
"""

import importlib.util
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.glide import SourceGlide
from livesound.live.output import FrameResize, parse_size
from livesound.live.pipeline import run_fixed_step
from livesound.models.realesrgan import CompactConfig, build_upscaler

SR = 44100
HAVE_NDI = importlib.util.find_spec("cyndilib") is not None
HAVE_AV = importlib.util.find_spec("av") is not None


def chirp(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype(np.float32)


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "chirp.wav"
    sf.write(path, chirp(), SR)
    return path


@pytest.fixture(scope="module")
def demo():
    """One torch-backend demo build for the tests that only change its output size."""
    return build_pipeline(LiveOptions(preset="demo", backend="torch"))


@pytest.fixture
def sized(demo):
    """``sized(w, h)``: the shared demo pipeline resizing to w x h (restored afterwards)."""
    from rig_helpers import fresh

    def at(w: int, h: int):
        demo.resizer = FrameResize(w, h)
        return fresh(demo)

    yield at
    demo.resizer = None
    fresh(demo)


@pytest.fixture(scope="module")
def compact_pth(tmp_path_factory):
    """A small compact-layout upscaler saved as the public files are."""
    path = tmp_path_factory.mktemp("up") / "compact.pth"
    torch.save({"params": build_upscaler(CompactConfig(num_feat=8, num_conv=2), seed=5).state_dict()}, path)
    return path


# --------------------------------------------------------------------------------------------- the resize

def test_size_and_fit_are_checked_with_one_clear_line():
    assert parse_size("1920x1080") == (1920, 1080) and parse_size(" 64X48 ") == (64, 48)
    for bad in ("1920", "0x10", "10x-4", "axb", "99999x10"):
        with pytest.raises(ValueError, match="--size"):
            parse_size(bad)
    with pytest.raises(ValueError, match="--fit must be one of cover, contain"):
        FrameResize(10, 10, "stretch")
    with pytest.raises(ValueError, match="--fit"):
        LiveOptions(size="64x64", fit="fill")
    with pytest.raises(ValueError, match=r"nope.pth: no such file \(--upscaler\)"):
        LiveOptions(upscaler="nope.pth")


def test_cover_crops_the_centre_and_contain_pads_black():
    img = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()   # left dark, right bright
    level = lambda v: (v + 1) * 127.5  # noqa: E731 - a generator value's 8-bit level
    wide = FrameResize(128, 32, "cover")(img)
    assert wide.shape == (1, 3, 32, 128)
    assert wide[..., 0].float().mean() < level(-0.9) and wide[..., -1].float().mean() > level(0.9)  # full width
    tall = FrameResize(32, 128, "cover")(img).float()
    assert tall.shape == (1, 3, 128, 32)                                             # the middle quarter:
    assert level(-0.3) < tall[..., 0].mean() < level(-0.2) and level(0.2) < tall[..., -1].mean() < level(0.3)
    boxed = FrameResize(128, 64, "contain")(img)
    assert boxed.shape == (1, 3, 64, 128) and boxed.dtype == torch.uint8
    assert torch.all(boxed[..., :32] == 0) and torch.all(boxed[..., 96:] == 0)       # black bars left and right
    assert boxed[..., 32].float().mean() < level(-0.9) and boxed[..., 95].float().mean() > level(0.9)
    same = FrameResize(64, 64)(img)
    assert torch.equal(same, ((img + 1) * 127.5).round().to(torch.uint8))            # nothing to do but quantise
    for out in (wide, boxed, same):                     # 8 bits, height x width x RGB in memory: the host
        assert out.is_contiguous(memory_format=torch.channels_last)                  # copy is the only copy


def test_shrinking_is_antialiased():
    stripes = torch.cos(2 * torch.pi * 0.2 * torch.arange(256.0))   # 5 px stripes: too fine for a 4x shrink
    img = stripes.view(1, 1, 1, 256).expand(1, 3, 256, 256)
    small = FrameResize(64, 64)(img).float()
    assert (small - 127.5).abs().max() < 7                # averaged to grey, not sampled into a pattern
    plain = torch.nn.functional.interpolate(img, size=(64, 64), mode="bicubic", align_corners=False)
    assert plain.std() > 0.5                              # a plain bicubic aliases them into wide false stripes


# --------------------------------------------------------------------------------------------- the pipeline

def test_frames_come_out_at_the_asked_size_with_the_stages_timed(compact_pth, demo):
    st = build_pipeline(LiveOptions(preset="demo", backend="torch", size="320x180", fit="contain",
                                    upscaler=str(compact_pth)))
    frames = list(run_fixed_step(st, chirp(0.3), 3, 1470))
    assert all(f.rgb.shape == (180, 320, 3) and f.rgb.dtype == np.uint8 for f in frames)
    assert set(frames[-1].stage_ms) >= {"synthesize", "upscale", "resize", "to_rgb8"}
    assert {"upscale", "resize"} <= set(st.times.summary())
    assert frames[-1].rgb[:, :60].max() == 0 and frames[-1].rgb[:, 80:240].std() > 5   # bars, then the picture
    f = next(run_fixed_step(demo, chirp(0.3), 1, 1470))
    assert f.rgb.shape == (128, 128, 3) and "resize" not in f.stage_ms and "upscale" not in demo.runners


def test_the_upscaler_runs_on_onnx_runtime_through_the_engine_cache(compact_pth, tmp_path, monkeypatch):
    from livesound.live.backends import engines_dir
    from livesound.live.backends.ort_stage import OrtBackend

    monkeypatch.setenv("LIVESOUND_ENGINES", str(tmp_path / "engines"))  # its own cache: others count theirs

    ort = build_pipeline(LiveOptions(preset="demo", backend="upscale=onnxruntime", upscaler=str(compact_pth)))
    assert isinstance(ort.runners["upscale"], OrtBackend) and ort.backends["upscale"] == "onnxruntime"
    assert ort.runners["upscale"].path.parent.parent == engines_dir()
    assert ort.runners["upscale"].path.parent.name.startswith("upscaler-")
    img = ort.synthesize(ort.map(torch.nn.functional.normalize(torch.randn(1, 512), dim=-1), 0.5))
    with torch.inference_mode():
        want = ort.upscaler(img)
    got = ort.upscale(img)
    assert got.shape == (1, 3, 512, 512) and (got - want).abs().max() < 2e-3
    again = build_pipeline(LiveOptions(preset="demo", backend="upscale=onnxruntime", upscaler=str(compact_pth)))
    assert again.runners["upscale"].path == ort.runners["upscale"].path      # exported once, then reused


def test_headless_pngs_and_the_recording_carry_the_asked_size(tmp_path, wav, sized):
    from livesound.rig.headless import run_headless

    record = tmp_path / "show.mp4" if HAVE_AV else tmp_path / "show_frames"
    stats = run_headless(sized(200, 120), LiveOptions(source=str(wav)), 4, tmp_path / "frames", record=record)
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 4 and all(Image.open(p).size == (200, 120) for p in pngs)
    assert stats["recording"]["frames"] == 4 and "resize" in stats["stages"]
    if HAVE_AV:
        import av

        with av.open(str(record)) as container:
            sizes = [(f.width, f.height) for f in container.decode(video=0)]
        assert sizes == [(200, 120)] * 4
    else:
        assert all(Image.open(p).size == (200, 120) for p in sorted(record.glob("*.png")))


@pytest.mark.skipif(not HAVE_NDI, reason="cyndilib (the `ndi` extra) is not installed")
def test_the_ndi_sender_is_handed_frames_of_the_asked_size(sized):
    from livesound.rig.rig import RigOptions, open_rig

    st = sized(256, 144)
    rig = open_rig(st, RigOptions(ndi="livesound-size-test"))
    out = rig.video[0]
    handed, send = [], out.sender.send
    out.sender.send = lambda rgb: (handed.append(rgb.shape), send(rgb))[1]
    try:
        for frame in run_fixed_step(st, chirp(0.3), 3, 1470, rig.step_before_frame):
            rig.after_frame(frame)
        deadline = time.monotonic() + 5
        while out.sent < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        rig.close()
    assert out.error is None and out.sent >= 1
    assert handed and all(shape == (144, 256, 3) for shape in handed)


def test_bench_times_the_output_stages(compact_pth, tmp_path):
    import json

    from livesound.bench.run import BenchOptions, run_benchmark

    out, png = run_benchmark(BenchOptions(backends="torch", frames=2, warmup=0, threads=1, size="320x180",
                                          upscaler=str(compact_pth), json=str(tmp_path / "bench.json")),
                             log=lambda s: None)
    d = json.loads(out.read_text())
    stages = d["backends"]["torch"]["stages"]
    assert {"generator", "upscale", "resize", "total"} <= set(stages) and d["settings"]["size"] == "320x180"
    assert stages["total"]["p50_ms"] >= stages["upscale"]["p50_ms"] + stages["resize"]["p50_ms"]
    assert png.stat().st_size > 1000


# --------------------------------------------------------------------------------------------- gliding

def test_a_glide_eases_over_its_seconds_and_lands_exactly():
    a, b = torch.zeros(1, 4, 3), torch.ones(1, 4, 3)
    g = SourceGlide(a, b, seconds=1.0)
    steps = [float(g.step(0.25).mean()) for _ in range(4)]
    assert steps[0] < 0.25 and abs(steps[1] - 0.5) < 1e-6 and steps[2] > 0.75 and g.done
    assert torch.equal(g.step(0.1), b)
    with pytest.raises(ValueError, match="shape"):
        SourceGlide(a, torch.ones(1, 5, 3))


def test_the_engine_glides_the_source_latent_between_frames(demo):
    from rig_helpers import fresh

    from livesound.audio.sources import SynthSource
    from livesound.live.engine import LiveEngine

    st = fresh(demo)
    start = st.ws_src.clone()
    goal = st.G.mapping(st.G.z_from_seeds([77]), truncation_psi=0.7).detach()
    engine = LiveEngine(st, SynthSource("chirp"), pin_threads="off")
    engine.glide_to(goal, seconds=0.3)
    engine.start()
    try:
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not torch.equal(st.ws_src, goal):
            seen.append(float((st.ws_src - start).norm() / (goal - start).norm()))
            time.sleep(0.01)
    finally:
        engine.stop()
    assert torch.equal(st.ws_src, goal) and st.glide is None
    assert any(0.05 < s < 0.95 for s in seen)                    # it travelled, it did not cut
