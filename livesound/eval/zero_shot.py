"""Zero-shot audio classification and the reports both classification evaluations share.

Zero-shot: each clip's audio embedding against CLIP text embeddings of every class name (``_``/``-`` read as
spaces) through prompt templates; the predicted class is the one of highest cosine. ESC-50 is scored over its
5 folds and UrbanSound8K over its 10 (the accuracy of each fold, and their mean and standard deviation, as
published results report them); a dataset without folds is one fold, ``all``.

Preprocessing of every clip (stated in each report): the paper's log-mel (44.1 kHz mono, n_fft 2048, hop
512, 128 Slaney mels, reflect padding, ``power_to_db(ref=max) / 80 + 1`` over the whole clip), the **centre**
864 frames of longer clips (the paper's zero-shot evaluation's crop), zero-padded at the end when shorter,
then the paper's resize to 512 x 128 and reshape to [1, 1, 128, 512]. Each report also names the resampler
(``RESAMPLER``) and where the spectrograms came from (``spectrogram_source``: computed in float32, or the
float16 cache, whose rounding can move a borderline clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livesound.audio.features import to_encoder_input
from livesound.audio.io import KAISER_BEST
from livesound.train.encoder import crop_or_pad

PREPROCESSING = ("paper log-mel: 44.1 kHz mono, n_fft 2048, hop 512, 128 Slaney mels, reflect padding, "
                 "power_to_db(ref=max, top_db=80)/80+1 over the whole clip, centre 864 frames (zero-padded at "
                 "the end when shorter), bilinear resize to 512x128, reshape to [1, 1, 128, 512]")

RESAMPLER = ("soundfile decoding, channels averaged to mono; files not at 44.1 kHz resampled by torchaudio's "
             "Kaiser-windowed sinc (resampy's kaiser_best: lowpass_filter_width {lowpass_filter_width}, rolloff "
             "{rolloff:.4f}, beta {beta:.3f})").format(**KAISER_BEST)


def spectrogram_source(cache) -> str:
    """Where a run's spectrograms came from, for its report (``cache``: a ``SpecCache``)."""
    if cache.folder is None:
        return "computed for this run in float32 (no cache)"
    return f"the float16 cache in {cache.folder} (values rounded through float16)"


# Published figures (accuracy) beside which a user's results appear. The paper (Lee et al., "Sound-guided
# Semantic Image Manipulation", CVPR 2022) prints zero-shot classification in its Table 3, with a supervised
# ResNet50 classifier as the reference row; its repository's results table adds its zero-shot and
# logistic-regression (linear probe) figures of the released encoder.
PUBLISHED = {
    "esc50": {"zero-shot": [("paper Table 3: CLIP-based audio encoder, zero-shot", 0.622),
                            ("paper Table 3: ResNet50 classifier, supervised (reference)", 0.668),
                            ("paper repository's table: released encoder, zero-shot", 0.578)],
              "linear-probe": [("paper repository's table: released encoder, logistic regression", 0.722)]},
    "us8k": {"zero-shot": [("paper Table 3: CLIP-based audio encoder, zero-shot", 0.731),
                           ("paper Table 3: ResNet50 classifier, supervised (reference)", 0.713),
                           ("paper repository's table: released encoder, zero-shot", 0.457)],
             "linear-probe": [("paper repository's table: released encoder, logistic regression", 0.668)]},
}


def embed_clips(encoder, paths: Sequence[Path], cache, batch: int = 16, device: str | torch.device = "cpu",
                progress: Callable[[Iterable], Iterable] = lambda it: it) -> np.ndarray:
    """[N, D] float32 unit embeddings of the clips, preprocessed as the module docstring says."""
    encoder = encoder.eval().to(device)
    rows = []
    paths = list(paths)
    for i in progress(range(0, len(paths), batch)):
        x = torch.stack([crop_or_pad(cache.get(p), None) for p in paths[i:i + batch]])  # [b, 128, 864]
        with torch.no_grad():
            e = encoder(to_encoder_input(x).to(device)).float()
        rows.append(F.normalize(e, dim=-1).cpu().numpy())
    return np.concatenate(rows).astype(np.float32)


def fold_list(folds: Sequence[str | None]) -> list[str]:
    names = {f if f is not None else "all" for f in folds}
    return sorted(names, key=lambda f: (0, int(f), "") if f.isdigit() else (1, 0, f))


def zero_shot(embeddings: np.ndarray, targets: Sequence[int], text: np.ndarray, classes: Sequence[str],
              folds: Sequence[str | None]) -> dict:
    """Accuracy per fold, their mean and std, pooled accuracy and per-class accuracy.

    ``embeddings`` [N, D] and ``text`` [C, D] need not be normalised (cosines are taken); ``targets`` [N] are
    indices into ``classes``; ``folds`` [N] name each clip's fold (None: no folds).
    """
    e = F.normalize(torch.as_tensor(embeddings, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.as_tensor(text, dtype=torch.float64), dim=-1)
    if e.shape[1] != t.shape[1]:
        raise ValueError(f"audio embeddings are {e.shape[1]}-d, text embeddings {t.shape[1]}-d")
    if t.shape[0] != len(classes):
        raise ValueError(f"{t.shape[0]} text embeddings for {len(classes)} classes")
    pred = (e @ t.T).argmax(1).numpy()
    return accuracy_report(pred, np.asarray(targets), classes, folds)


def accuracy_report(pred: np.ndarray, targets: np.ndarray, classes: Sequence[str],
                    folds: Sequence[str | None]) -> dict:
    """The accuracy numbers of predictions: per fold, mean/std over folds, pooled, per class."""
    if len(pred) != len(targets) or len(targets) != len(folds):
        raise ValueError("predictions, targets and folds differ in length")
    if len(targets) == 0:
        raise ValueError("nothing to score: no clips")
    fold_names = [f if f is not None else "all" for f in folds]
    per_fold = {}
    for f in fold_list(folds):
        mask = np.array([x == f for x in fold_names])
        per_fold[f] = {"n": int(mask.sum()), "accuracy": float((pred[mask] == targets[mask]).mean())}
    accs = np.array([v["accuracy"] for v in per_fold.values()])
    per_class = {}
    for c, name in enumerate(classes):
        mask = targets == c
        per_class[name] = {"n": int(mask.sum()),
                           "accuracy": float((pred[mask] == c).mean()) if mask.any() else None}
    return {"folds": per_fold, "mean": float(accs.mean()), "std": float(accs.std()),
            "pooled": float((pred == targets).mean()), "per_class": per_class, "n": int(len(targets))}


def format_markdown(title: str, report: dict, published: Sequence[tuple[str, float]] = ()) -> str:
    """The report as Markdown: a summary table with the published figures beside it, per fold, per class."""
    lines = [f"## {title}", ""]
    for k in ("dataset", "encoder", "clip", "templates", "preprocessing", "resampler", "spectrograms", "probe"):
        if k in report:
            lines.append(f"- {k}: {report[k]}")
    lines += ["", "| result | accuracy |", "|---|---|",
              f"| **this run** (mean over {len(report['folds'])} fold(s) ± std) | "
              f"**{report['mean']:.3f}** ± {report['std']:.3f} |"]
    lines += [f"| {name} | {acc:.3f} |" for name, acc in published]
    lines += ["", "| fold | clips | accuracy |", "|---|---|---|"]
    lines += [f"| {f} | {v['n']} | {v['accuracy']:.3f} |" for f, v in report["folds"].items()]
    lines += ["", "| class | clips | accuracy |", "|---|---|---|"]
    lines += [f"| {c} | {v['n']} | {'n/a' if v['accuracy'] is None else format(v['accuracy'], '.3f')} |"
              for c, v in report["per_class"].items()]
    return "\n".join(lines) + "\n"
