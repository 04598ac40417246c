"""The paper's Tables 1 and 2 in their printed shape, with the paper's figures beside a run's where known.

Paper: Lee et al., "Sound-guided Semantic Image Manipulation", CVPR 2022. (Its Table 3, zero-shot
classification, is ``zero_shot.PUBLISHED``.)

- **Table 1**: a linear classifier on audio embeddings, accuracy per label over eight labels: giggling,
  sobbing, nose blowing, wind, fire crackling, underwater bubbling, explosion, thunderstorm. ``eval
  linear-probe --labels A,B,...`` probes those of a dataset's labels (e.g. VGGSound's "people giggling") and
  prints this run's per-label accuracy in the table's shape, labels across. The paper's per-label figures were
  not in any copy of the paper at hand when this was written, so its row is printed with every cell "n/a"
  and a sentence saying so, rather than with numbers nobody checked.
- **Table 2**: the cosine similarity between the latent codes that text and sound guidance reach from one
  source: about 0.99 for vocal attributes (giggling, sobbing, nose blowing) and about 0.76 for environmental
  ones (the issue that asked for this measure quotes them). ``latent_agreement`` computes both the cosine of
  the codes (what the paper's wording names) and of their offsets from the source, and ``table2`` says which
  of the two lies nearer the paper's figure for each group.
"""

from __future__ import annotations

from typing import Sequence

from livesound.train.datasets import label_text

TABLE1_LABELS = ("giggling", "sobbing", "nose blowing", "wind", "fire crackling", "underwater bubbling",
                 "explosion", "thunderstorm")
TABLE1_MISSING = ("the paper's Table 1 figures were not found in the copies of the paper available to livesound, "
                  "so its row is left empty (n/a) instead of guessed")

TABLE2_GROUPS = {"vocal": ("giggling", "sobbing", "nose blowing"),
                 "environmental": ("wind", "fire crackling", "underwater bubbling", "explosion", "thunderstorm")}
TABLE2_FIGURES = {"vocal": 0.99, "environmental": 0.76}


def _words(text: str) -> list[str]:
    return label_text(text).lower().split()


def _contains(label: str, attribute: str) -> bool:
    """Whether ``attribute``'s words appear, in order and adjacent, in ``label``'s words."""
    lw, aw = _words(label), _words(attribute)
    return any(lw[i:i + len(aw)] == aw for i in range(len(lw) - len(aw) + 1))


def table1_markdown(per_class: dict, labels: Sequence[str]) -> str:
    """This run's per-label accuracy (``per_class`` of an accuracy report) in Table 1's shape: the labels
    across, a row for this run and one for the paper."""
    cells = [per_class[c]["accuracy"] for c in labels]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    known = [v for v in cells if v is not None]
    mean = sum(known) / len(known) if known else None
    return "\n".join([
        "### In the shape of the paper's Table 1 (linear classifier on audio embeddings, accuracy per label)", "",
        "| | " + " | ".join(label_text(c) for c in labels) + " | mean |", "|---|" + "---|" * (len(labels) + 1),
        "| **this run** | " + " | ".join(fmt(v) for v in cells) + f" | {fmt(mean)} |",
        "| paper Table 1 | " + " | ".join("n/a" for _ in labels) + " | n/a |", "",
        f"The paper's Table 1 labels: {', '.join(TABLE1_LABELS)}. Note: {TABLE1_MISSING}.", ""])


def table2_group(label: str) -> str | None:
    """"vocal" or "environmental" when ``label`` names one of Table 2's attributes, else None."""
    for group, attributes in TABLE2_GROUPS.items():
        if any(_contains(label, a) or _words(label) == _words(a) for a in attributes):
            return group
    return None


def table2(labels: dict[str, dict]) -> list[dict]:
    """Per Table 2 group present in ``labels`` (label -> {"codes": stats, "offsets": stats}): the paper's
    figure, this run's mean of each measure over the group's labels, and which measure is nearer the figure."""
    rows = []
    for group, figure in TABLE2_FIGURES.items():
        mine = [v for k, v in labels.items() if table2_group(k) == group]
        means = {}
        for measure in ("codes", "offsets"):
            values = [v[measure]["mean"] for v in mine if v[measure]["mean"] is not None]
            means[measure] = sum(values) / len(values) if values else None
        if not mine or means["codes"] is None or means["offsets"] is None:
            continue
        nearer = min(means, key=lambda m: abs(means[m] - figure))
        rows.append({"group": group, "labels": len(mine), "paper": figure, **means, "nearer": nearer})
    return rows
