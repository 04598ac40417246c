"""The mapper against full latent optimisation on the same targets: CLIP similarity and time per frame.

For every source latent (a seed at the preset's truncation) and every target embedding (CLIP text of a
prompt, or an audio file through the encoder):

- **source**: cos(CLIP(G(w_src)), e), the similarity before any edit;
- **mapper**: ``w = w_src + strength * M(w_src, e)``, then cos(CLIP(G(w)), e); its time is one frame of the
  live path's map + synthesize stages (mapper and generator, batch 1), the median of ``repeats`` runs after a
  warm-up;
- **optimisation**: ``livesound.offline.optimize.optimize`` with the given config (the paper's 300 Adam steps by
  default) from the same source to the same target, the similarity of its result, and its wall time.

Similarities are plain cosines (no exp(0.07) scale), with the image reaching CLIP the paper's way
(``optimize.clip_image_embedding``). Times are wall-clock on the device given and include nothing else.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from livesound.offline.optimize import (
    OptimizeConfig,
    Target,
    TargetPart,
    clip_image_embedding,
    optimize,
    source_latent,
)


@dataclass
class EvalTarget:
    name: str
    kind: str                          # "text" or "audio"
    embedding: torch.Tensor            # [D]


def _similarity(G, clip, ws: torch.Tensor, e: torch.Tensor, noise_mode: str) -> float:
    with torch.no_grad():
        f = clip_image_embedding(clip, G.synthesis(ws, noise_mode=noise_mode))
    return float((f[0] * e.to(f)).sum())


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def mapper_vs_optimisation(G, clip, mapper, targets: Sequence[EvalTarget], seeds: Sequence[int],
                           strength: float, cfg: OptimizeConfig, repeats: int = 10, progress: bool = True) -> dict:
    """Per (seed, target) rows and means (see the module docstring)."""
    if not targets or not seeds:
        raise ValueError("mapper evaluation needs at least one target and one seed")
    device = G.synthesis.const.device
    mapper = mapper.to(device).eval()
    rows = []
    for seed in seeds:
        src = source_latent(G, seed=seed, truncation=cfg.truncation)
        for t in targets:
            e = t.embedding.to(device).float()
            w_src = src.ws.to(device)
            with torch.no_grad():
                def frame() -> torch.Tensor:
                    w = mapper.edit(w_src, e[None], strength)
                    G.synthesis(w, noise_mode=cfg.noise_mode)
                    return w

                w_map = frame()  # warm-up, and the mapper's latent
                times = []
                for _ in range(repeats):
                    _sync(device)
                    t0 = time.perf_counter()
                    frame()
                    _sync(device)
                    times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = optimize(G, clip, src, [Target(t.name, [TargetPart(t.kind, e)])], cfg, progress=progress)
            _sync(device)
            opt_s = time.perf_counter() - t0
            rows.append({"seed": seed, "target": t.name, "kind": t.kind,
                         "sim_source": _similarity(G, clip, w_src, e, cfg.noise_mode),
                         "sim_mapper": _similarity(G, clip, w_map, e, cfg.noise_mode),
                         "sim_optimisation": _similarity(G, clip, result.ws.to(device), e, cfg.noise_mode),
                         "mapper_ms_per_frame": 1000 * statistics.median(times),
                         "optimisation_s": opt_s})
    mean = lambda k: statistics.fmean(r[k] for r in rows)  # noqa: E731
    return {"strength": strength, "optimisation": cfg.to_dict(), "rows": rows,
            "mean": {k: mean(k) for k in ("sim_source", "sim_mapper", "sim_optimisation",
                                           "mapper_ms_per_frame", "optimisation_s")}}


def format_markdown(report: dict, device: str) -> str:
    m = report["mean"]
    steps = report["optimisation"]["steps"]
    lines = ["## Mapper vs optimisation", "",
             f"- device: {device}; mapper strength {report['strength']}; optimisation {steps} steps",
             f"- {len(report['rows'])} (source, target) pair(s); similarity = cos(CLIP(G(w)), e)", "",
             "| method | CLIP similarity | time per frame |", "|---|---|---|",
             f"| source (no edit) | {m['sim_source']:.4f} | - |",
             f"| mapper | {m['sim_mapper']:.4f} | {m['mapper_ms_per_frame']:.2f} ms |",
             f"| optimisation ({steps} steps) | {m['sim_optimisation']:.4f} | {1000 * m['optimisation_s']:.0f} ms |",
             "", "| seed | target | source | mapper | optimisation | mapper ms | optimisation s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['target']} | {r['sim_source']:.4f} | {r['sim_mapper']:.4f} | "
              f"{r['sim_optimisation']:.4f} | {r['mapper_ms_per_frame']:.2f} | {r['optimisation_s']:.2f} |"
              for r in report["rows"]]
    return "\n".join(lines) + "\n"
