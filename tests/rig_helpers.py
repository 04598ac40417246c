"""Helpers shared by the rig's tests."""


def fresh(stages, seed: int = 0):
    """The stages as just built with ``seed`` (no audio history, no reactivity), without rebuilding networks."""
    from livesound.live.reactivity import ReactivityGains

    stages.stream.reset()
    stages.hpss.reset()
    stages.smoother.reset()
    stages.smoother.time_constant_s = stages.s.smoothing_s
    stages.envelope.reset()
    stages.reactivity.phase = 0.0
    stages.reactivity.gains = ReactivityGains()
    stages.text_groups = ("coarse",)
    stages.set_text(None)
    stages.set_seed(seed)
    return stages
