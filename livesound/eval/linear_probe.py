"""Linear probe: multinomial logistic regression on frozen audio embeddings, fold by fold.

For each fold k, a classifier is fitted on the embeddings of every other fold and scored on fold k (ESC-50:
5 folds, UrbanSound8K: 10, as the published results do); a dataset without folds gets ``k`` stratified folds
(``assign_folds``). The report gives each fold's accuracy, their mean, and the per-class accuracy over all
held-out predictions (the paper's Table 1 lists accuracy per class).

The classifier: softmax regression ``x @ W + b``, fitted in float64 by L-BFGS (strong-Wolfe line search) on
the mean cross-entropy plus ``l2 / 2 * ||W||^2`` (the bias is not penalised). ``l2`` plays the role of
1 / (C * n) in scikit-learn's LogisticRegression; the default 1e-3 is a mild penalty for unit embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livesound.eval.zero_shot import accuracy_report, fold_list


@dataclass
class Probe:
    weight: torch.Tensor               # [D, C]
    bias: torch.Tensor                 # [C]

    def predict(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(x, dtype=torch.float64)
        return (x @ self.weight + self.bias).argmax(1).numpy()


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-3, max_iter: int = 500) -> Probe:
    """Multinomial logistic regression by L-BFGS (see the module docstring)."""
    if l2 < 0:
        raise ValueError(f"l2 must not be negative, got {l2}")
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros(xt.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xt @ w + b, yt) + 0.5 * l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Probe(w.detach(), b.detach())


def linear_probe(embeddings: np.ndarray, targets: Sequence[int], classes: Sequence[str],
                 folds: Sequence[str | None], l2: float = 1e-3) -> dict:
    """Fold-wise probe accuracy (see the module docstring); every clip needs a fold, and at least two folds."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(targets)
    names = fold_list(folds)
    if any(f is None for f in folds) or len(names) < 2:
        raise ValueError("the linear probe needs at least two folds (held-out data); the dataset has "
                         f"{len(names)} -- give --kfold K to make some")
    pred = np.empty_like(y)
    fold_arr = np.asarray(folds, dtype=object)
    for f in names:
        test = fold_arr == f
        if test.all() or not test.any():
            raise ValueError(f"fold {f} leaves nothing to train or test on")
        probe = fit_logistic(x[~test], y[~test], len(classes), l2)
        pred[test] = probe.predict(x[test])
    report = accuracy_report(pred, y, classes, list(folds))
    report["probe"] = f"multinomial logistic regression, L-BFGS, l2 {l2:g}, trained on the other folds"
    return report
