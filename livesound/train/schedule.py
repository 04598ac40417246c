"""How ``train-encoder`` picks its optimiser and learning-rate cycle for the run it is about to make, and why.

The paper's recipe (SGD, momentum 0.9, weight decay 5e-4, a triangular cyclic learning rate from 0.001 up to
0.1 over 2000 steps and back) was made for VGGSound plus AudioSet: tens of thousands of steps, many whole
cycles. On a user's own few hundred clips a run has tens of steps, and the same schedule never leaves the
bottom of its first climb: 50 steps of a 2000-step climb reach a learning rate of 0.0035, where SGD barely
moves a fresh network (measured: such a run ends at chance, every clip one class). So the choice follows
the planned number of optimiser steps ``T`` (steps per epoch x epochs), each choice is stated at the start
of the run, and flags given explicitly always win:

- **cycle** (``cycle_steps`` unset): the paper's 2000-step climb when the run holds a whole cycle
  (``T >= 4000``); otherwise the cycle is fitted to the run, climbing over its first half and coming back
  down over the second (``T // 2`` steps), so every run visits its whole learning-rate range once.
- **optimiser** (``optimizer="auto"``): the paper's SGD for runs that hold a whole paper cycle; AdamW for
  shorter ones, whose per-parameter step size moves a fresh network in tens of steps where SGD needs
  thousands. Its range (``lr`` and ``max_lr`` unset) is 3e-4 to 3e-3 (measured on the small run above:
  1e-4 to 1e-3 learns too slowly, 1e-3 to 1e-2 diverges to one class); SGD's is the paper's 0.001 to 0.1.
- **warnings**, when a plan cannot move the weights: fewer than ``FEW_STEPS`` steps; a climb longer than the
  run, whose learning rate then stops short of ``max_lr`` (the value it reaches is said); SGD whose whole run
  stays below ``SGD_SLOW`` (the regime of the failed run above). And the opposite: AdamW given SGD's range
  (above ``ADAMW_UNSTABLE``), where it tends to diverge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

PAPER_CYCLE = 2000                     # the paper's steps from the low to the high learning rate
RANGES = {"sgd": (1e-3, 0.1), "adamw": (3e-4, 3e-3)}
FEW_STEPS = 20
SGD_SLOW = 0.01                        # SGD (momentum 0.9) below this for a whole short run: weights stay put
ADAMW_UNSTABLE = 5e-3                  # Adam's steps are ~lr per weight: 1e-2 already sent the small run to one class


@dataclass
class Plan:
    """The optimiser and schedule of one run, with the reasons and warnings to say at its start."""
    optimizer: str
    lr: float
    max_lr: float
    cycle_steps: int
    steps: int                         # planned optimiser steps of the whole run
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def peak_lr(self) -> float:
        """The highest learning rate the run reaches (``max_lr`` unless the cycle outlasts the run)."""
        climbed = min(self.steps, self.cycle_steps) / self.cycle_steps
        return self.lr + (self.max_lr - self.lr) * climbed

    def describe(self) -> str:
        """One line for the start of the run: what was chosen, and why where it was chosen."""
        head = (f"optimizer {self.optimizer}, learning rate {self.lr:g} -> {self.max_lr:g} -> {self.lr:g} in "
                f"cycles of {2 * self.cycle_steps} steps, {self.steps} steps planned")
        return head + (f" ({'; '.join(self.reasons)})" if self.reasons else "")


def check_flags(optimizer: str = "auto", lr: float | None = None, max_lr: float | None = None,
                cycle_steps: int | None = None) -> None:
    """Refuse flags no plan can use (before any data is read)."""
    if optimizer not in ("auto", *RANGES):
        raise ValueError(f"optimizer must be auto, sgd or adamw, got {optimizer!r}")
    if cycle_steps is not None and cycle_steps < 1:
        raise ValueError(f"--cycle-steps must be at least 1, got {cycle_steps}")
    if (lr is not None and lr <= 0) or (max_lr is not None and max_lr <= 0):
        raise ValueError("--lr and --max-lr must be positive")
    if lr is not None and max_lr is not None and lr > max_lr:
        raise ValueError(f"need 0 < --lr <= --max-lr, got {lr:g} and {max_lr:g}")


def plan(steps: int, optimizer: str = "auto", lr: float | None = None, max_lr: float | None = None,
         cycle_steps: int | None = None) -> Plan:
    """The plan for a run of ``steps`` optimiser steps (module docstring); None and "auto" choose."""
    check_flags(optimizer, lr, max_lr, cycle_steps)
    if steps < 1:
        raise ValueError(f"a run needs at least one step, got {steps}")
    long_run = steps >= 2 * PAPER_CYCLE
    reasons = []
    if optimizer == "auto":
        optimizer = "sgd" if long_run else "adamw"
        reasons.append(f"{optimizer}: the paper's, as the run holds its whole {2 * PAPER_CYCLE}-step cycle" if long_run
                       else f"adamw: {steps} steps are fewer than one cycle of the paper's SGD schedule "
                            f"({2 * PAPER_CYCLE}), too few for SGD; --optimizer sgd to insist")
    low, high = RANGES[optimizer]
    lr, max_lr = low if lr is None else lr, high if max_lr is None else max_lr
    if lr > max_lr:
        raise ValueError(f"--lr {lr:g} is above the {optimizer} cycle's high end {max_lr:g}; give --max-lr too")
    if cycle_steps is None:
        cycle_steps = PAPER_CYCLE if long_run else max(1, steps // 2)
        reasons.append("the paper's cycle length" if long_run else "the cycle fitted to the run: up over its "
                                                                    "first half, down over the second")
    p = Plan(optimizer, lr, max_lr, cycle_steps, steps, reasons)
    p.warnings = _warnings(p)
    return p


def _warnings(p: Plan) -> list[str]:
    out = []
    if p.steps < FEW_STEPS:
        out.append(f"only {p.steps} optimiser steps: too few to train an encoder; raise --epochs or lower --batch")
    if p.cycle_steps > p.steps:
        out.append(f"the {p.cycle_steps}-step climb outlasts the {p.steps}-step run: the learning rate only "
                   f"reaches {p.peak_lr():.3g} of --max-lr {p.max_lr:g}; leave --cycle-steps unset to fit it")
    if p.optimizer == "sgd" and p.peak_lr() < SGD_SLOW and p.steps < 2 * PAPER_CYCLE:
        out.append(f"SGD never above learning rate {p.peak_lr():.3g} in {p.steps} steps barely moves the weights "
                   "(such runs end at chance); use --optimizer adamw, a higher --max-lr or more steps")
    if p.optimizer == "adamw" and p.peak_lr() > ADAMW_UNSTABLE:
        out.append(f"AdamW at learning rates up to {p.peak_lr():.3g} tends to diverge (SGD's range is not Adam's); "
                   "leave --lr and --max-lr unset for AdamW's")
    return out


def build(model: nn.Module, p: Plan, momentum: float = 0.9, weight_decay: float = 5e-4):
    """The optimiser and its scheduler for ``p``: a triangular CyclicLR, with SGD's momentum cycling against
    the learning rate (0.8-``momentum``, as CyclicLR does)."""
    sgd = p.optimizer == "sgd"
    if sgd:
        optimizer = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=momentum, weight_decay=weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=p.lr, max_lr=p.max_lr,
                                                  step_size_up=p.cycle_steps, cycle_momentum=sgd,
                                                  base_momentum=min(0.8, momentum), max_momentum=momentum)
    return optimizer, scheduler
