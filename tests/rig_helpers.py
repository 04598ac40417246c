"""Helpers shared by the rig's tests."""

import functools
import socket
import time


def free_port() -> int:
    """A UDP port on the loopback that nothing listens on (as of now)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout: float) -> bool:
    """Poll ``cond`` every 5 ms until it holds or ``timeout`` seconds pass; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


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

    # The swap tests compare with ORT and replace the demo's mapper (its default steering is its direction bank).
    return build_pipeline(LiveOptions(preset="demo", backend="onnxruntime", steer="mapper"))


def snapshot_networks(pipeline):
    """The pipeline's networks and backends, for ``restore_networks`` after a test swapped some."""
    return (pipeline.G, pipeline.steerer, dict(pipeline.runners), dict(pipeline.torch_runners),
            dict(pipeline.backends))


def restore_networks(pipeline, saved) -> None:
    G, steerer, runners, torch_runners, backends = saved
    pipeline.replace(generator=G, steerer=steerer)
    pipeline.runners, pipeline.torch_runners, pipeline.backends = runners, torch_runners, backends
