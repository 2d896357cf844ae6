"""An independent NumPy interpreter of the ONNX operators MobileNets use, in float64.

It is the ground truth that compiled libraries are verified against: it shares no code with
TVM or onnxruntime, and computes in double precision so its own rounding is negligible next
to the float32 error being measured.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.reference import numpy_ops

Attributes = dict[str, object]
OpFunction = Callable[[list[np.ndarray], Attributes], np.ndarray]


def _conv(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    x, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UserError("reference: Conv with auto_pad is not supported; export with explicit pads")
    pads = attrs.get("pads", [0, 0, 0, 0])
    return numpy_ops.conv2d(x, weight, bias, tuple(attrs.get("strides", (1, 1))),
                            (pads[0], pads[1], pads[2], pads[3]), int(attrs.get("group", 1)),
                            tuple(attrs.get("dilations", (1, 1))))


def _clip(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    low = inputs[1] if len(inputs) > 1 and inputs[1].size else attrs.get("min", -np.inf)
    high = inputs[2] if len(inputs) > 2 and inputs[2].size else attrs.get("max", np.inf)
    return np.clip(inputs[0], low, high)


def _gemm(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    a = inputs[0].T if attrs.get("transA") else inputs[0]
    b = inputs[1].T if attrs.get("transB") else inputs[1]
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    if len(inputs) > 2:
        out = out + float(attrs.get("beta", 1.0)) * inputs[2]
    return out


def _batch_norm(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    x, scale, shift, mean, var = inputs
    eps = float(attrs.get("epsilon", 1e-5))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(
        shape) + shift.reshape(shape)


def _softmax(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    x = inputs[0]
    shifted = np.exp(x - x.max(axis=int(attrs.get("axis", -1)), keepdims=True))
    return shifted / shifted.sum(axis=int(attrs.get("axis", -1)), keepdims=True)


def _reduce_mean(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    axes = attrs.get("axes", inputs[1].tolist() if len(inputs) > 1 else None)
    return inputs[0].mean(axis=None if axes is None else tuple(axes),
                          keepdims=bool(attrs.get("keepdims", 1)))


def _squeeze(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    axes = attrs.get("axes", inputs[1].tolist() if len(inputs) > 1 else None)
    return np.squeeze(inputs[0], axis=None if axes is None else tuple(axes))


def _pad(inputs: list[np.ndarray], attrs: Attributes) -> np.ndarray:
    if attrs.get("mode", b"constant") not in (b"constant", "constant"):
        raise UserError("reference: only constant Pad is supported")
    pads = inputs[1].astype(int).tolist()
    half = len(pads) // 2
    value = float(inputs[2]) if len(inputs) > 2 and inputs[2].size else 0.0
    return np.pad(inputs[0], list(zip(pads[:half], pads[half:])), constant_values=value)


#: ONNX operator -> NumPy implementation. Adding an operator is adding one entry.
OPERATORS: dict[str, OpFunction] = {
    "Conv": _conv,
    "Clip": _clip,
    "Relu": lambda i, a: np.maximum(i[0], 0.0),
    "Add": lambda i, a: i[0] + i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "GlobalAveragePool": lambda i, a: numpy_ops.global_average_pool(i[0]),
    "ReduceMean": _reduce_mean,
    "Flatten": lambda i, a: i[0].reshape(int(np.prod(i[0].shape[:int(a.get("axis", 1))])), -1),
    "Reshape": lambda i, a: i[0].reshape([d if d != 0 else i[0].shape[k]
                                          for k, d in enumerate(i[1].astype(int).tolist())]),
    "Squeeze": _squeeze,
    "Transpose": lambda i, a: np.transpose(i[0], a.get("perm")),
    "Gemm": _gemm,
    "MatMul": lambda i, a: i[0] @ i[1],
    "BatchNormalization": _batch_norm,
    "Softmax": _softmax,
    "Pad": _pad,
    "Identity": lambda i, a: i[0],
    "Dropout": lambda i, a: i[0],
}


def check_supported(model: onnx.ModelProto) -> None:
    """Raise `UserError` naming the first node the reference cannot run."""
    for node in model.graph.node:
        if node.op_type not in OPERATORS and node.op_type != "Constant":
            raise UserError(f"the NumPy reference does not implement {node.op_type} "
                            f"(node '{node.name or node.output[0]}')")


def run(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate the graph on `inputs`; returns the graph outputs in float64."""
    check_supported(model)
    values: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        values[init.name] = array.astype(np.float64) if array.dtype.kind == "f" else array
    values.update({name: np.asarray(array, np.float64) for name, array in inputs.items()})
    for node in model.graph.node:
        attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        args = [values[name] if name else np.empty(0) for name in node.input]
        values[node.output[0]] = OPERATORS[node.op_type](args, attrs)
    return [values[output.name] for output in model.graph.output]
