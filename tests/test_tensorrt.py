"""TensorRT: the op-support check, the engine sidecar and rebuild rule, and the backend's clear failures.

Everything up to TensorRT itself runs here; real engine builds need ``tensorrt`` and an NVIDIA GPU and skip
with the reason where either is missing.
"""

import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from exporters.onnx import export_generator
from exporters.tensorrt import (
    INSTALL_HINT,
    BackendUnavailable,
    BuildSettings,
    build_engine,
    engine_is_current,
    precision_flags,
    profile_shape,
    read_sidecar,
    sidecar_info,
    sidecar_path,
    write_sidecar,
)
from exporters.trt_ops import (
    SUPPORTED,
    UNSUPPORTED,
    UnsupportedByTensorRT,
    check_onnx_for_tensorrt,
    format_report,
    parse_version,
)
from livesound.live.backends.trt_stage import TensorRTBackend

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
needs_trt_gpu = pytest.mark.skipif(
    not (HAVE_TRT and torch.cuda.is_available()),
    reason="TensorRT is not installed here (its packages download binaries at install time); needs an NVIDIA GPU")


@pytest.fixture(scope="module")
def synthesis_onnx(tmp_path_factory):
    from livesound.models.stylegan2 import GeneratorConfig, build_generator

    G = build_generator(GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256,
                                        channel_max=16), seed=3)
    folder = tmp_path_factory.mktemp("trt")
    export_generator(G, folder)
    return G, folder / "generator.onnx"


def tiny_model(nodes, inputs, outputs, initializers=(), opset=17, functions=()):
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], functions=list(functions))


def fvec(name, *shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


# ---------------------------------------------------------------------------------------------- op table

def test_table_is_consistent():
    assert not SUPPORTED & UNSUPPORTED
    assert {"Conv", "ConvTranspose", "Gemm", "STFT", "Resize", "Pad"} <= SUPPORTED
    assert {"DFT", "Bernoulli", "BitShift", "MelWeightMatrix"} <= UNSUPPORTED
    assert parse_version("10.x") == (10, None) and parse_version("10.5.0.18") == (10, 5)
    with pytest.raises(ValueError, match="10.x only"):
        parse_version("11.0")


def test_generator_synthesis_graph_passes(synthesis_onnx):
    _, path = synthesis_onnx
    for version in ("10.x", "10.0", "10.15"):
        report = check_onnx_for_tensorrt(path, version)
        assert report.ok, format_report(report)
        report.raise_if_unsupported()
    assert {"Conv", "ConvTranspose", "Gemm"} <= set(report.ops) and report.opset == 17
    assert "RandomNormal" not in report.ops and not report.restricted  # constant noise, constant conv weights


def test_unsupported_op_fails_with_a_clear_report():
    nodes = [helper.make_node("DFT", ["x"], ["y"], name="dft0"),
             helper.make_node("BitShift", ["a", "b"], ["c"], direction="LEFT")]
    model = tiny_model(nodes, [fvec("x", 1, 16, 1), helper.make_tensor_value_info("a", TensorProto.UINT8, [4]),
                               helper.make_tensor_value_info("b", TensorProto.UINT8, [4])],
                       [fvec("y", 1, 16, 2), helper.make_tensor_value_info("c", TensorProto.UINT8, [4])])
    report = check_onnx_for_tensorrt(model)
    assert not report.ok and report.unsupported == ["BitShift", "DFT"]
    text = format_report(report)
    assert "DFT" in text and "Conv1d" in text and "FAILS" in text
    with pytest.raises(UnsupportedByTensorRT, match="unsupported BitShift, DFT"):
        report.raise_if_unsupported()


def test_ops_inside_subgraphs_and_functions_and_foreign_domains_are_checked():
    then_g = helper.make_graph([helper.make_node("Bernoulli", ["x"], ["t"])], "then", [], [fvec("t", 4)])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [fvec("e", 4)])
    fn = helper.make_function("local", "Twice", ["i"], ["o"], [helper.make_node("Unique", ["i"], ["o"])],
                              [helper.make_opsetid("", 17)])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Twice", ["x"], ["z"], domain="local"),
             helper.make_node("FusedGemm", ["x", "x"], ["w"], domain="com.microsoft")]
    model = tiny_model(nodes, [fvec("x", 4), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                       [fvec("y", 4), fvec("z", 4), fvec("w", 4)], functions=[fn])
    model.opset_import.append(helper.make_opsetid("local", 1))
    report = check_onnx_for_tensorrt(model)
    assert report.unsupported == ["Bernoulli", "Unique", "com.microsoft:FusedGemm"]
    assert report.ops["function:Twice"] == 1 and report.ops["Identity"] == 1


def test_restricted_ops_are_reported():
    window = helper.make_tensor("window", TensorProto.FLOAT, [16], np.hanning(16).astype(np.float32))
    length = helper.make_tensor("len", TensorProto.INT64, [], [16])
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["step"], axis=0),
             helper.make_node("STFT", ["x", "step", "window", "len"], ["spec"], name="stft"),
             helper.make_node("Resize", ["img", "", "scales"], ["big"], mode="cubic", name="up"),
             helper.make_node("RandomNormalLike", ["img"], ["noise"], seed=1.0)]
    inits = [window, length, helper.make_tensor("one", TensorProto.INT64, [], [1]),
             helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])]
    model = tiny_model(nodes, [fvec("x", 1, 64, 1), fvec("img", 1, 3, 8, 8)],
                       [fvec("spec", 1, 7, 9, 2), fvec("big", 1, 3, 16, 16), fvec("noise", 1, 3, 8, 8)], inits)
    report = check_onnx_for_tensorrt(model, "10.x")
    problems = "\n".join(report.problems)
    assert "`frame_step` is computed at run time" in problems and "mode 'cubic'" in problems
    assert {"STFT", "RandomNormalLike"} <= set(report.restricted)
    assert any("imports only from TensorRT 10.5" in w for w in report.warnings)
    assert any("ignores `seed`" in w for w in report.warnings)
    assert any("10.5" in p for p in check_onnx_for_tensorrt(model, "10.4").problems)  # STFT is newer than 10.4


def test_runtime_conv_weights_are_flagged():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    model = tiny_model(nodes, [fvec("x", "batch", 4, 8, 8), fvec("w", 4, 4, 3, 3)], [fvec("y", "batch", 4, 8, 8)])
    report = check_onnx_for_tensorrt(model)
    assert report.ok and report.restricted == ["Conv"] and "demodulated" in report.warnings[0]


def test_opset_range():
    def model(opset):
        return tiny_model([helper.make_node("Relu", ["x"], ["y"])], [fvec("x", 2)], [fvec("y", 2)], opset=opset)

    assert "outside 9-24" in check_onnx_for_tensorrt(model(25)).problems[0]
    assert not check_onnx_for_tensorrt(model(8)).ok
    assert check_onnx_for_tensorrt(model(22), "10.15").ok and not check_onnx_for_tensorrt(model(22), "10.15").warnings
    assert "outside 9-20" in check_onnx_for_tensorrt(model(22), "10.0").problems[0]
    portable = check_onnx_for_tensorrt(model(22), "10.x")
    assert portable.ok and "opset <= 20" in portable.warnings[0]


# ---------------------------------------------------------------------------------------------- pure build parts

def test_build_settings_and_precision_flags():
    assert precision_flags("10.8.0", "fp16", False) == ["FP16"]
    assert precision_flags("10.8.0", "bf16", False) == ["BF16"] and precision_flags("10.8.0", "fp32", False) == []
    with pytest.raises(BackendUnavailable, match="tensorrt>=10,<11"):
        precision_flags("11.1.0", "fp16", False)
    assert precision_flags("11.1.0", "fp16", True) == []
    with pytest.raises(ValueError, match="precision"):
        BuildSettings(precision="int8")
    with pytest.raises(ValueError, match="batch"):
        BuildSettings(batch=(4, 1, 2))


def test_profile_shapes():
    assert profile_shape("ws", [-1, 8, 16], (1, 2, 4)) == ((1, 8, 16), (2, 8, 16), (4, 8, 16))
    assert profile_shape("x", [1, 3], (1, 2, 4)) == ((1, 3), (1, 3), (1, 3))
    with pytest.raises(ValueError, match="dynamic non-batch"):
        profile_shape("wave", [-1, -1], (1, 1, 4))
    assert profile_shape("wave", [-1, -1], (1, 1, 4), ([1, 100], [1, 200], [2, 400]))[2] == (2, 400)


def test_sidecar_and_rebuild_rule(synthesis_onnx, tmp_path):
    _, onnx_path = synthesis_onnx
    source = tmp_path / "g.onnx"
    source.write_bytes(onnx_path.read_bytes())
    engine = tmp_path / "g.engine"
    assert not engine_is_current(engine, source)
    engine.write_bytes(b"not really an engine")
    settings = BuildSettings("fp16", (1, 1, 4))
    info = sidecar_info(source, engine, settings, inputs=[{"name": "ws", "shape": [-1, 8, 16], "dtype": "float32"}],
                        outputs=[{"name": "image", "shape": [-1, 3, 32, 32], "dtype": "float32"}],
                        versions={"tensorrt": "10.15.1", "torch": torch.__version__}, gpu={"name": "test"},
                        warnings=[], build_seconds=1.25)
    path = write_sidecar(engine, info)
    assert path == sidecar_path(engine) == tmp_path / "g.engine.json"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind
    back = read_sidecar(engine)
    assert back == json.loads(json.dumps(info)) and back["build"]["precision"] == "fp16"
    assert back["source"]["sha256"] == __import__("hashlib").sha256(source.read_bytes()).hexdigest()

    assert engine_is_current(engine, source) and engine_is_current(engine, source, settings)
    assert not engine_is_current(engine, source, BuildSettings("fp32", (1, 1, 4)))
    source.write_bytes(source.read_bytes() + b" ")  # the source changed: rebuild
    assert not engine_is_current(engine, source)
    source.write_bytes(onnx_path.read_bytes())
    engine.write_bytes(b"truncated")  # engine bytes no longer those the sidecar describes
    assert not engine_is_current(engine, source)
    sidecar_path(engine).write_text("{ torn")
    assert read_sidecar(engine) is None and not engine_is_current(engine, source)


# ---------------------------------------------------------------------------------------------- without TensorRT

@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here")
def test_without_tensorrt_the_errors_say_how_to_install(synthesis_onnx, tmp_path):
    _, onnx_path = synthesis_onnx
    with pytest.raises(BackendUnavailable, match=r"pip install 'tensorrt>=10,<11'") as e:
        build_engine(onnx_path, tmp_path / "g.engine")
    assert isinstance(e.value, RuntimeError) and INSTALL_HINT in str(e.value)
    with pytest.raises(BackendUnavailable, match="NVIDIA GPU"):
        TensorRTBackend(tmp_path / "g.engine")
    assert not (tmp_path / "g.engine").exists()


def test_build_fails_on_unsupported_ops_before_touching_tensorrt(tmp_path):
    model = tiny_model([helper.make_node("DFT", ["x"], ["y"])], [fvec("x", 1, 16, 1)], [fvec("y", 1, 16, 2)])
    onnx.save(model, tmp_path / "dft.onnx")
    with pytest.raises(UnsupportedByTensorRT, match="DFT"):
        build_engine(tmp_path / "dft.onnx", tmp_path / "dft.engine")


class FakeTensorRT:
    """Just enough of TensorRT 10's Python API, as documented, to run build_engine's glue on a CPU machine.

    It proves the glue's calls and the files it writes, not TensorRT's behaviour (the GPU tests below do that).
    """

    __version__ = "10.15.1"
    Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity=2: None})
    NetworkDefinitionCreationFlag = type("F", (), {"STRONGLY_TYPED": 1})
    MemoryPoolType = type("M", (), {"WORKSPACE": "workspace"})
    BuilderFlag = type("B", (), {"FP16": "fp16", "BF16": "bf16"})
    DataType = type("D", (), {"FLOAT": "float32", "HALF": "float16"})
    TensorIOMode = type("T", (), {"INPUT": "in", "OUTPUT": "out"})
    calls: list = []

    class Tensor:
        def __init__(self, name, shape):
            self.name, self.shape, self.dtype = name, shape, "float32"

    class Network:
        def __init__(self):
            self.inputs, self.outputs = [], []

        num_inputs = property(lambda self: len(self.inputs))
        get_input = lambda self, i: self.inputs[i]  # noqa: E731

    class Cache:
        serialize = lambda self: b"timing"  # noqa: E731

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.cache = [], [], None

        set_memory_pool_limit = lambda self, pool, size: FakeTensorRT.calls.append(("pool", pool, size))  # noqa: E731
        set_flag = lambda self, flag: self.flags.append(flag)  # noqa: E731
        add_optimization_profile = lambda self, p: self.profiles.append(p)  # noqa: E731
        create_timing_cache = lambda self, data: FakeTensorRT.Cache()  # noqa: E731
        get_timing_cache = lambda self: self.cache  # noqa: E731

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

    class Profile(dict):
        set_shape = lambda self, name, lo, opt, hi: self.__setitem__(name, (lo, opt, hi))  # noqa: E731

    class Builder:
        def __init__(self, logger):
            pass

        create_network = lambda self, flags: FakeTensorRT.Network()  # noqa: E731
        create_builder_config = lambda self: FakeTensorRT.Config()  # noqa: E731
        create_optimization_profile = lambda self: FakeTensorRT.Profile()  # noqa: E731

        def build_serialized_network(self, network, config):
            FakeTensorRT.calls.append(("build", config.flags, config.profiles))
            return json.dumps({"in": [(t.name, t.shape) for t in network.inputs], "out": network.outputs,
                               "profile": config.profiles[0] if config.profiles else {}}).encode()

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            g = onnx.load(path).graph
            dims = lambda vi: [d.dim_value if d.HasField("dim_value") else -1  # noqa: E731
                               for d in vi.type.tensor_type.shape.dim]
            self.network.inputs = [FakeTensorRT.Tensor(i.name, dims(i)) for i in g.input]
            self.network.outputs = [(o.name, dims(o)) for o in g.output]
            return True

    class Engine:
        def __init__(self, plan):
            self.plan = json.loads(plan)
            self.io = [(n, s, "in") for n, s in self.plan["in"]] + [(n, s, "out") for n, s in self.plan["out"]]

        num_io_tensors = property(lambda self: len(self.io))
        num_optimization_profiles = 1
        get_tensor_name = lambda self, i: self.io[i][0]  # noqa: E731
        get_tensor_shape = lambda self, n: next(s for m, s, _ in self.io if m == n)  # noqa: E731
        get_tensor_mode = lambda self, n: next(k for m, _, k in self.io if m == n)  # noqa: E731
        get_tensor_dtype = lambda self, n: "float32"  # noqa: E731
        get_tensor_profile_shape = lambda self, n, i: self.plan["profile"][n]  # noqa: E731

    class Runtime:
        def __init__(self, logger):
            pass

        deserialize_cuda_engine = lambda self, plan: FakeTensorRT.Engine(plan)  # noqa: E731


def test_build_engine_glue_with_a_stand_in_tensorrt(synthesis_onnx, tmp_path, monkeypatch):
    import sys

    import exporters.tensorrt as mod

    _, onnx_path = synthesis_onnx
    FakeTensorRT.calls = []
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mod, "_gpu", lambda: {"name": "stand-in"})
    engine = tmp_path / "out" / "g.engine"
    info = build_engine(onnx_path, engine, precision="fp16", batch=(1, 2, 8), workspace_gb=0.5,
                        timing_cache=tmp_path / "timing.cache")
    (_, pool, size), (_, flags, profiles) = FakeTensorRT.calls
    assert (pool, size) == ("workspace", 1 << 29) and flags == ["fp16"]
    assert profiles[0]["ws"] == ((1, 8, 16), (2, 8, 16), (8, 8, 16))
    assert (tmp_path / "timing.cache").read_bytes() == b"timing"
    assert read_sidecar(engine) == info and info["versions"]["tensorrt"] == "10.15.1"
    assert info["inputs"] == [{"name": "ws", "shape": [-1, 8, 16], "dtype": "float32",
                               "profile": {"min": [1, 8, 16], "opt": [2, 8, 16], "max": [8, 8, 16]}}]
    assert info["outputs"][0]["name"] == "image" and info["build"]["batch"] == [1, 2, 8]
    assert engine_is_current(engine, onnx_path, BuildSettings("fp16", (1, 2, 8), 0.5))
    monkeypatch.setattr(FakeTensorRT, "__version__", "10.16.0")  # another TensorRT: engine no longer loads
    assert not engine_is_current(engine, onnx_path)


# ---------------------------------------------------------------------------------------------- on a GPU

@needs_trt_gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_engine_matches_torch(synthesis_onnx, tmp_path, precision, tol):
    G, onnx_path = synthesis_onnx
    engine = tmp_path / f"g_{precision}.engine"
    info = build_engine(onnx_path, engine, precision=precision, batch=(1, 2, 4), workspace_gb=1.0,
                        timing_cache=tmp_path / "timing.cache")
    assert engine_is_current(engine, onnx_path) and (tmp_path / "timing.cache").stat().st_size > 0
    assert [i["name"] for i in info["inputs"]] == ["ws"] and info["outputs"][0]["name"] == "image"
    assert info["inputs"][0]["profile"]["max"][0] == 4 and info["versions"]["tensorrt"]
    backend = TensorRTBackend(engine)
    assert backend.name == "tensorrt"
    G = G.cuda().eval()
    for batch in (1, 3):
        ws = torch.randn(batch, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(batch)).cuda()
        with torch.no_grad():
            want = G.synthesis(ws, noise_mode="const")
        got = backend(ws)
        torch.cuda.synchronize()
        assert got.shape == want.shape and (got.float() - want).abs().max().item() <= tol
