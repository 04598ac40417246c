"""Shared fixtures: tiny seeded generators and writers of the two foreign checkpoint formats.

The writers follow the formats as their owners write them (rosinality: ``torch.save`` of a dict holding the
``g_ema`` state dict; NVIDIA: a pickle whose networks are ``torch_utils.persistence`` records, docs/design.md), so
the loader is tested on files it did not write itself.
"""

from __future__ import annotations

import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent

# If a loader ever executed module_src, this would leave a file behind; tests check it never does.
MODULE_SRC_TEMPLATE = "import pathlib\npathlib.Path({marker!r}).write_text('module_src ran')\n"


def golden(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"golden_{name}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def state_from(arrays: dict[str, np.ndarray]) -> OrderedDict:
    return OrderedDict((k[3:], torch.from_numpy(v.copy())) for k, v in arrays.items() if k.startswith("sd/"))


# ---------------------------------------------------------------------------------------------- rosinality

def rosinality_state(size: int, style_dim: int, n_mlp: int, channels: dict[int, int], seed: int = 0,
                     fill=None) -> OrderedDict:
    """A random state dict with rosinality's names and shapes (any channel widths). ``fill(*shape)``, if given,
    makes the tensors instead of ``randn`` (the hostile-file drills make stride-0 giants with it)."""
    g = torch.Generator().manual_seed(seed)
    r = fill or (lambda *s: torch.randn(*s, generator=g))
    sd: OrderedDict = OrderedDict()
    for i in range(1, n_mlp + 1):
        sd[f"style.{i}.weight"] = r(style_dim, style_dim) * 100
        sd[f"style.{i}.bias"] = r(style_dim) * 0.1
    c4 = channels[4]
    sd["input.input"] = r(1, c4, 4, 4)

    def styled(prefix: str, cin: int, cout: int, up: bool) -> None:
        sd[f"{prefix}.conv.weight"] = r(1, cout, cin, 3, 3)
        if up:
            k = torch.tensor([1.0, 3, 3, 1])
            sd[f"{prefix}.conv.blur.kernel"] = torch.outer(k, k) / 64 * 4
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * r(cin)
        sd[f"{prefix}.noise.weight"] = 0.1 * r(1)
        sd[f"{prefix}.activate.bias"] = 0.1 * r(cout)

    def torgb(prefix: str, cin: int, up: bool) -> None:
        sd[f"{prefix}.bias"] = 0.1 * r(1, 3, 1, 1)
        if up:
            k = torch.tensor([1.0, 3, 3, 1])
            sd[f"{prefix}.upsample.kernel"] = torch.outer(k, k) / 64 * 4
        sd[f"{prefix}.conv.weight"] = r(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, style_dim)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.1 * r(cin)

    styled("conv1", c4, c4, False)
    torgb("to_rgb1", c4, False)
    res = [2**i for i in range(3, int(np.log2(size)) + 1)]
    cin = c4
    for j, rr in enumerate(res):
        styled(f"convs.{2 * j}", cin, channels[rr], True)
        styled(f"convs.{2 * j + 1}", channels[rr], channels[rr], False)
        torgb(f"to_rgbs.{j}", channels[rr], True)
        cin = channels[rr]
    for i in range(2 * len(res) + 1):
        rr = 2 ** ((i + 5) // 2)
        sd[f"noises.noise_{i}"] = r(1, 1, rr, rr)
    return sd


def write_rosinality(path: Path, sd: dict, latent_avg: torch.Tensor | None = None, extra: dict | None = None) -> Path:
    ckpt = {"g_ema": sd}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return path


# ---------------------------------------------------------------------------------------------- NVIDIA

_BUFFERS = ("w_avg", "noise_const", "resample_filter")


def _fake_nvidia_modules() -> dict[str, types.ModuleType]:
    """Importable stand-ins for torch_utils.persistence and dnnlib.util, so pickle writes their names."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # what NVIDIA's would do: exec(meta.module_src)
        raise AssertionError("a loader called the pickle's reconstruct function")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    torch_utils, dnnlib = types.ModuleType("torch_utils"), types.ModuleType("dnnlib")
    torch_utils.persistence, dnnlib.util = persistence, util
    return {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util}


class _Persistent:
    """Pickles itself exactly as NVIDIA's persistent classes do: reconstruct(meta) with the module's __dict__."""

    def __init__(self, class_name: str, state: dict, module_src: str):
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def __reduce__(self):
        fn = sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj
        meta = dict(type="class", version=4, module_src=self.module_src, class_name=self.class_name,
                    state=self.state)
        return fn, (meta,)


def _tree(flat: dict[str, torch.Tensor], module_src: str, attrs: dict[str, dict]) -> _Persistent:
    def build(prefix: str) -> _Persistent:
        params, buffers, children = OrderedDict(), OrderedDict(), OrderedDict()
        for k, v in flat.items():
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if "." in rest:
                children.setdefault(rest.split(".")[0], None)
            elif rest in _BUFFERS:
                buffers[rest] = v
            else:
                params[rest] = torch.nn.Parameter(v, requires_grad=False)
        for name in children:
            children[name] = build(f"{prefix}{name}.")
        state = {"training": False, "_parameters": params, "_buffers": buffers,
                 "_non_persistent_buffers_set": set(), "_modules": children,
                 "_forward_hooks": OrderedDict()}
        state.update(attrs.get(prefix, {}))
        leaf = prefix.rstrip(".").split(".")[-1] or "Generator"
        cls = {"mapping": "MappingNetwork", "synthesis": "SynthesisNetwork", "affine": "FullyConnectedLayer",
               "torgb": "ToRGBLayer"}.get(leaf, "SynthesisBlock" if leaf.startswith("b") else
                                          "FullyConnectedLayer" if leaf.startswith("fc") else "SynthesisLayer")
        return _Persistent(f"training.networks.{cls}", state, module_src)

    return build("")


def write_nvidia(path: Path, flat: dict[str, torch.Tensor], init_kwargs: dict, marker: Path,
                 lr_multiplier: float = 0.01, protocol: int = 4) -> Path:
    """Write an NVIDIA StyleGAN2-ADA style network pickle, as its training loop snapshots them."""
    mods = _fake_nvidia_modules()
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        E = mods["dnnlib.util"].EasyDict
        kwargs = E({k: E(v) if isinstance(v, dict) else v for k, v in init_kwargs.items()})
        n_fc = sum(1 for k in flat if k.startswith("mapping.fc") and k.endswith(".weight"))
        attrs = {"": {"_init_args": (), "_init_kwargs": kwargs, "z_dim": kwargs.get("z_dim")}}
        for i in range(n_fc):
            attrs[f"mapping.fc{i}."] = {"activation": "lrelu", "bias_gain": lr_multiplier,
                                       "weight_gain": lr_multiplier / np.sqrt(flat[f"mapping.fc{i}.weight"].shape[1])}
        src = MODULE_SRC_TEMPLATE.format(marker=str(marker))
        G = _tree(flat, src, attrs)
        snapshot = {"training_set_kwargs": E(path="~/datasets/ffhq.zip", xflip=np.bool_(False),
                                             max_size=np.int64(70000), ratio=np.float64(1.0)),
                    "G": G, "D": None, "G_ema": G, "augment_pipe": None}
        with open(path, "wb") as f:
            pickle.dump(snapshot, f, protocol=protocol)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def nvidia_state(res: int, z_dim: int, w_dim: int, n_fc: int, channel_base: int, channel_max: int,
                 seed: int = 0, fill=None) -> OrderedDict:
    """A random G_ema state dict with NVIDIA's names and shapes (``fill`` as for ``rosinality_state``)."""
    g = torch.Generator().manual_seed(seed)
    r = fill or (lambda *s: torch.randn(*s, generator=g))
    k = torch.tensor([1.0, 3, 3, 1])
    filt = torch.outer(k, k) / 64
    sd: OrderedDict = OrderedDict()
    for i in range(n_fc):
        sd[f"mapping.fc{i}.weight"] = r(w_dim, z_dim if i == 0 else w_dim) * 100
        sd[f"mapping.fc{i}.bias"] = 0.1 * r(w_dim)
    sd["mapping.w_avg"] = r(w_dim)
    blocks = [2**i for i in range(2, int(np.log2(res)) + 1)]
    ch = {b: min(channel_base // b, channel_max) for b in blocks}

    def layer(p: str, cin: int, cout: int, rr: int) -> None:
        sd[p + "weight"] = r(cout, cin, 3, 3)
        sd[p + "noise_strength"] = 0.1 * r(())
        sd[p + "bias"] = 0.1 * r(cout)
        sd[p + "resample_filter"] = filt
        sd[p + "noise_const"] = r(rr, rr)
        sd[p + "affine.weight"] = r(cin, w_dim)
        sd[p + "affine.bias"] = 1 + 0.1 * r(cin)

    for b in blocks:
        p = f"synthesis.b{b}."
        if b == 4:
            sd[p + "const"] = r(ch[4], 4, 4)
        sd[p + "resample_filter"] = filt
        if b > 4:
            layer(p + "conv0.", ch[b // 2], ch[b], b)
        layer(p + "conv1.", ch[b], ch[b], b)
        sd[p + "torgb.weight"] = r(3, ch[b], 1, 1)
        sd[p + "torgb.bias"] = 0.1 * r(3)
        sd[p + "torgb.affine.weight"] = r(ch[b], w_dim)
        sd[p + "torgb.affine.bias"] = 1 + 0.1 * r(ch[b])
    return sd


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """A path that must still not exist when the test ends (proof that no file content was executed)."""
    return tmp_path / "PWNED"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    the suite shares the machine, and two threads on a busy 2-core box spend most of a step waiting."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_generator():
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    cfg = GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)
    return build_generator(cfg, seed=3)


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """Exported graphs go to one test-session cache, never the user's (and later tests reuse them)."""
    import os

    old = os.environ.get("LIVESOUND_ENGINES")
    os.environ["LIVESOUND_ENGINES"] = str(tmp_path_factory.mktemp("engines"))
    yield
    if old is None:
        os.environ.pop("LIVESOUND_ENGINES", None)
    else:
        os.environ["LIVESOUND_ENGINES"] = old
