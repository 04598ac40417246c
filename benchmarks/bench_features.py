"""Log-mel feature cost on the CPU: per hop of a live stream and per 10 s clip; p50/p95/p99 to JSON and a plot.

    python benchmarks/bench_features.py                   # all scenarios, both DFT forms
    python benchmarks/bench_features.py --hops 2000 --clips 30 --threads 2

Scenarios (torch eager, fp32, batch 1):
  stream.push      StreamLogMel.push of one hop (512 samples = 11.6 ms of audio at 44.1 kHz): one STFT frame
  stream.window    StreamLogMel.encoder_input(): dB over the newest 864 frames, resize, reshape (per video frame)
  paper.clip_10s   PaperLogMel on a 10 s clip (441000 samples)
each with dft="fft" (torch.fft.rfft, the eager default) and dft="conv" (the Conv1d DFT that ONNX exports), and
  encoder[NAME]    the audio encoder's forward on one [1, 1, 128, 512] input (the paper's resnet18 layout,
                   seeded weights: the cost does not depend on the values)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from livesound.audio.features import HOP, PAPER_FRAMES, SAMPLE_RATE, LogMelFrames, PaperLogMel, StreamLogMel
from livesound.bench.stats import figure, mark_percentiles, summary_ms, time_calls
from livesound.files import write_json

RESULTS = Path(__file__).parent / "results"


def stream_scenarios(dft: str, hops: int, warmup: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    stream = StreamLogMel(frames=LogMelFrames(dft=dft))
    audio = (0.1 * rng.standard_normal((warmup + hops + PAPER_FRAMES + 4) * HOP)).astype(np.float32)
    stream.push(audio[: (PAPER_FRAMES + 4) * HOP])  # a full window before timing
    offset = (PAPER_FRAMES + 4) * HOP
    push = time_calls(lambda i: stream.push(audio[offset + i * HOP: offset + (i + 1) * HOP]), hops, warmup)
    with torch.inference_mode():
        window = time_calls(lambda i: stream.encoder_input(), max(hops // 4, 20), warmup)
    return {f"stream.push[{dft}]": push, f"stream.window[{dft}]": window}


def clip_scenario(dft: str, clips: int, warmup: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    module = PaperLogMel(dft=dft).eval()
    wave = torch.from_numpy((0.1 * rng.standard_normal((1, 10 * SAMPLE_RATE))).astype(np.float32))
    with torch.inference_mode():
        return {f"paper.clip_10s[{dft}]": time_calls(lambda i: module(wave), clips, min(warmup, 3))}


def encoder_scenario(backbone: str, runs: int, warmup: int) -> dict[str, np.ndarray]:
    from livesound.models.audio_encoder import AudioEncoderConfig, build_audio_encoder

    enc = build_audio_encoder(AudioEncoderConfig(backbone=backbone), seed=0)
    x = enc.example_input(1)
    with torch.inference_mode():
        return {f"encoder[{backbone}]": time_calls(lambda i: enc(x), runs, min(warmup, 5))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hops", type=int, default=1000, help="timed pushes of one hop each")
    ap.add_argument("--clips", type=int, default=20, help="timed 10 s clips")
    ap.add_argument("--encoder-runs", type=int, default=30, help="timed encoder forwards")
    ap.add_argument("--backbone", default="resnet18", help="timm backbone of the timed encoder")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--name", default="features_cpu", help="result file stem")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    runs: dict[str, np.ndarray] = {}
    for dft in ("fft", "conv"):
        runs |= stream_scenarios(dft, args.hops, args.warmup, rng)
        runs |= clip_scenario(dft, args.clips, args.warmup, rng)
    runs |= encoder_scenario(args.backbone, args.encoder_runs, args.warmup)
    scenarios = {name: summary_ms(ms, peak=True, count=True) for name, ms in runs.items()}
    result = {
        "benchmark": "log-mel features and audio encoder, torch eager fp32, batch 1",
        "hop_audio_ms": 1e3 * HOP / SAMPLE_RATE,
        "scenarios": scenarios,
        "device": f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    write_json(RESULTS / f"{args.name}.json", result)
    print(json.dumps(result, indent=2))
    _plot(runs, RESULTS / f"{args.name}.png")


def _plot(runs: dict[str, np.ndarray], path: Path) -> None:
    """One histogram per scenario with its p50/p95/p99 marked."""
    with figure(path, 1, len(runs), (3.2 * len(runs), 3), dpi=90, squeeze=False) as (fig, axes):
        for ax, (name, ms) in zip(axes[0], runs.items()):
            ax.hist(ms, bins=40)
            mark_percentiles(ax, ms, fmt=".2f")
            ax.set(title=name, xlabel="ms")
            ax.legend(fontsize=7)


if __name__ == "__main__":
    main()
