"""The command line as a user meets it: real processes, real files, one-line errors."""

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from livesound.cli import build_parser


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "livesound", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


def test_generate_demo_writes_pngs(tmp_path):
    r = run("generate", "--preset", "demo", "--seeds", "0-3", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["seed0000.png", "seed0001.png", "seed0002.png", "seed0003.png"]
    imgs = [np.asarray(Image.open(tmp_path / "out" / f)) for f in files]
    assert all(im.shape == (128, 128, 3) and im.dtype == np.uint8 for im in imgs)
    assert not np.array_equal(imgs[0], imgs[1])          # different seeds, different pictures
    assert imgs[0].std() > 5                               # not a flat image


def test_generate_is_reproducible_and_grid_only(tmp_path):
    a = run("generate", "--seeds", "2", "--out", str(tmp_path / "a"))
    b = run("generate", "--seeds", "1-2", "--out", str(tmp_path / "b"), "--grid")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    alone = np.asarray(Image.open(tmp_path / "a/seed0002.png")).astype(int)
    batched = np.asarray(Image.open(tmp_path / "b/seed0002.png")).astype(int)
    assert np.abs(alone - batched).max() <= 1  # batch size may change float rounding, never the picture
    assert Image.open(tmp_path / "b/grid.png").size == (256, 128)
    c = run("generate", "--seeds", "0-2", "--grid-only", "--out", str(tmp_path / "c"))
    assert c.returncode == 0 and [p.name for p in (tmp_path / "c").iterdir()] == ["grid.png"]


def test_generate_from_latents_and_checkpoint(tmp_path, tiny_generator):
    from livesound.weights.checkpoint import save_own

    ckpt = save_own(tmp_path / "g.safetensors", "generator", tiny_generator.cfg.to_dict(),
                    tiny_generator.state_dict())
    ws = torch.randn(3, tiny_generator.num_ws, tiny_generator.w_dim).numpy()
    np.save(tmp_path / "ws.npy", ws)
    r = run("generate", "--generator", str(ckpt), "--latents", str(tmp_path / "ws.npy"), "--out",
            str(tmp_path / "out"), "--noise-mode", "none")
    assert r.returncode == 0, r.stderr
    got = np.asarray(Image.open(tmp_path / "out/latent0001.png"))
    with torch.no_grad():
        want = tiny_generator.synthesis(torch.from_numpy(ws[1:2]), noise_mode="none")
    want = ((want.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 7), np.float32))
    r = run("generate", "--generator", str(ckpt), "--latents", str(tmp_path / "bad.npy"))
    assert r.returncode == 1 and "this generator takes [N, 8, 16]" in r.stderr
    assert "Traceback" not in r.stderr


def test_convert_writes_the_own_format(tmp_path):
    from conftest import rosinality_state, write_rosinality

    from livesound.models.stylegan2 import load_generator

    src = write_rosinality(tmp_path / "g.pt", rosinality_state(16, 8, 2, {4: 8, 8: 8, 16: 4}), torch.randn(8))
    r = run("convert", str(src), str(tmp_path / "g.safetensors"))
    assert r.returncode == 0, r.stderr
    assert load_generator(tmp_path / "g.safetensors").resolution == 16


@pytest.mark.parametrize("args, message", [
    (["generate", "--seeds", "3-1"], "seed range '3-1' runs backwards"),
    (["generate", "--generator", "missing.pt"], "missing.pt: no such file"),
    (["generate", "--preset", "nope"], "unknown preset 'nope'"),
    (["generate", "--preset", "ffhq-1024"], "needs stylegan2-ffhq-config-f.pt"),
    (["convert", "a.pt", "b.bin"], "must be a .safetensors file"),
])
def test_errors_are_one_line(tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "livesound", *args], capture_output=True, text=True,
                       cwd=tmp_path, env={"LIVESOUND_MODELS": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 1
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_training_and_evaluation_commands_are_built(capsys):
    from livesound.cli import main

    for argv in (["train-encoder"], ["eval", "zero-shot"], ["eval", "linear-probe"]):
        with pytest.raises(SystemExit):  # --data is required: argparse says so, no "not built yet"
            main(argv)
        assert "--data" in capsys.readouterr().err


def _commands(parser, path=()):
    """(command words, parser) for every command and nested command (``eval zero-shot``) of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sp in action.choices.items():
                yield (*path, name), sp
                yield from _commands(sp, (*path, name))


def test_every_command_helps_with_an_example():
    parser = build_parser()
    commands = dict(_commands(parser))
    expected = {"live", "generate", "embed", "optimize", "train-encoder", "train-mapper", "export", "bench",
                "eval", "presets", "convert", "interpolate"}
    assert expected <= {words[0] for words in commands}
    assert {("eval", e) for e in ("latent-agreement", "zero-shot", "linear-probe", "mapper")} <= set(commands)
    for words, sp in commands.items():
        name = " ".join(words)
        text = sp.format_help().rstrip("\n")
        _, sep, examples = text.rpartition("\nexample:\n")
        assert sep, f"{name}: no example"
        lines = examples.splitlines()
        assert lines[0].startswith(f"  livesound {name}"), name      # the help ends with examples of itself
        assert all(f"livesound {name}" in line for line in lines), name
        for line in lines:  # each example is a command line this parser accepts as written
            argv = shlex.split(line)
            if argv[0] == "livesound":
                parsed = build_parser().parse_args(argv[1:])
                assert callable(parsed.run), line
        if not any(isinstance(a, argparse._SubParsersAction) for a in sp._actions):
            assert callable(sp.get_default("run")), f"{name} runs nothing"


def test_help_of_every_command_loads_no_torch():
    argvs = [list(words) for words in dict(_commands(build_parser()))]
    code = ("import contextlib, io, sys\nfrom livesound.cli import build_parser\n"
            f"for argv in [[], *{argvs!r}]:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n            build_parser().parse_args([*argv, '--help'])\n"
            "        except SystemExit:\n            pass\n"
            "print(sorted(m for m in ('torch', 'numpy', 'PyQt6', 'onnxruntime') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout


def test_live_window_plays_until_closed_then_writes_stats(tmp_path):
    """The windowed show, as started from a terminal: frames flow (seen over OSC), SIGTERM closes the window,
    the run exits 0 and leaves its stats."""
    pytest.importorskip("PyQt6", reason="PyQt6 is not installed: the window is untested")
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    stats = tmp_path / "stats.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "livesound", "live", "--source", "synth", "--stats", str(stats),
                             "--osc-out", f"127.0.0.1:{rx.getsockname()[1]}", "--pin-threads", "off"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        levels, deadline = 0, time.monotonic() + 240
        while levels < 3 and time.monotonic() < deadline and proc.poll() is None:
            try:
                levels += rx.recv(65536).count(b"/livesound/level")
            except socket.timeout:
                pass
        assert levels >= 3, "no frames came out of the window's engine"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        rx.close()
    assert proc.returncode == 0, err
    assert "no display" not in err and "wrote" not in out   # it ran in the window, not headless
    report = json.loads(stats.read_text())
    assert report["frames"] >= 3 and {"encode", "synthesize"} <= set(report["stages"])


def test_presets_list_and_console_script(tmp_path):
    r = run("presets")
    assert r.returncode == 0 and "demo" in r.stdout and "embedded (no files needed)" in r.stdout
    exe = REPO / ".venv" / "bin" / "livesound"
    if exe.exists():
        r2 = subprocess.run([str(exe), "presets"], capture_output=True, text=True)
        assert r2.stdout == r.stdout
