"""`livesound bench semantic`: how fast the picture follows what a sound means, measured per switch of sound.

A file is synthesised that switches between two anchors' sounds of a direction bank (A B A B ..., each held
``segment`` seconds, long enough to settle), and played through the frame recipe at a fixed frame rate, in
audio time, as the live engine would see it: every frame pushes its audio and computes the window (features);
the embedding the picture uses is refreshed ``embed_hz`` times a second, as the engine's listener does; every
frame is drawn (smooth -> map -> synthesize -> to_rgb8). The reactivity (pulse, kick, walk) is switched off:
it moves the picture for reasons other than meaning.

Per switch, "half-way" is the first moment the picture has moved half the way from the old anchor's settled
picture (the mean frame of the last 40 % of the segment before the switch) to the new one's (the same, of the
segment after it): the projection of (frame - old) onto (new - old) reaches 0.5, interpolated between frames;
"ninety" the same at 0.9. The calm of the settled picture is measured too (``steady_change_per_frame``: the mean
absolute change of a pixel from one frame to the next over the settled parts, 0-255), so a faster window that
made the picture nervous would show.
The same crossing is found, at 0.5, for the newest window's embedding computed every frame, the embedding the
listener last gave (at ``embed_hz``), and the smoothed embedding (each on its running median over
``MEDIAN_FRAMES`` frames: one window of an untrained encoder can read half-way by chance); the differences split
the half-way time into
- window_fill: switch -> the newest window's embedding is half-way (the window filling with the new sound);
- encoder: the wait for the listener's next encode, plus the features + encode compute time (p50);
- smoothing: the listener's embedding half-way -> the smoothed one half-way;
- steering: the smoothed embedding half-way -> the picture half-way, plus the draw compute time (p50).
The parts add up to the half-way time, which includes the compute time a frame takes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from livesound.audio.features import SAMPLE_RATE
from livesound.bench.stats import figure, summary
from livesound.live.build import LiveOptions, build_pipeline
from livesound.live.reactivity import ReactivityGains
from livesound.live.timing import StageClock, StageTimes
from livesound.offline.bank import Anchor, anchor_wave

PARTS = ("window_fill", "encoder", "smoothing", "steering")
MEDIAN_FRAMES = 5    # the embeddings' crossings are judged on their running median over this many frames
SETTLED = 0.6        # a segment's last 40 % is its settled state (the references, and the calm measured there)
DRAW_STAGES = ("smooth", "map", "synthesize", "to_rgb8")


def pick_anchors(bank, labels: Sequence[str] | None = None) -> list[int]:
    """The sound anchors of ``bank`` (a ``BankSteer``) to switch between: ``labels``, else the two whose
    embeddings are farthest apart."""
    sounds = [i for i, k in enumerate(bank.kinds) if k == "sound" and _playable(bank.sources[i])]
    if labels:
        missing = [x for x in labels if x not in bank.labels]
        if missing:
            raise ValueError(f"--anchors: the bank has no anchors {missing}; it has {', '.join(bank.labels)}")
        chosen = [bank.labels.index(x) for x in labels]
        if any(i not in sounds for i in chosen) or len(chosen) < 2:
            raise ValueError("--anchors: name at least two sound anchors whose sounds exist on this machine")
        return chosen
    if len(sounds) < 2:
        raise ValueError("the bank needs two sound anchors whose sounds exist here (files or synth:KIND sources)")
    e = bank.embeddings[sounds]
    cos = e @ e.T
    a, b = divmod(int(torch.argmin(cos).item()), len(sounds))
    return [sounds[a], sounds[b]]


def _playable(source: str) -> bool:
    return source.startswith("synth:") or Path(source).is_file()


def switching_audio(waves: Sequence[np.ndarray], segment_s: float, switches: int) -> tuple[np.ndarray, list[int]]:
    """Segments cycling through ``waves`` (each looped or cut to ``segment_s``): (audio, switch sample indices)."""
    n = int(round(segment_s * SAMPLE_RATE))
    parts = [np.resize(waves[k % len(waves)], n) for k in range(switches + 1)]
    return np.concatenate(parts).astype(np.float32), [k * n for k in range(1, switches + 1)]


def run_semantic_bench(preset: str = "demo", bank: str | None = None, anchors: Sequence[str] | None = None,
                       segment_s: float = 4.0, switches: int = 8, fps: float = 30.0, backend: str | None = None,
                       change_db: float | None = None, log: Callable[[str], None] = print) -> dict:
    """Play the switching file through the preset's pipeline steered by ``bank`` (or the preset's); the result
    is the JSON report (see the module docstring). ``change_db`` overrides the preset's change detection
    threshold (0: the plain newest window, as before `livesound.live.novelty`)."""
    if segment_s <= 0 or switches < 1 or fps <= 0:
        raise ValueError("--segment and --fps must be positive and --switches at least 1")
    torch.set_num_threads(1)  # as each of the live engine's workers
    pipe = build_pipeline(LiveOptions(preset=preset, bank=bank, steer="bank", strength=1.0, backend=backend),
                          say=lambda text: log(f"livesound bench semantic: {text}"))
    pipe.reactivity.gains = ReactivityGains()
    if change_db is not None:
        pipe.s.change_db = pipe.change.threshold_db = float(change_db)
    steer = pipe.steerer  # a BankSteer: its anchors' labels, kinds and sources
    chosen = pick_anchors(steer, anchors)
    labels = [steer.labels[i] for i in chosen]
    waves = [anchor_wave(Anchor("sound", steer.labels[i], steer.sources[i])) for i in chosen]
    audio, switch_at = switching_audio(waves, segment_s, switches)
    hop = int(round(SAMPLE_RATE / fps))
    log(f"livesound bench semantic: {switches} switches between {', '.join(labels)}, "
        f"{segment_s:g} s each, {fps:g} fps, encoder at {pipe.s.embed_hz:g} Hz ({steer.describe()})")
    rec = _play(pipe, audio, hop)
    result = _measure(rec, switch_at, hop)
    result.update({
        "benchmark": "semantic latency: sound switch to the picture half-way (and 90%) to the new anchor's",
        "preset": preset, "bank": str(bank) if bank else "the preset's", "anchors": labels,
        "segment_s": segment_s, "fps": fps, "embed_hz": pipe.s.embed_hz, "steering": steer.describe(),
        "settings": {k: getattr(pipe.s, k) for k in ("window_s", "smoothing_s", "strength", "change_db",
                                                     "change_smoothing")},
        "backends": dict(pipe.backends), "compute_ms": rec["compute"], "device": _device(),
    })
    return result


def _device() -> str:
    import platform

    return f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"


def _play(pipe, audio: np.ndarray, hop: int) -> dict:
    """Run the recipe frame by frame; record the picture and the three embeddings at every frame."""
    times = StageTimes()
    clock = StageClock(times)
    dt = hop / SAMPLE_RATE
    frames = int(np.ceil(audio.size / hop))
    interval = 1.0 / pipe.s.embed_hz if pipe.s.embed_hz > 0 else 0.0
    next_encode, e_live = 0.0, None
    rgb, e_now, e_used, e_smooth = [], [], [], []
    with torch.inference_mode():
        for i in range(frames):
            block = audio[i * hop:(i + 1) * hop]
            clock.new_frame()
            e = pipe.hear(block, clock)                  # the newest window, every frame (window_fill's curve)
            t = (i + 1) * dt
            if e_live is None or t + 1e-9 >= next_encode:
                e_live, next_encode = e, next_encode + interval
            drawn = pipe.draw(e_live, block, dt, pipe.s.strength, clock)
            rgb.append(drawn.rgb.astype(np.float32))
            e_now.append(e[0].clone())
            e_used.append(e_live[0].clone())
            e_smooth.append(drawn.embedding[0].clone())
    summary_ms = times.summary()
    hear_ms = sum(summary_ms[s]["p50_ms"] for s in ("features", "encode"))
    draw_ms = sum(summary_ms[s]["p50_ms"] for s in DRAW_STAGES)
    return {"t": (np.arange(frames) + 1) * dt, "rgb": np.stack(rgb), "e_now": torch.stack(e_now).numpy(),
            "e_used": torch.stack(e_used).numpy(), "e_smooth": torch.stack(e_smooth).numpy(),
            "compute": {"hear_p50_ms": hear_ms, "draw_p50_ms": draw_ms, "interval_s": interval}}


def crossing(t: np.ndarray, progress: np.ndarray, level: float) -> float | None:
    """The first time ``progress`` reaches ``level``, linearly interpolated between samples (None: never)."""
    above = np.nonzero(progress >= level)[0]
    if above.size == 0:
        return None
    k = int(above[0])
    if k == 0:
        return float(t[0])
    p0, p1 = progress[k - 1], progress[k]
    return float(t[k - 1] + (t[k] - t[k - 1]) * (level - p0) / max(p1 - p0, 1e-12))


def moving_median(x: np.ndarray, k: int) -> np.ndarray:
    """Centred running median over ``k`` (odd) samples, the ends padded with their edge values."""
    pad = np.pad(x, k // 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(pad, k), axis=-1)


def progress_curve(x: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Projection of each row of ``x`` (flattened) onto the segment old -> new: 0 at old, 1 at new."""
    d = (new - old).ravel()
    return ((x.reshape(len(x), -1) - old.ravel()) @ d) / max(float(d @ d), 1e-12)


def _measure(rec: dict, switch_at: Sequence[int], hop: int) -> dict:
    t, n = rec["t"], len(rec["t"])
    comp = rec["compute"]
    compute_s = (comp["hear_p50_ms"] + comp["draw_p50_ms"]) / 1e3
    bounds = [0] + [int(s // hop) for s in switch_at] + [n]
    settled = [slice(a + int(SETTLED * (b - a)), b) for a, b in zip(bounds, bounds[1:])]
    per_switch, curves = [], []
    for k, s in enumerate(switch_at):
        t_sw = s / SAMPLE_RATE
        lo, hi = bounds[k + 1], bounds[k + 2]             # frames of the new segment
        row = {"switch_s": round(t_sw, 4)}
        cross = {}
        for name in ("rgb", "e_now", "e_used", "e_smooth"):
            x = rec[name]
            old, new = x[settled[k]].mean(0), x[settled[k + 1]].mean(0)
            p = progress_curve(x[lo:hi], old, new)
            if name != "rgb":  # an untrained encoder's window embedding jitters frame to frame: judge its trend
                p = moving_median(p, MEDIAN_FRAMES)
            for level in ((0.5, 0.9) if name == "rgb" else (0.5,)):
                c = crossing(t[lo:hi], p, level)
                cross[(name, level)] = None if c is None else c - t_sw
            if name == "rgb":
                curves.append((t[lo:hi] - t_sw, p))
        half, ninety = cross[("rgb", 0.5)], cross[("rgb", 0.9)]
        row["half_way_ms"] = None if half is None else 1e3 * (half + compute_s)
        row["ninety_ms"] = None if ninety is None else 1e3 * (ninety + compute_s)
        now, used, smooth = cross[("e_now", 0.5)], cross[("e_used", 0.5)], cross[("e_smooth", 0.5)]
        if None not in (half, now, used, smooth):
            row["parts_ms"] = {"window_fill": 1e3 * now,
                               "encoder": 1e3 * (used - now) + comp["hear_p50_ms"],
                               "smoothing": 1e3 * (smooth - used),
                               "steering": 1e3 * (half - smooth) + comp["draw_p50_ms"]}
        row["steady_change"] = float(np.abs(np.diff(rec["rgb"][settled[k + 1]], axis=0)).mean())
        per_switch.append(row)
    half = [r["half_way_ms"] for r in per_switch if r["half_way_ms"] is not None]
    ninety = [r["ninety_ms"] for r in per_switch if r["ninety_ms"] is not None]
    parts = {p: summary([r["parts_ms"][p] for r in per_switch if "parts_ms" in r], unit="") for p in PARTS}
    return {"half_way_ms": summary(half, unit=""), "ninety_ms": summary(ninety, unit=""),
            "switches": len(switch_at), "reached_half_way": len(half), "parts_ms": parts,
            "steady_change_per_frame": float(np.mean([r["steady_change"] for r in per_switch])),
            "per_switch": per_switch, "_curves": curves}


def plot_semantic(result: dict, path: Path) -> None:
    """Left: the picture's progress toward the new anchor after each switch. Right: the parts per switch."""
    with figure(path, 1, 2, (12, 4), gridspec_kw={"width_ratios": [3, 2]}) as (fig, (a, b)):
        for t, p in result.get("_curves", []):
            a.plot(1e3 * t, p, lw=0.8, alpha=0.7)
        for level, style in ((0.5, "--"), (0.9, ":")):
            a.axhline(level, color="grey", lw=0.8, ls=style)
        h = result["half_way_ms"]
        a.set(xlim=(0, min(3000, 1e3 * result["segment_s"])), xlabel="ms after the switch",
              ylabel="picture: old anchor (0) -> new (1)",
              title=f"{', '.join(result['anchors'])}: half-way p50 {h.get('p50', float('nan')):.0f} ms, "
                    f"p95 {h.get('p95', float('nan')):.0f} ms")
        rows = [r for r in result["per_switch"] if "parts_ms" in r]
        left = np.zeros(len(rows))
        for part, colour in zip(PARTS, ("tab:orange", "tab:grey", "tab:green", "tab:blue")):
            v = np.array([r["parts_ms"][part] for r in rows])
            b.barh(np.arange(len(rows)), v, left=left, color=colour, label=part)
            left += v
        b.set(xlabel="ms after the switch (to half-way)", ylabel="switch")
        b.legend(fontsize=8)
