"""ONNX export: valid graphs, sane activations, and the NumPy reference agrees with onnxruntime."""

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import run_module

from tvm_mobilenet.evaluate.verify import compare, seeded_inputs
from tvm_mobilenet.models.architectures import architecture
from tvm_mobilenet.models.onnx_export import export
from tvm_mobilenet.reference import interpreter as reference

CONFIGS = [("mobilenet_v1", 1.0, 224), ("mobilenet_v1", 0.5, 160),
           ("mobilenet_v2", 1.0, 224), ("mobilenet_v2", 0.5, 128), ("mobilenet_v2", 1.4, 96)]


def onnxruntime_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("name, alpha, resolution", CONFIGS)
def test_reference_matches_onnxruntime(name, alpha, resolution):
    model = export(architecture(name, alpha, resolution), seed=0)
    x = seeded_inputs((1, 3, resolution, resolution), 1, seed=5)[0]
    expected = reference.run(model, {"input": x})[0]
    result = compare(onnxruntime_run(model, x), expected)
    assert result.rel_error < 1e-4 and result.topk_agrees


def test_activations_neither_vanish_nor_explode():
    model = export(architecture("mobilenet_v2", 1.0, 224), seed=3)
    logits = reference.run(model, {"input": seeded_inputs((1, 3, 224, 224), 1, 9)[0]})[0]
    assert 0.5 < logits.std() < 50
    top6 = np.sort(logits.reshape(-1))[-6:]
    # Top-5 agreement is meaningful only if the leading scores differ by more than the
    # verification tolerance (1e-4 of the largest magnitude).
    assert np.diff(top6).min() > 1e-4 * np.abs(logits).max()


def test_seed_changes_weights_and_outputs():
    arch = architecture("mobilenet_v1", 0.25, 128)
    x = seeded_inputs(arch.input_shape, 1, 0)[0]
    a = reference.run(export(arch, seed=0), {"input": x})[0]
    b = reference.run(export(arch, seed=1), {"input": x})[0]
    again = reference.run(export(arch, seed=0), {"input": x})[0]
    assert np.array_equal(a, again)
    assert compare(b, a).rel_error > 0.1


def test_graph_is_folded_and_uses_clip_for_relu6():
    model = export(architecture("mobilenet_v2", 0.5, 96))
    ops = {node.op_type for node in model.graph.node}
    assert ops == {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm"}
    assert model.opset_import[0].version >= 13


def test_export_cli_writes_a_loadable_file(tmp_path):
    out = tmp_path / "v2.onnx"
    result = run_module("models", "export", "mobilenet_v2", "--alpha", "0.35",
                        "--resolution", "96", "--seed", "4", "-o", str(out))
    assert result.returncode == 0, result.stderr
    onnx.checker.check_model(onnx.load(str(out)))
    assert "mobilenet_v2-0.35-96" in result.stdout


def test_summary_cli_lists_kinds_and_totals():
    result = run_module("models", "summary", "mobilenet_v2")
    assert result.returncode == 0, result.stderr
    for kind in ("stem", "depthwise", "expand", "project", "pointwise", "classifier"):
        assert kind in result.stdout
    assert "300.8 M MACs" in result.stdout


def test_summary_cli_rejects_bad_alpha():
    result = run_module("models", "summary", "mobilenet_v1", "--alpha", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "tvm-mobilenet models summary: error: argument --alpha: must be above 0, got -1")
