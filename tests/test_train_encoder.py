"""``livesound train-encoder`` on synthetic tone/noise classes: it learns, resumes exactly after a real kill,
and runs under torchrun with two gloo processes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO
from synthetic_datasets import FOUR_CLASSES, write_csv, write_esc50, write_folder

from livesound.train.loop import read_log
from livesound.weights.checkpoint import load_own

# A tiny timm backbone without batch norm (so a few steps of training mean the same in eval mode) and the
# demo preset's tiny random CLIP: the planted problem is learnable in seconds on a CPU.
TINY = ["--preset", "demo", "--backbone", "test_convnext", "--device", "cpu", "--threads", "1", "--quiet"]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train(*args) -> int:
    from livesound.cli import main

    return main(["train-encoder", *TINY, *map(str, args)])


def command(*args) -> list[str]:
    return [sys.executable, "-m", "livesound", "train-encoder", *TINY, *map(str, args)]


def weights(path) -> dict[str, torch.Tensor]:
    return load_own(path, "audio_encoder")[1]


def test_training_lowers_the_loss_and_learns_the_planted_classes(tmp_path, one_thread):
    from livesound.eval.linear_probe import linear_probe
    from livesound.eval.zero_shot import embed_clips, zero_shot
    from livesound.models.audio_encoder import (
        AudioEncoderConfig,
        build_audio_encoder,
        load_audio_encoder,
    )
    from livesound.models.clip import ClipModel
    from livesound.train.datasets import (
        SpecCache,
        assign_folds,
        label_text,
        load_dataset,
    )

    data = write_folder(tmp_path / "data", per_class=6)
    run_dir = tmp_path / "run"
    assert train("--data", data, "--run-dir", run_dir, "--out", run_dir / "enc.safetensors", "--epochs", 7,
                 "--batch", 9, "--optimizer", "adamw", "--lr", 2e-3, "--max-lr", 2e-3, "--workers", 0,
                 "--checkpoint-every", 0) == 0
    log = read_log(run_dir)
    assert len(log) == 14 and [r["step"] for r in log] == list(range(1, 15))
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]]) - 0.05

    ds = assign_folds(load_dataset(data), 2)
    text = ClipModel.tiny(seed=20220614).encode_text([label_text(c) for c in ds.classes]).numpy()

    def scores(enc):
        emb = embed_clips(enc, [c.path for c in ds.clips], SpecCache(None))
        return (zero_shot(emb, ds.targets(), text, ds.classes, [None] * len(ds.clips))["mean"],
                linear_probe(emb, ds.targets(), ds.classes, [c.fold for c in ds.clips])["mean"])

    untrained_zs, _ = scores(build_audio_encoder(AudioEncoderConfig(backbone="test_convnext"), seed=0))
    zs, probe = scores(load_audio_encoder(run_dir / "enc.safetensors"))
    assert untrained_zs <= 0.5 and zs >= 0.6, (untrained_zs, zs)  # chance is 1/3: training made the difference
    assert probe >= 0.75, probe  # (random features already separate tones from noise; training keeps it so)


def test_default_flags_learn_on_a_small_esc50_set(tmp_path, one_thread, capsys):
    """The small-data case that ended at chance under the paper's schedule: 80 ESC-50-layout clips (5 s, four
    texture classes), folds 1-4 trained with no optimiser or schedule flag (the plan picks AdamW and a cycle
    fitted to the run, and says so), then zero-shot on the held-out fold 5: well above chance (0.25).

    The backbone is timm's tiny ``test_resnet``: batch norm, as the paper's resnet18 has, which keeps the
    embeddings of a fresh network from starting out collinear (a layer-norm one learns one axis, tonal against
    noisy, in this many steps)."""
    from livesound.eval.zero_shot import embed_clips, zero_shot
    from livesound.models.audio_encoder import load_audio_encoder
    from livesound.models.clip import ClipModel
    from livesound.train.datasets import SpecCache, label_text, load_dataset

    data = write_esc50(tmp_path / "esc", per_fold=4, classes=FOUR_CLASSES, seconds=5.0)  # 80 clips, 16 a fold
    run_dir = tmp_path / "run"
    assert train("--data", data, "--folds", "1,2,3,4", "--backbone", "test_resnet", "--batch", 8, "--epochs", 7,
                 "--threads", 2, "--workers", 0, "--checkpoint-every", 0, "--run-dir", run_dir,
                 "--out", run_dir / "enc.safetensors") == 0
    said = capsys.readouterr().err
    assert "optimizer adamw, learning rate 0.0003 -> 0.003 -> 0.0003 in cycles of 56 steps, 56 steps planned" in said
    assert "fewer than one cycle of the paper's SGD schedule" in said and "warning" not in said

    held_out = load_dataset(data).select(folds=["5"])
    text = ClipModel.tiny(seed=20220614).encode_text([label_text(c) for c in held_out.classes]).numpy()
    emb = embed_clips(load_audio_encoder(run_dir / "enc.safetensors"), [c.path for c in held_out.clips],
                      SpecCache(None))
    accuracy = zero_shot(emb, held_out.targets(), text, held_out.classes, [None] * len(held_out.clips))["mean"]
    assert accuracy >= 0.75, accuracy


def test_a_killed_run_resumes_to_the_same_weights_and_losses(tmp_path, one_thread):
    """A real SIGKILL after the first mid-epoch checkpoint, then --resume: bit-identical to a run never killed."""
    data = write_folder(tmp_path / "data", per_class=4)                     # 12 clips: 3 steps of 4 an epoch
    common = ["--data", data, "--epochs", 2, "--batch", 4, "--optimizer", "sgd", "--lr", 0.01, "--max-lr", 0.05,
              "--cycle-steps", 3, "--checkpoint-every", 2, "--text-aug", 0.5, "--cache", tmp_path / "cache"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert train(*common, "--run-dir", ref, "--out", ref / "enc.safetensors", "--workers", 0) == 0

    proc = subprocess.Popen(command(*common, "--run-dir", cut, "--out", cut / "enc.safetensors", "--workers", 1),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (cut / "checkpoint.safetensors").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "enc.safetensors").exists()                           # it never finished
    position = load_own(cut / "checkpoint.safetensors", "train_state")[0]["position"]
    assert 0 < position["step"] < 6 and position["step_in_epoch"] > 0      # killed mid-epoch

    r = subprocess.run(command(*common, "--run-dir", cut, "--out", cut / "enc.safetensors", "--workers", 1,
                               "--resume"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = weights(ref / "enc.safetensors"), weights(cut / "enc.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert strip(read_log(cut)) == strip(read_log(ref)) and len(read_log(ref)) == 6


def test_torchrun_two_gloo_processes_train_and_write_one_checkpoint(tmp_path):
    data = write_csv(tmp_path / "data", per_class=4, frames=True)          # the CSV layout, 12 clips + frames
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "livesound", "train-encoder", *TINY, "--data", data.parent, "--csv", data, "--run-dir", run_dir,
            "--out", run_dir / "enc.safetensors", "--epochs", 1, "--batch", 4, "--workers", 0,
            "--checkpoint-every", 1]
    r = subprocess.run(list(map(str, args)), cwd=REPO, capture_output=True, text=True, timeout=400, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.safetensors", "enc.safetensors", "log.csv",
                                                         "spec_cache"]
    meta = load_own(run_dir / "checkpoint.safetensors", "train_state")[0]
    assert meta["identity"]["world"] == 2 and meta["position"]["step"] == 3   # 6 clips a process, 2 a step
    log = read_log(run_dir)
    assert len(log) == 3 and all(row["image"] > 0 for row in log)           # the audio-frame term was trained


def test_bad_training_inputs_fail_with_one_line(tmp_path, capsys, one_thread):
    data = write_folder(tmp_path / "data", per_class=1)
    runs = [(["--data", tmp_path / "nowhere"], "nowhere: no such dataset folder"),
            (["--data", data, "--folds", "1"], "no fold 1"),
            (["--data", data, "--batch", 8, "--run-dir", tmp_path / "r"], "fewer than one batch of 8"),
            (["--data", data, "--batch", 2, "--resume", "--run-dir", tmp_path / "r2"], "no checkpoint to resume from"),
            (["--data", data, "--lr", 0.5, "--max-lr", 0.1], "need 0 < --lr <= --max-lr, got 0.5 and 0.1")]
    for args, message in runs:
        assert train(*args) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err  # refused before any network is built


def test_the_plan_fits_the_run_says_why_and_warns_when_it_cannot_move_the_weights():
    from livesound.train import schedule

    short = schedule.plan(50)
    assert (short.optimizer, short.lr, short.max_lr, short.cycle_steps) == ("adamw", 3e-4, 3e-3, 25)
    assert "fewer than one cycle of the paper's SGD schedule" in short.describe() and not short.warnings
    long = schedule.plan(6000)
    assert (long.optimizer, long.lr, long.max_lr, long.cycle_steps) == ("sgd", 1e-3, 0.1, 2000)
    assert "the paper's" in long.describe() and not long.warnings
    fitted_sgd = schedule.plan(50, "sgd")                          # explicit flags win; the cycle still fits
    assert (fitted_sgd.optimizer, fitted_sgd.max_lr, fitted_sgd.cycle_steps) == ("sgd", 0.1, 25)
    stalled = schedule.plan(50, "sgd", cycle_steps=2000)          # the old defaults on the small run
    assert stalled.cycle_steps == 2000 and stalled.peak_lr() == pytest.approx(0.001 + 0.099 * 50 / 2000)
    assert any("only reaches 0.00348 of --max-lr 0.1" in w for w in stalled.warnings)
    assert any("SGD never above learning rate 0.00348" in w for w in stalled.warnings)
    assert any("only 10 optimiser steps" in w for w in schedule.plan(10).warnings)
    assert any("tends to diverge" in w for w in schedule.plan(50, "adamw", 1e-3, 0.1).warnings)
    for bad in ({"optimizer": "adam"}, {"cycle_steps": 0}, {"lr": 0.5, "max_lr": 0.1}):
        with pytest.raises(ValueError):
            schedule.plan(50, **bad)

    optimizer, scheduler = schedule.build(torch.nn.Linear(2, 2), short)
    lrs = []
    for _ in range(short.steps):                                   # the scheduler does what the plan says
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert isinstance(optimizer, torch.optim.AdamW) and lrs[0] == pytest.approx(3e-4)
    assert max(lrs) == pytest.approx(3e-3) and lrs.index(max(lrs)) == 25 and lrs[-1] == pytest.approx(4.08e-4)


def subparser(*names):
    """The parser of ``livesound <names...>`` (e.g. ``"eval", "zero-shot"``)."""
    import argparse

    from livesound.cli import build_parser

    p = build_parser()
    for name in names:
        p = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return p


@pytest.mark.parametrize("command, renamed", [("train-encoder", {"no_spec_aug", "no_amp", "quiet"}),
                                              ("train-mapper", {"quiet"})])
def test_every_training_flag_reaches_the_options_with_the_library_defaults(command, renamed):
    """The command only turns flags into options: each flag is an options field (or one of the negated ones),
    and a command line of defaults gives exactly the library's default options."""
    from dataclasses import fields

    from livesound.cli import build_parser
    from livesound.cli import train as cli_train
    from livesound.train.encoder import TrainEncoderOptions
    from livesound.train.mapper import TrainMapperOptions

    cls, build = {"train-encoder": (TrainEncoderOptions, cli_train.train_encoder_options),
                  "train-mapper": (TrainMapperOptions, cli_train.train_mapper_options)}[command]
    flags = {a.dest for a in subparser(command)._actions if a.dest != "help"}
    assert flags - renamed <= {f.name for f in fields(cls)}, flags - renamed - {f.name for f in fields(cls)}
    assert build(build_parser().parse_args([command, "--data", "d"])) == cls(data="d")
    negated = build(build_parser().parse_args([command, "--data", "d", "--quiet", "--epochs", "3",
                                               *(["--no-spec-aug", "--no-amp", "--folds", "1,2"]
                                                 if command == "train-encoder" else ["--amp"])]))
    assert not negated.progress and negated.epochs == 3
    if command == "train-encoder":
        assert not negated.spec_aug and not negated.amp and negated.folds == "1,2"
    else:
        assert negated.amp
