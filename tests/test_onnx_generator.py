"""The generator is plain PyTorch ops: its synthesis exports to ONNX and runs in ONNX Runtime unchanged."""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from exporters.onnx import export_generator


def test_synthesis_exports_with_dynamic_batch_and_parity(tmp_path, tiny_generator):
    G = tiny_generator
    for layer in G.synthesis.layers:
        layer.noise_strength.data.fill_(0.3)  # stored noise must be baked into the graph
    report = export_generator(G, tmp_path)
    assert report["max_abs_error"] < 1e-4
    model = onnx.load(str(tmp_path / "generator.onnx"))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"RandomNormal", "RandomNormalLike"}
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    sess = ort.InferenceSession(str(tmp_path / "generator.onnx"), providers=["CPUExecutionProvider"])
    ws = torch.randn(5, G.num_ws, G.w_dim)
    out = sess.run(None, {"ws": ws.numpy()})[0]
    with torch.no_grad():
        ref = G.synthesis(ws, noise_mode="const").numpy()
    assert out.shape == (5, 3, 32, 32) and np.abs(out - ref).max() < 1e-4
