"""``livesound train-encoder``: the paper's contrastive training of the audio encoder into CLIP space.

``train_encoder(TrainEncoderOptions(...))`` is the whole run (the command builds the options from its flags);
``EncoderTask`` is its step, which ``livesound.train.loop`` drives.

One step (docs/design.md, the paper's soundclip training):

1. Each clip's cached log-mel (``unit_db`` over the whole clip, [128, F]) is cut to 864 frames: a **random
   crop** for clips longer than that (the paper's), zero-padded at the end for shorter ones. (Evaluation and
   ``embed`` take the centre crop instead, so they are deterministic.)
2. A SpecAugment-ed copy: one frequency mask of up to 15% of the 128 mel bands and one time mask of up to
   30% of the 864 frames (the paper's two masks), masked values set to 0, the floor of the [0, 1] scale.
3. Both go through the paper's resize + reshape (``to_encoder_input``) and the encoder; embeddings are
   L2-normalised.
4. Targets: the frozen CLIP text embedding of each clip's label (``_``/``-`` read as spaces) through the
   prompt templates (the paper's bare ``{}`` by default), optionally EDA-style augmented; and, for clips whose
   dataset gives a video frame, the frozen CLIP image embedding of that frame.
5. Loss: logits ``a @ b.T * exp(0.07)`` (the paper's fixed scale, not 1/0.07) for audio-text, audio-augmented
   audio (and audio-image over the clips with frames), each a symmetric cross-entropy with the diagonal as
   targets; the loss is the mean of the cross-entropy terms, i.e. the paper's ``(4 terms) / 4`` without frames.

Text augmentation: the paper used EDA (synonym replacement, random insertion, random swap, random deletion).
Synonym replacement and insertion need a thesaurus (WordNet), which livesound does not ship; ``text_aug`` is
the probability that a clip's label text is augmented this step by a random swap of two words or a random
deletion of words (each with probability 0.1, keeping at least one). One-word labels stay as they are.

Under ``torchrun`` each process encodes its own share of the batch (``batch / processes`` items), then the
embeddings and targets of every process are gathered (``loop.gather_rows``), so each contrastive term has the
whole global batch for negatives: N processes optimise the loss one process would with the same global batch
(``global_loss``; the loop's docstring says how the gradients then come out equal too).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from livesound.audio.features import PAPER_FRAMES, to_encoder_input
from livesound.models.audio_encoder import (
    AudioEncoderConfig,
    build_audio_encoder,
    load_audio_encoder,
    save_audio_encoder,
)
from livesound.models.clip import PAPER_TEMPLATES, resize_center_crop
from livesound.train import loop, schedule
from livesound.train.datasets import Dataset, DatasetError, SpecCache, label_text
from livesound.train.inputs import (
    ClipChoice,
    DatasetChoice,
    Report,
    quiet,
    set_threads,
    templates_named,
)
from livesound.train.loop import gather_rows

log = logging.getLogger("livesound")

PAPER_SCALE = math.exp(0.07)


@dataclass
class EncoderTrainConfig:
    templates: tuple[str, ...] = PAPER_TEMPLATES
    text_aug: float = 0.0              # probability of an EDA-style augmented label per clip and step
    spec_aug: bool = True
    freq_mask: float = 0.15            # largest frequency mask, fraction of the mel bands
    time_mask: float = 0.30            # largest time mask, fraction of the 864 frames
    random_crop: bool = True           # False: the centre crop in training too

    def __post_init__(self) -> None:
        if not 0 <= self.text_aug <= 1 or not 0 <= self.freq_mask <= 1 or not 0 <= self.time_mask <= 1:
            raise ValueError("text_aug, freq_mask and time_mask must lie in [0, 1]")


def contrastive(a: torch.Tensor, b: torch.Tensor, scale: float = PAPER_SCALE) -> torch.Tensor:
    """Symmetric cross-entropy of unit embeddings a, b [N, D] whose i-th rows belong together: the sum of
    the two directions (a->b and b->a), each a mean over the rows."""
    logits = a @ b.T * scale                                    # [N, N]
    target = torch.arange(a.shape[0], device=a.device)
    return F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)


def crop_or_pad(spec: torch.Tensor, gen: torch.Generator | None, frames: int = PAPER_FRAMES) -> torch.Tensor:
    """[M, F] -> [M, frames]: a random crop (``gen``) or the centre one (None) of a longer clip; zero-padded
    at the end when shorter."""
    n = spec.shape[-1]
    if n < frames:
        return F.pad(spec, (0, frames - n))
    start = int(torch.randint(0, n - frames + 1, (1,), generator=gen)) if gen is not None else (n - frames) // 2
    return spec[..., start:start + frames]


def spec_augment(x: torch.Tensor, gen: torch.Generator, freq_mask: float = 0.15,
                 time_mask: float = 0.30) -> torch.Tensor:
    """A copy of x [B, M, T] with one frequency and one time mask per item, of random width and place."""
    x = x.clone()
    B, M, T = x.shape
    for i in range(B):
        for axis, size, frac in ((1, M, freq_mask), (2, T, time_mask)):
            width = int(torch.randint(0, int(frac * size) + 1, (1,), generator=gen))
            start = int(torch.randint(0, size - width + 1, (1,), generator=gen))
            if axis == 1:
                x[i, start:start + width, :] = 0.0
            else:
                x[i, :, start:start + width] = 0.0
    return x


def eda(text: str, gen: torch.Generator, p_delete: float = 0.1) -> str:
    """An EDA-style variant of ``text``: swap two random words, or drop each word with ``p_delete``."""
    words = text.split()
    if len(words) < 2:
        return text
    if int(torch.randint(0, 2, (1,), generator=gen)) == 0:
        i, j = torch.randperm(len(words), generator=gen)[:2].tolist()
        words[i], words[j] = words[j], words[i]
        return " ".join(words)
    keep = [w for w, r in zip(words, torch.rand(len(words), generator=gen).tolist()) if r >= p_delete]
    return " ".join(keep) if keep else words[int(torch.randint(0, len(words), (1,), generator=gen))]


@dataclass
class StepInputs:
    """One process's share of a step once the random draws are made: what goes into the encoder, and the
    frozen targets its embeddings are pulled towards. Rows are clips."""
    x: torch.Tensor                    # [b, 128, 864] crops
    x_aug: torch.Tensor | None         # [b, 128, 864] their SpecAugment-ed copies (None: no augment term)
    text: torch.Tensor                 # [b, D] CLIP text embeddings of the (augmented) labels
    image: torch.Tensor | None = None  # [b, D] CLIP image embeddings of the clips' frames, zeros where none
    has_image: torch.Tensor | None = None  # [b] 1.0 where the clip has a frame

    def rows(self, start: int, stop: int) -> "StepInputs":
        pick = lambda t: None if t is None else t[start:stop]  # noqa: E731
        return StepInputs(pick(self.x), pick(self.x_aug), pick(self.text), pick(self.image), pick(self.has_image))


def objective(model: nn.Module, inp: StepInputs, device: torch.device) -> dict[str, torch.Tensor]:
    """The paper's loss (module docstring, steps 3 and 5) over the global batch: this process encodes its rows,
    every process's embeddings and targets are gathered, and each contrastive term spans them all. Returns
    ``loss`` (optimised) and each term's mean over its two directions."""
    x = inp.x if inp.x_aug is None else torch.cat([inp.x, inp.x_aug])                  # [b or 2b, 128, 864]
    e = model(to_encoder_input(x).to(device))
    e = F.normalize(e.to(torch.promote_types(e.dtype, torch.float32)), dim=-1)         # autocast gives float16
    a, a_aug = e.chunk(2) if inp.x_aug is not None else (e, None)                       # [b, D] each
    a = gather_rows(a)                                                                  # [B, D]
    terms = {"text": contrastive(a, gather_rows(inp.text.to(device)))}
    if a_aug is not None:
        terms["augment"] = contrastive(a, gather_rows(a_aug))
    n_terms = 2 * len(terms)
    if inp.image is not None:
        img, has = gather_rows(inp.image.to(device)), gather_rows(inp.has_image.to(device)) > 0
        if int(has.sum()) >= 2:
            terms["image"] = contrastive(a[has], img[has])
            n_terms += 2
        else:
            terms["image"] = a.new_zeros(())
    loss = sum(terms.values()) / n_terms
    return {"loss": loss, **{k: v / 2 for k, v in terms.items()}}


class SpecItems(torch.utils.data.Dataset):
    """Index -> (cached log-mel [128, F], index): what DataLoader workers compute; holds no network."""
    def __init__(self, paths: Sequence[Path], cache: SpecCache):
        self.paths, self.cache = list(paths), cache

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.cache.get(self.paths[i]), i


class EncoderTask:
    """The ``Task`` of ``livesound.train.loop`` for the audio encoder."""
    kind = "encoder"
    global_loss = True                 # the loss is the gathered global batch's (module docstring)

    def __init__(self, dataset: Dataset, encoder: nn.Module, clip, cfg: EncoderTrainConfig, cache: SpecCache,
                 device: torch.device, out: Path):
        if encoder.embed_dim != clip.embed_dim:
            raise ValueError(f"the encoder outputs {encoder.embed_dim}-d embeddings, CLIP's are {clip.embed_dim}-d")
        self.dataset, self.model, self.clip, self.cfg = dataset, encoder.to(device), clip.to(device), cfg
        self.device, self.out = device, Path(out)
        self.items = SpecItems([c.path for c in dataset.clips], cache)
        self.labels = [label_text(c.label) for c in dataset.clips]
        self._text: dict[str, torch.Tensor] = {}
        self._embed_texts(sorted(set(self.labels)))
        self.frames = self._frame_embeddings()
        self.loss_names = ("loss", "text") + (("augment",) if cfg.spec_aug else ()) + \
            (("image",) if self.frames is not None else ())

    def num_items(self) -> int:
        return len(self.items)

    def batch_items(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        return [self.items[i] for i in indices]

    def loader(self, workers: int):
        """``batches -> iterator of batches``, loading with ``workers`` DataLoader processes (0: here)."""
        if workers == 0:
            return None
        return lambda batches: iter(torch.utils.data.DataLoader(self.items, batch_sampler=batches,
                                                                num_workers=workers, collate_fn=list))

    def inputs(self, batch, gen: torch.Generator) -> StepInputs:
        """This process's clips of a step with their crops, masks and targets drawn (``gen``)."""
        specs, idx = [s for s, _ in batch], [i for _, i in batch]
        x = torch.stack([crop_or_pad(s, gen if self.cfg.random_crop else None) for s in specs])  # [b, 128, 864]
        x_aug = spec_augment(x, gen, self.cfg.freq_mask, self.cfg.time_mask) if self.cfg.spec_aug else None
        text = self._texts([self._augmented(self.labels[i], gen) for i in idx])                  # [b, D]
        if self.frames is None:
            return StepInputs(x, x_aug, text)
        none = torch.zeros(text.shape[1])
        image = torch.stack([none if self.frames[i] is None else self.frames[i] for i in idx])
        has = torch.tensor([float(self.frames[i] is not None) for i in idx])
        return StepInputs(x, x_aug, text, image, has)

    def losses(self, model: nn.Module, batch, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return objective(model, self.inputs(batch, gen), self.device)

    def save(self) -> None:
        save_audio_encoder(self.model, self.out)

    # ------------------------------------------------------------------------------------------ targets

    def _augmented(self, text: str, gen: torch.Generator) -> str:
        if self.cfg.text_aug > 0 and float(torch.rand((), generator=gen)) < self.cfg.text_aug:
            return eda(text, gen)
        return text

    def _embed_texts(self, texts: Sequence[str]) -> None:
        # One text per call: an embedding must not depend on which texts shared its batch (float rounding),
        # or a resumed run, which meets the augmented texts in another order, would drift from the original.
        for t in dict.fromkeys(texts):
            if t not in self._text:
                self._text[t] = self.clip.encode_text([t], self.cfg.templates)[0]

    def _texts(self, texts: Sequence[str]) -> torch.Tensor:
        self._embed_texts(texts)
        return torch.stack([self._text[t] for t in texts]).to(self.device)

    def _frame_embeddings(self) -> list[torch.Tensor | None] | None:
        """CLIP image embeddings of the clips' video frames (None where a clip has none), or None if no clip has."""
        if all(c.frame is None for c in self.dataset.clips):
            return None

        out: list[torch.Tensor | None] = []
        for c in self.dataset.clips:
            if c.frame is None:
                out.append(None)
                continue
            img = _read_image(c.frame).to(self.device)
            with torch.no_grad():
                img = resize_center_crop(img, self.clip.image_size)
                out.append(self.clip.encode_image(img)[0].cpu())
        return out


def _read_image(path: Path) -> torch.Tensor:
    """An image file as [1, 3, H, W] in [-1, 1] (CLIP's encode_image takes generator-style pixels)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------- the run

@dataclass
class TrainEncoderOptions(ClipChoice, DatasetChoice):
    """One ``train-encoder`` run; the defaults are the command's: the paper's recipe, except that the optimiser
    and learning-rate cycle follow the planned number of steps (``livesound.train.schedule``)."""
    folds: str | Sequence[str] | None = None   # train on these folds only, e.g. "1,2,3,4" (ESC-50), "train"
    out: str | Path = "encoder.safetensors"
    backbone: str = "resnet18"                 # timm backbone of a fresh encoder
    init: str | Path | None = None             # start from these encoder weights instead
    templates: str = "paper"                   # label prompts: "paper" (bare label) or "sound" (an ensemble)
    text_aug: float = 0.0
    spec_aug: bool = True
    run_dir: str | Path | None = None          # checkpoint, log.csv, TensorBoard (default runs/train-encoder)
    resume: bool = False
    epochs: int = 50
    batch: int = 320                           # global: split over torchrun processes
    checkpoint_every: int = 500                # steps; 0: at the end only
    seed: int = 0
    device: str = "auto"
    threads: int = 0                           # torch CPU threads (0: torch's default)
    progress: bool = True
    optimizer: str = "auto"                    # "sgd" (the paper's), "adamw", or auto: by the run's length
    lr: float | None = None                    # the cyclic learning rate's low end (None: the optimiser's)
    max_lr: float | None = None                # and its high end
    cycle_steps: int | None = None             # steps from low to high (None: the paper's, or fitted to the run)
    momentum: float = 0.9                      # SGD, cycled 0.8-0.9 with the learning rate
    weight_decay: float = 5e-4
    cache: str | Path | None = None            # spectrogram cache (default <run_dir>/spec_cache; "none": none)
    workers: int = 2                           # DataLoader processes (0: load in this one)
    amp: bool = True                           # autocast on CUDA

    def run_folder(self) -> Path:
        return Path(self.run_dir or "runs/train-encoder")

    def cache_folder(self) -> Path | None:
        if str(self.cache or "").lower() == "none":
            return None
        return Path(self.cache or self.run_folder() / "spec_cache")


def train_encoder(opts: TrainEncoderOptions, report: Report = quiet) -> dict:
    """Train (or, with ``opts.resume``, continue) an audio encoder: writes ``opts.out`` and the run folder.

    Every ``torchrun`` process calls this; only rank 0 writes files and reports. Settings that cannot work
    (too few clips for a batch, a checkpoint in the way) are refused before any network is built. Returns the
    loop's summary (steps, epochs, steps per epoch, last losses).
    """
    set_threads(opts.threads)
    if opts.workers < 0:
        raise ValueError("--workers must be >= 0")
    schedule.check_flags(opts.optimizer, opts.lr, opts.max_lr, opts.cycle_steps)
    templates = templates_named(opts.templates)
    ds = opts.load_dataset(opts.folds)
    run_dir = opts.run_folder()
    cfg = loop.LoopConfig(run_dir, opts.epochs, opts.batch, opts.seed, opts.checkpoint_every, opts.resume,
                          amp=opts.amp, progress=opts.progress,
                          identity={"clips": [str(c.path) for c in ds.clips[:3]], "backbone": opts.backbone})
    dist = loop.setup_distributed(opts.device)
    try:
        loop.check_plan(len(ds.clips), cfg, dist.world)
        clip = opts.load_clip(dist.device, report)
        task = EncoderTask(ds, _start_encoder(opts, clip.embed_dim), clip,
                           EncoderTrainConfig(templates=templates, text_aug=opts.text_aug, spec_aug=opts.spec_aug),
                           SpecCache(opts.cache_folder()), dist.device, Path(opts.out))
        steps = loop.steps_per_epoch(len(ds.clips), opts.batch, dist.world) * opts.epochs
        plan = schedule.plan(steps, opts.optimizer, opts.lr, opts.max_lr, opts.cycle_steps)
        optimizer, scheduler = schedule.build(task.model, plan, opts.momentum, opts.weight_decay)
        if dist.main:
            report(f"{ds.summary()}; {dist.world} process(es) on {dist.device}; batch {opts.batch}, "
                   f"{opts.epochs} epochs -> {opts.out}")
            report(plan.describe())
            for warning in plan.warnings:
                report(f"warning: {warning}")
        summary = loop.run(task, optimizer, scheduler, cfg, dist, loader=task.loader(opts.workers))
        if dist.main:
            last = summary["last"].get("loss", float("nan"))
            report(f"{summary['steps']} steps, last loss {last:.4f}; wrote {opts.out} and {run_dir / loop.CHECKPOINT}")
    finally:
        loop.cleanup_distributed()
    return summary


def _start_encoder(opts: TrainEncoderOptions, embed_dim: int) -> nn.Module:
    if opts.init:
        return load_audio_encoder(opts.init)
    return build_audio_encoder(AudioEncoderConfig(backbone=opts.backbone, embed_dim=embed_dim), seed=opts.seed)
