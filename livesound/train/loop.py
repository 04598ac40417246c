"""The training loop both trainers share: data order, distribution, checkpoints, resume, logs.

A trainer is a ``Task``: a model, how many steps an epoch has, the batches of one epoch for this process,
and the losses of one batch. ``run`` does the rest, the same way for the encoder and the mapper:

- **Distribution**: under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment) each process joins a
  process group (nccl on GPUs, gloo on the CPU) and wraps the model in DistributedDataParallel; without them
  it is one process. The same command runs on a laptop or a cluster. Only rank 0 writes checkpoints, logs
  and the final weights, and draws progress bars.
- **One objective whatever the process count**: a task whose loss couples the items of a batch (contrastive
  negatives) gathers its embeddings from every process (``gather_rows``: each process's own rows keep their
  autograd graph, the others arrive as constants) and computes the loss of the whole global batch, the same
  on every rank. Such a task says ``global_loss = True``; its loss is then scaled by the world size before
  backward, because DDP averages the gradients over processes while each process holds only its own rows'
  share of the global gradient: the average of those shares times the world size is exactly the gradient
  one process would compute on the global batch. (Batch-norm statistics stay per process, as DDP keeps them.)
- **Data order**: epoch ``e`` visits the items in ``randperm(n)`` from a generator seeded with ``seed + e``,
  dealt to the ranks as DistributedSampler does (padded to a multiple of the world size, rank r takes every
  world-th item), cut into per-rank batches of ``batch // world`` (the last partial batch is dropped).
- **Randomness**: every random draw of step ``s`` on rank ``r`` (crops, SpecAugment, text augmentation,
  sampled latents, dropout) comes from generators seeded by ``(seed, r, s)``. A resumed run therefore draws
  exactly what the uninterrupted run drew, on every rank, without carrying each rank's RNG state around.
- **Checkpoints**: every ``checkpoint_every`` steps and at the end, rank 0 writes ``checkpoint.safetensors``
  in the run folder (atomically: a kill leaves the previous one): the model's tensors, the optimiser's,
  scheduler's and gradient scaler's state (tensors as tensors, the rest as JSON in the header; nothing is
  pickled) and the position (epoch, step within it, global step). ``resume`` continues from there; the
  settings that fix the data order (items, batch, world size, seed) must match, else it refuses.
- **Logs**: ``log.csv`` (one row per step: losses, learning rate, seconds), and TensorBoard event files when
  the ``tensorboard`` package is installed. On resume the rows after the checkpoint are dropped (they are
  computed again), so a resumed run's log equals an uninterrupted one's.
- **Mixed precision**: autocast to float16 with a gradient scaler on CUDA only; the CPU trains in float32.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from livesound.files import atomic_write
from livesound.weights.checkpoint import (
    CheckpointError,
    load_own,
    load_state_checked,
    save_own,
)

log = logging.getLogger("livesound")

CHECKPOINT, LOG = "checkpoint.safetensors", "log.csv"


# ---------------------------------------------------------------------------------------- distribution

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> Dist:
    """This process's place in a ``torchrun`` job (or a job of one), with its device chosen and set."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local % max(1, torch.cuda.device_count()))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] on each of the job's processes -> [world * n, ...], rank by rank; outside a job, x itself.

    Only this process's rows carry autograd (the slot of its own rows holds ``x`` itself, as open_clip's
    gather does); the other processes' rows are constants here, and their gradients are computed there.
    Every process must pass the same shape.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return x
    world = torch.distributed.get_world_size()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    parts[torch.distributed.get_rank()] = x
    return torch.cat(parts)


def cleanup_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def epoch_batches(n: int, batch: int, seed: int, epoch: int, dist: Dist) -> list[list[int]]:
    """This rank's batches of epoch ``epoch`` (item indices), see the module docstring."""
    per_rank = batch // dist.world
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    total = math.ceil(n / dist.world) * dist.world
    order += order[: total - n]
    mine = order[dist.rank::dist.world]
    return [mine[i:i + per_rank] for i in range(0, len(mine) - per_rank + 1, per_rank)]


def steps_per_epoch(n: int, batch: int, world: int) -> int:
    return math.ceil(n / world) // (batch // world)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for step ``step`` on ``rank``; distinct streams for distinct (seed, rank, step)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(2, np.uint64)[0] >> np.uint64(1))


# ------------------------------------------------------------------------------------- state <-> tensors

def flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON-able copy of ``obj`` whose tensors are moved into ``tensors`` (replaced by {"tensor": key})."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"tensor": prefix}
    if isinstance(obj, dict):
        return {"dict": [[flatten(k, f"{prefix}.k{i}", tensors), flatten(v, f"{prefix}.{i}", tensors)]
                         for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [flatten(v, f"{prefix}.{i}", tensors)
                                                                for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"float": repr(obj)}
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint ({prefix})")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "tensor" in obj:
            return tensors[obj["tensor"]]
        if "dict" in obj:
            return {unflatten(k, tensors): unflatten(v, tensors) for k, v in obj["dict"]}
        if "list" in obj:
            return [unflatten(v, tensors) for v in obj["list"]]
        if "tuple" in obj:
            return tuple(unflatten(v, tensors) for v in obj["tuple"])
        if "float" in obj:
            return float(obj["float"])
    return obj


# ------------------------------------------------------------------------------------------------- task

class Task(Protocol):
    kind: str                          # "encoder" or "mapper": the checkpoint says which trainer wrote it
    loss_names: tuple[str, ...]        # logged columns; "loss" is the one optimised
    model: nn.Module                   # the trainable module, unwrapped
    global_loss: bool                  # True: "loss" is the whole global batch's, the same on every rank

    def num_items(self) -> int: ...

    def batch_items(self, indices: list[int]) -> Any: ...

    def losses(self, model: nn.Module, batch: Any, gen: torch.Generator) -> dict[str, torch.Tensor]: ...

    def save(self) -> None: ...


@dataclass
class LoopConfig:
    run_dir: Path
    epochs: int = 50
    batch: int = 320
    seed: int = 0
    checkpoint_every: int = 500        # steps; 0: only at the end
    resume: bool = False
    amp: bool = True                   # used only on CUDA
    progress: bool = True
    identity: dict | None = None       # what a resumed run must match (dataset size, settings)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        if self.epochs < 1 or self.batch < 2 or self.checkpoint_every < 0:
            raise ValueError(f"epochs must be >= 1, batch >= 2 and checkpoint_every >= 0 (got {self.epochs}, "
                             f"{self.batch}, {self.checkpoint_every})")


def check_plan(n: int, cfg: LoopConfig, world: int) -> None:
    """Refuse, before any network is built, a batch the processes cannot share, data smaller than one batch,
    a --resume without a checkpoint, or a new run over an old run's checkpoint."""
    if cfg.batch % world:
        raise ValueError(f"--batch {cfg.batch} must be a multiple of the number of processes ({world})")
    if cfg.batch // world < 2:
        raise ValueError(f"--batch {cfg.batch} over {world} processes leaves fewer than 2 items per process; "
                         "contrastive batches need at least 2")
    if steps_per_epoch(n, cfg.batch, world) < 1:
        raise ValueError(f"{n} training items are fewer than one batch of {cfg.batch}; lower --batch")
    ckpt = cfg.run_dir / CHECKPOINT
    if cfg.resume and not ckpt.is_file():
        raise CheckpointError(ckpt, "no checkpoint to resume from (start without --resume)")
    if not cfg.resume and ckpt.exists():
        raise ValueError(f"{ckpt}: a checkpoint of an earlier run is here; pass --resume to continue it, or "
                         "choose another --run-dir")


@dataclass
class Position:
    epoch: int = 0
    step_in_epoch: int = 0
    step: int = 0                      # global optimiser steps done


def run(task: Task, optimizer: torch.optim.Optimizer, scheduler, cfg: LoopConfig, dist: Dist,
        loader=None) -> dict:
    """Train ``task.model`` to ``cfg.epochs`` (see the module docstring); returns a summary dict.

    ``loader(batches)``, if given, turns a list of index batches into an iterator of ready batches (e.g. a
    DataLoader with workers); by default ``task.batch_items`` is called in this process.
    """
    n = task.num_items()
    check_plan(n, cfg, dist.world)
    per_epoch = steps_per_epoch(n, cfg.batch, dist.world)
    use_amp = cfg.amp and dist.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    identity = {"items": n, "batch": cfg.batch, "world": dist.world, "seed": cfg.seed, "kind": task.kind,
                **(cfg.identity or {})}
    ckpt = cfg.run_dir / CHECKPOINT
    pos = Position()
    if cfg.resume:
        pos = load_checkpoint(ckpt, task.model, optimizer, scheduler, scaler, identity)
    model = _wrap(task.model, dist)
    writer = RunLog(cfg.run_dir, task.loss_names, pos.step, resume=cfg.resume) if dist.main else None
    total = per_epoch * cfg.epochs
    bar = _bar(total, pos.step, cfg.progress and dist.main, task.kind)
    last: dict[str, float] = {}
    try:
        for epoch in range(pos.epoch, cfg.epochs):
            batches = epoch_batches(n, cfg.batch, cfg.seed, epoch, dist)[:per_epoch]
            start = pos.step_in_epoch if epoch == pos.epoch else 0
            ready = loader(batches[start:]) if loader is not None else (task.batch_items(b) for b in batches[start:])
            for i, batch in enumerate(ready, start=start):
                t0 = time.perf_counter()
                last = _step(task, model, optimizer, scheduler, scaler, batch, cfg.seed, dist, pos.step, use_amp)
                pos = Position(epoch, i + 1, pos.step + 1)
                if pos.step_in_epoch == per_epoch:
                    pos = Position(epoch + 1, 0, pos.step)
                if writer is not None:
                    writer.row(pos.step, epoch, last, optimizer.param_groups[0]["lr"], time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}", refresh=False)
                if dist.main and cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0 and pos.step < total:
                    writer.flush()  # first: the log on disk covers every step the checkpoint holds
                    save_checkpoint(ckpt, task.model, optimizer, scheduler, scaler, pos, identity)
        if dist.main:
            writer.flush()
            save_checkpoint(ckpt, task.model, optimizer, scheduler, scaler, pos, identity)
            task.save()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return {"steps": pos.step, "epochs": cfg.epochs, "steps_per_epoch": per_epoch, "last": last}


def _step(task, model, optimizer, scheduler, scaler, batch, seed, dist, step, use_amp) -> dict[str, float]:
    s = step_seed(seed, dist.rank, step)
    torch.manual_seed(s)  # module randomness (dropout, drop-path) of this step
    gen = torch.Generator().manual_seed(s)
    model.train()
    with torch.autocast(device_type=dist.device.type, dtype=torch.float16, enabled=use_amp):
        losses = task.losses(model, batch, gen)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(objective_for_backward(losses["loss"], task, dist)).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    values = {k: float(v.detach()) for k, v in losses.items()}
    if not math.isfinite(values["loss"]):
        raise ValueError(f"the {task.kind} loss became {values['loss']} at step {step + 1}; lower the "
                                 "learning rate")
    return values


def objective_for_backward(loss: torch.Tensor, task, dist: Dist) -> torch.Tensor:
    """What to differentiate so that DDP's averaged gradient is the global batch's (module docstring)."""
    return loss * dist.world if getattr(task, "global_loss", False) else loss


def _wrap(model: nn.Module, dist: Dist) -> nn.Module:
    if dist.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _bar(total: int, initial: int, enabled: bool, kind: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", desc=f"train {kind}",
                file=sys.stderr, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ checkpoints

def save_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, scaler, pos: Position,
                    identity: dict) -> None:
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"position": pos.__dict__, "identity": identity,
            "optimizer": flatten(optimizer.state_dict(), "optimizer", tensors),
            "scheduler": flatten(scheduler.state_dict(), "scheduler", tensors),
            "scaler": flatten(scaler.state_dict(), "scaler", tensors)}
    save_own(path, "train_state", meta, tensors)


def load_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, scaler, identity: dict) -> Position:
    """Restore everything ``save_checkpoint`` wrote; refuses a checkpoint of another run's settings."""
    if not path.is_file():
        raise CheckpointError(path, "no checkpoint to resume from (start without --resume)")
    meta, tensors = load_own(path, "train_state")
    try:
        saved = meta["identity"]
        changed = [f"{k} {saved.get(k)} -> {v}" for k, v in identity.items() if saved.get(k) != v]
        if changed:
            raise CheckpointError(path, f"written by a run with other settings ({'; '.join(changed)}); resume "
                                        "with the same data, --batch, process count and --seed")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        load_state_checked(model, model_state, source=path)
        optimizer.load_state_dict(unflatten(meta["optimizer"], tensors))
        scheduler.load_state_dict(unflatten(meta["scheduler"], tensors))
        scaler.load_state_dict(unflatten(meta["scaler"], tensors))
        return Position(**meta["position"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"not a complete training checkpoint ({type(e).__name__}: {e})") from None


# ------------------------------------------------------------------------------------------------- logs

class RunLog:
    """``log.csv`` (always) and TensorBoard events (when installed) of one run, written by rank 0."""
    def __init__(self, run_dir: Path, loss_names: Sequence[str], resume_step: int, resume: bool):
        self.path = Path(run_dir) / LOG
        self.columns = ["step", "epoch", *loss_names, "lr", "seconds"]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = self._kept_rows(resume_step) if resume else []
        buf = io.StringIO()
        csv.writer(buf).writerows([self.columns, *kept])
        atomic_write(self.path, lambda tmp: tmp.write_text(buf.getvalue()))
        self.file = open(self.path, "a", newline="")
        self.csv = csv.writer(self.file)
        self.tb = _tensorboard(Path(run_dir) / "tensorboard")

    def _kept_rows(self, step: int) -> list[list[str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0] != self.columns:
            return []
        return [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]

    def row(self, step: int, epoch: int, losses: dict[str, float], lr: float, seconds: float) -> None:
        values = [losses.get(k, float("nan")) for k in self.columns[2:-2]]
        self.csv.writerow([step, epoch, *(repr(float(v)) for v in values), repr(float(lr)), f"{seconds:.4f}"])
        if self.tb is not None:
            for k, v in zip(self.columns[2:-2], values):
                self.tb.add_scalar(f"train/{k}", v, step)
            self.tb.add_scalar("train/lr", lr, step)

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _tensorboard(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional; log.csv always has everything
        return None
    return SummaryWriter(str(folder))


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's ``log.csv`` as numbers."""
    with open(Path(run_dir) / LOG, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


