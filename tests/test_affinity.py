"""Pinning the live engine's worker threads: the plan, the per-thread pin, and bad settings told clearly."""

import os
import threading

import pytest

from livesound.live.affinity import parse_pin, pin_current_thread, plan

linux = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity needs Linux")


def test_parse_and_plan():
    assert parse_pin(None) == "off" and parse_pin(" AUTO ") == "auto" and parse_pin("1,0") == (1, 0)
    for bad in ("on", "1", "a,b", "1,2,3"):
        with pytest.raises(ValueError, match="--pin-threads must be off, auto or two core numbers"):
            parse_pin(bad)
    assert plan("off", {0, 1}) == {}
    assert plan("auto", {2, 5, 7}) == {"renderer": 2, "listener": 5}
    assert plan("auto", {3}) == {}  # one core: nothing to separate
    assert plan((1, 0), {0, 1}) == {"renderer": 1, "listener": 0}
    with pytest.raises(ValueError, match=r"core\(s\) \[9\] are not among"):
        plan((0, 9), {0, 1})


@linux
def test_pin_applies_to_the_calling_thread_only():
    before = os.sched_getaffinity(0)
    core = min(before)
    seen = {}

    def worker():
        seen["pinned"] = pin_current_thread(core, "renderer")
        seen["affinity"] = os.sched_getaffinity(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"pinned": True, "affinity": {core}}
    assert os.sched_getaffinity(0) == before  # the process and this thread keep every core
    assert pin_current_thread(None) is False


@linux
def test_engine_workers_pin_themselves(tmp_path):
    """A real engine with `pin_threads`: each worker runs on its planned core (seen from inside the stage)."""
    from livesound.audio.sources import SynthSource
    from livesound.live.build import LiveOptions, build_pipeline
    from livesound.live.engine import LiveEngine

    cores = sorted(os.sched_getaffinity(0))
    stages = build_pipeline(LiveOptions(preset="demo", backend="torch"))
    seen = {}
    for name in ("features", "synthesize"):
        fn = getattr(stages, name)

        def spy(*a, _fn=fn, _name=name):
            seen[_name] = os.sched_getaffinity(0)
            return _fn(*a)
        setattr(stages, name, spy)
    render, listen = cores[-1], cores[0]
    engine = LiveEngine(stages, SynthSource("chirp"), pin_threads=f"{render},{listen}")
    engine.start()
    try:
        for _ in range(400):
            if engine.frames_rendered or engine.error:
                break
            threading.Event().wait(0.05)
    finally:
        engine.stop(timeout=5.0)
    assert engine.error is None and engine.frames_rendered > 0
    assert seen == {"features": {listen}, "synthesize": {render}}
    with pytest.raises(ValueError, match="--pin-threads"):
        LiveEngine(stages, SynthSource("chirp"), pin_threads="fast")
