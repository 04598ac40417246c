"""Per-frame cost of the rig on the renderer thread, beside the encoder it must stay small against.

    python benchmarks/bench_rig.py                    # every scenario; writes results/rig_cpu.json and .png
    python benchmarks/bench_rig.py --frames 2000 --threads 2

Scenarios (the demo preset's networks, torch threads as given, fp32):
  osc_out.frame       OscOut.send_frame: 9 datagrams of one frame's features to a UDP receiver on 127.0.0.1
  hpss.frame          StreamingHPSS.update after one video frame of audio (1470 samples = 2-3 STFT hops);
                      the stream's own STFT is not included (the encoder path already pays it)
  reactivity.frame    Reactivity.step + source with every gain on (walk, kick): the latent arithmetic
  video_offer[PX]     VideoOut.offer of a PX x PX frame: all the renderer pays for video out
  ndi_send[PX]        NdiSender.send of one frame on the sender's own thread (not the renderer's)
  encode              the demo encoder on one input (the reference: what the rig must stay small beside)
  swap                a generator + mapper hot swap under a running engine: the takeover between two frames,
                      and the gaps between frames while the new checkpoints load (and export, in a child
                      process) on the side, against a control period of 60 frames without swaps
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from livesound.bench.stats import figure, percentiles, summary_ms, time_calls
from livesound.files import write_json

RESULTS = Path(__file__).parent / "results"
CONTROL_FRAMES = 60


def fake_frame(rgb: np.ndarray):
    from livesound.live.pipeline import Frame

    return Frame(0, rgb, 0, 0.0, {}, 0.1, 0.2, 0.5, 3, 30.0, [], pulse=0.3, motion=0.4, bands=(0.1, 0.2, 0.3))


def osc_scenario(n: int, warmup: int) -> dict[str, np.ndarray]:
    from livesound.rig.osc import OscOut

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.1)
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            try:
                rx.recv(65536)
            except socket.timeout:
                pass

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    out = OscOut(*rx.getsockname())
    frame = fake_frame(np.zeros((8, 8, 3), np.uint8))
    ms = time_calls(lambda i: out.send_frame(frame), n, warmup)
    stop.set()
    t.join()
    out.close()
    rx.close()
    return {"osc_out.frame": ms}


def hpss_scenario(n: int, warmup: int) -> dict[str, np.ndarray]:
    from livesound.audio.features import StreamLogMel
    from livesound.live.hpss import StreamingHPSS

    stream = StreamLogMel()
    hpss = StreamingHPSS(stream)
    audio = (0.1 * np.random.default_rng(0).standard_normal((n + warmup + 40) * 1470)).astype(np.float32)
    stream.push(audio[:40 * 1470])
    hpss.update()
    times = []
    for i in range(n + warmup):
        stream.push(audio[(40 + i) * 1470:(41 + i) * 1470])  # untimed: the encoder path computes these frames
        t0 = time.perf_counter()
        hpss.update()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"hpss.frame": np.array(times) * 1e3}


def reactivity_scenario(stages, n: int, warmup: int) -> dict[str, np.ndarray]:
    r = stages.reactivity
    r.gains.pulse_kick, r.gains.motion_walk = 0.5, 2.0

    def step(i):
        r.step(1 / 30, 0.5, 0.5)
        r.source(stages.ws_src)

    ms = time_calls(step, n, warmup)
    r.gains.pulse_kick = r.gains.motion_walk = 0.0
    r.phase = 0.0
    return {"reactivity.frame": ms}


def video_scenarios(n: int, warmup: int, sizes: list[int]) -> dict[str, np.ndarray]:
    from livesound.rig.video_out import NdiSender, VideoOut

    runs = {}
    for px in sizes:
        rgb = np.random.default_rng(px).integers(0, 255, (px, px, 3), dtype=np.uint8)
        try:
            sender = NdiSender(f"livesound-bench-{px}")
        except Exception as e:  # noqa: BLE001 - no cyndilib: the offer cost is measured with a null sink
            print(f"bench_rig: NDI unavailable ({e}); ndi_send[{px}] skipped")
            sender = None
        if sender is not None:
            sender.open(px, px)
            runs[f"ndi_send[{px}]"] = time_calls(lambda i: sender.send(rgb), max(n // 10, 20), 5)
            sender.close()
            out = VideoOut(NdiSender(f"livesound-bench-offer-{px}"))
            runs[f"video_offer[{px}]"] = time_calls(lambda i: out.offer(rgb), n, warmup)
            out.close()
    return runs


def encode_scenario(stages, n: int, warmup: int) -> dict[str, np.ndarray]:
    spec = stages.features(np.zeros(1470, np.float32))
    return {"encode": time_calls(lambda i: stages.encode(spec), n, warmup)}


def swap_scenario(stages) -> dict:
    """Two swaps while the engine renders a synthetic source; frame gaps around them."""
    from livesound.audio.sources import SynthSource
    from livesound.live.engine import LiveEngine
    from livesound.models.mapper import MapperConfig, build_mapper, save_mapper
    from livesound.models.stylegan2 import build_generator
    from livesound.rig.rig import Rig, RigOptions
    from livesound.weights.checkpoint import save_own

    folder = Path(tempfile.mkdtemp(prefix="livesound-bench-swap-"))
    g2 = build_generator(stages.G.cfg, seed=77)
    gpath = save_own(folder / "g2.safetensors", "generator", g2.cfg.to_dict(), g2.state_dict())
    m = stages.steerer
    mpath = save_mapper(build_mapper(MapperConfig(num_ws=m.num_ws, w_dim=m.w_dim, clip_dim=m.clip_dim), seed=78),
                        folder / "m2.safetensors")
    engine = LiveEngine(stages, SynthSource("chirp"))
    rig = Rig(engine, RigOptions()).attach(engine)
    stamps: list[tuple[float, int]] = []
    send = rig.after_frame
    engine.after_frame = lambda f: (stamps.append((f.t_done, rig.swap.swaps)), send(f))
    engine.start()
    applies = []
    try:
        while len(stamps) < CONTROL_FRAMES + 1:  # a control period without swaps, for comparison
            time.sleep(0.01)
        for kind, path in (("generator", gpath), ("mapper", mpath)):
            done = rig.swap.swaps
            rig.controls.submit(kind, str(path))
            while rig.swap.swaps == done:
                time.sleep(0.005)
            applies.append(rig.swap.last_apply_ms)
        n = len(stamps)
        while len(stamps) < n + 10:
            time.sleep(0.01)
    finally:
        engine.stop()
        rig.close()
    t = np.array([s[0] for s in stamps])
    swaps = np.array([s[1] for s in stamps])
    gaps = np.diff(t) * 1e3                                   # gaps[i]: frame i -> i + 1
    control, loading = gaps[:CONTROL_FRAMES], gaps[CONTROL_FRAMES:]
    takeover = [float(gaps[i - 1]) for i in np.flatnonzero(np.diff(swaps)) + 1]  # into each first new frame
    control_ms, loading_ms = summary_ms(control, peak=True), summary_ms(loading, peak=True)
    return {"takeover_ms": applies, "frame_interval_p50_ms": percentiles(gaps, (50,))["p50_ms"],
            "takeover_frame_gaps_ms": takeover,
            "max_gap_control_ms": control_ms["max_ms"], "max_gap_while_loading_ms": loading_ms["max_ms"],
            "p95_gap_control_ms": control_ms["p95_ms"], "p95_gap_while_loading_ms": loading_ms["p95_ms"],
            "overruns": int(engine.source.ring.overruns), "frames": len(stamps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1000, help="timed frames per scenario")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--sizes", default="128,512", help="video frame sizes in px")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the renderer's: 1)")
    ap.add_argument("--no-swap", action="store_true", help="skip the hot-swap scenario")
    ap.add_argument("--name", default="rig_cpu", help="result file stem")
    args = ap.parse_args()

    from livesound.live.build import LiveOptions, build_pipeline

    torch.set_num_threads(args.threads)
    stages = build_pipeline(LiveOptions(preset="demo"))
    runs: dict[str, np.ndarray] = {}
    runs |= osc_scenario(args.frames, args.warmup)
    runs |= hpss_scenario(args.frames, args.warmup)
    runs |= reactivity_scenario(stages, args.frames, args.warmup)
    runs |= video_scenarios(args.frames, args.warmup, [int(s) for s in args.sizes.split(",")])
    runs |= encode_scenario(stages, max(args.frames // 5, 50), args.warmup)
    scenarios = {name: summary_ms(ms, peak=True, count=True) for name, ms in runs.items()}
    result = {"benchmark": "rig per-frame costs (OSC out, pulse/motion, video out), demo preset",
              "scenarios": scenarios,
              "device": f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    if not args.no_swap:
        result["swap"] = swap_scenario(stages)
    write_json(RESULTS / f"{args.name}.json", result)
    print(json.dumps(result, indent=2))
    _plot(scenarios, RESULTS / f"{args.name}.png")


def _plot(scenarios: dict[str, dict], path: Path) -> None:
    """p50 and p99 per scenario on a log axis, the encoder among them as the yardstick."""
    names = list(scenarios)
    y = np.arange(len(names))
    with figure(path, size=(8, 0.45 * len(names) + 1.2), dpi=110) as (fig, ax):
        for q, offset in ((50, -0.2), (99, 0.2)):
            ax.barh(y + offset, [scenarios[n][f"p{q}_ms"] for n in names], height=0.4, label=f"p{q}")
        ax.set(yticks=y, yticklabels=names, xscale="log", xlabel="ms per frame (log)",
               title="rig cost per frame vs the encoder")
        ax.legend()


if __name__ == "__main__":
    main()
