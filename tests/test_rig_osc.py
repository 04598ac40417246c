"""OSC in and out over real UDP sockets on 127.0.0.1: the `live` contract, next-frame control, fuzzing."""

import logging
import random
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO
from PIL import Image
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient
from rig_helpers import free_port, fresh, shared_stages, wait_for

from livesound.audio.sources import SynthSource
from livesound.live.build import preset_gains
from livesound.live.engine import LiveEngine
from livesound.live.pipeline import run_fixed_step
from livesound.models.presets import load_preset
from livesound.rig.osc import parse_host_port
from livesound.rig.rig import Rig, RigOptions, open_rig

SR = 44100


def receiver() -> socket.socket:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.2)
    return rx


def drain(rx: socket.socket) -> list[tuple[str, list]]:
    out = []
    rx.setblocking(False)
    try:
        while True:
            data = rx.recv(65536)
            out += [(t.message.address, t.message.params) for t in OscPacket(data).messages]
    except BlockingIOError:
        pass
    finally:
        rx.settimeout(0.2)
    return out


@pytest.fixture
def stages():
    st = fresh(shared_stages())
    yield st
    fresh(st)


def test_contract_seed_in_and_level_out_of_a_headless_run(tmp_path, stages):
    """The exact external command: frames render, `/seed` mid-run switches the latent, `/level` follows loudness."""
    t = np.arange(SR * 2) / SR
    audio = (np.where(t < 0.3, 0.02, 0.4) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wav = tmp_path / "quiet_then_loud.wav"
    sf.write(wav, audio, SR)
    rx, port, frames = receiver(), free_port(), 16
    cmd = [sys.executable, "-m", "livesound", "live", "--preset", "demo", "--source", str(wav), "--headless",
           "--frames", str(frames), "--out", str(tmp_path / "out"), "--steer", "mapper",
           "--backend", "onnxruntime",  # as the reference stages run (the demo's auto may choose bf16)
           "--osc-in", f"127.0.0.1:{port}", "--osc-out", f"127.0.0.1:{rx.getsockname()[1]}"]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    client, got, sent = SimpleUDPClient("127.0.0.1", port), [], False
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                data = rx.recv(65536)
            except socket.timeout:
                if proc.poll() is not None:
                    break
                continue
            for timed in OscPacket(data).messages:
                got.append((timed.message.address, timed.message.params))
                if not sent and timed.message.address == "/livesound/level":
                    client.send_message("/livesound/seed", 7)  # after the first frame went out
                    sent = True
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        rx.close()
    levels = [p[0] for a, p in got if a == "/livesound/level"]
    assert len(levels) >= frames // 2
    assert np.mean(levels[-6:]) > 5 * np.mean(levels[:6])                       # louder input, higher level
    for address in ("onset", "bands", "pulse", "motion", "fps"):
        assert sum(a == f"/livesound/{address}" for a, _ in got) >= frames // 2, address
    assert all(len(p) == 3 for a, p in got if a == "/livesound/bands")

    # The frames: the first like a run at seed 0, then (from the frame after /seed arrived) like seed 7.
    files = sorted((tmp_path / "out").glob("*.png"))
    assert len(files) == frames
    pngs = [np.asarray(Image.open(f)).astype(float) for f in files]
    refs = {}
    for seed in (0, 7):
        st = fresh(stages, seed)
        st.reactivity.gains = preset_gains(load_preset("demo"))  # as the command runs: the demo's pulse, kick, walk
        refs[seed] = [f.rgb.astype(float) for f in run_fixed_step(st, audio, frames, round(SR / 30))]
    fresh(stages, 0)
    which = [0 if np.abs(p - refs[0][i]).mean() < np.abs(p - refs[7][i]).mean() else 7 for i, p in enumerate(pngs)]
    switch = which.index(7)
    assert 1 <= switch < frames and all(w == 7 for w in which[switch:]), which
    assert max(np.abs(pngs[i] - refs[which[i]][i]).mean() for i in range(frames)) < 0.5


def test_parameters_apply_by_the_next_fixed_step_frame(stages):
    port = free_port()
    rig = open_rig(stages, RigOptions(osc_in=f"127.0.0.1:{port}"))
    client = SimpleUDPClient("127.0.0.1", port)
    audio = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    try:
        frames = run_fixed_step(stages, audio, 4, 1470, rig.step_before_frame)
        first = next(frames)
        client.send_message("/livesound/seed", 5)
        client.send_message("/livesound/strength", 1.7)
        client.send_message("/livesound/smoothing", 0.05)
        assert wait_for(lambda: rig.osc_in.counts["applied"] == 3, 10)
        second = next(frames)
        assert (first.seed, second.seed) == (stages.s.seed, 5)
        assert rig.target.strength == pytest.approx(1.7) and second.strength >= 1.7
        assert stages.smoother.time_constant_s == pytest.approx(0.05)
    finally:
        rig.close()
        stages.set_seed(0)
        stages.smoother.time_constant_s = stages.s.smoothing_s


def fuzz_packets(rng: random.Random, n: int) -> list[tuple[bytes, int]]:
    """(datagram, messages it holds) of every kind the listener must survive."""
    def msg(address, *args, types=None):
        b = OscMessageBuilder(address)
        for i, a in enumerate(args):
            b.add_arg(a, types[i] if types else None)
        return b.build().dgram

    valid = [msg("/livesound/strength", 0.7), msg("/livesound/seed", 3), msg("/livesound/next"),
             msg("/livesound/smoothing", 0.2)]  # no pause: a flipped byte must not stop the picture
    out = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            out.append((bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), 1))
        elif kind == 1:
            d = rng.choice(valid)
            out.append((d[:rng.randint(1, len(d) - 1)], 1))                      # truncated
        elif kind == 2:
            out.append((msg("/livesound/seed", "seven"), 1))                     # wrong type
        elif kind == 3:
            out.append((msg(f"/other/{rng.randint(0, 99)}", 1.0), 1))            # unknown address
        elif kind == 4:
            out.append((msg("/livesound/text", "x" * rng.randint(1100, 9000)), 1))  # oversized string
        elif kind == 5:
            bb = OscBundleBuilder(IMMEDIATELY)
            k = rng.randint(1, 4)
            for _ in range(k):
                bb.add_content(OscPacket(rng.choice(valid)).messages[0].message)
            out.append((bb.build().dgram, k))
        elif kind == 6:
            d = bytearray(rng.choice(valid))
            for _ in range(3):
                d[rng.randrange(len(d))] = rng.getrandbits(8)                     # flipped bytes
            out.append((bytes(d), None))
        else:
            out.append((msg("/livesound/seed", -4), 1))                          # out of range
    return out


def test_fuzz_leaves_the_loop_running_and_counts_every_packet(stages, caplog):
    caplog.set_level(logging.WARNING, logger="livesound")
    port = free_port()
    engine = LiveEngine(stages, SynthSource("chirp"))
    rig = Rig(engine, RigOptions(osc_in=f"127.0.0.1:{port}")).attach(engine)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    packets = fuzz_packets(random.Random(0), 3000)
    expected = 0
    engine.start()
    try:
        assert wait_for(lambda: engine.frames_rendered > 0, 60)
        before = engine.frames_rendered
        for i, (data, n) in enumerate(packets):
            tx.sendto(data, ("127.0.0.1", port))
            expected += n if n is not None else 0
            if i % 50 == 49:  # let the listener keep up so the kernel's buffer never drops a datagram
                assert wait_for(lambda: rig.osc_in.received >= expected, 10)
        assert wait_for(lambda: engine.frames_rendered > before + 2, 30)
        assert engine.running and engine.error is None
    finally:
        engine.stop()
        rig.close()
        tx.close()
        stages.set_seed(0)
    counts = rig.osc_in.counts
    flipped = sum(n is None for _, n in packets)
    assert expected <= counts.total() <= expected + 4 * flipped     # a flipped packet counts once per message in it
    for kind in ("malformed", "wrong_type", "unknown_address", "oversized", "out_of_range", "applied"):
        assert counts[kind] > 0, kind
    logged = [r.getMessage().split(":")[1].strip() for r in caplog.records if "OSC in" in r.getMessage()]
    assert sorted(logged) == sorted(set(logged)) and len(logged) == len(set(counts) - {"applied"})


def test_features_go_out_at_frame_rate_and_never_block(stages):
    rx = receiver()
    engine = LiveEngine(stages, SynthSource("clicks"))
    rig = Rig(engine, RigOptions(osc_out=f"127.0.0.1:{rx.getsockname()[1]}")).attach(engine)
    engine.start()
    try:
        assert wait_for(lambda: engine.frames_rendered >= 6, 60)
        n = engine.frames_rendered
        engine.paused = True
        time.sleep(0.3)
        got = drain(rx)
        rendered = engine.frames_rendered
    finally:
        engine.stop()
        rig.close()
        rx.close()
    levels = [p for a, p in got if a == "/livesound/level"]
    assert rendered >= n and len(levels) == rendered == rig.osc_out.sent // 9  # one per frame, no labels here
    assert {a for a, _ in got} >= {f"/livesound/{x}" for x in ("level", "onset", "bands", "pulse", "motion", "fps",
                                                                "overflows")}
    assert [p for a, p in got if a == "/livesound/overflows"] == [[0]] * rendered  # a synth loses nothing


def test_overflows_go_out_as_the_microphone_counts_them(stages):
    """A microphone whose (stand-in) capture child reports two overflows: `/overflows` follows its count."""
    from capture_helpers import fake_child

    from livesound.audio.mic import Microphone

    overflowing = "if n // 256 in (20, 40):\n    print(f'overflow {n // 5120}', file=err, flush=True)"
    mic = Microphone("fake", command=fake_child("", overflowing))
    rx = receiver()
    engine = LiveEngine(stages, mic)
    rig = Rig(engine, RigOptions(osc_out=f"127.0.0.1:{rx.getsockname()[1]}")).attach(engine)
    got: list[int] = []

    def received() -> list[int]:  # read as it comes: a full socket buffer would drop the newest datagrams
        got.extend(p[0] for a, p in drain(rx) if a == "/livesound/overflows")
        return got

    engine.start()
    try:
        assert wait_for(lambda: mic.input_overflows == 2 and engine.frames_rendered >= 3, 60)
        assert wait_for(lambda: 2 in received(), 30)
    finally:
        engine.stop()
        rig.close()
        rx.close()
    assert got == sorted(got) and got[0] == 0 and got[-1] == 2 and all(isinstance(v, int) for v in got)


def test_sender_drops_instead_of_blocking_when_nobody_listens():
    from livesound.rig.osc import OscOut

    out = OscOut("127.0.0.1", free_port())  # nothing bound: loopback answers with ICMP port unreachable
    t0 = time.perf_counter()
    for _ in range(200):
        out.send("level", 0.5)
    assert time.perf_counter() - t0 < 2.0
    assert out.sent + out.dropped == 200
    out.close()


@pytest.mark.parametrize("text, problem", [("9000", None), ("localhost:x", "expected HOST:PORT"),
                                           ("127.0.0.1:70000", "expected HOST:PORT")])
def test_host_port_parsing(text, problem):
    if problem is None:
        assert parse_host_port(text) == ("127.0.0.1", 9000)
    else:
        with pytest.raises(ValueError, match=problem):
            parse_host_port(text)


def test_busy_port_is_one_clear_error(stages):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        with pytest.raises(ValueError, match=f"--osc-in 127.0.0.1:{port}: cannot listen"):
            open_rig(stages, RigOptions(osc_in=f"127.0.0.1:{port}"))
    finally:
        s.close()
