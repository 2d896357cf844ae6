"""MobileNet models: ONNX export with seeded weights, and the per-layer summary.

    python -m tvm_mobilenet.models export mobilenet_v2 --alpha 0.5 --resolution 160 -o m.onnx
    python -m tvm_mobilenet.models export mobilenet_v1 --alpha 0.25 -o m.tflite
    python -m tvm_mobilenet.models summary mobilenet_v1 --alpha 0.75
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tvm_mobilenet.models.architectures import LAYER_KINDS, Architecture
from tvm_mobilenet.models.weights import LayerWeights, random_weights

ONNX_OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def to_onnx(arch: Architecture, weights: dict[str, LayerWeights]) -> onnx.ModelProto:
    """The network as an ONNX graph: Conv (BN folded into its bias), Clip(0, 6), Add, GAP, Gemm.

    The batch dimension is symbolic (``batch``), as exporters from PyTorch or Keras usually
    leave it; the importer fixes it to 1.
    """
    nodes: list[onnx.NodeProto] = []
    initializers = [numpy_helper.from_array(np.array(0.0, np.float32), "relu6.min"),
                    numpy_helper.from_array(np.array(6.0, np.float32), "relu6.max")]
    block_inputs: dict[str, str] = {}
    current = INPUT_NAME
    for layer in arch.layers:
        block_inputs[layer.name] = current
        if layer.kind == "pool":
            nodes.append(helper.make_node("GlobalAveragePool", [current], ["pool"], name="pool"))
            nodes.append(helper.make_node("Flatten", ["pool"], ["features"], name="flatten"))
            current = "features"
            continue
        w = weights[layer.name]
        initializers += [numpy_helper.from_array(w.weight, f"{layer.name}.weight"),
                         numpy_helper.from_array(w.bias, f"{layer.name}.bias")]
        inputs = [current, f"{layer.name}.weight", f"{layer.name}.bias"]
        if layer.kind == "classifier":
            nodes.append(helper.make_node("Gemm", inputs, [OUTPUT_NAME], name=layer.name,
                                          transB=1))
            continue
        current = f"{layer.name}.out"
        nodes.append(helper.make_node(
            "Conv", inputs, [current], name=layer.name, kernel_shape=[layer.kernel] * 2,
            strides=[layer.stride] * 2, pads=[layer.padding] * 4, group=layer.groups))
        if layer.relu6:
            nodes.append(helper.make_node("Clip", [current, "relu6.min", "relu6.max"],
                                          [f"{layer.name}.relu6"], name=f"{layer.name}.relu6"))
            current = f"{layer.name}.relu6"
        if layer.residual_from:
            nodes.append(helper.make_node("Add", [current, block_inputs[layer.residual_from]],
                                          [f"{layer.name}.add"], name=f"{layer.name}.add"))
            current = f"{layer.name}.add"
    _, channels, height, width = arch.input_shape
    graph = helper.make_graph(
        nodes, arch.label,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                       ["batch", channels, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1000])],
        initializers)
    model = helper.make_model(graph, producer_name="tvm_mobilenet",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export(arch: Architecture, seed: int = 0) -> onnx.ModelProto:
    """Seeded random weights for `arch`, as an ONNX model."""
    return to_onnx(arch, random_weights(arch, seed))


def summary_table(arch: Architecture) -> str:
    """Per-layer table (kind, shapes, MACs, params) with totals per kind and overall."""
    rows = [f"{arch.label}  input {list(arch.input_shape)}",
            f"{'layer':<20} {'kind':<11} {'input':<20} {'output':<20} {'MACs':>12} {'params':>10}"]
    for layer in arch.layers:
        rows.append(f"{layer.name:<20} {layer.kind:<11} {str(list(layer.in_shape)):<20} "
                    f"{str(list(layer.out_shape)):<20} {layer.macs:>12,} {layer.params:>10,}")
    rows.append("")
    for kind in LAYER_KINDS:
        layers = [layer for layer in arch.layers if layer.kind == kind]
        if layers:
            rows.append(f"{kind:<11} x{len(layers):<3} {sum(l.macs for l in layers):>14,} MACs "
                        f"{sum(l.params for l in layers):>12,} params")
    rows.append(f"{'total':<16} {arch.macs:>14,} MACs {arch.params:>12,} params "
                f"({arch.macs / 1e6:.1f} M MACs, {arch.params / 1e6:.2f} M params)")
    return "\n".join(rows)
