"""``livesound bank build``: sounds and texts into a direction bank (`livesound.live.bank`), one optimisation each.

Every anchor runs the paper's latent optimisation (`livesound.offline.optimize`: Adam with the cosine-ramped
learning rate, ``1 - cos(CLIP_image(G(w)), e) * scale`` plus the L2 pull to the source) from the preset's source
latent (seed 0, the preset's truncation: the latent `livesound live` starts from), toward:
- a sound's embedding as the live path hears it: the sound cut into windows of the live window length (hop an
  eighth of a window, ~0.3 s), each window's log-mel normalised and zero-padded exactly as ``Pipeline.features``
  does, encoded, and the unit embeddings averaged. Live, the bank compares the listener's (smoothed) embedding
  with these, so an anchor is the centre of its sound as the listener hears it at any moment (the paper's
  whole-clip preprocessing would not match it, and one window would match only one phase of a rhythm);
- a text's CLIP embedding (the paper's prompt templates).
The anchor keeps its unit embedding and its offset (optimised w+ minus the source w+). With ``centre`` the
optimisation aims at the anchor's embedding minus the mean of its kind's anchors instead (``targets_for``).

Resumable: each finished anchor is a small file in ``<out>.parts/`` (embedding, offset and, beside it, its
image), named by the anchor and a key over everything that changes its result (its sound's bytes or its text, the
optimisation settings, the fingerprints of the generator, encoder and CLIP). A rerun skips the anchors whose
part exists; the parts stay after the bank is written, so adding sounds later optimises only the new ones.
Under ``torchrun`` anchor i goes to rank ``i % world`` (a fixed split, so no rank needs to see another's
progress); after a barrier rank 0 gathers the parts and writes the bank (and the images).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from livesound.audio.features import HOP, PAPER_FRAMES, SAMPLE_RATE, StreamLogMel, to_encoder_input, unit_db
from livesound.audio.io import load_audio
from livesound.audio.sources import SYNTH_KINDS, SynthSource
from livesound.files import atomic_write, save_png
from livesound.live.backends import fingerprint
from livesound.live.bank import ANCHOR_KINDS, Bank, calibrated_temperature, save_bank
from livesound.offline.networks import ModelOptions, load_networks
from livesound.offline.optimize import OptimizeConfig, Target, TargetPart, optimize, source_latent
from livesound.offline.targets import audio_files, slug
from livesound.weights.checkpoint import CheckpointError, load_own, save_own

SYNTH_SECONDS = 6.0          # of a synthetic source's signal per anchor: windows at many phases of its period
PART_KIND = "bank-anchor"


@dataclass
class Anchor:
    kind: str                         # "sound" or "text"
    label: str                        # file stem, synth kind or the text
    source: str                       # file path, "synth:<kind>" or the text

    @property
    def file_name(self) -> str:
        """The label as a file name (``<images>/<file_name>.png``)."""
        return re.sub(r"[^\w.\- ]+", "_", self.label).strip(" .") or "anchor"


@dataclass
class BankSettings:
    steps: int = 300                  # the paper's optimisation defaults
    lr: float = 0.05
    l2: float = 0.008
    seed: int = 0                     # the source latent (live's default seed)
    truncation: float = 0.7
    window_s: float = 2.5             # the live window a sound is heard through
    batch: int = 8                    # anchors optimised together
    centre: bool = False              # optimise toward e_k minus the mean of its kind (see ``targets_for``)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.lr <= 0 or self.l2 < 0 or self.window_s <= 0:
            raise ValueError("steps and batch must be at least 1, lr and window positive, l2 not negative")


@dataclass
class BankOptions:
    """``livesound bank build``'s job."""
    models: ModelOptions = field(default_factory=ModelOptions)
    sounds: Sequence[str] = ()        # files or folders of .wav/.flac/.ogg
    synth: Sequence[str] = ()         # SynthSource kinds
    texts: Sequence[str] = ()
    settings: BankSettings = field(default_factory=BankSettings)
    window_s: float | None = None     # None: the preset's live window
    seed: int = 0
    trunc: float | None = None        # None: the preset's truncation
    out: str = "bank.safetensors"
    images: str | None = None         # folder for <label>.png and contact_sheet.png


@dataclass
class BankSummary:
    out: Path | None                  # None on ranks other than 0
    anchors: int = 0
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images: Path | None = None

    @property
    def seconds_per_anchor(self) -> float:
        return self.seconds / len(self.built) if self.built else 0.0


# -------------------------------------------------------------------------------------------------- anchors

def plan_anchors(sounds: Sequence[str] = (), synth: Sequence[str] = (), texts: Sequence[str] = ()) -> list[Anchor]:
    """The anchors in order: sound files (folders expanded, sorted), synthetic sources, texts. Labels must be
    unique (they name the images and the overlay's entries)."""
    anchors = [Anchor("sound", f.stem, str(f)) for s in sounds for f in audio_files(s)]
    for kind in synth:
        if kind not in SYNTH_KINDS:
            raise ValueError(f"unknown synthetic source {kind!r}; choose from {', '.join(SYNTH_KINDS)}")
        anchors.append(Anchor("sound", kind, f"synth:{kind}"))
    for text in texts:
        if not text.strip():
            raise ValueError("an empty text anchor (check the separators of --texts)")
        anchors.append(Anchor("text", text.strip(), text.strip()))
    if not anchors:
        raise ValueError("give anchors: --sounds FILE|DIR, --synth KINDS and/or --texts 'a;b'")
    seen: dict[str, Anchor] = {}
    for a in anchors:
        for name in {a.label, a.file_name}:
            if name in seen:
                raise ValueError(f"two anchors share the name {name!r} ({seen[name].source} and {a.source}); "
                                 "rename one")
            seen[name] = a
    return anchors


def anchor_wave(anchor: Anchor) -> np.ndarray:
    """A sound anchor's samples, mono float32 at 44.1 kHz."""
    if anchor.source.startswith("synth:"):
        return SynthSource(anchor.source[6:]).render(0, int(SYNTH_SECONDS * SAMPLE_RATE))
    return load_audio(anchor.source, sr=SAMPLE_RATE)


def window_inputs(wave: np.ndarray, window_s: float) -> torch.Tensor:
    """The encoder inputs of the live windows over ``wave``: [N, 1, 128, 512] (see the module docstring)."""
    n = int(min(PAPER_FRAMES, max(8, round(window_s * SAMPLE_RATE / HOP))))  # as Pipeline.window_frames
    stream = StreamLogMel(capacity=max(PAPER_FRAMES, len(wave) // HOP + 2))
    stream.push(wave)
    power = stream.power(min(stream.capacity, max(1, stream.frames_total)))   # [128, F]
    total = power.shape[-1]
    ends = sorted({min(total, e) for e in range(n, total + n // 8, max(1, n // 8))} | {total})
    specs = [unit_db(power[None, :, max(0, e - n):e])[0] for e in ends]
    return torch.cat([to_encoder_input(F.pad(s, (0, PAPER_FRAMES - s.shape[-1]))[None]) for s in specs])


def sound_embedding(encoder, wave: np.ndarray, window_s: float) -> torch.Tensor:
    """A sound as the live listener hears it: the mean of its windows' unit embeddings, unit norm, [D]."""
    x = window_inputs(wave, window_s)
    device = next(encoder.parameters()).device
    with torch.no_grad():  # a few windows at a time: a long file has hundreds
        e = torch.cat([F.normalize(encoder(x[i:i + 16].to(device)).float(), dim=-1).cpu()
                       for i in range(0, x.shape[0], 16)])
    return F.normalize(e.mean(0), dim=-1)


def anchor_identity(anchor: Anchor) -> str:
    """What the anchor's result depends on besides the settings: its file's bytes, its synth kind or its text."""
    if anchor.kind == "sound" and not anchor.source.startswith("synth:"):
        return hashlib.sha256(Path(anchor.source).read_bytes()).hexdigest()
    return anchor.source


# ---------------------------------------------------------------------------------------------------- build

def build_bank(opts: BankOptions, log: Callable[[str], None] = lambda s: None) -> BankSummary:
    """``livesound bank build``: plan, load the networks (on this rank's device under torchrun), build."""
    from livesound.train.loop import cleanup_distributed, setup_distributed

    anchors = plan_anchors(opts.sounds, opts.synth, opts.texts)
    for a in anchors:
        if a.kind == "sound" and not a.source.startswith("synth:"):
            load_audio(a.source)  # every file is checked before minutes of loading networks
    dist = setup_distributed(opts.models.device)
    try:
        nets = load_networks(replace(opts.models, device=str(dist.device)),
                             need_encoder=any(a.kind == "sound" for a in anchors), log=log)
        psi = nets.preset.truncation_psi if opts.trunc is None else opts.trunc
        window = opts.window_s if opts.window_s is not None else preset_window(nets.preset)
        settings = replace(opts.settings, seed=opts.seed, truncation=psi, window_s=window)
        return build_bank_for(nets.G, nets.encoder, nets.clip, anchors, settings, opts.out, images=opts.images,
                              preset=nets.preset.name, noise_mode=nets.preset.noise_mode, rank=dist.rank,
                              world=dist.world, log=log)
    finally:
        cleanup_distributed()


def preset_window(preset) -> float:
    """The live window of ``preset`` (its ``live.window_s``, else the live default)."""
    from livesound.live.pipeline import LiveSettings

    return float(preset.extra.get("live", {}).get("window_s", LiveSettings.window_s))


def build_bank_for(G, encoder, clip, anchors: Sequence[Anchor], settings: BankSettings, out: str | Path, *,
                   images: str | Path | None = None, preset: str = "", noise_mode: str = "const",
                   rank: int = 0, world: int = 1, progress: bool = True,
                   log: Callable[[str], None] = lambda s: None) -> BankSummary:
    """Optimise this rank's unfinished anchors, then (rank 0) gather every part into the bank file ``out``."""
    from tqdm import tqdm

    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    prints = {"generator": fingerprint(G), "clip": fingerprint(clip),
              "encoder": fingerprint(encoder) if encoder is not None else None}
    embed = lambda i: anchor_embedding(anchors[i], encoder, clip, settings.window_s)  # noqa: E731
    # Centred targets depend on every anchor of the kind: all are embedded first (cheap next to optimising).
    embs = {i: embed(i) for i in range(len(anchors))} if settings.centre else {}
    aims = targets_for(anchors, embs) if settings.centre else {}
    files = [parts / f"{slug(a.label, 40)}-{_key(a, settings, prints, noise_mode, aims.get(i))}"
             for i, a in enumerate(anchors)]
    mine = [i for i in range(len(anchors)) if i % world == rank]
    todo = [i for i in mine if not (files[i].with_suffix(".safetensors")).is_file()]
    summary = BankSummary(out=None, anchors=len(anchors))
    summary.reused = [anchors[i].label for i in mine if i not in todo]
    if summary.reused:
        log(f"reusing {len(summary.reused)} finished anchor(s) from {parts}")
    if todo:
        log(f"optimising {len(todo)} anchor(s), {settings.steps} steps each, {settings.batch} at a time, from "
            f"seed {settings.seed} at truncation {settings.truncation} ({G.resolution} px)")
    source = source_latent(G, seed=settings.seed, truncation=settings.truncation)
    cfg = OptimizeConfig(steps=settings.steps, lr=settings.lr, l2_lambda=settings.l2, truncation=settings.truncation,
                         seed=settings.seed, noise_mode=noise_mode)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="anchor", disable=not progress or rank != 0 or not todo, file=sys.stderr)
    for start in range(0, len(todo), settings.batch):
        chunk = todo[start:start + settings.batch]
        for i in chunk:
            embs.setdefault(i, embed(i))
        targets = [Target(anchors[i].file_name, [TargetPart("audio" if anchors[i].kind == "sound" else "text",
                                                            aims.get(i, embs[i]), label=anchors[i].label)])
                   for i in chunk]
        result = optimize(G, clip, source, targets, cfg, progress=progress and rank == 0)
        for b, i in enumerate(chunk):
            _write_part(files[i], anchors[i], embs[i], result.ws[b] - result.source_ws[0], result.images[b],
                        result.log[b][-1]["clip"])
            summary.built.append(anchors[i].label)
        bar.update(len(chunk))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    if world > 1:
        torch.distributed.barrier()  # every rank's parts are on disk
    if rank != 0:
        return summary
    bank = _gather(files, anchors, prints["generator"], {
        **asdict(settings), "preset": preset, "noise_mode": noise_mode, "encoder": prints["encoder"],
        "clip": prints["clip"], "resolution": int(G.resolution)})
    summary.out = save_bank(out, bank)
    if images is not None:
        summary.images = write_images(Path(images), anchors, files, source_image(G, source.ws, noise_mode))
    return summary


def targets_for(anchors: Sequence[Anchor], embs: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Centred aims: each anchor's embedding minus the mean of its kind's, renormalised (a kind of one anchor
    keeps its own embedding).

    An untrained encoder puts every sound within cos ~0.95 of every other, and trained CLIP spaces crowd each
    modality into a narrow cone too: aiming at the raw embeddings then pulls every anchor to nearly the same
    picture. What tells two anchors apart is their difference from the common part, as StyleCLIP's global
    directions take a text's difference from a neutral text. Live matching still uses the raw embeddings.
    """
    aims = {}
    for kind in ANCHOR_KINDS:
        idx = [i for i, a in enumerate(anchors) if a.kind == kind]
        mean = torch.stack([embs[i] for i in idx]).mean(0) if len(idx) > 1 else 0.0
        for i in idx:
            aims[i] = F.normalize(embs[i] - mean, dim=-1)
    return aims


def _key(anchor: Anchor, settings: BankSettings, prints: dict, noise_mode: str,
         aim: torch.Tensor | None = None) -> str:
    what = {"aim": None if aim is None else hashlib.sha256(aim.float().numpy().tobytes()).hexdigest(),
            "kind": anchor.kind, "label": anchor.label, "identity": anchor_identity(anchor),
            "settings": {k: v for k, v in asdict(settings).items() if k != "batch"}, "noise_mode": noise_mode,
            "generator": prints["generator"], "clip": prints["clip"],
            "encoder": prints["encoder"] if anchor.kind == "sound" else None}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def anchor_embedding(anchor: Anchor, encoder, clip, window_s: float) -> torch.Tensor:
    """The anchor's unit embedding [D] on the CPU: a sound as the listener hears it, a text through CLIP."""
    if anchor.kind == "sound":
        return sound_embedding(encoder, anchor_wave(anchor), window_s).cpu()
    with torch.no_grad():
        return F.normalize(clip.encode_text([anchor.source])[0].float(), dim=-1).cpu()


def _write_part(base: Path, anchor: Anchor, embedding: torch.Tensor, offset: torch.Tensor, image: np.ndarray,
                clip_loss: float) -> None:
    """The anchor's image, then its tensors: a part whose .safetensors exists is complete."""
    save_png(image, base.with_suffix(".png"))
    save_own(base.with_suffix(".safetensors"), PART_KIND,
             {"label": anchor.label, "kind": anchor.kind, "source": anchor.source, "clip_loss": float(clip_loss)},
             {"embedding": embedding.float().cpu(), "offset": offset.float().cpu()})


def _gather(files: Sequence[Path], anchors: Sequence[Anchor], generator: str, settings: dict) -> Bank:
    embs, offs = [], []
    for base, a in zip(files, anchors):
        path = base.with_suffix(".safetensors")
        if not path.is_file():
            raise CheckpointError(path, f"anchor {a.label!r} was not built (did a rank fail?); run again to resume")
        config, state = load_own(path, PART_KIND)
        embs.append(state["embedding"])
        offs.append(state["offset"])
    emb = torch.stack(embs)
    return Bank(emb, torch.stack(offs), [a.label for a in anchors], [a.kind for a in anchors],
                [a.source for a in anchors], generator, calibrated_temperature(emb), settings)


# --------------------------------------------------------------------------------------------------- images

def source_image(G, ws: torch.Tensor, noise_mode: str = "const") -> np.ndarray:
    from livesound.offline.generate import to_uint8

    with torch.no_grad():
        return to_uint8(G.synthesis(ws, noise_mode=noise_mode))[0]


def write_images(folder: Path, anchors: Sequence[Anchor], parts: Sequence[Path], source: np.ndarray) -> Path:
    """``<folder>/<label>.png`` per anchor and ``contact_sheet.png``: the source, then every anchor, labelled."""
    from PIL import Image

    tiles = [("source", source)]
    for a, base in zip(anchors, parts):
        img = np.asarray(Image.open(base.with_suffix(".png")).convert("RGB"))
        save_png(img, folder / f"{a.file_name}.png")
        tiles.append((a.label, img))
    sheet = contact_sheet(tiles)
    atomic_write(folder / "contact_sheet.png", lambda tmp: sheet.save(tmp, format="PNG"))
    return folder


def contact_sheet(tiles: Sequence[tuple[str, np.ndarray]], cell: int = 192):
    """A grid of labelled images (each scaled to ``cell`` px) as a PIL image."""
    from PIL import Image, ImageDraw

    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    strip = 18
    sheet = Image.new("RGB", (cols * cell, rows * (cell + strip)), "black")
    draw = ImageDraw.Draw(sheet)
    for n, (label, img) in enumerate(tiles):
        x, y = (n % cols) * cell, (n // cols) * (cell + strip)
        sheet.paste(Image.fromarray(img).resize((cell, cell), Image.BILINEAR), (x, y))
        draw.text((x + 4, y + cell + 3), label[:28], fill="white")
    return sheet
