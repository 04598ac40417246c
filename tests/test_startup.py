"""Set-up and start: the set-up script looks for every library Qt's X11 plugin loads, and `livesound live` survives
a platform plugin that cannot load (Qt aborts the process it fails in) by saying why, with the fix, and playing
headless. Before: set-up checked only libxcb-cursor, and `livesound live` died in Qt's abort."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from livesound.rig.show import qt_window_problem

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="the set-up scripts are bash")


def fake_tools(folder: Path, libraries: list[str], uid: int = 1000) -> dict:
    """PATH with an ``ldconfig -p`` that lists only ``libraries`` and an ``id`` reporting ``uid``."""
    folder.mkdir()
    listing = "".join(f"\\t{lib} (libc6,x86-64) => /usr/lib/{lib}\\n" for lib in libraries)
    for name, body in (("ldconfig", f'printf "{listing}"'), ("id", f"echo {uid}")):
        tool = folder / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


@needs_bash
def test_setup_names_every_missing_xcb_library(tmp_path):
    env = os.environ | fake_tools(tmp_path / "bin", ["libportaudio.so.2", "libxcb-cursor.so.0", "libxcb.so.1"])
    r = subprocess.run([BASH, str(REPO / "scripts" / "system_libs.sh")], env=env | {"DISPLAY": ":0"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (line,) = [line for line in r.stderr.splitlines() if "live window" in line]
    for lib, package in (("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
                         ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0")):
        assert lib in line and package in line, line
    assert "libxcb-cursor0" not in line and " libxcb1" not in line          # present: not asked for


@needs_bash
def test_setup_is_quiet_when_everything_is_there_and_skips_the_window_without_a_display(tmp_path):
    script = (REPO / "scripts" / "system_libs.sh").read_text()
    present = [pair.split(":")[0] for pair in script.split() if ".so." in pair and ":" in pair]
    env = os.environ | fake_tools(tmp_path / "bin", present)
    r = subprocess.run([BASH, str(REPO / "scripts" / "system_libs.sh")], env=env | {"DISPLAY": ":0"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stderr
    env = os.environ | fake_tools(tmp_path / "bin2", ["libportaudio.so.2"])
    env.pop("DISPLAY", None)
    r = subprocess.run([BASH, str(REPO / "scripts" / "system_libs.sh")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "live window" not in r.stderr


@pytest.mark.parametrize("env, words", [
    ({"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":54321"}, ["could not connect to display :54321", "check DISPLAY"]),
    ({"QT_QPA_PLATFORM": "bogus"}, ["bogus", "QT_QPA_PLATFORM"]),
])
def test_a_platform_plugin_that_cannot_load_is_one_line_with_the_fix(monkeypatch, env, words):
    pytest.importorskip("PyQt6")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    problem = qt_window_problem()
    assert problem is not None and "\n" not in problem and all(w in problem for w in words), problem


def test_a_loadable_plugin_is_no_problem(monkeypatch):
    pytest.importorskip("PyQt6")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert qt_window_problem() is None


def test_live_falls_back_to_headless_instead_of_qt_aborting(tmp_path):
    pytest.importorskip("PyQt6")
    env = os.environ | {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":54321"}
    out = tmp_path / "frames"
    r = subprocess.run([sys.executable, "-m", "livesound", "live", "--preset", "demo", "--backend", "torch",
                        "--source", "synth", "--frames", "3", "--out", str(out)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    said = [line for line in r.stderr.splitlines() if "no window" in line]
    assert len(said) == 1 and "running headless instead" in said[0] and "check DISPLAY" in said[0], r.stderr
    assert len(list(out.glob("frame_*.png"))) == 3
