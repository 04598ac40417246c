"""``livesound live``: a show is a pipeline, an audio source, the rig around them, and a window or files.

The window (`livesound.app`, the one Qt user) only receives an engine and a rig; this module builds both, so
the app never imports the rig and the runtime (`livesound.live`) knows neither. Without a display the show
runs headless (`livesound.rig.headless`) and says so.
"""

from __future__ import annotations

import os
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


def run_show(opts: ShowOptions) -> ShowResult:
    """Play the show until its frames are written (headless) or its window closes, then write ``opts.stats``.

    A missing audio file or input device is told before any network is built (minutes, on a big preset).
    """
    if opts.frames < 1:
        raise ValueError("--frames must be at least 1")
    headless = opts.headless
    if not headless and not has_display():
        print("livesound live: no display found; running headless (pass --headless to say so)", file=sys.stderr)
        headless = True
    live = opts.live
    live_source = live.source in LIVE_SOURCES
    if not live_source and not Path(live.source).is_file():
        raise ValueError(f"{live.source}: no such audio file (sources: auto, mic, synth, or a file)")
    source = open_source(live) if live_source else None
    stages = build_pipeline(live)
    if headless:
        stats = run_headless(stages, live, opts.frames, Path(opts.out), opts.hop_fps, source=source,
                             rig_opts=opts.rig, record=Path(opts.record) if opts.record else None)
    else:
        stats, code = _window(stages, source or open_source(live), opts)
        if code:  # the engine failed: its error was shown; no stats of a broken run
            return ShowResult(headless=False, stats=stats, code=code)
    if opts.stats:
        write_json(opts.stats, stats)
    return ShowResult(headless=headless, stats=stats, code=130 if stats.get("interrupted") else 0)


def _window(stages, source, opts: ShowOptions) -> tuple[dict, int]:
    # Qt loads only for a windowed show: headless runs and servers need no PyQt6.
    from livesound.app.window import run_window

    engine = LiveEngine(stages, source, pin_threads=opts.live.pin_threads)
    rig = Rig(engine, opts.rig).attach(engine)  # always: keys 1-9 store and recall presets in memory
    try:
        code = run_window(engine, title=f"livesound - {opts.live.preset}", fullscreen=opts.fullscreen,
                          record_path=opts.record, rig=rig)
    finally:
        rig.close()
    return engine.stats(), code
