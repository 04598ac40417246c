"""Real-ESRGAN upscalers: the public file layouts load safely, compute the reference's numbers, and export.

tests/data/golden_realesrgan.npz holds small randomly initialised (then perturbed) RRDB (x4, x2) and compact
(x4, PReLU) networks' weights with inputs and outputs computed by the public reference code (BasicSR's
``RRDBNet``, Real-ESRGAN's ``SRVGGNetCompact``). Only numbers are stored: the tests write the weight files the way
the public ones are saved (``torch.save({"params_ema": state_dict})``) and read them through ``load_upscaler``.
"""

import json
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden

from livesound.models.realesrgan import (
    CompactConfig,
    CompactNet,
    FrameUpscaler,
    RRDBConfig,
    RRDBNet,
    build_upscaler,
    load_upscaler,
)
from livesound.weights.checkpoint import CheckpointError


def _save_public(path: Path, state: dict, key: str = "params_ema") -> Path:
    torch.save({key: OrderedDict(state)}, path)  # as Real-ESRGAN's training saves its released weights
    return path


def _golden_case(ref: dict, case: str) -> tuple[dict, torch.Tensor, np.ndarray]:
    prefix = f"{case}/sd/"
    state = {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in ref.items() if k.startswith(prefix)}
    return state, torch.from_numpy(ref[f"{case}/x"]), ref[f"{case}/y"]


@pytest.mark.parametrize("case, kind, scale", [("rrdb_x4", RRDBNet, 4), ("rrdb_x2", RRDBNet, 2),
                                               ("compact_x4", CompactNet, 4)])
def test_public_layouts_compute_the_reference_numbers(tmp_path, case, kind, scale):
    state, x, want = _golden_case(golden("realesrgan"), case)
    net = load_upscaler(_save_public(tmp_path / f"{case}.pth", state, "params" if "x2" in case else "params_ema"))
    assert isinstance(net, kind) and net.cfg.scale == scale
    with torch.no_grad():
        got = net(x).numpy()
    assert got.shape == want.shape == (2, 3, 12 * scale, 12 * scale)
    assert np.abs(got - want).max() <= 1e-5
    assert np.abs(want).max() > 0.1  # the reference is not a near-zero picture


def test_the_released_architectures_are_inferred_from_their_full_layouts(tmp_path):
    """RealESRGAN_x4plus (RRDB 64/23/32, x4) and realesr-general-x4v3 (compact 64/32, x4, PReLU), random weights."""
    rrdb = build_upscaler(RRDBConfig(), seed=1)
    names = list(rrdb.state_dict())
    assert names[:3] == ["conv_first.weight", "conv_first.bias", "body.0.rdb1.conv1.weight"]
    assert "body.22.rdb3.conv5.weight" in names and names[-2:] == ["conv_last.weight", "conv_last.bias"]
    assert sum(p.numel() for p in rrdb.parameters()) == 16_697_987  # the released x4plus parameter count
    net = load_upscaler(_save_public(tmp_path / "RealESRGAN_x4plus.pth", rrdb.state_dict()))
    assert net.cfg == RRDBConfig(3, 3, 64, 23, 32, 4)

    compact = build_upscaler(CompactConfig(), seed=1)
    sd = compact.state_dict()
    assert list(sd)[:3] == ["body.0.weight", "body.0.bias", "body.1.weight"] and tuple(sd["body.66.weight"].shape) \
        == (48, 64, 3, 3) and tuple(sd["body.65.weight"].shape) == (64,)
    net = load_upscaler(_save_public(tmp_path / "realesr-general-x4v3.pth", sd, "params"))
    assert net.cfg == CompactConfig(3, 3, 64, 32, 4)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net(x), compact(x))


def test_the_frame_stage_maps_generator_frames_to_generator_frames():
    net = build_upscaler(CompactConfig(num_feat=4, num_conv=1), seed=0)
    with torch.no_grad():
        net.body[-1].weight.zero_()
        net.body[-1].bias.zero_()       # residual 0: the compact net is then its nearest-upsampled input
    up = FrameUpscaler(net, 8)
    frame = torch.rand(1, 3, 8, 8) * 2.4 - 1.2  # a generator overshoots [-1, 1] a little
    with torch.no_grad():
        out = up(frame)
    assert out.shape == (1, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    want = torch.nn.functional.interpolate(frame.clamp(-1, 1), scale_factor=4, mode="nearest")
    assert torch.allclose(out, want, atol=1e-6)


def test_the_upscale_graph_matches_torch_in_onnx_runtime(tmp_path):
    """The public compact layout in full, and an RRDB network (2 of x4plus's 23 blocks: the same graph per block)."""
    import onnxruntime as ort

    from exporters.onnx import export_graph, stage_specs

    for cfg in (CompactConfig(), RRDBConfig(num_block=2)):
        path = _save_public(tmp_path / "w.pth", build_upscaler(cfg, seed=3).state_dict())
        up = FrameUpscaler(load_upscaler(path), frame_size=16)
        (spec,) = stage_specs(upscaler=up)
        report = export_graph(spec, tmp_path / type(up.net).__name__)
        assert report["inputs"] == {"frame": ["batch", 3, 16, 16]} and report["max_abs_error"] <= 2e-3
        sess = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
        frame = torch.rand(2, 3, 16, 16) * 2 - 1
        with torch.no_grad():
            want = up(frame).numpy()
        got = sess.run(None, {"frame": frame.numpy()})[0]
        assert got.shape == (2, 3, 64, 64) and np.abs(got - want).max() <= 2e-3


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_malicious_weights_file_is_refused_and_nothing_runs(tmp_path, marker):
    evil = tmp_path / "RealESRGAN_x4plus.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(1)}, "payload": _RunsCommand(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"RealESRGAN_x4plus.pth: refused.*nothing from it was executed"):
        load_upscaler(evil)
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(_RunsCommand(marker)))  # a bare pickle, not even a torch file
    with pytest.raises(CheckpointError, match="raw.pth"):
        load_upscaler(raw)
    assert not marker.exists()


def test_a_file_that_declares_more_than_it_holds_is_refused_before_allocating(tmp_path):
    path = _save_public(tmp_path / "big.pth", build_upscaler(CompactConfig(num_feat=4, num_conv=1)).state_dict())
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    data = bytearray(path.read_bytes())
    info = max(infos, key=lambda i: i.file_size)
    # Claim a record of 2 GB in its local header and central directory (what a hostile file would do).
    for offset in (info.header_offset + 22, data.rfind(info.filename.encode()) - 46 + 24):
        data[offset:offset + 4] = (2**31).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"big.pth: record .* (declares|is compressed)"):
        load_upscaler(path)


@pytest.mark.parametrize("content, problem", [
    ({"params_ema": {"conv_first.weight": torch.zeros(8, 3, 3, 3)}}, "unusable Real-ESRGAN layout"),
    ({"params": {"other.weight": torch.zeros(3)}}, "not a Real-ESRGAN generator"),
    ({"params": [1, 2, 3]}, "not a state dict"),
    ({"params_ema": {"body.0.weight": torch.zeros(4, 3, 3, 3), "body.2.weight": torch.zeros(48, 4, 3, 3)}},
     "without PReLU"),
])
def test_unusable_files_get_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=rf"bad.pth: .*{problem}"):
        load_upscaler(path)


def test_wrong_shapes_and_truncated_files_are_refused(tmp_path):
    sd = build_upscaler(RRDBConfig(num_feat=8, num_block=1, num_grow_ch=4)).state_dict()
    sd["body.0.rdb2.conv3.weight"] = torch.zeros(4, 15, 3, 3)
    with pytest.raises(CheckpointError, match=r"wrong shapes body.0.rdb2.conv3.weight"):
        load_upscaler(_save_public(tmp_path / "shapes.pth", sd))
    good = _save_public(tmp_path / "good.pth", build_upscaler(CompactConfig(num_feat=4, num_conv=1)).state_dict())
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_upscaler(cut)
    with pytest.raises(CheckpointError, match="no such file"):
        load_upscaler(tmp_path / "missing.pth")


def test_export_onnx_with_an_upscaler_writes_its_graph_alone(tmp_path, capsys):
    from livesound.cli import main

    path = _save_public(tmp_path / "x4v3.pth", build_upscaler(CompactConfig(num_feat=4, num_conv=1)).state_dict())
    assert main(["export", "onnx", "--upscaler", str(path), "--frame-size", "8", "--out", str(tmp_path / "g")]) == 0
    assert "upscaler.onnx: max abs error" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["export.json", "upscaler.onnx"]
    (report,) = json.loads((tmp_path / "g" / "export.json").read_text())
    assert report["inputs"] == {"frame": ["batch", 3, 8, 8]} and report["outputs"] == ["image"]
