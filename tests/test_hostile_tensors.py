"""Tensors that lie about their size: a few kilobytes whose shapes and strides describe a giant.

``zeros(1).expand(N, N)`` pickles as four bytes of storage with stride 0; a self-consistent generator made of such
tensors passes every shape check, and its first copy (``Generator(cfg)``, ``.float()``, ``load_state_dict``)
materialises the giant. Each case here was loaded (or allocated) before the fix and is now one clear error, raised
before any network is built.
"""

from __future__ import annotations

import io
import time
import zipfile

import pytest
import torch
from conftest import nvidia_state, rosinality_state, write_nvidia, write_rosinality

from livesound.models.stylegan2 import load_generator
from livesound.weights.checkpoint import CheckpointError
from livesound.weights.untrusted import layout_problem

WIDE = {4: 256, 8: 256, 16: 256}  # ~3M parameters that the file does not hold


def _stride0(sd: dict, dtype=torch.float32) -> dict:
    """Every tensor (but the blur filters, which must stay separable) as one repeated value."""
    return {k: v if "kernel" in k or "filter" in k or v.ndim == 0 else
            torch.full((1,), 0.01, dtype=dtype).expand(*v.shape) for k, v in sd.items()}


def _refused(path, *words) -> str:
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        load_generator(path)
    assert time.perf_counter() - t0 < 2.0
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg and all(w in msg for w in words), msg
    return msg


def test_stride0_rosinality_giant_is_refused_before_building(tmp_path):
    path = write_rosinality(tmp_path / "giant.pt", _stride0(rosinality_state(16, 8, 2, WIDE, seed=1)))
    assert path.stat().st_size < 40_000
    _refused(path, "lies about its size", "stride 0")


def test_overlapping_strides_are_refused(tmp_path):
    sd = rosinality_state(16, 8, 2, {4: 8, 8: 8, 16: 4}, seed=1)
    w = sd["conv1.conv.weight"]
    sd["conv1.conv.weight"] = torch.randn(w.numel()).as_strided(w.shape, (1, 1, 1, 1, 1))
    _refused(write_rosinality(tmp_path / "overlap.pt", sd), "overlapping strides")


def test_views_sharing_one_storage_cannot_exceed_the_file(tmp_path):
    """Honest, non-overlapping views, but fifty of them over the same bytes: more values than the file holds."""
    sd = rosinality_state(16, 8, 2, WIDE, seed=1)
    pool = torch.randn(max(v.numel() for v in sd.values()))
    shared = {k: v if "kernel" in k or v.ndim == 0 else pool[:v.numel()].view(v.shape) for k, v in sd.items()}
    path = write_rosinality(tmp_path / "shared.pt", shared)
    _refused(path, "more than", "bytes")


def test_a_1e12_element_tensor_over_four_bytes_is_refused_at_once(tmp_path):
    """The README's promise: torch itself accepts [10^6, 10^6] with strides (0, 0) over one float."""
    from livesound.bench.fuzzing import _tensor_pickle, _zip_replace

    good = write_rosinality(tmp_path / "good.pt", rosinality_state(16, 8, 2, {4: 8, 8: 8, 16: 4}, seed=1))
    with zipfile.ZipFile(io.BytesIO(good.read_bytes())) as z:  # storage "0" keeps its real size
        floats = next(i.file_size for i in z.infolist() if i.filename.endswith("/data/0")) // 4
    path = tmp_path / "huge.pt"
    path.write_bytes(_zip_replace(good.read_bytes(), "data.pkl", _tensor_pickle(floats, (10**6, 10**6), (0, 0))))
    t = torch.load(path, weights_only=True)["g_ema"]["w"]  # what torch alone makes of it
    assert t.numel() == 10**12 and t.untyped_storage().nbytes() == 4 * floats
    _refused(path, "stride 0")


NV_KW = dict(z_dim=12, w_dim=16, c_dim=0, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
             synthesis_kwargs={"channel_base": 4096, "channel_max": 256, "conv_clamp": 256,
                               "architecture": "skip"})


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_stride0_nvidia_pickle_is_refused_while_unpickling(tmp_path, marker, half):
    """Checked inside the restricted unpickler, before the tensor exists (and before fp16 pickles' .float())."""
    sd = _stride0(nvidia_state(16, 12, 16, 2, 4096, 256, seed=2), torch.float16 if half else torch.float32)
    path = write_nvidia(tmp_path / "giant.pkl", sd, NV_KW, marker)
    assert path.stat().st_size < 60_000
    _refused(path, "lies about its size", "stride 0")
    assert not marker.exists()


def test_honest_layouts_pass_and_lies_are_named():
    assert layout_problem([3, 4], [4, 1], 0, 12) is None             # contiguous
    assert layout_problem([4, 3], [1, 4], 0, 12) is None             # transposed
    assert layout_problem([1, 5], [0, 1], 2, 7) is None              # a size-1 dim's stride is irrelevant
    assert layout_problem([0, 10**9], [1, 1], 0, 0) is None          # empty
    assert "stride 0" in layout_problem([10**6, 10**6], [0, 0], 0, 1)
    assert "overlapping" in layout_problem([3, 3], [1, 1], 0, 9)
    assert "needs 13 elements" in layout_problem([3, 4], [4, 1], 1, 12)
    assert "inconsistent" in layout_problem([3], [1, 1], 0, 3)
