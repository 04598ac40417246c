"""``livesound train-mapper``: the loss goes down, distillation reads real optimisation results, and the
output is what the live path loads."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from livesound.models.mapper import load_mapper
from livesound.train.loop import read_log


@pytest.fixture(scope="module")
def demo():
    from livesound.models.presets import (
        clip_from_preset,
        generator_from_preset,
        load_preset,
    )

    preset = load_preset("demo")
    return preset, generator_from_preset(preset), clip_from_preset(preset)


def test_mapper_training_lowers_its_loss_and_loads_in_the_live_path(tmp_path, demo):
    from livesound.models.mapper import MapperConfig, build_mapper
    from livesound.models.presets import mapper_from_preset
    from livesound.offline.optimize import (
        OptimizeConfig,
        Target,
        TargetPart,
        optimize,
        source_latent,
        text_embedding,
    )
    from livesound.offline.targets import write_target
    from livesound.train import loop
    from livesound.train.mapper import (
        MapperTask,
        MapperTrainConfig,
        distill_targets,
        fixed_loss,
        mapper_optimizer,
        text_targets,
    )

    preset, G, clip = demo
    # Two real optimisation results to distil (the files `livesound optimize` writes).
    src = source_latent(G, seed=1, truncation=0.7)
    cfg = OptimizeConfig(steps=2, noise_mode=preset.noise_mode)
    targets = [Target(f"t{i}", [TargetPart("text", text_embedding(clip, p), label=p)])
               for i, p in enumerate(["rain", "fire"])]
    result = optimize(G, clip, src, targets, cfg, progress=False)
    for b, t in enumerate(targets):
        write_target(tmp_path / "opt" / t.name, result, b, t, src, cfg)
    distill = distill_targets(tmp_path / "opt", G, clip, encoder=None)
    assert distill.w_src.shape == (2, G.num_ws, G.w_dim)
    assert torch.allclose(distill.w_src[0], src.ws[0]) and torch.equal(distill.w_opt[1], result.ws[1])

    pool = text_targets(clip, ["rain", "fire", "a dog barking", "thunder"])
    mapper = build_mapper(MapperConfig(num_ws=G.num_ws, w_dim=G.w_dim, clip_dim=clip.embed_dim), seed=0)
    task = MapperTask(mapper, G, clip, pool, MapperTrainConfig(strength=0.5, samples_per_epoch=24),
                      torch.device("cpu"), tmp_path / "mapper.safetensors", distill=distill)
    before = fixed_loss(task)
    opt = mapper_optimizer(task.model, 0.5)
    loop.run(task, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
             loop.LoopConfig(tmp_path / "run", epochs=1, batch=4, checkpoint_every=0, progress=False), loop.Dist())
    after = fixed_loss(task)
    assert after < before - 0.01, (before, after)
    log = loop.read_log(tmp_path / "run")
    assert len(log) == 6 and {"clip", "l2", "distill"} <= set(log[0])

    live = mapper_from_preset(preset, G, clip.embed_dim, tmp_path / "mapper.safetensors")
    w = src.ws
    e = pool.embeddings[:1]
    assert torch.equal(live.edit(w, e, 0.5), task.model.eval().edit(w, e, 0.5))


def test_train_mapper_command_and_its_errors(tmp_path, capsys):
    from livesound.cli import main

    def run(*args) -> int:
        return main(["train-mapper", "--preset", "demo", "--quiet", "--device", "cpu", *map(str, args)])

    assert run("--run-dir", tmp_path / "run", "--out", tmp_path / "m.safetensors") == 1
    assert "give targets: --prompts and/or --data" in capsys.readouterr().err
    assert run("--prompts", "rain", "--distill", tmp_path, "--run-dir", tmp_path / "run") == 1
    assert "no <target>/result.npy" in capsys.readouterr().err
    assert run("--prompts", "rain,fire", "--epochs", 1, "--steps-per-epoch", 2, "--batch", 2,
               "--run-dir", tmp_path / "run", "--out", tmp_path / "m.safetensors") == 0
    assert load_mapper(tmp_path / "m.safetensors").num_ws == 12
    assert np.isfinite([row["loss"] for row in read_log(tmp_path / "run")]).all()


def test_train_mapper_from_the_library_reports_and_resumes(tmp_path):
    """The library entry point without the CLI: its notes come back through ``report``, the mapper it writes is
    the one its task trained, and a second call with ``resume`` continues the same run to more epochs."""
    from livesound.train.mapper import TrainMapperOptions, train_mapper

    opts = TrainMapperOptions(prompts=["rain", "fire"], epochs=1, steps_per_epoch=2, batch=2, device="cpu",
                              progress=False, run_dir=tmp_path / "run", out=tmp_path / "m.safetensors",
                              checkpoint_every=0, id_lambda=0.2)
    lines: list[str] = []
    summary = train_mapper(opts, report=lines.append)
    assert summary["steps"] == 2 and summary["steps_per_epoch"] == 2 and np.isfinite(summary["last"]["loss"])
    assert lines[0] == "note: --id-lambda has no effect without --id-weights"
    assert "untrained CLIP" in lines[1]
    assert lines[2].startswith("2 target(s) (2 text, 0 audio); ") and "1 process(es) on cpu" in lines[2]
    assert lines[3].startswith("2 steps, last loss ") and lines[3].endswith(f"wrote {tmp_path / 'm.safetensors'}")
    first = load_mapper(tmp_path / "m.safetensors").state_dict()

    with pytest.raises(ValueError, match="a checkpoint of an earlier run is here"):
        train_mapper(opts)
    summary = train_mapper(replace(opts, resume=True, epochs=2))
    assert summary["steps"] == 4 and [r["step"] for r in read_log(tmp_path / "run")] == [1, 2, 3, 4]
    second = load_mapper(tmp_path / "m.safetensors").state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)  # the resumed run trained on
