"""CLIP, frozen, over open_clip: the embedding space the audio encoder targets and the optimiser scores in.

The paper uses OpenAI's ViT-B/32 (``clip.load("ViT-B/32")``); in open_clip that is ``ViT-B-32`` with the
``openai`` tag, whose weights need QuickGELU (the tag's config says so and ``load`` follows it).

Weights are never downloaded implicitly: ``ClipModel.load`` looks in the local file given, or in the cache
open_clip itself fills (the Hugging Face hub cache), and otherwise raises ``ClipUnavailable`` saying what is
missing and how to fetch it on a machine with a network. ``ClipModel.tiny`` is a small randomly initialised
CLIP with the real tokenizer and CLIP's 512-d joint space: for tests and the ``demo`` preset, untrained, so
its similarities carry no meaning.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights.checkpoint import CheckpointError

DEFAULT_MODEL, DEFAULT_WEIGHTS = "ViT-B-32", "openai"

# The paper tokenizes the bare class label (soundclip/train.py: clip.tokenize(text) on the label taken from
# the file name), so its audio embeddings were pulled towards "{}" text embeddings: the faithful default.
PAPER_TEMPLATES: tuple[str, ...] = ("{}",)
# Prompt ensemble for sound labels (CLIP-style template averaging); may help zero-shot text queries.
SOUND_TEMPLATES: tuple[str, ...] = ("{}", "a sound of {}.", "the sound of {}.", "a recording of {}.",
                                    "the sound of a {}.", "a loud sound of {}.", "a quiet sound of {}.")

# A 2-layer ViT and text transformer, width 64, in CLIP's real 512-d space with the real BPE vocabulary.
TINY_CONFIG = dict(
    embed_dim=512,
    vision_cfg=dict(image_size=224, patch_size=32, width=64, layers=2, head_width=32),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2),
)


class ClipUnavailable(CheckpointError):
    """CLIP weights that are not on this machine; the message says how to get them."""


class ClipModel(nn.Module):
    """A frozen open_clip model with the paper's text and image paths. Embeddings are unit norm, [N, D]."""

    def __init__(self, model: nn.Module, tokenizer, name: str, weights: str | None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.name, self.weights = tokenizer, name, weights
        pre = getattr(model.visual, "preprocess_cfg", None) or {}
        import open_clip

        mean = pre.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = pre.get("std", open_clip.OPENAI_DATASET_STD)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------------------------------- building

    @classmethod
    def tiny(cls, seed: int = 0) -> "ClipModel":
        """A small CLIP with random weights from ``seed``. UNTRAINED: right shapes, meaningless similarities."""
        import open_clip

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.CLIP(**TINY_CONFIG)
        return cls(model, open_clip.get_tokenizer(DEFAULT_MODEL), name="tiny", weights=None)

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | torch.device = "cpu",
             quick_gelu: bool | None = None, cache_dir: str | None = None,
             allow_download: bool = False) -> "ClipModel":
        """An open_clip model with pretrained weights, from a local file or open_clip's cache only.

        ``weights``: a path to a state dict (``.safetensors``, or a torch file read with weights_only=True),
        or an open_clip pretrained tag for ``name`` (default ``openai``, the paper's). A tag is looked up in
        the Hugging Face cache open_clip downloads into (``cache_dir`` or ``$HF_HUB_CACHE``); nothing is
        fetched unless ``allow_download``. ``quick_gelu`` defaults to what the tag was trained with; give
        it for local files of OpenAI weights (or name the model ``ViT-B-32-quickgelu``).
        """
        import open_clip

        weights = DEFAULT_WEIGHTS if weights is None else weights
        if open_clip.get_model_config(name.replace("/", "-")) is None:
            raise ValueError(f"open_clip has no model {name!r}; some: {', '.join(open_clip.list_models()[:12])}, ...")
        tag_cfg = {} if _looks_like_path(weights) else open_clip.get_pretrained_cfg(name, str(weights))
        if tag_cfg:
            file = _cached_weights(tag_cfg, cache_dir)
            if file is None and allow_download:
                file = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
            if file is None:
                raise ClipUnavailable(f"CLIP {name} pretrained={weights}", _missing_message(name, str(weights),
                                                                                         tag_cfg, cache_dir))
            if quick_gelu is None:
                quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        else:
            file = Path(weights)
            if not file.is_file():
                if _looks_like_path(weights):
                    raise CheckpointError(file, "no such CLIP weights file")
                tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
                raise ClipUnavailable(f"CLIP {name} pretrained={weights}",
                                      f"neither a file nor an open_clip tag for {name} (tags: {tags})")
        try:
            model = open_clip.create_model(name, pretrained=str(file), device=device,
                                           force_quick_gelu=bool(quick_gelu), weights_only=True)
        except Exception as e:
            raise CheckpointError(file, _load_problem(name, e)) from None
        return cls(model, open_clip.get_tokenizer(name), name=name, weights=str(weights)).to(device)

    # ------------------------------------------------------------------------------------------ properties

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if isinstance(self.model.text_projection, torch.Tensor) \
            else int(self.model.visual.output_dim)

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def logit_scale(self) -> float:
        """exp of the learned temperature (100 for OpenAI's CLIP). The paper's audio losses use exp(0.07) instead."""
        return float(self.model.logit_scale.exp())

    @property
    def device(self) -> torch.device:
        return self.mean.device

    # ------------------------------------------------------------------------------------------- encoders

    def encode_text(self, texts: Sequence[str], templates: Sequence[str] = PAPER_TEMPLATES) -> torch.Tensor:
        """Texts -> [N, D] unit norm: each text through every template, embeddings normalised, averaged, renormalised."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts or not templates:
            raise ValueError("encode_text needs at least one text and one template")
        prompts = [t.format(text) for text in texts for t in templates]
        tokens = self.tokenizer(prompts).to(self.device)                      # [N * T, context]
        with torch.no_grad():
            e = F.normalize(self.model.encode_text(tokens).float(), dim=-1)   # [N * T, D]
        e = e.view(len(texts), len(templates), -1).mean(1)                    # [N, D]
        return F.normalize(e, dim=-1)

    def encode_image(self, img: torch.Tensor, paper_resize: bool = False, clip_normalize: bool = True) -> torch.Tensor:
        """Generator images [B, 3, H, W] in [-1, 1] -> [B, D] unit norm, differentiable w.r.t. ``img``.

        ``paper_resize``: the paper's x7 nearest upsampling then average pooling (kernel H/32 at 224 px)
        instead of an antialiased bicubic resize with a centre crop. ``clip_normalize=False`` passes the
        pixels on unchanged, as the paper does (its generator output goes into CLIP without CLIP's mean/std).
        """
        if img.dim() != 4 or img.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {list(img.shape)}")
        x = paper_resize_to(img, self.image_size) if paper_resize else resize_center_crop(img, self.image_size)
        if clip_normalize:
            x = ((x + 1) / 2 - self.mean) / self.std
        return F.normalize(self.model.encode_image(x.to(self.mean.dtype)).float(), dim=-1)


def resize_center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """Shortest side to ``size`` (bicubic, antialiased), then the centre ``size`` x ``size``, as CLIP's preprocess."""
    h, w = img.shape[-2:]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        img = F.interpolate(img, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
        top, left = (nh - size) // 2, (nw - size) // 2
        img = img[..., top:top + size, left:left + size]
    return img


def paper_resize_to(img: torch.Tensor, size: int) -> torch.Tensor:
    """The paper's resize: nearest upsampling x7, then average pooling with kernel 7*H/size (H/32 at 224)."""
    h, w = img.shape[-2:]
    if h != w or (7 * h) % size:
        raise ValueError(f"paper_resize needs square images with 7*H divisible by {size}, got {h}x{w}")
    k = 7 * h // size
    return F.avg_pool2d(F.interpolate(img, scale_factor=7, mode="nearest"), kernel_size=k)


# -------------------------------------------------------------------------------------- finding weights

def _looks_like_path(weights: str | Path) -> bool:
    s = str(weights)
    return isinstance(weights, Path) or os.sep in s or s.endswith((".pt", ".pth", ".bin", ".safetensors"))


def _hf_candidates(tag_cfg: dict) -> tuple[str, list[str]] | None:
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)  # "org/repo/" names the default file, "org/repo/file" a given one
    if not filename:
        return repo, [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
    safe = [filename[:-4] + ".safetensors"] if filename.endswith((".bin", ".pth")) else []
    return repo, safe + [filename]


def _cached_weights(tag_cfg: dict, cache_dir: str | None) -> str | None:
    """The local file open_clip would load for this tag, without touching the network, or None."""
    if "file" in tag_cfg and Path(tag_cfg["file"]).is_file():
        return tag_cfg["file"]
    hf = _hf_candidates(tag_cfg)
    if hf is not None:
        from huggingface_hub import try_to_load_from_cache

        repo, names = hf
        for name in names:
            hit = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(hit, str) and Path(hit).is_file():
                return hit
    return None


def _missing_message(name: str, tag: str, tag_cfg: dict, cache_dir: str | None) -> str:
    from huggingface_hub import constants

    hf = _hf_candidates(tag_cfg)
    where = f"{hf[0]} ({' or '.join(hf[1])}) in {cache_dir or constants.HF_HUB_CACHE}" if hf else tag_cfg.get("url", "?")
    return (f"weights not on this machine (looked for {where}). On a machine with a network, fill the same "
            f"cache with: python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{tag}')\" "
            f"(or huggingface-cli download {hf[0] if hf else '<repo>'}), then copy it here; or pass a local "
            f"weights file with --clip PATH")


def _load_problem(name: str, e: BaseException) -> str:
    """One line for a CLIP weights file open_clip could not load."""
    text = " ".join(str(e).split()) or type(e).__name__
    if "TorchScript" in text:
        return ("a TorchScript archive (the OpenAI clip package's format), which livesound does not execute; "
                "use open_clip's 'openai' tag, the same weights as a plain state dict")
    if isinstance(e, pickle.UnpicklingError):  # torch.load(weights_only=True) refused a global
        found = re.search(r"GLOBAL ([\w.]+)", text)
        what = f"names {found.group(1)}, which is" if found else "holds objects that are"
        return f"cannot load as CLIP {name}: refused, the file {what} not tensor data and could run code when unpickled"
    return f"cannot load as CLIP {name}: {text[:240]}"
