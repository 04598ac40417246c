"""The paper's Table 2 measure: does a sound move the latent the way its label's text does?

For every labelled audio file, optimise from one source latent towards the sound's embedding and, with the
same config, towards the CLIP text embedding of its label, then compare the two results, each w+ flattened
over all layers, in two ways:

- **codes**: ``cos(w_audio, w_text)``, the cosine between the latent codes themselves. This is what the
  paper's Table 2 names (0.99 for vocal attributes, about 0.76 for environmental ones). Both codes start at
  the same source and stay near it (the L2 term), so this cosine is near 1 whenever the edits are small
  next to the source code, whatever their directions: it says as much about the source as about agreement.
- **offsets**: ``cos(w_audio - w_src, w_text - w_src)``, the cosine between the two edits. It measures only
  the directions the guidance took: 1 when sound and text edit alike, 0 when unrelated.

Each is reported per file, per label and over all files (mean and population std, ddof 0), and per Table 2
group (``paper_tables.table2``) beside the paper's figure, saying which of the two measures lies nearer it.

Labels: the parent folder's name (``data/rain/x.wav`` -> ``rain``), or a CSV with ``file,label`` rows
(paths relative to the CSV's folder; a header row ``file,label`` is skipped). The text target is the
label with ``_`` and ``-`` read as spaces, encoded bare (the paper tokenizes bare labels). Every file of a
label shares one text optimisation: same source, same text, same config give the same latent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livesound.audio.io import AudioError
from livesound.eval.paper_tables import TABLE2_GROUPS, table2
from livesound.files import write_json
from livesound.offline.networks import ModelOptions, load_networks
from livesound.offline.optimize import (
    OptimizeConfig,
    Source,
    Target,
    TargetPart,
    audio_embedding,
    optimize,
    source_latent,
    text_embedding,
)
from livesound.offline.targets import AUDIO_SUFFIXES

MEASURES = {"codes": "cos(w_audio, w_text), flattened w+ codes",
            "offsets": "cos(w_audio - w_src, w_text - w_src), flattened w+ offsets"}
PAPER_MEASURE = ("The paper's Table 2 names the cosine between the latent codes (\"codes\"); \"offsets\" "
                 "compares only the edits, which the codes' cosine, dominated by the shared source, hides.")


@dataclass
class LabelledFile:
    path: Path
    label: str


def labelled_files(data: str | Path, csv_path: str | Path | None = None) -> list[LabelledFile]:
    """Audio files with labels: from ``csv_path`` if given, else every audio file under ``data`` by folder."""
    data = Path(data)
    if csv_path is not None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise ValueError(f"{csv_path}: no such CSV file")
        rows = []
        with open(csv_path, newline="") as f:
            for row in csv.reader(f):
                if not row or [c.strip().lower() for c in row[:2]] == ["file", "label"]:
                    continue
                if len(row) < 2 or not row[1].strip():
                    raise ValueError(f"{csv_path}: rows must be file,label; got {row}")
                path = Path(row[0].strip())
                rows.append(LabelledFile(path if path.is_absolute() else csv_path.parent / path, row[1].strip()))
        if not rows:
            raise ValueError(f"{csv_path}: no file,label rows")
        return rows
    if not data.is_dir():
        raise AudioError(data, "no such folder")
    files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AudioError(data, f"no {'/'.join(AUDIO_SUFFIXES)} files under this folder")
    return [LabelledFile(p, p.parent.name) for p in files]


def label_text(label: str) -> str:
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def code_cosine(ws_a: torch.Tensor, ws_b: torch.Tensor) -> float | None:
    """cos(ws_a, ws_b), each code flattened; None when a code is zero (undefined)."""
    a, b = ws_a.flatten().double(), ws_b.flatten().double()
    if a.norm() == 0 or b.norm() == 0:
        return None
    return float(F.cosine_similarity(a, b, dim=0))


def offset_cosine(ws_a: torch.Tensor, ws_b: torch.Tensor, ws_src: torch.Tensor) -> float | None:
    """cos(ws_a - ws_src, ws_b - ws_src), each offset flattened; None when an offset is zero (undefined)."""
    return code_cosine(ws_a - ws_src, ws_b - ws_src)


def latent_agreement(G, clip, encoder, files: Sequence[LabelledFile], source: Source,
                     cfg: OptimizeConfig = OptimizeConfig(), batch: int = 4, progress: bool = True) -> dict:
    """Per-file offset cosines and their per-label and overall mean/std (see the module docstring)."""
    if not files:
        raise ValueError("no labelled files")
    labels = sorted({f.label for f in files})
    text_targets = [Target(f"text:{lab}", [TargetPart("text", text_embedding(clip, label_text(lab)),
                                                      label=label_text(lab))]) for lab in labels]
    audio_targets = [Target(f.path.name, [TargetPart("audio", audio_embedding(encoder, f.path), label=str(f.path))])
                     for f in files]
    ws: list[torch.Tensor] = []
    everything = text_targets + audio_targets  # one part on all layers each: any of them can share a batch
    for i in range(0, len(everything), batch):
        ws.append(optimize(G, clip, source, everything[i:i + batch], cfg, progress=progress).ws)
    ws_all = torch.cat(ws)                                       # [labels + files, num_ws, w_dim]
    ws_text = dict(zip(labels, ws_all[:len(labels)]))
    src = source.ws[0].cpu()
    rows = [{"file": str(f.path), "label": f.label, "codes": code_cosine(w_a, ws_text[f.label]),
             "offsets": offset_cosine(w_a, ws_text[f.label], src)}
            for f, w_a in zip(files, ws_all[len(labels):])]
    both = lambda rs: {m: _stats([r[m] for r in rs]) for m in MEASURES}  # noqa: E731
    per_label = {lab: both([r for r in rows if r["label"] == lab]) for lab in labels}
    return {"measures": dict(MEASURES), "source": source.label, "config": cfg.to_dict(), "files": rows,
            "labels": per_label, "overall": both(rows), "paper_table2": table2(per_label),
            "paper_measure": PAPER_MEASURE}


def _stats(values: Sequence[float | None]) -> dict:
    """n, mean and std over the defined values (None: an undefined cosine, counted in ``undefined``)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "undefined": len(values), "mean": None, "std": None}
    return {"n": int(v.size), "undefined": len(values) - int(v.size), "mean": float(v.mean()),
            "std": float(v.std())}


def format_table(report: dict) -> str:
    """The per-label table as text (label, files, each measure's mean and std, the overall row), then the
    paper's Table 2 figures beside this run's and which measure they match."""
    width = max([len("overall"), *(len(k) for k in report["labels"])])
    lines = [f"{'':<{width}}  {'':>5}  {'codes cos(w_a, w_t)':>19}  {'offsets cos(dw_a, dw_t)':>23}",
             f"{'label':<{width}}  {'files':>5}  {'mean':>9}  {'std':>7}  {'mean':>13}  {'std':>7}"]
    fmt = lambda x, w: f"{'n/a':>{w}}" if x is None else f"{x:>{w}.4f}"  # noqa: E731
    for lab, s in [*report["labels"].items(), ("overall", report["overall"])]:
        c, o = s["codes"], s["offsets"]
        lines.append(f"{lab:<{width}}  {c['n'] + c['undefined']:>5}  {fmt(c['mean'], 9)}  {fmt(c['std'], 7)}  "
                     f"{fmt(o['mean'], 13)}  {fmt(o['std'], 7)}")
    lines += ["", PAPER_MEASURE]
    for row in report["paper_table2"]:
        lines.append(f"paper Table 2, {row['group']} attributes: {row['paper']:.2f}; this run over {row['labels']} "
                     f"label(s): codes {row['codes']:.4f}, offsets {row['offsets']:.4f}; nearer: {row['nearer']}")
    if not report["paper_table2"]:
        lines.append("(no label here names one of the paper's Table 2 attributes: "
                     + ", ".join(a for g in TABLE2_GROUPS.values() for a in g) + ")")
    return "\n".join(lines)


@dataclass
class AgreementOptions:
    """``livesound eval latent-agreement``: labelled audio in, a JSON report out."""
    data: str                         # one folder per label, or the folder ``csv`` paths are relative to
    csv: str | None = None            # file,label rows instead of folder names
    models: ModelOptions = field(default_factory=ModelOptions)
    seed: int = 0                     # the one source latent
    trunc: float | None = None        # None: the preset's truncation
    steps: int = 300
    lr: float = 0.05
    l2: float = 0.008
    batch: int = 4
    out: str = "latent_agreement.json"


def evaluate_latent_agreement(opts: AgreementOptions, log: Callable[[str], None] = lambda s: None) -> dict:
    """Run the measure on ``opts.data`` and write the report (``latent_agreement``'s dict) to ``opts.out``."""
    files = labelled_files(opts.data, opts.csv)
    if opts.batch < 1:
        raise ValueError("--batch must be at least 1")
    nets = load_networks(opts.models, need_encoder=True, log=log)
    psi = nets.preset.truncation_psi if opts.trunc is None else opts.trunc
    cfg = OptimizeConfig(steps=opts.steps, lr=opts.lr, l2_lambda=opts.l2, truncation=psi,
                         noise_mode=nets.preset.noise_mode)
    source = source_latent(nets.G, seed=opts.seed, truncation=psi)
    labels = sorted({f.label for f in files})
    log(f"{len(files)} file(s) in {len(labels)} label(s), {cfg.steps} steps each")
    report = latent_agreement(nets.G, nets.clip, nets.encoder, files, source, cfg, batch=opts.batch)
    write_json(opts.out, report)
    return report
