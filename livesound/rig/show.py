"""``livesound live``: a show is a pipeline, an audio source, the rig around them, and a window or files.

The window (`livesound.app`, the one Qt user) only receives an engine and a rig; this module builds both (the
command line hands them over), so the app never imports the rig, the rig never imports the app, and the runtime
(`livesound.live`) knows neither. Without a display, or where Qt's platform plugin cannot load (probed in a child
process first: Qt aborts the process it fails in), the show runs headless (`livesound.rig.headless`) and says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from livesound.files import write_json
from livesound.live.build import LiveOptions, build_pipeline, open_source
from livesound.live.engine import LiveEngine
from livesound.rig.headless import run_headless
from livesound.rig.rig import Rig, RigOptions

LIVE_SOURCES = ("auto", "mic", "synth")


@dataclass
class ShowOptions:
    live: LiveOptions = field(default_factory=LiveOptions)
    rig: RigOptions = field(default_factory=RigOptions)
    headless: bool = False            # frames to PNGs; also chosen when no display is found
    frames: int = 120                 # headless: frames to write
    out: str = "out/live"             # headless: folder of frames
    hop_fps: float = 30.0             # headless: audio advances 1/hop_fps s per frame (file) or pacing (mic)
    record: str | None = None         # window: where R records; headless: every frame into this video
    stats: str | None = None          # per-stage timing percentiles of the run (JSON)
    fullscreen: bool = False


@dataclass
class ShowResult:
    headless: bool
    stats: dict
    code: int                         # the process exit code: 0, 1 (the engine failed) or 130 (interrupted)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


_QT_PROBE = "import sys\nfrom PyQt6.QtWidgets import QApplication\nprint(QApplication(sys.argv[:1]).platformName())"
XCB_FIX = ("install Qt's X11 libraries (bash scripts/system_libs.sh, or: sudo apt-get install libxcb-cursor0 "
           "libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxkbcommon-x11-0)")


def qt_window_problem(timeout_s: float = 60.0) -> str | None:
    """Why a Qt window cannot open here (one line with the fix), or None when it can.

    Qt aborts the whole process when its platform plugin fails to load (a missing xcb library, no X server), so
    a child process tries it first and the live process only reads its last words."""
    try:
        r = subprocess.run([sys.executable, "-c", _QT_PROBE], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"starting Qt took longer than {timeout_s:g} s; check DISPLAY or pass --headless"
    if r.returncode == 0:
        return None
    said = [line.split(": ", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("qt.qpa")]
    if not said:  # not Qt's own words: PyQt6 missing or broken
        last = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        return f"Qt does not start ({last[:200]}); reinstall PyQt6 (bash scripts/setup.sh) or pass --headless"
    what = "; ".join(dict.fromkeys(said))[:300]
    if any("connect to display" in line for line in said):
        fix = "check DISPLAY (is the X server running, may this user use it?)"
    elif "xcb" in what:
        fix = XCB_FIX
    else:
        fix = "set QT_QPA_PLATFORM to a platform plugin this machine has (e.g. xcb or wayland)"
    return f"Qt's platform plugin does not load ({what}); {fix}"


class Show:
    """A show ready to play: its source is open and its pipeline built; ``headless`` says where it plays.

    Headless: ``run_headless()``. In a window: the CLI hands ``for_window()``'s engine and rig to
    `livesound.app.window.run_window`, then gives the outcome to ``finish``.
    """

    def __init__(self, opts: ShowOptions, headless: bool, pipeline, source):
        self.opts, self.headless, self.pipeline, self.source = opts, headless, pipeline, source
        self.rig: Rig | None = None

    def run_headless(self) -> ShowResult:
        o = self.opts
        stats = run_headless(self.pipeline, o.live, o.frames, Path(o.out), o.hop_fps, source=self.source,
                             rig_opts=o.rig, record=Path(o.record) if o.record else None)
        return self.finish(stats)

    def for_window(self) -> tuple[LiveEngine, Rig]:
        """The engine and its rig (always: keys 1-9 store and recall presets in memory) for a window."""
        engine = LiveEngine(self.pipeline, self.source or open_source(self.opts.live),
                            pin_threads=self.opts.live.pin_threads)
        self.rig = Rig(engine, self.opts.rig).attach(engine)
        return engine, self.rig

    def finish(self, stats: dict, code: int = 0) -> ShowResult:
        """Close the rig, write ``--stats`` and give the exit code (the engine's failure wins; no stats then)."""
        if self.rig is not None:
            self.rig.close()
            self.rig = None
        self.pipeline.steerer.close()  # its workers stop; what it learned (--learn) is saved
        if code:
            return ShowResult(headless=self.headless, stats=stats, code=code)
        if self.opts.stats:
            write_json(self.opts.stats, stats)
        return ShowResult(headless=self.headless, stats=stats, code=130 if stats.get("interrupted") else 0)


def prepare_show(opts: ShowOptions) -> Show:
    """Open the source and build the pipeline; without a display the show goes headless, saying so.

    A missing audio file or input device is told before any network is built (minutes, on a big preset).
    """
    if opts.frames < 1:
        raise ValueError("--frames must be at least 1")
    headless = opts.headless
    if not headless and not has_display():
        print("livesound live: no display found; running headless (pass --headless to say so)", file=sys.stderr)
        headless = True
    if not headless:
        problem = qt_window_problem()
        if problem is not None:
            print(f"livesound live: no window: {problem}; running headless instead", file=sys.stderr)
            headless = True
    live = opts.live
    live_source = live.source in LIVE_SOURCES
    if not live_source and not Path(live.source).is_file():
        raise ValueError(f"{live.source}: no such audio file (sources: auto, mic, synth, or a file)")
    source = open_source(live) if live_source else None
    return Show(opts, headless, build_pipeline(live), source)
