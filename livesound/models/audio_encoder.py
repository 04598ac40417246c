"""Audio encoder: a log-mel spectrogram into CLIP's image-text embedding space.

The architecture is the one of "Sound-guided Semantic Image Manipulation" (Lee et al., CVPR 2022): a
``Conv2d(1, 3, 3)`` without padding lifts the one-channel spectrogram to the three channels an image
backbone expects, then a timm backbone (``resnet18`` in the paper) whose classifier outputs the CLIP
embedding width (512 for ViT-B/32). Submodule names are the paper's (``conv``, ``feature_extractor``), so
its released state dict loads unchanged; the paper trains against L2-normalised CLIP embeddings, so
``forward`` returns the raw vector and ``embed`` the unit-norm one.

Weights come in through ``load_audio_encoder`` only: the paper's ``torch.save``'d state dict (read with
``torch.load(weights_only=True)``, never unpickling code) or livesound's own safetensors file.
"""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights import fields
from livesound.weights.checkpoint import (
    CheckpointError,
    is_safetensors,
    load_own,
    load_state_checked,
    save_own,
)
from livesound.weights.untrusted import (
    TENSOR_SLACK_BYTES,
    check_loaded_tensors,
    check_shapes_before_building,
    check_torch_zip,
)

KIND = "audio_encoder"


@dataclass
class AudioEncoderConfig:
    backbone: str = "resnet18"   # any timm model name; the paper's released weights are resnet18
    embed_dim: int = 512         # CLIP's joint width (512 for ViT-B/32)
    in_conv: bool = True         # the paper's Conv2d(1, 3, 3) stem; False feeds 1 channel to the backbone
    n_mels: int = 128            # input height; the backbone pools globally, so this only documents and
    frames: int = 512            # sizes example inputs (export, benchmarks): the paper's [1, 1, 128, 512]

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.n_mels < 3 or self.frames < 3:
            raise ValueError(f"bad audio encoder sizes: embed_dim={self.embed_dim}, "
                             f"input {self.n_mels}x{self.frames}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AudioEncoderConfig":
        """From a file's JSON, types and ranges checked (``livesound.fields``)."""
        return fields.from_dict(cls, d, _ENCODER_BOUNDS, "audio encoder config")


_ENCODER_BOUNDS = {"embed_dim": fields.Bounds(1, 8192), "n_mels": fields.Bounds(3, 4096),
                   "frames": fields.Bounds(3, 65536)}


class AudioEncoder(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        import timm

        if not timm.is_model(cfg.backbone):
            raise ValueError(f"timm has no model named {cfg.backbone!r} (see timm.list_models())")
        self.cfg = cfg
        self.conv = nn.Conv2d(1, 3, 3) if cfg.in_conv else None
        self.feature_extractor = timm.create_model(cfg.backbone, pretrained=False, num_classes=cfg.embed_dim,
                                                   in_chans=3 if cfg.in_conv else 1)

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    def example_input(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 1, self.cfg.n_mels, self.cfg.frames)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Spectrogram [B, 1, n_mels, frames] (paper: [B, 1, 128, 512], values in [0, 1]) -> [B, embed_dim], raw."""
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"expected a spectrogram batch [B, 1, n_mels, frames], got {list(spec.shape)}")
        x = self.conv(spec) if self.conv is not None else spec  # [B, 3, n_mels - 2, frames - 2]
        return self.feature_extractor(x)                        # [B, embed_dim]

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """Unit-norm embedding [B, embed_dim], comparable with CLIP's normalised text and image embeddings."""
        return F.normalize(self(spec), dim=-1)


def build_audio_encoder(cfg: AudioEncoderConfig, seed: int | None = None) -> AudioEncoder:
    """A freshly initialised encoder in eval mode; with ``seed`` every weight is reproducible."""
    if seed is None:
        return AudioEncoder(cfg).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AudioEncoder(cfg).eval()


def save_audio_encoder(enc: AudioEncoder, path: str | Path) -> Path:
    """Write ``enc`` in livesound's own format (safetensors, config in the header)."""
    return save_own(path, KIND, enc.cfg.to_dict(), enc.state_dict())


def load_audio_encoder(path: str | Path, config: AudioEncoderConfig | Mapping[str, Any] | None = None,
                       device: str | torch.device = "cpu") -> AudioEncoder:
    """The one door for encoder weights: livesound safetensors, or the paper's ``torch.save``'d state dict.

    A paper-format file may hold the bare state dict or one nested under a common key (``state_dict``,
    ``model``, ...), with or without DataParallel's ``module.`` prefix. Its architecture is read from the
    tensor names and shapes for plain timm ResNets (resnet18/34/50/101/152); other backbones need
    ``config`` (which only paper-format files use: own-format files carry their config). Every tensor's name and shape is checked; any problem raises ``CheckpointError`` naming
    the file. Torch files are read with ``weights_only=True``, so a pickle that tries to run code is refused.
    """
    path = Path(path)
    if isinstance(config, Mapping):
        config = AudioEncoderConfig.from_dict(config)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if is_safetensors(path):
        cfg_dict, state = load_own(path, KIND)
        try:
            cfg = AudioEncoderConfig.from_dict(cfg_dict)
        except (TypeError, ValueError) as e:
            raise CheckpointError(path, f"bad audio encoder config in the header ({e})") from None
    else:
        state = paper_state_dict(path)
        cfg = config or infer_config(state)
        if cfg is None:
            raise CheckpointError(path, "cannot tell the backbone from the tensor names (not a plain timm "
                                        "ResNet); pass the encoder config (backbone, embed_dim)")

    check_shapes_before_building(lambda: AudioEncoder(cfg), state, path)  # no huge model from a config
    try:
        enc = AudioEncoder(cfg)
    except ValueError as e:
        raise CheckpointError(path, str(e)) from None
    load_state_checked(enc, state, source=path)
    return enc.eval().to(device)


# ------------------------------------------------------------------------------ the paper's torch files

_NEST_KEYS = ("state_dict", "model", "model_state_dict", "audio_encoder", "audioencoder", "encoder", "net",
              "module", "weights")


def paper_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The encoder tensors of a ``torch.save`` file, un-nested and without a ``module.`` prefix."""
    obj = _torch_load_weights_only(path)
    state = _find_state(obj)
    if state is None:
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(path, f"no encoder state dict found (top level: {keys})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _torch_load_weights_only(path: Path) -> Any:
    import zipfile

    if zipfile.is_zipfile(path):
        check_torch_zip(path)  # declared record sizes against the file's bytes, before torch reads any
    try:
        with warnings.catch_warnings():  # torch warns before refusing a TorchScript archive; we say why below
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # a global outside torch's weights-only allow-list
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"names {found.group(1)}, which is" if found else "holds objects that are"
        raise CheckpointError(path, f"refused: the file {what} not tensor data and could run code when "
                                    "unpickled") from None
    except Exception as e:  # truncated zips, legacy files cut short, TorchScript archives, not torch at all
        text = " ".join(str(e).split()) or type(e).__name__
        if "TorchScript" in text:
            raise CheckpointError(path, "a TorchScript archive, which livesound does not execute; save the "
                                        "module's state_dict() instead") from None
        raise CheckpointError(path, f"unreadable torch file, truncated or not a checkpoint ({text[:160]})") from None
    check_loaded_tensors(obj, path, path.stat().st_size + TENSOR_SLACK_BYTES)  # no stride-0 giants
    return obj


def _is_state(d: Any) -> bool:
    return isinstance(d, dict) and len(d) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _find_state(obj: Any) -> dict[str, torch.Tensor] | None:
    if _is_state(obj):
        return obj
    if not isinstance(obj, dict):
        return None
    for key in _NEST_KEYS:
        if _is_state(obj.get(key)):
            return obj[key]
    nested = [v for v in obj.values() if _is_state(v)]
    return nested[0] if len(nested) == 1 else None


# timm ResNet depths: (bottleneck blocks?, blocks per stage) -> name
_RESNETS = {(False, (2, 2, 2, 2)): "resnet18", (False, (3, 4, 6, 3)): "resnet34",
            (True, (3, 4, 6, 3)): "resnet50", (True, (3, 4, 23, 3)): "resnet101",
            (True, (3, 8, 36, 3)): "resnet152"}


def infer_config(state: Mapping[str, torch.Tensor]) -> AudioEncoderConfig | None:
    """The config of a plain timm ResNet encoder from its state dict, or None if it is something else."""
    fe = "feature_extractor."
    stem, fc = state.get(fe + "conv1.weight"), state.get(fe + "fc.weight")
    if stem is None or fc is None or fc.dim() != 2 or tuple(stem.shape) != (64, stem.shape[1], 7, 7):
        return None
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"{fe}layer{stage}\.(\d+)\.", k))}
        blocks.append(len(ids))
    name = _RESNETS.get((f"{fe}layer1.0.conv3.weight" in state, tuple(blocks)))
    if name is None:
        return None
    return AudioEncoderConfig(backbone=name, embed_dim=int(fc.shape[0]), in_conv="conv.weight" in state)
