"""Helpers shared by the rig's tests."""

import functools


def fresh(stages, seed: int = 0):
    """The stages as just built with ``seed`` (no audio history, no reactivity), without rebuilding networks."""
    from livesound.live.reactivity import ReactivityGains

    stages.stream.reset()
    stages.hpss.reset()
    stages.change.reset()
    stages.smoother.reset()
    stages.smoother.time_constant_s = stages.s.smoothing_s
    stages.envelope.reset()
    stages.reactivity.phase = 0.0
    stages.reactivity.gains = ReactivityGains()
    stages.text_groups = ("coarse",)
    stages.set_text(None)
    stages.set_seed(seed)
    return stages


@functools.lru_cache(maxsize=1)
def shared_stages():
    """One demo build for every rig test module (building the networks is the slow part). It steers with the
    demo's mapper, whose checkpoints the swap tests replace (the demo's default is its direction bank)."""
    from livesound.live.build import LiveOptions, build_pipeline

    return build_pipeline(LiveOptions(preset="demo", steer="mapper"))
