"""``--device`` on every command that runs a network, and the live input's own flag ``--input``.

``--device cpu`` runs for real; ``--device cuda`` on a machine without a GPU is one line and exit status 2 (these
tests skip where a GPU is present, since there it would run); a spelling that is no device is refused by the
parser. ``live --device NAME`` still names the audio input for one release, with a deprecation note.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO

from livesound.cli import main
from livesound.live.build import LiveOptions, open_source
from livesound.live.device import DeviceUnavailable, is_device_name, resolve_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: --device cuda would run")


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(44100) / 44100
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    return path


def test_device_names_and_resolution():
    assert all(is_device_name(n) for n in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", " CPU "))
    assert not any(is_device_name(n) for n in ("gpu", "cuda:", "cuda:x", "pulse", "", None, "USB Audio"))
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("gpu")


@no_gpu
def test_cuda_without_a_gpu_is_unavailable():
    for name in ("cuda", "cuda:1"):
        with pytest.raises(DeviceUnavailable, match="no CUDA GPU"):
            resolve_device(name)


COMMANDS = {  # every command that runs a network, with arguments that make a short real run
    "generate": lambda tmp, wav: ["generate", "--preset", "demo", "--seeds", "0", "--out", str(tmp / "g")],
    "embed": lambda tmp, wav: ["embed", str(wav), "--preset", "demo", "--out", str(tmp / "e.npy")],
    "bench": lambda tmp, wav: ["bench", "--stages", "generator", "--preset", "demo", "--backends", "torch",
                               "--frames", "1", "--warmup", "0", "--json", str(tmp / "b.json")],
    "export": lambda tmp, wav: ["export", "onnx", "--encoder", str(_tiny_encoder(tmp)), "--out", str(tmp / "x")],
    "live": lambda tmp, wav: ["live", "--preset", "demo", "--source", str(wav), "--headless", "--frames", "2",
                              "--backend", "torch", "--pin-threads", "off", "--out", str(tmp / "l")],
}


def _tiny_encoder(tmp):
    from livesound.models.audio_encoder import AudioEncoderConfig, build_audio_encoder, save_audio_encoder

    path = tmp / "enc.safetensors"
    if not path.exists():
        save_audio_encoder(build_audio_encoder(AudioEncoderConfig(backbone="lcnet_050", embed_dim=16), seed=0), path)
    return path


@no_gpu
@pytest.mark.parametrize("command", list(COMMANDS))
def test_device_cuda_without_a_gpu_is_one_line_and_exit_2(command, tmp_path, wav, capsys):
    assert main(COMMANDS[command](tmp_path, wav) + ["--device", "cuda"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no CUDA GPU" in err[0] and err[0].startswith(f"livesound {command}: error:"), err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_device_cpu_runs(command, tmp_path, wav):
    assert main(COMMANDS[command](tmp_path, wav) + ["--device", "cpu"]) == 0
    assert any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "live"])
def test_a_bad_device_is_refused_by_the_parser(command, tmp_path, wav, capsys):
    with pytest.raises(SystemExit) as e:
        main(COMMANDS[command](tmp_path, wav) + ["--device", "gpu"])
    assert e.value.code == 2
    assert "device must be one of auto, cpu, cuda, cuda:N, not 'gpu'" in capsys.readouterr().err


@no_gpu
def test_the_contract_live_on_cuda_is_one_line_in_a_real_process():
    r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--device", "cuda",
                        "--headless", "--frames", "1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_live_input_has_its_own_flag(capsys):
    from livesound.audio.io import AudioError

    opts = LiveOptions(source="mic", input="no-such-input-xyz", device="cpu", pin_threads="off")
    assert (opts.input, opts.device) == ("no-such-input-xyz", "cpu")
    with pytest.raises(AudioError):
        open_source(opts)               # the input name reaches the microphone, and fails there, not as a device
    assert "deprecated" not in capsys.readouterr().err


def test_live_device_with_an_input_name_is_deprecated_but_works(capsys):
    opts = LiveOptions(source="mic", device="pulse", pin_threads="off")
    assert (opts.input, opts.device) == ("pulse", "auto")
    err = _err_lines(capsys)
    assert len(err) == 1 and "deprecated" in err[0] and "--input 'pulse'" in err[0]
    both = LiveOptions(device="USB", input="pulse", pin_threads="off")  # --input wins; no note needed
    assert (both.input, both.device) == ("pulse", "auto") and not _err_lines(capsys)


def test_live_cli_passes_device_and_input(monkeypatch):
    seen = {}

    def fake_prepare(show):
        seen["live"] = show.live
        raise ValueError("stop here")

    monkeypatch.setattr("livesound.rig.show.prepare_show", fake_prepare)
    assert main(["live", "--input", "USB", "--device", "cpu", "--pin-threads", "off"]) == 1
    assert (seen["live"].input, seen["live"].device) == ("USB", "cpu")
    assert main(["live", "--device", "USB Audio", "--pin-threads", "off"]) == 1
    assert (seen["live"].input, seen["live"].device) == ("USB Audio", "auto")
