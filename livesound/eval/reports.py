"""The evaluation runs: options in, a JSON report out with its Markdown beside it (both written atomically).

``run_zero_shot`` and ``run_linear_probe`` embed the clips of a labelled dataset with an audio encoder (the
paper's preprocessing with the centre crop, stated in every report as ``zero_shot.PREPROCESSING``) and score
them fold by fold, with the published figures beside them; ``run_mapper_eval`` sets the mapper against full
latent optimisation on the same targets. Each returns what it wrote. The measures themselves live in the
modules beside this one and work on plain arrays; this module only gathers their inputs and writes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from livesound.eval.linear_probe import linear_probe
from livesound.eval.mapper_eval import EvalTarget, mapper_vs_optimisation
from livesound.eval.mapper_eval import format_markdown as mapper_markdown
from livesound.eval.paper_tables import table1_markdown
from livesound.eval.zero_shot import (
    PREPROCESSING,
    PUBLISHED,
    RESAMPLER,
    embed_clips,
    format_markdown,
    spectrogram_source,
    zero_shot,
)
from livesound.files import atomic_write, write_json
from livesound.models.audio_encoder import load_audio_encoder
from livesound.models.presets import (
    Preset,
    encoder_from_preset,
    generator_from_preset,
    load_preset,
    mapper_from_preset,
)
from livesound.offline.generate import parse_seeds
from livesound.offline.optimize import OptimizeConfig, audio_embedding
from livesound.offline.targets import audio_files
from livesound.train.datasets import Dataset, SpecCache, assign_folds, label_text
from livesound.train.inputs import (
    ClipChoice,
    DatasetChoice,
    Report,
    names,
    prompt_list,
    quiet,
    templates_named,
)


@dataclass
class Written:
    """What an evaluation wrote: the report, its Markdown, and where both went."""
    report: dict
    markdown: str
    json_path: Path
    markdown_path: Path


def write_report(out: str | Path, report: dict, markdown: str) -> Written:
    """``report`` as JSON at ``out`` and ``markdown`` beside it (``.md``), each written atomically."""
    out = Path(out)
    write_json(out, report)
    md = out.with_suffix(".md")
    atomic_write(md, lambda tmp: tmp.write_text(markdown))
    return Written(report, markdown, out, md)


# ------------------------------------------------------------------------------------------ classification

@dataclass
class ClassifyOptions(ClipChoice, DatasetChoice):
    """What both classification evaluations read: a dataset and an audio encoder (and CLIP, zero-shot)."""
    encoder: str | Path | None = None  # default: the preset's, else the paper's released one (models folder)
    batch: int = 16                    # clips encoded at once
    device: str = "cpu"
    cache: str | Path | None = None    # spectrogram cache folder (default none: exact float32, nothing kept)


@dataclass
class ZeroShotOptions(ClassifyOptions):
    out: str | Path = "zero_shot.json"
    templates: str = "paper"           # class prompts: "paper" (the bare class name) or "sound" (an ensemble)


@dataclass
class LinearProbeOptions(ClassifyOptions):
    out: str | Path = "linear_probe.json"
    l2: float = 1e-3                   # L2 penalty of the logistic regression
    kfold: int = 5                     # folds to make when the dataset has none
    labels: str | Sequence[str] | None = None  # probe these labels only, in the paper's Table 1 shape


def run_zero_shot(opts: ZeroShotOptions, report: Report = quiet) -> Written:
    """Zero-shot accuracy per fold (``zero_shot.zero_shot``) against CLIP text of the class names."""
    templates = templates_named(opts.templates)
    ds, emb, stated = _embed_dataset(opts, report)
    clip = opts.load_clip("cpu", report)
    text = clip.encode_text([label_text(c) for c in ds.classes], templates).numpy()
    result = {"dataset": ds.summary(), "encoder": _encoder_name(opts),
              "clip": f"{clip.name} {clip.weights or '(untrained)'}", **stated, "templates": list(templates),
              **zero_shot(emb, ds.targets(), text, ds.classes, [c.fold for c in ds.clips])}
    published = PUBLISHED.get(ds.layout, {}).get("zero-shot", [])
    result["published"] = dict(published)
    return write_report(opts.out, result, format_markdown(f"Zero-shot classification ({ds.layout})", result,
                                                          published))


def run_linear_probe(opts: LinearProbeOptions, report: Report = quiet) -> Written:
    """Linear-probe accuracy per fold (``linear_probe.linear_probe``); a dataset without folds gets
    ``opts.kfold`` stratified ones (seed 0), which the report says. With ``opts.labels`` only those labels
    are probed, and the Markdown adds the per-label table in the shape of the paper's Table 1."""
    labels = names(opts.labels) or None
    ds, emb, stated = _embed_dataset(opts, report, labels)
    had_folds = bool(ds.folds)
    ds = assign_folds(ds, opts.kfold, seed=0)
    result = {"dataset": ds.summary() + ("" if had_folds else f" (folds made: {opts.kfold}, stratified, seed 0)"),
              "encoder": _encoder_name(opts), **stated,
              **linear_probe(emb, ds.targets(), ds.classes, [c.fold for c in ds.clips], l2=opts.l2)}
    published = [] if labels else PUBLISHED.get(ds.layout, {}).get("linear-probe", [])
    result["published"] = dict(published)
    markdown = format_markdown(f"Linear probe ({ds.layout})", result, published)
    if labels:
        result["labels"] = labels
        markdown += "\n" + table1_markdown(result["per_class"], labels)
    return write_report(opts.out, result, markdown)


def _embed_dataset(opts: ClassifyOptions, report: Report,
                   labels: Sequence[str] | None = None) -> tuple[Dataset, np.ndarray, dict]:
    """The dataset (only ``labels`` if given), its clips' embeddings, and the preprocessing to state."""
    ds = opts.load_dataset()
    if labels:
        ds = ds.select(labels=labels)
    if opts.batch < 1:
        raise ValueError("--batch must be at least 1")
    if opts.encoder:
        encoder = load_audio_encoder(opts.encoder)
    else:  # the preset's encoder, else the paper's released one from the models folder
        preset = load_preset(opts.preset) if opts.preset else Preset("paper", "the paper's encoder", generator={})
        encoder = encoder_from_preset(preset)
    cache = SpecCache(None if str(opts.cache or "none").lower() == "none" else opts.cache)
    report(ds.summary())
    bar = lambda it: tqdm(it, unit="batch", file=sys.stderr, disable=None)  # noqa: E731
    stated = {"preprocessing": PREPROCESSING, "resampler": RESAMPLER, "spectrograms": spectrogram_source(cache)}
    return ds, embed_clips(encoder, [c.path for c in ds.clips], cache, opts.batch, opts.device, bar), stated


def _encoder_name(opts: ClassifyOptions) -> str:
    return str(opts.encoder) if opts.encoder else f"preset {opts.preset or 'paper'}"


# ------------------------------------------------------------------------------------------------- mapper

@dataclass
class MapperEvalOptions(ClipChoice):
    """The mapper against optimisation (``mapper_eval``): every seed's latent towards every target."""
    preset: str | None = "demo"
    generator: str | Path | None = None         # generator checkpoint (overrides the preset's)
    mapper: str | Path | None = None            # mapper checkpoint (default: the preset's)
    encoder: str | Path | None = None           # audio encoder for ``audio`` targets (default: the preset's)
    prompts: str | Sequence[str] | None = None  # a list, comma-separated text, or a .txt file (one per line)
    audio: str | Path | None = None             # an audio file, or a folder of them
    seeds: str | Sequence[int] = "0"            # source latents, e.g. "0-3"
    strength: float = 0.1
    steps: int = 300                            # optimisation: the paper's steps, learning rate, L2 weight
    lr: float = 0.05
    l2: float = 0.008
    repeats: int = 10                           # timed mapper frames per (seed, target)
    device: str = "cpu"
    out: str | Path = "mapper_eval.json"


def run_mapper_eval(opts: MapperEvalOptions, report: Report = quiet) -> Written:
    """CLIP similarity and time per frame of the mapper and of optimisation, per (seed, target) and on average."""
    prompts = prompt_list(opts.prompts)
    files = audio_files(opts.audio) if opts.audio else []
    if not prompts and not files:
        raise ValueError("give targets: --prompts and/or --audio")
    if opts.repeats < 1:
        raise ValueError("--repeats must be at least 1")
    preset = load_preset(opts.preset)
    G = generator_from_preset(preset, opts.generator, device=opts.device)
    clip = opts.load_clip(opts.device, report)
    mapper = mapper_from_preset(preset, G, clip.embed_dim, opts.mapper)
    targets = [EvalTarget(f"text:{p}", "text", clip.encode_text([p])[0]) for p in prompts]
    if files:
        encoder = encoder_from_preset(preset, opts.encoder, device=opts.device).eval()
        targets += [EvalTarget(f"audio:{f.name}", "audio", audio_embedding(encoder, f)) for f in files]
    cfg = OptimizeConfig(steps=opts.steps, lr=opts.lr, l2_lambda=opts.l2, truncation=preset.truncation_psi,
                         noise_mode=preset.noise_mode)
    seeds = parse_seeds(opts.seeds) if isinstance(opts.seeds, str) else [int(s) for s in opts.seeds]
    result = mapper_vs_optimisation(G, clip, mapper, targets, seeds, opts.strength, cfg, repeats=opts.repeats)
    result.update(device=opts.device, mapper=str(opts.mapper) if opts.mapper else f"preset {opts.preset}",
                  generator_px=G.resolution)
    return write_report(opts.out, result, mapper_markdown(result, opts.device))
