"""TensorRT 10.x's ONNX operator support, as data, and a check of an ONNX graph against it.

Source: onnx/onnx-tensorrt ``docs/operators.md`` as released with TensorRT 10.15 GA (2026-02-02; "TensorRT 10.15
supports operators in the inclusive range of opset 9 to opset 24"), cross-checked against the 10.0/10.1 version
of the same file (opset 9 to 20) and the per-release additions in ``docs/Changelog.md`` (STFT from 10.5, the
window ops from 10.4, tensor ``axes`` for Slice from 10.3 and for Pad from 10.4, ...). The table is a summary
for checking graphs, not a copy of the document: op names, the releases that added them, their floating-point
types where they differ from FP32/FP16/BF16, and the restrictions that can decide whether a graph imports.

``check_onnx_for_tensorrt`` needs only ``onnx`` (no TensorRT, no GPU). Where TensorRT is installed,
``polygraphy inspect capability model.onnx`` asks the real parser the same question.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TABLE_VERSION = (10, 15)
TABLE_SOURCE = ("onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15 GA) and docs/Changelog.md "
                "(per-release additions 10.0-10.15)")
OPSET_MIN = 9
# Highest opset each documented release states; releases in between are not documented separately.
OPSET_MAX = {(10, 0): 20, (10, 15): 24}

FLOAT3 = frozenset({"FP32", "FP16", "BF16"})

# Ops the 10.15 parser imports (Supported = Y). Float types are FP32/FP16/BF16 unless FLOAT_TYPES says otherwise.
SUPPORTED = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization BlackmanWindow
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression
NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin
Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Ops the table lists as not supported (Supported = N) in every 10.x release.
UNSUPPORTED = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool MaxUnpool
MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv
QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
SequenceMap SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())

# The release that first imports an op (Changelog); everything else in SUPPORTED imports from 10.0.
SINCE = {
    "DeformConv": (10, 1),
    "BlackmanWindow": (10, 4), "HammingWindow": (10, 4), "HannWindow": (10, 4),
    "STFT": (10, 5),
    "Attention": (10, 14),
    "RotaryEmbedding": (10, 15), "RMSNormalization": (10, 15), "TensorScatter": (10, 15),
}

# Floating-point types where they differ from FP32/FP16/BF16.
FLOAT_TYPES = {
    "STFT": frozenset({"FP32"}),
    **{op: frozenset({"FP32", "FP16"}) for op in (
        "BlackmanWindow", "HammingWindow", "HannWindow", "DeformConv", "GridSample", "Mish", "NonMaxSuppression",
        "NonZero", "RoiAlign")},
}

# Documented restrictions. Those in CHECKED are verified node by node below; the others are reported as
# warnings whenever the op appears, since whether they hold depends on shapes or values this check does not see.
RESTRICTIONS = {
    "STFT": "real input only, FP32 only, `frame_step` and `window` must be initializers (from 10.5)",
    "DFT": "not supported in any 10.x release",
    "Resize": "modes nearest/linear; coordinate modes half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, "
              "asymmetric, align_corners; aspect ratio policy stretch; no antialiasing",
    "Pad": "all four modes (constant, reflect, edge, wrap); tensor `axes` input only from 10.4",
    "Conv": "no documented restriction; weights that are a runtime input (grouped modulated conv) make dynamic-"
            "batch engines fail to build (docs/design.md: export the demodulated form)",
    "ConvTranspose": "as Conv: weights should be constant",
    "RandomNormal": "`seed` is ignored by TensorRT", "RandomNormalLike": "`seed` is ignored by TensorRT",
    "RandomUniform": "`seed` is ignored by TensorRT", "RandomUniformLike": "`seed` is ignored by TensorRT",
    "Slice": "tensor `axes` input only from 10.3",
    "Squeeze": "`axes` must be resolvable to a constant", "Unsqueeze": "`axes` must be resolvable to a constant",
    "CumSum": "`axis` must be a build-time constant",
    "Dropout": "`is_training` must be an initializer evaluating to False",
    "TopK": "`sorted` must be 1; K below 3840",
    "MaxPool": "2D or 3D only; `Indices` output unsupported; dilations all ones",
    "AveragePool": "2D or 3D only; dilations all ones", "LpPool": "dilations all ones",
    "ScatterND": "`reduction` must be none",
    "LayerNormalization": "only the first output `Y`",
    "LSTM": "`input_forget` and `layout` must be 0; bidirectional activations equal both ways",
    "Constant": "`sparse_value`, `value_string`, `value_strings` unsupported",
    "If": "both branches' outputs must have the same rank and different names",
    "Loop": "scan outputs cannot have a dynamic length; carried shapes fixed across iterations",
    "EyeLike": "input must have static dimensions", "GridSample": "input must be 4D",
    "OneHot": "`depth` must be a build-time constant", "Hardmax": "`axis` dimension must be a build-time constant",
    "DeformConv": "1D or 2D spatial input; begin and end pads equal",
    "GRU": "bidirectional activations equal both ways", "RNN": "bidirectional activations equal both ways",
    "DequantizeLinear": "`x_zero_point` must be zero", "QuantizeLinear": "`y_zero_point` must be 0",
    "Attention": "4D Q/K/V; no KV cache inputs/outputs (from 10.14)",
    **{op: "`axes` must be an initializer" for op in (
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
        "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}

# What to do instead, for ops livesound's exporters are known to emit.
HINTS = {
    "DFT": "write the STFT as a Conv1d with a fixed windowed DFT basis and the mel filterbank as a MatMul",
    "STFT": "the Conv1d-basis STFT exports to every runtime and every TensorRT 10.x release",
    "MelWeightMatrix": "bake the mel filterbank in as a constant MatMul weight",
    "RandomNormal": "export noise as a constant (noise_mode='const') or as an explicit graph input",
    "RandomNormalLike": "export noise as a constant (noise_mode='const') or as an explicit graph input",
}

DEFAULT_DOMAINS = ("", "ai.onnx")
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
_REDUCE_AXES_INPUT_FROM = {"ReduceSum": 13}  # other Reduce* ops take `axes` as an input from opset 18


@dataclass(frozen=True)
class Finding:
    op: str
    node: str
    severity: str  # "error": TensorRT will refuse the graph; "warning": it may, or behaves differently
    message: str

    def __str__(self) -> str:
        where = f" (node {self.node!r})" if self.node else ""
        return f"{self.op}{where}: {self.message}"


class UnsupportedByTensorRT(RuntimeError):
    """The graph uses ops or an opset that the targeted TensorRT release does not import."""


@dataclass
class Report:
    source: str
    target: str
    opset: int | None
    ops: Counter = field(default_factory=Counter)  # op type -> count, subgraphs and local functions included
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [str(f) for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[str]:
        return [str(f) for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unsupported(self) -> list[str]:
        return sorted({f.op for f in self.findings if f.severity == "error" and f.op not in ("opset", "table")})

    @property
    def restricted(self) -> list[str]:
        return sorted({f.op for f in self.findings if f.severity == "warning" and f.op not in ("opset", "table")})

    def raise_if_unsupported(self) -> None:
        if not self.ok:
            raise UnsupportedByTensorRT(
                f"{self.source} will not import into TensorRT {self.target}: unsupported "
                f"{', '.join(self.unsupported) or 'opset'}\n" + format_report(self))

    def to_dict(self) -> dict:
        return {"source": self.source, "target": self.target, "table": ".".join(map(str, TABLE_VERSION)),
                "opset": self.opset, "ok": self.ok, "ops": dict(sorted(self.ops.items())),
                "problems": self.problems, "warnings": self.warnings}


def format_report(report: Report) -> str:
    """Readable on a terminal: one line per distinct finding, with how many nodes it concerns."""
    lines = [f"TensorRT {report.target} op check of {report.source} (table: TensorRT "
             f"{'.'.join(map(str, TABLE_VERSION))}, opset {report.opset})",
             "  ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(report.ops.items()))]
    for severity, label in (("error", "unsupported"), ("warning", "restricted")):
        groups: dict[tuple[str, str], list[str]] = {}
        for f in report.findings:
            if f.severity == severity:
                groups.setdefault((f.op, f.message), []).append(f.node)
        if groups:
            lines.append(f"  {label}:")
        for (op, message), nodes in groups.items():
            named = [n for n in nodes if n]
            where = f" [{len(nodes)} nodes: {', '.join(named[:3])}{', ...' if len(named) > 3 else ''}]" \
                if len(nodes) > 1 else (f" [{named[0]}]" if named else "")
            lines.append(f"    - {op}: {message}{where}")
    lines.append("  result: " + ("OK" if report.ok else "FAILS"))
    return "\n".join(lines)


def parse_version(trt_version: str) -> tuple[int, int | None]:
    """'10.x' / '10' -> (10, None): any 10.x release; '10.5' or '10.5.0.18' -> (10, 5)."""
    m = re.fullmatch(r"(\d+)(?:\.(\d+|x))?(?:\.\d+)*", str(trt_version).strip())
    if not m:
        raise ValueError(f"not a TensorRT version: {trt_version!r}")
    major, minor = int(m.group(1)), m.group(2)
    if major != 10:
        raise ValueError(f"the op table covers TensorRT 10.x only, not {trt_version!r}")
    return major, None if minor in (None, "x") else int(minor)


def check_onnx_for_tensorrt(path_or_model, trt_version: str = "10.x", precision: str = "fp32") -> Report:
    """Every op of the graph (subgraphs and local functions included) against TensorRT ``trt_version``.

    ``"10.x"`` means every 10.x release: ops added after 10.0 and opsets above 20 are warnings naming the
    release they need. ``precision`` ("fp32", "fp16", "bf16") flags ops TensorRT has no kernel of that type for.
    """
    import onnx

    if isinstance(path_or_model, (str, Path)):
        model, source = onnx.load(str(path_or_model), load_external_data=False), str(path_or_model)
    else:
        model, source = path_or_model, path_or_model.graph.name or "<model>"
    _, minor = parse_version(trt_version)
    target = "10.x" if minor is None else f"10.{minor}"
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    report = Report(source=source, target=target, opset=opset)
    if minor is not None and minor > TABLE_VERSION[1]:
        report.findings.append(Finding("table", "", "warning", f"the table is from TensorRT 10.15; {target} may "
                                       "support more"))
    report.findings += _check_opset(opset, minor)
    functions = {(f.domain, f.name): f for f in model.functions}
    _Walker(report, minor, precision, functions).graph(model.graph, scope=())
    return report


def _check_opset(opset: int | None, minor: int | None) -> list[Finding]:
    if opset is None:
        return [Finding("opset", "", "error", "the model imports no default-domain opset")]
    top = OPSET_MAX[TABLE_VERSION]
    if minor is not None and minor <= 1:  # the 10.1 release still ships 10.0's table (opset 9-20)
        top = OPSET_MAX[(10, 0)]
    if not OPSET_MIN <= opset <= top:
        return [Finding("opset", "", "error", f"opset {opset} is outside {OPSET_MIN}-{top}, the range TensorRT "
                        f"{'10.x' if minor is None else f'10.{minor}'} imports")]
    if opset > OPSET_MAX[(10, 0)] and (minor is None or minor < TABLE_VERSION[1]):
        return [Finding("opset", "", "warning", f"opset {opset}: TensorRT 10.0 documents opsets up to 20 and 10.15 "
                        "up to 24; export at opset <= 20 to import into every 10.x release")]
    return []


class _Walker:
    """Walks graphs, If/Loop/Scan bodies and local functions, tracking which tensors are build-time constants."""

    def __init__(self, report: Report, minor: int | None, precision: str, functions: dict):
        self.report, self.minor, self.precision, self.functions = report, minor, precision, functions
        self.values: dict[str, object] = {}  # constant tensor name -> onnx TensorProto (or None if opaque)
        self.elem_types: dict[str, int] = {}

    def graph(self, g, scope: tuple[str, ...]) -> None:
        for init in g.initializer:
            self.values[init.name] = init
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.HasField("tensor_type"):
                self.elem_types[vi.name] = vi.type.tensor_type.elem_type
        self._io_types(g)
        self.nodes(g.node, scope)

    def nodes(self, nodes, scope: tuple[str, ...]) -> None:
        import onnx

        for node in nodes:
            key = (node.domain, node.op_type)
            if key in self.functions:  # TensorRT inlines ONNX local functions
                self.report.ops[f"function:{node.op_type}"] += 1
                self.nodes(self.functions[key].node, scope + (node.op_type,))
                continue
            self.node(node, ".".join(scope + (node.name,)))
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                self.values[node.output[0]] = value
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    self.graph(attr.g, scope + (node.name or node.op_type,))
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for sub in attr.graphs:
                        self.graph(sub, scope + (node.name or node.op_type,))

    def node(self, node, where: str) -> None:
        op = node.op_type
        name = op if node.domain in DEFAULT_DOMAINS else f"{node.domain}:{op}"
        self.report.ops[name] += 1
        add = self.report.findings.append
        if node.domain not in DEFAULT_DOMAINS:
            add(Finding(name, where, "error", f"not a standard ONNX op (domain {node.domain!r}); TensorRT imports it "
                                              f"only through a plugin registered as {op!r}"))
            return
        if op in UNSUPPORTED or op not in SUPPORTED:
            why = "not supported by TensorRT 10.x" if op in UNSUPPORTED else "not in TensorRT 10.15's op table"
            add(Finding(op, where, "error", why + (f"; {HINTS[op]}" if op in HINTS else "")))
            return
        since = SINCE.get(op, (10, 0))
        if since > (10, 0):
            if self.minor is not None and self.minor < since[1]:
                add(Finding(op, where, "error", f"needs TensorRT >= 10.{since[1]}"))
                return
            if self.minor is None:
                add(Finding(op, where, "warning", f"imports only from TensorRT 10.{since[1]}"
                            + (f"; {HINTS[op]}" if op in HINTS else "")))
        floats = FLOAT_TYPES.get(op, FLOAT3)
        want = {"fp16": "FP16", "bf16": "BF16"}.get(self.precision)
        if want and want not in floats:
            add(Finding(op, where, "warning", f"no {want} kernel: runs in {sorted(floats)[-1]}"))
        check = CHECKS.get(op)
        if check is not None:
            for severity, message in check(self, node):
                add(Finding(op, where, severity, message))
        elif op in RESTRICTIONS:
            add(Finding(op, where, "warning", f"restriction not checked here: {RESTRICTIONS[op]}"))

    def _io_types(self, g) -> None:
        import onnx

        for vi in list(g.input) + list(g.output):
            t = self.elem_types.get(vi.name)
            if t in (onnx.TensorProto.STRING, onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128):
                self.report.findings.append(Finding("dtype", vi.name, "error", f"{onnx.TensorProto.DataType.Name(t)} "
                                                    "tensors are not TensorRT types"))
            elif t == onnx.TensorProto.DOUBLE:
                self.report.findings.append(Finding("dtype", vi.name, "warning", "DOUBLE is cast down to FLOAT "
                                                    "(clamped to +-FLT_MAX)"))

    # -- helpers for the checks ----------------------------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return name in self.values

    def const(self, name: str):
        import onnx.numpy_helper

        value = self.values.get(name)
        try:
            return None if value is None else onnx.numpy_helper.to_array(value)
        except Exception:  # weights stored as external data, which the check does not load
            return None

    @staticmethod
    def attr(node, name: str, default=None):
        import onnx.helper

        for a in node.attribute:
            if a.name == name:
                v = onnx.helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    @staticmethod
    def input(node, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""


def _check_stft(w: _Walker, node):
    import onnx

    for i, what in ((1, "frame_step"), (2, "window")):
        if w.input(node, i) and not w.is_const(w.input(node, i)):
            yield "error", f"`{what}` is computed at run time; TensorRT needs an initializer"
    t = w.elem_types.get(w.input(node, 0))
    if t is not None and t != onnx.TensorProto.FLOAT:
        yield "error", f"signal is {onnx.TensorProto.DataType.Name(t)}; TensorRT's STFT is FP32 only"
    yield "warning", "FP32 only: an fp16 engine keeps it in FP32; " + HINTS["STFT"]


def _check_resize(w: _Walker, node):
    mode = w.attr(node, "mode", "nearest")
    coords = w.attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode not in RESIZE_MODES:
        yield "error", f"mode {mode!r} unsupported (nearest, linear only)"
    if coords not in RESIZE_COORDS:
        yield "error", f"coordinate_transformation_mode {coords!r} unsupported"
    if w.attr(node, "antialias", 0):
        yield "error", "antialiasing unsupported"
    if w.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield "error", "keep_aspect_ratio_policy must be 'stretch'"


def _check_weights_constant(w: _Walker, node):
    if not w.is_const(w.input(node, 1)):
        yield "warning", ("weights are a runtime input: TensorRT builds such convs poorly or not at all with a "
                          "dynamic batch; export the demodulated (shared-weight) form")


def _check_axes_input(index: int, what: str, severity: str = "error", since: int | None = None):
    """`what` (input ``index``) must be a build-time constant, or (with ``since``) needs TensorRT >= 10.since."""
    def check(w: _Walker, node):
        name = w.input(node, index)
        if not name or w.is_const(name):
            return
        if since is None:
            yield severity, f"`{what}` is computed at run time: {RESTRICTIONS[node.op_type]}"
        elif w.minor is None:
            yield "warning", f"a run-time `{what}` input imports only from TensorRT 10.{since}"
        elif w.minor < since:
            yield "error", f"a run-time `{what}` input needs TensorRT >= 10.{since}"
    return check


def _check_reduce(w: _Walker, node):
    opset = w.report.opset or 0
    if opset >= _REDUCE_AXES_INPUT_FROM.get(node.op_type, 18):
        yield from _check_axes_input(1, "axes")(w, node)


def _check_dropout(w: _Walker, node):
    name = w.input(node, 2)
    if name and not w.is_const(name):
        yield "error", "`is_training` must be an initializer"
    elif name and (v := w.const(name)) is not None and bool(v):
        yield "error", "`is_training` is True"


def _check_topk(w: _Walker, node):
    if w.attr(node, "sorted", 1) != 1:
        yield "error", "`sorted` must be 1"
    k = w.const(w.input(node, 1)) if w.input(node, 1) else None
    if k is not None and int(k.reshape(-1)[0]) >= 3840:
        yield "error", "K must be below 3840"


def _check_pool(w: _Walker, node):
    kernel = w.attr(node, "kernel_shape", [])
    if node.op_type != "LpPool" and len(kernel) not in (2, 3):
        yield "error", f"{len(kernel)}D pooling unsupported (2D or 3D only)"
    if any(d != 1 for d in w.attr(node, "dilations", [])):
        yield "error", "dilations must be all ones"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        yield "error", "the `Indices` output is unsupported"


def _check_scatternd(w: _Walker, node):
    if w.attr(node, "reduction", "none") != "none":
        yield "error", "`reduction` must be none"


def _check_layernorm(w: _Walker, node):
    if any(node.output[1:]):
        yield "error", "only the first output `Y` is supported"


def _check_lstm(w: _Walker, node):
    if w.attr(node, "input_forget", 0) or w.attr(node, "layout", 0):
        yield "error", "`input_forget` and `layout` must be 0"


def _check_constant(w: _Walker, node):
    bad = {a.name for a in node.attribute} & {"sparse_value", "value_string", "value_strings"}
    if bad:
        yield "error", f"attribute {sorted(bad)[0]} unsupported"


def _check_random(w: _Walker, node):
    yield "warning", "TensorRT ignores `seed`: results are not reproducible; " + HINTS["RandomNormal"]


CHECKS = {
    "STFT": _check_stft, "Resize": _check_resize, "Pad": _check_axes_input(3, "axes", since=4),
    "Conv": _check_weights_constant, "ConvTranspose": _check_weights_constant,
    "Slice": _check_axes_input(3, "axes", since=3),
    "Squeeze": _check_axes_input(1, "axes", "warning"), "Unsqueeze": _check_axes_input(1, "axes", "warning"),
    "CumSum": _check_axes_input(1, "axis"),
    "OneHot": _check_axes_input(1, "depth"),
    "Dropout": _check_dropout, "TopK": _check_topk,
    "MaxPool": _check_pool, "AveragePool": _check_pool, "LpPool": _check_pool,
    "ScatterND": _check_scatternd, "LayerNormalization": _check_layernorm, "LSTM": _check_lstm,
    "Constant": _check_constant,
    **{op: _check_random for op in ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike")},
    **{op: _check_reduce for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}
