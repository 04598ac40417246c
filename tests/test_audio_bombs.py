"""Compression bombs: a few kilobytes of FLAC that decode to hundreds of megabytes.

Before: ``load_audio`` decoded every channel of the whole file (``sf.read``), so a 42 KB 8-channel file of two
minutes of silence took 224 MB, and a 4 MB one would take ~22 GB. Now the duration is bounded (refused from the
header, or while decoding, past ``max_seconds``) and decoding goes block by block into mono.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

from livesound.audio.io import MAX_AUDIO_SECONDS, AudioError, load_audio


def bomb(path, seconds: float, channels: int = 8, sr: int = 44100):
    """Silence in many channels: FLAC stores each block in a few bytes."""
    block = np.zeros((sr * 10, channels), np.float32)
    with sf.SoundFile(str(path), "w", sr, channels, format="FLAC") as f:
        for _ in range(int(seconds // 10)):
            f.write(block)
    return path


def test_a_long_file_is_refused_from_its_header_at_once(tmp_path):
    path = bomb(tmp_path / "bomb.flac", 120)
    assert path.stat().st_size < 100_000
    t0 = time.perf_counter()
    with pytest.raises(AudioError) as e:
        load_audio(path, max_seconds=60)
    assert time.perf_counter() - t0 < 0.5
    msg = str(e.value)
    assert str(path) in msg and "120 s" in msg and "--max-audio-seconds" in msg and "\n" not in msg


def test_the_bound_can_be_raised_and_memory_stays_at_mono(tmp_path):
    """In a fresh process: decoding 120 s of 8 channels grows peak memory by about the mono output (21 MB),
    not the 224 MB that decoding every channel took before."""
    path = bomb(tmp_path / "bomb.flac", 120)
    code = ("import resource, sys, json\nfrom livesound.audio.io import load_audio\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"x = load_audio({str(path)!r}, max_seconds=130)\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(json.dumps([len(x), (after - before) / 1024]))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    samples, growth_mb = json.loads(r.stdout)
    assert samples == 120 * 44100
    assert growth_mb < 40, growth_mb


def test_the_default_bound_and_the_cli_flag(tmp_path):
    from livesound.cli import build_parser

    assert MAX_AUDIO_SECONDS == 600
    for argv in (["embed", "x.wav"], ["live"]):
        help_text = next(a.help for a in _actions(build_parser(), argv[0]) if a.dest == "max_audio_seconds")
        assert f"default {MAX_AUDIO_SECONDS:g}" in help_text
    path = bomb(tmp_path / "long.flac", 20, channels=2)
    with pytest.raises(AudioError, match="--max-audio-seconds"):
        load_audio(path, max_seconds=10)
    assert len(load_audio(path)) == 20 * 44100


def _actions(parser, command):
    import argparse

    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subs.choices[command]._actions


def test_embed_refuses_a_bomb_with_one_line(tmp_path):
    path = bomb(tmp_path / "bomb.flac", 30)
    r = subprocess.run([sys.executable, "-m", "livesound", "embed", str(path), "--max-audio-seconds", "10",
                        "--out", str(tmp_path / "e.npy")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and not (tmp_path / "e.npy").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bomb.flac" in lines[0] and "--max-audio-seconds" in lines[0], r.stderr
