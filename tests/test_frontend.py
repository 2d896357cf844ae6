"""Importing models: clear one-line errors for bad files, ops and shapes."""

import onnx
import pytest
from conftest import run_module
from onnx import helper

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import ModelSource, import_model, import_onnx, onnx_input
from tvm_mobilenet.models.architectures import architecture
from tvm_mobilenet.models.onnx_export import export


@pytest.fixture(scope="module")
def small_model() -> onnx.ModelProto:
    return export(architecture("mobilenet_v2", 0.35, 96))


def test_symbolic_batch_is_fixed_to_one(small_model):
    assert onnx_input(small_model) == ("input", (1, 3, 96, 96))
    imported = import_onnx(small_model)
    assert imported.input_shape == (1, 3, 96, 96)
    assert "main" in [gv.name_hint for gv in imported.mod.get_global_vars()]


def test_explicit_batch(small_model):
    assert onnx_input(small_model, batch=4)[1] == (4, 3, 96, 96)


@pytest.mark.parametrize("written", [-1, 0])
def test_sizes_written_as_minus_one_or_zero_are_dynamic(small_model, written):
    """Some exporters write a dynamic size as -1 or 0 instead of a name."""
    model = onnx.ModelProto()
    model.CopyFrom(small_model)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value = written
    assert onnx_input(model) == ("input", (1, 3, 96, 96))
    dims[2].dim_value = written
    with pytest.raises(UserError, match="--input-shape"):
        onnx_input(model)
    assert onnx_input(model, (1, 3, 96, 96)) == ("input", (1, 3, 96, 96))


def check_cli_error(args: list[str], fragment: str) -> None:
    result = run_module("build", "--model", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]


def test_not_a_model_file(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    check_cli_error([str(path), "-o", str(tmp_path / "x.so")], "is not")


def test_truncated_file(tmp_path, small_model):
    path = tmp_path / "cut.onnx"
    path.write_bytes(small_model.SerializeToString()[:5000])
    check_cli_error([str(path), "-o", str(tmp_path / "x.so")], str(path))


def test_missing_file_and_unknown_model(tmp_path):
    check_cli_error([str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "x.so")], "does not exist")
    check_cli_error(["resnet50", "-o", str(tmp_path / "x.so")], "mobilenet_v1")


def test_unsupported_op_names_op_and_node(tmp_path, small_model):
    model = onnx.ModelProto()
    model.CopyFrom(small_model)
    graph = model.graph
    old_output = graph.node[-1].output[0]
    graph.node[-1].output[0] = "pre_logits"
    graph.node.append(helper.make_node("Celu", ["pre_logits"], [old_output],
                                       name="weird_head"))
    with pytest.raises(UserError, match=r"Celu \(node 'weird_head'\)"):
        import_onnx(model)
    path = tmp_path / "weird.onnx"
    onnx.save(model, path)
    check_cli_error([str(path), "-o", str(tmp_path / "x.so")], "weird_head")


def test_wrong_input_shape(tmp_path, small_model):
    with pytest.raises(UserError, match=r"does not match the model's input 'input'"):
        import_onnx(small_model, input_shape=(1, 3, 224, 224))
    path = tmp_path / "small.onnx"
    onnx.save(small_model, path)
    check_cli_error([str(path), "--input-shape", "1,224,224,3", "-o", str(tmp_path / "x.so")],
                    "does not match")
    check_cli_error([str(path), "--input-shape", "1,3,x", "-o", str(tmp_path / "x.so")],
                    "bad shape")


def test_architecture_source_label():
    assert ModelSource("mobilenet_v1", 0.5, 160).label == "mobilenet_v1-0.5-160"
    assert import_model(ModelSource("mobilenet_v1", 0.25, 64)).input_shape == (1, 3, 64, 64)
