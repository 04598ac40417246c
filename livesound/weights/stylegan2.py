"""StyleGAN2 generator checkpoints read safely into plain data: a config dict and tensors in livesound's names.

Formats, recognised by content (the extension only breaks a tie):
- livesound safetensors (``livesound_kind = generator``);
- rosinality ``.pt``: ``torch.save({"g_ema": state_dict, "latent_avg"?: w, ...})``, read with
  ``torch.load(weights_only=True)``;
- NVIDIA StyleGAN2-ADA ``.pkl``: ``{"G_ema": persistent Generator, ...}``, read by ``livesound.weights.safe_pickle``.
The architecture is inferred from tensor names and shapes, so no foreign config is trusted blindly. The result
is data only (``livesound.models.stylegan2.load_generator`` builds the network from it): a checkpoint that stores
no average w comes back without ``mapping.w_avg``, and the model side estimates it once the file has passed every
check.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

from livesound.weights.checkpoint import CheckpointError, is_safetensors, load_own
from livesound.weights.safe_pickle import (
    PersistentObject,
    TensorSizeError,
    UnsafePickleError,
    safe_load_pickle,
)
from livesound.weights.untrusted import TENSOR_SLACK_BYTES, check_loaded_tensors, check_torch_zip

# The first bytes of torch's legacy (pre-zip) serialisation: the pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
ROSINALITY_LR_MUL = 0.01  # rosinality's Generator(lr_mlp=0.01); its state dict cannot tell


def read_generator_checkpoint(path: Path | str, mapping_lr_mul: float | None = None
                              ) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config dict, state in livesound's names); ``mapping_lr_mul`` overrides what a rosinality file implies."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        raise CheckpointError(path, f"empty or truncated file ({path.stat().st_size} bytes)")
    if is_safetensors(path):
        config, state = load_own(path, "generator")
        if not isinstance(config, dict):
            raise CheckpointError(path, f"bad generator config (a JSON {type(config).__name__}, not an object)")
        return config, state
    try:
        if head.startswith(b"PK\x03\x04") or head.startswith(_LEGACY_TORCH_MAGIC):
            return _from_rosinality(path, _torch_load(path), mapping_lr_mul)
        if head[:1] == b"\x80":
            return _from_nvidia(path, _nvidia_load(path))
    except (ValueError, IndexError, TypeError, AttributeError, KeyError, RuntimeError) as e:
        raise CheckpointError(path, f"unusable generator layout ({type(e).__name__}: {e})") from None
    raise CheckpointError(path, "not a StyleGAN2 checkpoint (expected a rosinality .pt, an NVIDIA .pkl "
                                "or a livesound .safetensors file)")


def _torch_load(path: Path) -> dict:
    import argparse

    if zipfile.is_zipfile(path):
        check_torch_zip(path)  # declared record sizes against the file's bytes, before torch reads any
    # Rosinality's training checkpoints also pickle their argparse.Namespace: plain data, allowed.
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split("\n")[0]
        raise CheckpointError(path, f"refused: the file asks to run code or build objects that are not plain "
                                    f"data ({first}); nothing from it was executed") from None
    except Exception as e:  # noqa: BLE001 - torch's reader on damaged bytes raises anything (KeyError, Assertion...)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(path, f"truncated or corrupt torch file ({first})") from None
    # Before any tensor is used (the lr-multiplier guess and the fp32 copies read them): no stride-0 or
    # overlapping giants, and no more values than the file has bytes.
    check_loaded_tensors(obj, path, path.stat().st_size + TENSOR_SLACK_BYTES)
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"expected a dict with 'g_ema', found {type(obj).__name__}")
    return obj


def _nvidia_load(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = safe_load_pickle(f)
    except UnsafePickleError as e:
        hint = ""
        if e.global_name.startswith("dnnlib.tflib"):
            hint = (" This is a TensorFlow-era StyleGAN2 pickle; convert it to PyTorch first (NVIDIA's "
                    "stylegan2-ada-pytorch legacy.py or rosinality's convert_weight.py) where TensorFlow runs.")
        raise CheckpointError(path, f"refused: it names {e.global_name}, which is not a data constructor; "
                                    f"nothing from it was executed.{hint}") from None
    except TensorSizeError as e:
        raise CheckpointError(path, str(e)) from None
    except Exception as e:  # noqa: BLE001 - damaged bytes reach torch's storage reader, which raises anything
        first = (str(e).strip().splitlines() or [""])[0][:200]  # torch's own errors run to many lines
        raise CheckpointError(path, f"truncated or corrupt pickle ({type(e).__name__}: {first})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"expected a dict with 'G_ema', found {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------- rosinality

def _from_rosinality(path: Path, ckpt: dict, mapping_lr_mul: float | None = None
                     ) -> tuple[dict, dict[str, torch.Tensor]]:
    sd = ckpt.get("g_ema")
    if sd is None:
        if "G_ema" in ckpt or "state_dict" in ckpt:
            raise CheckpointError(path, "torch file without 'g_ema'; is this an NVIDIA or other model?")
        if any(k.startswith("style.") for k in ckpt):
            sd = ckpt  # a bare generator state dict
        else:
            raise CheckpointError(path, f"no 'g_ema' generator in the checkpoint (keys: {sorted(ckpt)[:8]})")
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    need = ["input.input", "conv1.conv.weight", "style.1.weight"]
    if not all(k in sd for k in need):
        raise CheckpointError(path, "not a rosinality StyleGAN2 generator (missing "
                                    f"{[k for k in need if k not in sd]})")
    n_mlp = _count(sd, r"style\.(\d+)\.weight", first=1)
    w_dim = sd["style.1.weight"].shape[0]
    n_up = _count(sd, r"to_rgbs\.(\d+)\.conv\.weight")
    channels = [sd["input.input"].shape[1]] + [sd[f"to_rgbs.{k}.conv.weight"].shape[2] for k in range(n_up)]
    taps = _taps(sd.get("to_rgbs.0.upsample.kernel"), gain=4.0) if n_up else [1.0, 3.0, 3.0, 1.0]
    lr_mul = mapping_lr_mul or getattr(ckpt.get("args"), "lr_mlp", None)  # forks with lr_mlp save it in args
    cfg = {"resolution": 4 * 2**n_up, "z_dim": sd["style.1.weight"].shape[1], "w_dim": w_dim,
           "mapping_layers": n_mlp, "channels": channels,
           "mapping_lr_mul": float(lr_mul) if isinstance(lr_mul, (int, float)) else ROSINALITY_LR_MUL,
           "img_channels": _get(path, sd, "to_rgb1.conv.weight").shape[1], "blur_kernel": taps}

    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.layers.{i}.weight"] = sd[f"style.{i + 1}.weight"]
        out[f"mapping.layers.{i}.bias"] = sd[f"style.{i + 1}.bias"]
    out["synthesis.const"] = sd["input.input"][0]
    convs = ["conv1"] + [f"convs.{j}" for j in range(2 * n_up)]
    for i, src in enumerate(convs):
        dst = f"synthesis.layers.{i}."
        out[dst + "weight"] = _get(path, sd, f"{src}.conv.weight")[0]
        out[dst + "affine.weight"] = _get(path, sd, f"{src}.conv.modulation.weight")
        out[dst + "affine.bias"] = _get(path, sd, f"{src}.conv.modulation.bias")
        out[dst + "bias"] = _get(path, sd, f"{src}.activate.bias")
        out[dst + "noise_strength"] = _get(path, sd, f"{src}.noise.weight").reshape([])
        out[dst + "noise_const"] = _get(path, sd, f"noises.noise_{i}")[0, 0]
    for k, src in enumerate(["to_rgb1"] + [f"to_rgbs.{j}" for j in range(n_up)]):
        dst = f"synthesis.torgbs.{k}."
        out[dst + "weight"] = _get(path, sd, f"{src}.conv.weight")[0]
        out[dst + "affine.weight"] = _get(path, sd, f"{src}.conv.modulation.weight")
        out[dst + "affine.bias"] = _get(path, sd, f"{src}.conv.modulation.bias")
        out[dst + "bias"] = _get(path, sd, f"{src}.bias").reshape(-1)
    if not isinstance(lr_mul, (int, float)):
        _warn_if_lr_mul_unlikely(path, [sd[f"style.{i + 1}.weight"] for i in range(n_mlp)])
    latent_avg = ckpt.get("latent_avg")
    if isinstance(latent_avg, torch.Tensor) and latent_avg.numel() == w_dim:
        out["mapping.w_avg"] = latent_avg.reshape(w_dim)
    return cfg, out


def _warn_if_lr_mul_unlikely(path: Path, weights: list[torch.Tensor]) -> None:
    """Equalised-lr weights are stored as randn / lr_mul, so their spread hints at the multiplier."""
    std = float(torch.stack([w.float().std() for w in weights]).mean())
    guess = 1.0 / std if std > 0 else float("inf")
    if not ROSINALITY_LR_MUL / 3 <= guess <= ROSINALITY_LR_MUL * 3:
        warnings.warn(f"{path}: assuming rosinality's mapping lr multiplier {ROSINALITY_LR_MUL}, but the mapping "
                      f"weights' spread (std {std:.3g}) suggests about {guess:.2g}; if the generator was built "
                      f"with another lr_mlp, pass it (load_generator(..., mapping_lr_mul=X) or "
                      f"`livesound convert --mapping-lr-mul X`)", stacklevel=4)


# ---------------------------------------------------------------------------------------------- NVIDIA

def _from_nvidia(path: Path, snapshot: dict) -> tuple[dict, dict[str, torch.Tensor]]:
    G = snapshot.get("G_ema", snapshot.get("G"))
    if not isinstance(G, PersistentObject):
        raise CheckpointError(path, f"no 'G_ema' network in the pickle (keys: {sorted(map(str, snapshot))[:8]})")
    if "stylegan3" in G.class_name or G.class_name.endswith("networks_stylegan3.Generator"):
        raise CheckpointError(path, "StyleGAN3 generators are not supported; use a StyleGAN2(-ADA) pickle")
    sd = G.tensors()
    kwargs = G.state.get("_init_kwargs") or {}
    syn_kwargs = dict(kwargs.get("synthesis_kwargs") or {})
    arch = syn_kwargs.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointError(path, f"synthesis architecture {arch!r} is not supported (StyleGAN2 uses 'skip')")
    if "synthesis.b4.const" not in sd or "mapping.fc0.weight" not in sd:
        raise CheckpointError(path, "not a StyleGAN2-ADA generator (no synthesis.b4.const / mapping.fc0)")

    res = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    channels = [sd[f"synthesis.b{r}.conv1.weight"].shape[0] for r in res]
    n_fc = _count(sd, r"mapping\.fc(\d+)\.weight")
    c_dim = sd["mapping.embed.weight"].shape[1] if "mapping.embed.weight" in sd else 0
    w_dim = sd[f"mapping.fc{n_fc - 1}.weight"].shape[0]
    z_dim = sd["mapping.fc0.weight"].shape[1] - (w_dim if c_dim else 0)
    fc0 = G.child("mapping").child("fc0") if G.child("mapping") else None
    lr_mul = fc0.state.get("bias_gain") if fc0 else None
    if not isinstance(lr_mul, (int, float)):
        lr_mul = (kwargs.get("mapping_kwargs") or {}).get("lr_multiplier", 0.01)
    conv_clamp = syn_kwargs.get("conv_clamp")
    filt = sd.get(f"synthesis.b{res[1]}.resample_filter") if len(res) > 1 else None
    cfg = {"resolution": res[-1], "z_dim": z_dim, "w_dim": w_dim, "c_dim": c_dim, "mapping_layers": n_fc,
           "mapping_lr_mul": float(lr_mul), "channels": channels,
           "img_channels": sd[f"synthesis.b{res[0]}.torgb.weight"].shape[0],
           "conv_clamp": float(conv_clamp) if conv_clamp is not None else None,
           "blur_kernel": _taps(filt, gain=1.0) if filt is not None else [1.0, 3.0, 3.0, 1.0]}
    if res[-1] != 4 * 2 ** (len(res) - 1):
        raise CheckpointError(path, f"synthesis blocks {res} do not double from 4 px")

    out: dict[str, torch.Tensor] = {}
    for i in range(n_fc):
        out[f"mapping.layers.{i}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"mapping.layers.{i}.bias"] = sd[f"mapping.fc{i}.bias"]
    if c_dim:
        out["mapping.embed.weight"] = sd["mapping.embed.weight"]
        out["mapping.embed.bias"] = sd["mapping.embed.bias"]
    out["mapping.w_avg"] = _get(path, sd, "mapping.w_avg")
    out["synthesis.const"] = sd["synthesis.b4.const"]
    srcs = ["b4.conv1"] + [f"b{r}.{c}" for r in res[1:] for c in ("conv0", "conv1")]
    for i, src in enumerate(srcs):
        for name in ("weight", "bias", "affine.weight", "affine.bias", "noise_strength", "noise_const"):
            out[f"synthesis.layers.{i}.{name}"] = _get(path, sd, f"synthesis.{src}.{name}")
    for k, r in enumerate(res):
        for name in ("weight", "bias", "affine.weight", "affine.bias"):
            out[f"synthesis.torgbs.{k}.{name}"] = _get(path, sd, f"synthesis.b{r}.torgb.{name}")
    return cfg, {k: v.float() for k, v in out.items()}


# ---------------------------------------------------------------------------------------------- helpers

def _get(path: Path, sd: dict, key: str) -> torch.Tensor:
    if key not in sd:
        raise CheckpointError(path, f"missing tensor {key!r}: the file is not a complete StyleGAN2 generator")
    return sd[key]


def _count(sd: dict, pattern: str, first: int = 0) -> int:
    """How many consecutive indices from ``first`` match ``pattern`` (its one group is the index)."""
    found = {int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))}
    n = 0
    while first + n in found:
        n += 1
    return n


def _taps(kernel: torch.Tensor | None, gain: float) -> list[float]:
    """Recover the 1-D FIR taps (any scale) from a stored separable 2-D kernel."""
    if kernel is None:
        return [1.0, 3.0, 3.0, 1.0]
    k = kernel.float() / gain
    if k.ndim == 1:
        return [float(v) for v in k / k.sum()]
    taps = k.sum(dim=1)
    if not torch.allclose(torch.outer(taps, taps) / taps.sum() ** 2, k / k.sum(), atol=1e-6):
        raise ValueError("non-separable upsampling filter")
    return [float(v) for v in taps / taps.sum()]

