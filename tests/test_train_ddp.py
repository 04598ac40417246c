"""DDP keeps the paper's objective: two gloo processes, each encoding half of a global batch, compute the loss and
(after DDP's gradient average) the gradients that one process computes on the whole batch.

In float64, so that the comparison can be tight: in float32 the two runs sum the same gradient terms in other
orders (a bias gradient adds up a million of them), which alone differs by ~2e-4 of the largest value.
"""

import torch
import torch.multiprocessing as mp
from synthetic_datasets import write_csv

from livesound.models.audio_encoder import AudioEncoderConfig, build_audio_encoder
from livesound.train.encoder import EncoderTask, StepInputs, objective

WORLD = 2
BACKBONE = "test_convnext"  # layer norm, no batch norm: an item's embedding does not depend on its batch


def _encoder() -> torch.nn.Module:
    return build_audio_encoder(AudioEncoderConfig(backbone=BACKBONE, embed_dim=512), seed=0).double()


def _global_batch(tmp_path) -> StepInputs:
    """8 clips' crops, SpecAugment-ed copies, label texts and frames through the real task, as one step draws
    them; two clips lose their frame, so the image term covers a subset gathered from both processes."""
    from livesound.models.presets import clip_from_preset, load_preset
    from livesound.train.datasets import SpecCache, load_dataset
    from livesound.train.encoder import EncoderTrainConfig

    csv = write_csv(tmp_path / "data", per_class=4, frames=True)
    ds = load_dataset(csv.parent, csv_path=csv)
    task = EncoderTask(ds, _encoder(), clip_from_preset(load_preset("demo")), EncoderTrainConfig(),
                       SpecCache(None), torch.device("cpu"), tmp_path / "enc.safetensors")
    inp = task.inputs(task.batch_items([0, 4, 8, 1, 5, 9, 2, 6]), torch.Generator().manual_seed(1))
    inp.has_image[[2, 5]] = 0.0
    inp.image[[2, 5]] = 0.0
    return StepInputs(*(t.double() for t in (inp.x, inp.x_aug, inp.text, inp.image, inp.has_image)))


def _rank(rank: int, init: str, batch: StepInputs, out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    from livesound.train import loop

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(_encoder())
        n = batch.x.shape[0] // WORLD
        losses = objective(model, batch.rows(rank * n, (rank + 1) * n), torch.device("cpu"))
        loop.objective_for_backward(losses["loss"], EncoderTask, loop.Dist(rank, WORLD)).backward()
        torch.save({"losses": {k: v.detach() for k, v in losses.items()},
                    "grads": {k: p.grad for k, p in model.module.named_parameters()}}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_compute_the_single_process_loss_and_gradients(tmp_path):
    torch.set_num_threads(1)
    batch = _global_batch(tmp_path)
    model = _encoder()
    single = objective(model, batch, torch.device("cpu"))
    single["loss"].backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    assert set(single) == {"loss", "text", "augment", "image"}
    half = objective(_encoder(), batch.rows(0, 4), torch.device("cpu"))["loss"]  # one process's negatives alone
    assert abs(float(half.detach()) - float(single["loss"].detach())) > 1e-2     # are another loss

    mp.spawn(_rank, args=(f"file://{tmp_path / 'rendezvous'}", batch, str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in single.items():
            torch.testing.assert_close(got["losses"][name], value.detach(), rtol=1e-12, atol=1e-12)
        assert got["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-9, atol=1e-15,
                                       msg=lambda m, name=name: f"{name}: {m}")
