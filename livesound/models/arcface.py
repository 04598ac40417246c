"""IR-SE50 ArcFace face recogniser, for the identity loss of latent optimisation on faces.

The layout is InsightFace's IR-SE50 as TreB1eN's PyTorch port names it, which StyleCLIP and the paper load
from ``model_ir_se50.pth`` (criteria/id_loss.py: ``Backbone(input_size=112, num_layers=50, mode='ir_se')``):
a 3x3 stem (``input_layer``), 24 bottleneck units with squeeze-excitation (``body.0`` .. ``body.23``; 3, 4,
14 and 3 units of depth 64, 128, 256, 512, the first unit of each stage striding by 2), and a head
(``output_layer``: BN, dropout, flatten, Linear 512*7*7 -> 512, BN1d) whose output is L2-normalised.

The weights are never downloaded: the user passes the file (``--id-weights``). It is read with
``torch.load(weights_only=True)`` and every tensor's name and shape is checked; anything else raises
``CheckpointError`` with one line naming the file and the problem.

Identity loss (StyleCLIP's ``IDLoss``): images are average-pooled to 256 px, the face region
``[35:223, 32:220]`` (rows, columns) is cropped, pooled to 112 px, embedded, and the loss is
``1 - <f(generated), f(source)>`` with the source features fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livesound.weights.checkpoint import CheckpointError, load_state_checked
from livesound.weights.untrusted import TENSOR_SLACK_BYTES, check_loaded_tensors

FACE_CROP = (slice(35, 223), slice(32, 220))  # rows, columns of a 256 px FFHQ-aligned face (StyleCLIP)
WEIGHTS_HINT = ("the identity loss needs InsightFace's IR-SE50 ArcFace weights (model_ir_se50.pth, as "
                "StyleCLIP uses; TreB1eN/InsightFace_Pytorch); download it where you have a network and pass "
                "--id-weights PATH")


@dataclass
class ArcFaceConfig:
    input_size: int = 112
    stages: tuple[tuple[int, int], ...] = ((64, 3), (128, 4), (256, 14), (512, 3))  # (depth, units): IR-50
    embed_dim: int = 512
    se_reduction: int = 16
    drop_ratio: float = 0.6  # StyleCLIP's; inactive in eval mode


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class BottleneckIRSE(nn.Module):
    """BN -> conv3x3 -> PReLU -> conv3x3 (stride) -> BN -> SE, plus a shortcut (subsampling or 1x1 conv + BN)."""

    def __init__(self, cin: int, depth: int, stride: int, se_reduction: int):
        super().__init__()
        # Index positions are the checkpoint's names (res_layer.0 .. res_layer.5, shortcut_layer.0/1).
        if cin == depth:
            self.shortcut_layer = nn.MaxPool2d(1, stride)  # a 1x1 max pool: plain subsampling, no weights
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth),
            SqueezeExcite(depth, se_reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class ArcFace(nn.Module):
    def __init__(self, cfg: ArcFaceConfig = ArcFaceConfig()):
        super().__init__()
        self.cfg = cfg
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units, cin = [], 64
        for depth, n in cfg.stages:
            for i in range(n):
                units.append(BottleneckIRSE(cin, depth, 2 if i == 0 else 1, cfg.se_reduction))
                cin = depth
        self.body = nn.Sequential(*units)
        side = cfg.input_size // 2 ** len(cfg.stages)  # 7 at 112 px
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Dropout(cfg.drop_ratio), nn.Flatten(),
            nn.Linear(cin * side * side, cfg.embed_dim), nn.BatchNorm1d(cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Faces [B, 3, 112, 112] in [-1, 1] -> unit-norm identity features [B, 512]."""
        torch._assert(x.shape[-1] == self.cfg.input_size and x.shape[-2] == self.cfg.input_size,
                      f"ArcFace expects {self.cfg.input_size} px faces")
        return F.normalize(self.output_layer(self.body(self.input_layer(x))), dim=-1)


def load_arcface(path: str | Path | None, device: str | torch.device = "cpu") -> ArcFace:
    """IR-SE50 weights from a user-supplied ``model_ir_se50.pth`` (a state dict; ``module.`` prefixes allowed)."""
    if path is None:
        raise CheckpointError("--id-weights", f"not given: {WEIGHTS_HINT}")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, f"no such file: {WEIGHTS_HINT}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle, zip and unpickler errors alike mean an unusable file)
        raise CheckpointError(path, f"not a readable weights-only torch file ({str(e).splitlines()[0]})") from None
    check_loaded_tensors(state, path, path.stat().st_size + TENSOR_SLACK_BYTES)  # no stride-0 giants
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "not a state dict of tensors (expected IR-SE50's model_ir_se50.pth)")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    model = ArcFace()
    load_state_checked(model, state, source=path)
    return model.eval().requires_grad_(False).to(device)


def face_crop(img: torch.Tensor, size: int = 112) -> torch.Tensor:
    """Generator images [B, 3, H, W] -> the face region at ``size`` px, as StyleCLIP's IDLoss crops it."""
    if img.shape[-1] != 256 or img.shape[-2] != 256:
        img = F.adaptive_avg_pool2d(img, (256, 256))
    return F.adaptive_avg_pool2d(img[:, :, FACE_CROP[0], FACE_CROP[1]], (size, size))


class IdentityLoss(nn.Module):
    """``1 - cos`` between the identity features of generated faces and of fixed source faces, per image."""

    def __init__(self, arcface: ArcFace):
        super().__init__()
        self.arcface = arcface.eval().requires_grad_(False)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        return self.arcface(face_crop(img, self.arcface.cfg.input_size))  # [B, 512], unit norm

    def forward(self, img: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
        """[B] losses; ``source_features`` [B or 1, 512] from ``features`` on the source images (no gradient)."""
        return 1 - (self.features(img) * source_features.detach()).sum(-1)
