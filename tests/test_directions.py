"""StyleCLIP's global directions: style offsets in the generator (torch and ONNX), StyleCLIP's file layout read
safely, ``directions build`` (resumable, split under torchrun, bound to its generator) and the live steerer.

Tiny seeded networks where the behaviour does not depend on size; the ``demo`` preset (untrained CLIP: the
directions are a real computation with meaningless semantics) where the issue asks for it.
"""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from PIL import Image

from livesound.live.directions_steer import ALPHA_PER_STRENGTH, DirectionsSettings, DirectionsSteer
from livesound.models.presets import clip_from_preset, generator_from_preset, load_preset
from livesound.models.stylegan2 import Generator, GeneratorConfig, build_generator
from livesound.offline.directions import DirectionsOptions, build_directions, load_directions, style_layout
from livesound.offline.networks import ModelOptions
from livesound.weights.checkpoint import CheckpointError

TINY_PRESET = {"name": "tiny", "description": "16 px, for tests",
               "generator": {"seed": 5, "config": {"resolution": 16, "z_dim": 16, "w_dim": 16, "mapping_layers": 2,
                                                   "channel_base": 128, "channel_max": 16}},
               "clip": {"seed": 7}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "tiny.json"
    path.write_text(json.dumps(TINY_PRESET))
    return path


@pytest.fixture(scope="module")
def demo():
    preset = load_preset("demo")
    return generator_from_preset(preset), clip_from_preset(preset)


@pytest.fixture(scope="module")
def demo_directions(tmp_path_factory):
    """The demo preset's directions from one sample (the contract's 32 take minutes on a CPU)."""
    out = tmp_path_factory.mktemp("dirs") / "demo_dirs.safetensors"
    build_directions(DirectionsOptions(models=ModelOptions(preset="demo"), out=str(out), samples=1, batch=64,
                                       stats_samples=2000, progress=False), log=lambda s: None)
    return out


# ------------------------------------------------------------------------------------ style offsets, torch

def test_zero_style_offsets_leave_the_generator_unchanged(demo):
    G = demo[0]
    ws = G.mapping(G.z_from_seeds([0, 1]), truncation_psi=0.7)
    zeros = torch.zeros(2, sum(G.synthesis.style_channels))
    with torch.no_grad():
        for fast in (False, True):
            G.synthesis.set_fast_paths(fused_act=fast, channels_last=fast)
            plain = G.synthesis(ws)
            assert torch.equal(G.synthesis(ws, style_delta=zeros), plain)        # bit-identical
            assert torch.equal(G.synthesis(ws, style_delta=zeros[:1]), plain)    # [1, C] broadcasts
    G.synthesis.set_fast_paths()


def test_style_offsets_add_to_the_convolutions_styles_and_are_checked(tiny_generator):
    G = tiny_generator
    syn = G.synthesis
    C = sum(syn.style_channels)
    assert syn.style_channels == [layer.affine.weight.shape[0] for layer in syn.layers]
    ws = G.mapping(G.z_from_seeds([3]), truncation_psi=0.7)
    delta = torch.zeros(1, C)
    delta[0, 5] = 2.0                                               # one channel of the 4 px convolution
    styles = syn.styles(ws)
    assert styles.shape == (1, C)
    captured = {}
    hook = syn.layers[0].register_forward_hook(lambda m, args, out: captured.setdefault("x", out))
    with torch.no_grad():
        moved = syn(ws, style_delta=delta)
    hook.remove()
    assert not torch.allclose(moved, syn(ws))
    # The same picture as a generator whose first affine bias carries the offset: styles = affine(w) + delta.
    G2 = build_generator(G.cfg, seed=3)
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        G2.synthesis.layers[0].affine.bias[5] += 2.0 / G2.synthesis.layers[0].affine.lr_mul
        assert torch.allclose(G2.synthesis(ws), moved, atol=1e-5)
    with pytest.raises(Exception, match=f"style_delta must be \\[N, {C}\\]"):
        syn(ws, style_delta=torch.zeros(1, C + 1))


def test_styled_generator_graph_matches_torch_in_onnxruntime(tmp_path, tiny_generator):
    import onnxruntime as ort

    from exporters.onnx import export_graph, stage_specs

    G = tiny_generator
    specs = {s.name: s for s in stage_specs(G=G, styles=True)}
    assert set(specs) == {"generator", "generator_styles"}
    report = export_graph(specs["generator_styles"], tmp_path)
    C = sum(G.synthesis.style_channels)
    assert report["inputs"] == {"ws": ["batch", G.num_ws, G.w_dim], "style_delta": ["batch", C]}
    assert report["max_abs_error"] < 1e-4
    export_graph(specs["generator"], tmp_path)
    styled = ort.InferenceSession(str(tmp_path / "generator_styles.onnx"), providers=["CPUExecutionProvider"])
    plain = ort.InferenceSession(str(tmp_path / "generator.onnx"), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=g), truncation_psi=0.7).detach()
    delta = 3 * torch.randn(2, C, generator=g)
    with torch.no_grad():
        want = G.synthesis(ws, style_delta=delta).numpy()
    got = styled.run(["image"], {"ws": ws.numpy(), "style_delta": delta.numpy()})[0]
    assert np.abs(got - want).max() < 1e-4 and np.abs(want - G.synthesis(ws).detach().numpy()).max() > 0.05
    zero = styled.run(["image"], {"ws": ws.numpy(), "style_delta": np.zeros_like(delta.numpy())})[0]
    assert np.abs(zero - plain.run(["image"], {"ws": ws.numpy()})[0]).max() < 1e-5


@pytest.mark.parametrize("backend", ["torch", "onnxruntime", "openvino"])
def test_the_styled_generator_runs_on_each_backend(backend, tiny_generator):
    from livesound.live.backends import make_backend, unavailable_reason

    reason = unavailable_reason(backend, torch.device("cpu"))
    if reason:
        pytest.skip(f"{backend}: {reason}")
    G = tiny_generator
    runner = make_backend("synthesize", backend, G, 1, "cpu", styles=True)
    ws = G.mapping(G.z_from_seeds([2]), truncation_psi=0.7).detach()
    delta = 2 * torch.randn(1, sum(G.synthesis.style_channels), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        want = G.synthesis(ws, style_delta=delta)
    assert runner.name == backend and (runner(ws, delta) - want).abs().max() < 1e-4


# ---------------------------------------------------------------------------------- StyleCLIP's files

def ffhq_on_meta():
    """StyleCLIP's FFHQ generator (rosinality's config-f at 1024 px), shapes only."""
    with torch.device("meta"):
        return Generator(GeneratorConfig(resolution=1024))


def write_styleclip_files(folder, widths, conv, fs3_rows, protocol=3, seed=0):
    """Same-shape random arrays under StyleCLIP's names and formats: fs3.npy and the pickled S_mean_std."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fs3 = rng.standard_normal((fs3_rows, 512)).astype(np.float32)
    np.save(folder / "fs3.npy", fs3)
    means = [rng.standard_normal(n).astype(np.float32) for n in widths]
    stds = [rng.random(n).astype(np.float32) + 0.1 for n in widths]
    with open(folder / "S_mean_std", "wb") as f:      # as StyleCLIP's GetCode.py writes it
        pickle.dump([means, stds], f, protocol=protocol)
    return fs3, np.concatenate([means[i] for i in conv]), np.concatenate([stds[i] for i in conv])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_styleclip_published_ffhq_layout_loads(tmp_path, protocol):
    G = ffhq_on_meta()
    widths, conv = style_layout(G)
    assert len(widths) == 26 and len(conv) == 17 and sum(widths) == 9088     # StyleSpace: 9088, 6048 without ToRGB
    assert sum(G.synthesis.style_channels) == 6048
    fs3, mean, std = write_styleclip_files(tmp_path / "npy" / "ffhq", widths, conv, 6048, protocol)
    for where in (tmp_path / "npy" / "ffhq", tmp_path / "npy" / "ffhq" / "fs3.npy"):
        d = load_directions(where, G, 512)
        assert d.directions.shape == (6048, 512) and d.channels == 6048
        assert torch.allclose(d.directions, torch.nn.functional.normalize(torch.from_numpy(fs3), dim=-1))
        assert torch.equal(d.mean, torch.from_numpy(mean)) and torch.equal(d.std, torch.from_numpy(std))
        assert d.layer_of_channel.tolist() == [j for j, n in enumerate(G.synthesis.style_channels) for _ in range(n)]


def one_line_refusal(fn):
    with pytest.raises(CheckpointError) as e:
        fn()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_styleclip_files_of_the_wrong_shape_or_with_objects_are_refused_in_one_line(tmp_path):
    G = ffhq_on_meta()
    widths, conv = style_layout(G)
    folder = tmp_path / "ffhq"
    write_styleclip_files(folder, widths, conv, 6048)
    np.save(folder / "fs3.npy", np.zeros((6000, 512), np.float32))
    assert "[6000, 512]" in one_line_refusal(lambda: load_directions(folder, G, 512))
    np.save(folder / "fs3.npy", np.array([{"a": 1}] * 6048, dtype=object), allow_pickle=True)
    assert "pickled" in one_line_refusal(lambda: load_directions(folder, G, 512))
    np.save(folder / "fs3.npy", np.ones((6048, 512), np.float32))
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for bad, words in (([Evil()], "refused global"), ([[np.zeros(3, object)]] * 2, "refused"),
                       ([[np.zeros(4, np.float32)] * 26] * 2, "expected [512]"),
                       ([[np.zeros(512, np.float32)] * 25] * 2, "25 means layers")):
        with open(folder / "S_mean_std", "wb") as f:
            pickle.dump(bad, f)
        assert words in one_line_refusal(lambda: load_directions(folder, G, 512))
    (folder / "S_mean_std").write_bytes(pickle.dumps([[np.zeros(512, np.float32)] * 26] * 2)[:-40])
    one_line_refusal(lambda: load_directions(folder, G, 512))
    assert not marker.exists()


# ------------------------------------------------------------------------------------- directions build

def test_directions_build_resumes_and_is_bound_to_its_generator(tmp_path, tiny_preset, monkeypatch):
    import livesound.offline.directions as directions

    opts = dict(models=ModelOptions(preset=str(tiny_preset)), samples=3, stats_samples=500, progress=False)
    straight = tmp_path / "straight.safetensors"
    build_directions(DirectionsOptions(out=str(straight), **opts), log=lambda s: None)

    resumed = tmp_path / "resumed.safetensors"
    save = directions._save_partial
    saves = []

    def kill_after_second(*args):
        save(*args)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt  # as a Ctrl+C between two samples

    monkeypatch.setattr(directions, "_save_partial", kill_after_second)
    with pytest.raises(KeyboardInterrupt):
        build_directions(DirectionsOptions(out=str(resumed), **opts), log=lambda s: None)
    monkeypatch.setattr(directions, "_save_partial", save)
    partial = tmp_path / "resumed.safetensors.partial-0of1.safetensors"
    assert partial.is_file() and not resumed.exists()
    said = []
    build_directions(DirectionsOptions(out=str(resumed), **opts), log=said.append)
    assert any("2 of 3 samples done" in s for s in said) and not partial.exists()

    G = generator_from_preset(load_preset(str(tiny_preset)))
    a, b = load_directions(straight, G, 512), load_directions(resumed, G, 512)
    assert torch.equal(a.directions, b.directions) and torch.equal(a.std, b.std)
    assert a.directions.shape == (sum(G.synthesis.style_channels), 512)
    assert torch.allclose(a.directions.norm(dim=-1), torch.ones(a.channels))
    with torch.no_grad():  # another generator of the same shapes: refused
        other = build_generator(G.cfg, seed=6)
    assert "another generator" in one_line_refusal(lambda: load_directions(straight, other, 512))
    other_partial = tmp_path / "y.safetensors.partial-0of1.safetensors"   # a build of other settings stopped here
    directions._save_partial(other_partial, {"samples": 9}, torch.zeros(a.channels, 512), [0])
    with pytest.raises(CheckpointError, match="other settings"):
        build_directions(DirectionsOptions(out=str(tmp_path / "y.safetensors"), **opts), log=lambda s: None)


@pytest.mark.slow
def test_directions_build_splits_under_torchrun(tmp_path, tiny_preset):
    one = tmp_path / "one.safetensors"
    build_directions(DirectionsOptions(models=ModelOptions(preset=str(tiny_preset)), out=str(one), samples=4,
                                       stats_samples=500, progress=False), log=lambda s: None)
    two = tmp_path / "two.safetensors"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "livesound", "directions", "build", "--preset", str(tiny_preset), "--samples", "4",
                        "--stats-samples", "500", "--out", str(two)],
                       capture_output=True, text=True, cwd=REPO, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(tmp_path.glob("*.partial-*"))
    G = generator_from_preset(load_preset(str(tiny_preset)))
    a, b = load_directions(one, G, 512), load_directions(two, G, 512)
    assert torch.allclose(a.directions, b.directions, atol=1e-5)   # the ranks' sums add up to one process's


# ------------------------------------------------------------------------------------------ the steerer

def test_a_directions_edit_toward_a_text_raises_the_frames_clip_similarity(demo, demo_directions):
    G, clip = demo
    steer = DirectionsSteer(load_directions(demo_directions, G, 512), G.num_ws, G.w_dim)
    text = clip.encode_text(["thunder"])
    gains = {3.0: [], 6.0: []}
    for seed in range(4):
        ws = G.mapping(G.z_from_seeds([seed]), truncation_psi=0.7)
        with torch.no_grad():
            before = float(clip.encode_image(G.synthesis(ws)) @ text.T)
            for alpha in gains:
                after = clip.encode_image(G.synthesis(ws, style_delta=alpha * steer.edit(text[0])[None]))
                gains[alpha].append(float(after @ text.T) - before)
    assert steer.channels_moved >= DirectionsSettings().min_channels
    assert sum(g > 0 for g in gains[3.0]) >= 3 and np.mean(gains[3.0]) > 0.001
    assert np.mean(gains[6.0]) > np.mean(gains[3.0])                 # further along, closer still


def test_the_steerer_answers_change_and_a_steady_sound_fades(demo, demo_directions):
    G, _ = demo
    steer = DirectionsSteer(load_directions(demo_directions, G, 512), G.num_ws, G.w_dim,
                            DirectionsSettings(reference_frames=10))
    ws = G.mapping(G.z_from_seeds([0]), truncation_psi=0.7)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.nn.functional.normalize(torch.randn(1, 512, generator=g), dim=-1) for _ in range(2))
    k = torch.full((1,), 0.5)
    for _ in range(5):
        assert torch.equal(steer(ws, a, k), ws)                      # w+ passes; the edit is in style_delta
        assert steer.style_delta.abs().max() == 0                    # one sound from the start: nothing changed
    ref = steer.reference.clone()
    steer(ws, b, k)                                                  # a new sound: StyleCLIP's edit, full size
    first = steer.style_delta.clone()
    assert torch.allclose(first[0], ALPHA_PER_STRENGTH * 0.5 * steer.edit(b[0] - ref))
    assert (first != 0).sum() >= DirectionsSettings().min_channels
    top = int(first.abs().argmax())                                  # the strongest channel moves alpha deviations
    assert float(first[0, top].abs()) <= ALPHA_PER_STRENGTH * 0.5 * float(steer.std.max()) + 1e-6
    for _ in range(60):
        steer(ws, b, k)
    assert steer.style_delta.abs().max() < 0.05 * first.abs().max()  # the sound stays: the picture settles back
    steer(ws, a, torch.zeros(1))
    assert steer.style_delta.abs().max() == 0                        # strength 0: no edit


def test_live_contract_with_directions(tmp_path, demo_directions):
    t = np.arange(44100 * 2) / 44100
    audio = np.concatenate([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.random.default_rng(0).standard_normal(t.size)])
    sf.write(tmp_path / "two_sounds.wav", audio.astype(np.float32), 44100)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--steer", "directions",
                            "--directions", str(demo_directions), "--source", str(tmp_path / "two_sounds.wav"),
                            "--headless", "--frames", "8", "--hop-fps", "2", "--out", str(out)],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append([np.asarray(Image.open(f)).astype(float) for f in sorted(out.glob("*.png"))])
    assert len(runs[0]) == 8 and all(np.array_equal(x, y) for x, y in zip(*runs))   # the same file, the same frames
    assert np.abs(runs[0][5] - runs[0][3]).mean() > 1.0               # the switch of sound moves the picture


def test_a_wrong_directions_file_is_one_line_from_the_cli(tmp_path):
    np.save(tmp_path / "fs3.npy", np.zeros((10, 512), np.float32))
    sf.write(tmp_path / "s.wav", np.zeros(4410, np.float32), 44100)
    r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--steer", "directions",
                        "--directions", str(tmp_path / "fs3.npy"), "--source", str(tmp_path / "s.wav"), "--headless",
                        "--frames", "1", "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "fs3.npy" in lines[0] and "[488, 512]" in lines[0], r.stderr


def test_directions_need_a_file(demo):
    from livesound.live.directions_steer import directions_steerer
    from livesound.live.steer_choice import SteerContext

    class Opts:
        directions, beta = None, None

    with pytest.raises(ValueError, match="--directions FILE"):
        directions_steerer(SteerContext(load_preset("demo"), Opts(), demo[0], None, demo[1], 2.5))
