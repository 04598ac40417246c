"""The direction bank: built from sounds and texts, resumable, checked on load, and steering the live picture
toward each anchor's own picture while its sound plays (on the demo preset, frame by frame)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from pythonosc.osc_message import OscMessage
from safetensors import safe_open
from safetensors.torch import save_file

from livesound.audio.sources import SynthSource
from livesound.cli import main
from livesound.live.bank import Bank, BankSteer, check_generator, load_bank, save_bank
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.pipeline import Pipeline, run_fixed_step
from livesound.live.reactivity import ReactivityGains
from livesound.offline.bank import BankSettings, build_bank_for, plan_anchors
from livesound.offline.networks import ModelOptions, load_networks
from livesound.weights.checkpoint import CheckpointError

SR = 44100
FAST = BankSettings(steps=10, lr=0.1, l2=0.002, batch=2, centre=True)


def hiss(seconds: float) -> np.ndarray:
    return SynthSource("noise").render(0, int(SR * seconds))


def tone(seconds: float) -> np.ndarray:
    return SynthSource("sine", frequency=220.0).render(0, int(SR * seconds))


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return load_networks(ModelOptions(preset="demo"), need_encoder=True)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sounds")
    sf.write(folder / "hiss.wav", hiss(3.0), SR)
    sf.write(folder / "tone.wav", tone(3.0), SR)
    return folder


@pytest.fixture(scope="module")
def bank_file(nets, sounds, tmp_path_factory):
    out = tmp_path_factory.mktemp("bank") / "bank.safetensors"
    build_bank_for(nets.G, nets.encoder, nets.clip, plan_anchors(sounds=[str(sounds)]), FAST, out, preset="demo",
                   progress=False)
    return out


def anchor_images(pipe: Pipeline, bank: Bank) -> dict[str, np.ndarray]:
    """Each anchor's own picture: the source latent plus its whole offset (strength 1)."""
    with torch.no_grad():
        return {label: pipe.to_rgb8(pipe.G.synthesis(pipe.ws_src + off[None], noise_mode="const")).astype(float)
                for label, off in zip(bank.labels, bank.offsets)}


def test_a_bank_of_two_sounds_steers_the_picture_to_each_anchor_while_it_plays(bank_file):
    bank = load_bank(bank_file)
    assert bank.labels == ["hiss", "tone"] and bank.kinds == ["sound", "sound"]
    lines = []
    pipe = build_pipeline(LiveOptions(preset="demo", bank=str(bank_file), strength=1.0), say=lines.append)
    assert lines[0].startswith("steering: bank bank.safetensors (2 anchors") and "--bank" in lines[0]
    pipe.reactivity.gains = ReactivityGains()  # pulse, kick and walk move the picture for other reasons than meaning
    images = anchor_images(pipe, bank)
    assert np.abs(images["hiss"] - images["tone"]).mean() > 10                    # two different places
    audio = np.concatenate([hiss(2.0), tone(2.0), hiss(2.0)])
    hop = 1470                                                                       # 30 frames a second
    playing = ["hiss"] * 60 + ["tone"] * 60 + ["hiss"] * 60
    checked = 0
    for frame in run_fixed_step(pipe, audio, 180, hop):
        if frame.index % 60 < 18:                                                    # 0.6 s to follow a switch
            continue
        own, other = playing[frame.index], "tone" if playing[frame.index] == "hiss" else "hiss"
        rgb = frame.rgb.astype(float)
        d_own, d_other = np.abs(rgb - images[own]).mean(), np.abs(rgb - images[other]).mean()
        assert d_own < 0.3 * d_other, (frame.index, own, d_own, d_other)
        assert frame.labels[0][0] == own and frame.labels[0][1] > 0.65, frame.labels  # overlay/OSC: the nearest
        checked += 1
    assert checked == 126


def test_headless_runs_with_a_bank_are_deterministic_and_say_the_steering(bank_file, tmp_path):
    audio = np.concatenate([hiss(0.5), tone(0.5)])
    runs = []
    for _ in range(2):
        pipe = build_pipeline(LiveOptions(preset="demo", bank=str(bank_file)), say=lambda line: None)
        runs.append([(f.rgb, f.labels) for f in run_fixed_step(pipe, audio, 20, 2205)])
    assert all(np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(*runs))

    sf.write(tmp_path / "ab.wav", audio, SR)  # the contract: `live --bank ... --headless --strength 1`
    out = tmp_path / "frames"
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)                            # OSC out lands here
    rx.bind(("127.0.0.1", 0))
    try:
        r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--bank", str(bank_file),
                            "--source", str(tmp_path / "ab.wav"), "--headless", "--frames", "4", "--out", str(out),
                            "--strength", "1", "--osc-out", f"127.0.0.1:{rx.getsockname()[1]}"],
                           capture_output=True, text=True, cwd=REPO, timeout=300)
        rx.settimeout(1.0)
        labels = []
        while len(labels) < 4:
            message = OscMessage(rx.recv(65536))
            if message.address == "/livesound/labels":
                labels.append(message.params)
    finally:
        rx.close()
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("frame_*.png"))) == 4
    assert "livesound live: steering: bank bank.safetensors (2 anchors" in r.stderr
    assert "untrained (seeded): generator, encoder, clip" in r.stderr
    assert all({p[0], p[2]} == {"hiss", "tone"} and abs(p[1] + p[3] - 1) < 1e-4 for p in labels), labels


def test_bank_build_command_writes_images_resumes_and_adds_only_new_anchors(nets, sounds, tmp_path, capsys):
    out, images = tmp_path / "b.safetensors", tmp_path / "img"
    args = ["bank", "build", "--preset", "demo", "--sounds", str(sounds / "hiss.wav"), "--texts", "thunder",
            "--steps", "3", "--out", str(out), "--images", str(images)]
    assert main(args) == 0
    assert "2 anchors (2 optimised" in capsys.readouterr().err
    assert sorted(p.name for p in images.iterdir()) == ["contact_sheet.png", "hiss.png", "thunder.png"]
    first = load_bank(out)
    assert first.labels == ["hiss", "thunder"] and first.kinds == ["sound", "text"]
    assert first.settings["steps"] == 3 and first.settings["preset"] == "demo"

    assert main(args) == 0                                                           # everything finished: reused
    assert "(0 optimised in" in capsys.readouterr().err
    again = load_bank(out)
    assert torch.equal(again.offsets, first.offsets) and torch.equal(again.embeddings, first.embeddings)

    assert main(args[:7] + ["thunder;birdsong"] + args[8:]) == 0                      # one more text
    assert "3 anchors (1 optimised" in capsys.readouterr().err
    grown = load_bank(out)
    assert grown.labels == ["hiss", "thunder", "birdsong"]
    assert torch.equal(grown.offsets[:2], first.offsets)


def test_bank_files_round_trip_and_hostile_ones_are_refused_with_one_line(bank_file, nets, tmp_path,
                                                                           tiny_generator):
    bank = load_bank(bank_file)
    copy = save_bank(tmp_path / "copy.safetensors", bank)
    back = load_bank(copy)
    assert back.labels == bank.labels and back.generator == bank.generator and back.temperature == bank.temperature
    assert torch.equal(back.offsets, bank.offsets) and torch.equal(back.embeddings, bank.embeddings)
    check_generator(bank, nets.G, bank_file)                                          # its own generator: fine
    with pytest.raises(CheckpointError, match="generator: this bank was built for another generator"):
        check_generator(bank, tiny_generator, bank_file)
    BankSteer(bank).check_generator(nets.G)                                            # a generator swap asks this
    with pytest.raises(ValueError, match="built for another generator"):
        BankSteer(bank).check_generator(tiny_generator)

    with safe_open(str(bank_file), "pt") as f:
        meta = json.loads(f.metadata()["livesound_config"])

    def hostile(name, tensors, **change):
        path = tmp_path / f"{name}.safetensors"
        header = {"livesound_format": "1", "livesound_kind": "bank", "livesound_config": json.dumps(meta | change)}
        save_file({k: v.contiguous().clone() for k, v in tensors.items()}, str(path), metadata=header)
        return path

    e, o = bank.embeddings.clone(), bank.offsets.clone()
    nan = o.clone()
    nan[1, 0, 0] = float("nan")
    cases = {
        "shape": (hostile("shape", {"embeddings": e, "offsets": o[:, :-1]}), "num_ws: header says"),
        "count": (hostile("count", {"embeddings": e[:1], "offsets": o}), "offsets: 2 anchors but embeddings has 1"),
        "labels": (hostile("labels", {"embeddings": e, "offsets": o}, labels=["a"]), "labels: expected 2 strings"),
        "nan": (hostile("nan", {"embeddings": e, "offsets": nan}), "offsets: holds NaN"),
        "dtype": (hostile("dtype", {"embeddings": e, "offsets": o.to(torch.int32)}), "offsets: dtype torch.int32"),
        "unit": (hostile("unit", {"embeddings": 3 * e, "offsets": o}), "embeddings: row 0 has norm 3"),
        "extra": (hostile("extra", {"embeddings": e, "offsets": o, "code": e}), "tensors: expected embeddings"),
        "temp": (hostile("temp", {"embeddings": e, "offsets": o}, temperature=-1), "temperature: -1"),
    }
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"embeddings": e, "offsets": o}, pickled)
    cases["pickle"] = (pickled, "unreadable safetensors file")
    for name, (path, message) in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_bank(path)
        text = str(err.value)
        assert message in text and str(path) in text and "\n" not in text, (name, text)


def test_bank_steer_blends_the_nearest_anchors_by_softmax_of_cosine():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), dim=-1)
    off = torch.arange(3.0).view(3, 1, 1).expand(3, 2, 4).clone()                  # anchor k moves every value by k
    bank = Bank(e, off, ["a", "b", "c"], ["text"] * 3, ["a", "b", "c"], "fp", 0.1)
    steer = BankSteer(bank, top_k=2)
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.5, 0.0]]), dim=-1)
    ws = torch.zeros(1, 2, 4)
    sims = (q @ e.T)[0]
    w = torch.softmax(sims[:2] / 0.1, 0)                                             # top two: a and b
    expected = 0.5 * (w[0] * 0 + w[1] * 1)
    assert torch.allclose(steer(ws, q, torch.tensor([0.5])), torch.full((1, 2, 4), float(expected)), atol=1e-6)
    assert [name for name, _ in steer.labels_for(q)] == ["a", "b"]
    assert torch.equal(steer(ws, q, torch.tensor([0.0])), ws)
    per_group = steer(ws, {"coarse": e[2:3], "medium": q, "fine": q}, torch.tensor([1.0]))
    assert torch.allclose(per_group[0, :, 0], torch.full((2,), 2 * torch.softmax(torch.tensor([1.0, 0]) / 0.1, 0)[0]),
                          atol=1e-5)                                                 # both layers are coarse: c
    with pytest.raises(ValueError, match="--bank-top-k"):
        BankSteer(bank, top_k=0)


def test_a_torchrun_of_two_processes_splits_the_anchors_and_rank_0_writes_the_bank(tmp_path):
    out = tmp_path / "bank.safetensors"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "livesound", "bank", "build", "--preset", "demo", "--texts", "rain;fire;wind",
                        "--steps", "2", "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=400,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_bank(out).labels == ["rain", "fire", "wind"]
    assert r.stderr.count("wrote") == 1 and "3 anchors (2 optimised" in r.stderr     # rank 0 did rain and wind
    assert len(list((tmp_path / "bank.safetensors.parts").glob("*.safetensors"))) == 3
