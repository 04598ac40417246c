"""OSC is unauthenticated and powerful: what a sender can do is bounded. Real UDP on loopback throughout.

Before: every ``/livesound/generator PATH`` started a loader thread (50 messages, 52 threads) and loaded any
readable path; an export child had no timeout; one 48 kB datagram queued 2000 changes; a ``/text`` without CLIP
restarted the renderer once per message; ``/record 1`` wrote without limit; ``--osc-in 0.0.0.0:PORT`` listened
to the whole network without a word.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from rig_helpers import free_port, fresh, restore_networks, shared_stages, snapshot_networks, wait_for

from livesound.audio.sources import SynthSource
from livesound.live.engine import LiveEngine
from livesound.models.stylegan2 import build_generator
from livesound.rig.control import MAX_QUEUED, ControlError, Controls, StepTarget
from livesound.rig.rig import Rig, RigOptions
from livesound.rig.swap import CheckpointSwap
from livesound.weights.checkpoint import save_own


@pytest.fixture
def stages():
    st = fresh(shared_stages())
    saved = snapshot_networks(st)
    yield st
    restore_networks(st, saved)
    fresh(st)


def msg(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def test_a_swap_flood_costs_one_loader_and_the_latest_wins(stages, tmp_path):
    G = stages.G
    paths = []
    for seed in (11, 12):
        g = build_generator(G.cfg, seed=seed)
        paths.append(save_own(tmp_path / f"g{seed}.safetensors", "generator", g.cfg.to_dict(), g.state_dict()))
    stages.replace(generator=stages.G)   # the generator on torch: no export child in this test
    port = free_port()
    rig = Rig(StepTarget(stages), RigOptions(osc_in=f"127.0.0.1:{port}", osc_allow_path=[str(tmp_path)]))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    base = threading.active_count()
    peak = [base]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], threading.active_count() - 1)   # less the watcher itself
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(50):
            tx.sendto(msg("/livesound/generator", str(paths[i == 49])), ("127.0.0.1", port))
        assert wait_for(lambda: rig.osc_in.counts["applied"] == 50, 30)
        rig.before_frame()  # the renderer's hook: the 50 requests reach the swap
        assert wait_for(lambda: rig.swap.loading is None and rig.swap._next is None, 120)
        rig.before_frame()  # installs the loaded generator
    finally:
        stop.set()
        watcher.join()
        rig.close()
        tx.close()
    assert peak[0] <= base + 1, (base, peak[0])                  # one loader thread, whatever the flood
    assert rig.swap.superseded >= 47 and rig.swap.swaps == 1     # 50 requests, at most two loads
    assert rig.swap._paths["generator"] == str(paths[1])         # the newest request is what runs
    assert rig.stats()["swaps_superseded"] == rig.swap.superseded


def test_swaps_only_from_the_models_folder_and_named_folders(stages, tmp_path, monkeypatch):
    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("LIVESOUND_MODELS", str(models))
    g = build_generator(stages.G.cfg, seed=13)
    outside = save_own(elsewhere / "g.safetensors", "generator", g.cfg.to_dict(), g.state_dict())
    (models / "link.safetensors").symlink_to(outside)             # a link out of the folder is outside too
    port = free_port()
    rig = Rig(StepTarget(stages), RigOptions(osc_in=f"127.0.0.1:{port}"))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for path in ("/etc/passwd", str(outside), str(models / "link.safetensors"),
                     str(models / "../elsewhere/g.safetensors")):
            tx.sendto(msg("/livesound/generator", path), ("127.0.0.1", port))
        assert wait_for(lambda: rig.osc_in.counts["refused_path"] == 4, 30)
        rig.before_frame()
        assert rig.swap.loading is None and rig.controls.applied == 0
    finally:
        rig.close()
        tx.close()
    allowed = Rig(StepTarget(stages), RigOptions(osc_allow_path=[str(elsewhere)]))
    try:
        allowed.controls.submit("generator", str(outside))   # named with --osc-allow-path: fine
    finally:
        allowed.close()
    with pytest.raises(ControlError, match="--osc-allow-path"):
        Rig(StepTarget(stages), RigOptions()).controls.submit("generator", str(outside))


def _children() -> set[int]:
    out = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            out |= {int(p) for p in (task / "children").read_text().split()}
        except OSError:
            continue
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc (Linux)")
def test_an_export_child_past_its_timeout_is_stopped(stages, tmp_path):
    from livesound.models.mapper import MapperConfig, build_mapper, save_mapper

    assert stages.backends["map"] == "onnxruntime"           # the demo preset's: a swap exports in a child
    m = stages.steerer
    path = save_mapper(build_mapper(MapperConfig(num_ws=m.num_ws, w_dim=m.w_dim, clip_dim=m.clip_dim), seed=9),
                       tmp_path / "m.safetensors")
    before = _children()
    swap = CheckpointSwap(stages, export_timeout_s=0.5)
    t0 = time.monotonic()
    swap.request("mapper", str(path)).join(60)
    assert time.monotonic() - t0 < 30
    assert "took longer than 0.5 s" in swap.last_error and not swap.apply_pending()
    assert _children() <= before                                # killed and reaped


def test_one_datagram_cannot_queue_without_bound(stages):
    port = free_port()
    rig = Rig(StepTarget(stages), RigOptions(osc_in=f"127.0.0.1:{port}"))
    bundle = OscBundleBuilder(IMMEDIATELY)
    for i in range(2000):
        b = OscMessageBuilder("/livesound/seed")
        b.add_arg(i)
        bundle.add_content(b.build())
    data = bundle.build().dgram
    assert 40_000 < len(data) < 65_000
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tx.sendto(data, ("127.0.0.1", port))
        assert wait_for(lambda: rig.osc_in.counts["applied"] == 2000, 30)
        assert len(rig.controls._queue) == MAX_QUEUED and rig.controls.dropped == 2000 - MAX_QUEUED
        rig.before_frame()
        assert stages.seed == 1999                                  # the newest changes are the ones kept
        assert rig.stats()["controls_dropped"] == 2000 - MAX_QUEUED
    finally:
        rig.close()
        tx.close()
        stages.set_seed(0)


def test_failures_are_logged_at_a_bounded_rate(stages, caplog):
    caplog.set_level(logging.ERROR, logger="livesound")
    controls = Controls(StepTarget(stages))
    for _ in range(3):
        for _ in range(100):
            controls.submit("mix", "everything")      # a string, so it queues; applying it fails
        controls.apply_pending()
    lines = [r for r in caplog.records if "mix" in r.getMessage()]
    assert controls.failed == 300 and len(lines) == 3 and controls.errors.suppressed["mix"] == 297


def test_text_without_clip_is_refused_at_the_door_and_the_renderer_never_restarts(stages):
    clip, stages.clip = stages.clip, None
    port = free_port()
    engine = LiveEngine(stages, SynthSource("chirp"))
    rig = Rig(engine, RigOptions(osc_in=f"127.0.0.1:{port}")).attach(engine)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    engine.start()
    try:
        assert wait_for(lambda: engine.frames_rendered > 0, 120)
        for _ in range(20):
            tx.sendto(msg("/livesound/text", "a red sky"), ("127.0.0.1", port))
        assert wait_for(lambda: rig.osc_in.counts["unavailable"] == 20, 30)
        n = engine.frames_rendered
        assert wait_for(lambda: engine.frames_rendered > n + 3, 60)
        assert engine.error is None and engine.running
    finally:
        engine.stop()
        rig.close()
        tx.close()
        stages.clip = clip
    assert "loop" not in engine.faults.summary()["by_stage"]        # the renderer never failed and restarted


def test_listening_beyond_loopback_needs_the_flag_and_says_what_a_sender_can_do(stages, capsys):
    port = free_port()
    with pytest.raises(ValueError) as e:
        Rig(StepTarget(stages), RigOptions(osc_in=f"0.0.0.0:{port}"))
    assert "--osc-listen-any" in str(e.value) and "swap in checkpoints" in str(e.value)
    rig = Rig(StepTarget(stages), RigOptions(osc_in=f"0.0.0.0:{port}", osc_listen_any=True,
                                             osc_allow_from=["127.0.0.2"], record_max_mb=64))
    err = capsys.readouterr().err
    assert "open to the network (127.0.0.2)" in err and "at most 64 MB" in err
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        senders[0].bind(("127.0.0.1", 0))
        senders[1].bind(("127.0.0.2", 0))
        for tx in senders:
            tx.sendto(msg("/livesound/seed", 7), ("127.0.0.1", port))
        assert wait_for(lambda: rig.osc_in.received == 2, 30)
        assert rig.osc_in.counts["sender_refused"] == 1 and rig.osc_in.counts["applied"] == 1
    finally:
        rig.close()
        for tx in senders:
            tx.close()


def test_a_rig_recording_stops_at_its_size_cap(stages, tmp_path, caplog):
    import numpy as np

    caplog.set_level(logging.INFO, logger="livesound")
    rig = Rig(StepTarget(stages), RigOptions(record_dir=str(tmp_path / "rec"), record_max_mb=0.05))
    frame = type("F", (), {"rgb": np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)})
    try:
        rig.set_recording(1)
        rec = rig.recorder
        deadline = time.monotonic() + 30
        while rig.recorder is not None and time.monotonic() < deadline:
            rig.after_frame(frame)
            time.sleep(0.01)
        assert rig.recorder is None and rec.stopped and "size cap" in rec.stopped
    finally:
        rig.close()
    size = sum(p.stat().st_size for p in rec.path.iterdir())
    assert 50_000 <= size < 50_000 + 60 * 49_152             # the cap, plus what half a second adds
    assert any("stopped" in r.getMessage() for r in caplog.records)
