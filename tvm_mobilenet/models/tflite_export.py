"""TFLite export: the network of `models.to_onnx` as a float32 TFLite flatbuffer, NHWC.

Written with the `tflite` package's generated flatbuffer builders (no TensorFlow). Each conv
is a CONV_2D (weights OHWI) or DEPTHWISE_CONV_2D (weights 1HWC) with its bias and a fused
RELU6; residuals are ADD, the global pool is MEAN over H and W, the classifier is
FULLY_CONNECTED. TF's SAME padding puts the odd pixel of a stride-2 conv at the bottom and
right only, whereas the ONNX graph pads symmetrically, so strided convs get an explicit PAD
and VALID padding; the logits then match the ONNX model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

from tvm_mobilenet.models.architectures import Architecture, Layer
from tvm_mobilenet.models.weights import LayerWeights

INPUT_NAME = "input"
OUTPUT_NAME = "logits"

#: Options table of each builtin operator used; the names index `tflite.BuiltinOperator`
#: and `tflite.BuiltinOptions` and prefix the generated builder functions.
OPTIONS = {
    "PAD": "PadOptions",
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "ADD": "AddOptions",
    "MEAN": "ReducerOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
}
#: The schema aligns buffer data to 16 bytes (``force_align: 16``).
BUFFER_ALIGNMENT = 16


@dataclass
class _Graph:
    """Tensors, constant buffers and operators of one subgraph, before serialisation."""

    tensors: list[tuple[str, tuple[int, ...], int, int]] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])  # buffer 0: no data
    operators: list[tuple[str, list[int], int, dict[str, int]]] = field(default_factory=list)

    def tensor(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        """Add a tensor (a constant when `data` is given, float32 or int32); its index."""
        buffer, dtype = 0, tflite.TensorType.FLOAT32
        if data is not None:
            buffer = len(self.buffers)
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            dtype = tflite.TensorType.INT32 if data.dtype == np.int32 else dtype
        self.tensors.append((name, shape, dtype, buffer))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], name: str, shape: tuple[int, ...],
           **options: int) -> int:
        """Add operator `kind` writing a new float32 tensor; the tensor's index."""
        output = self.tensor(name, shape)
        self.operators.append((kind, inputs, output, options))
        return output


def to_tflite(arch: Architecture, weights: dict[str, LayerWeights]) -> bytes:
    """The network as a TFLite flatbuffer: input "input" [1, R, R, 3], output "logits"."""
    graph = _Graph()
    current = graph_input = graph.tensor(INPUT_NAME, _nhwc(3, arch.resolution))
    block_inputs: dict[str, int] = {}
    for layer in arch.layers:
        block_inputs[layer.name] = current
        if layer.kind == "pool":
            axes = graph.tensor("pool.axes", (2,), np.array([1, 2], np.int32))
            current = graph.op("MEAN", [current, axes], "features", (1, layer.out_channels),
                               KeepDims=False)
            continue
        w = weights[layer.name]
        if layer.kind == "classifier":
            current = graph.op("FULLY_CONNECTED",
                               [current, *_constants(graph, layer.name, w.weight, w.bias)],
                               OUTPUT_NAME, (1, layer.out_channels))
            continue
        current = _conv(graph, layer, current, w)
        if layer.residual_from:
            current = graph.op("ADD", [current, block_inputs[layer.residual_from]],
                               f"{layer.name}.add", _nhwc(layer.out_channels, layer.out_size))
    return _serialise(graph, graph_input, current, arch.label)


def _conv(graph: _Graph, layer: Layer, current: int, w: LayerWeights) -> int:
    """CONV_2D or DEPTHWISE_CONV_2D (after a symmetric PAD when strided); the output tensor."""
    padding = tflite.Padding.SAME
    if layer.stride > 1 and layer.padding:
        p = layer.padding
        pads = graph.tensor(f"{layer.name}.pads", (4, 2),
                            np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32))
        current = graph.op("PAD", [current, pads], f"{layer.name}.pad",
                           _nhwc(layer.in_channels, layer.in_size + 2 * p))
        padding = tflite.Padding.VALID
    depthwise = layer.kind == "depthwise"
    # OIHW -> 1HWC (depthwise: O = C, I = 1) or OHWI.
    weight = w.weight.transpose((1, 2, 3, 0) if depthwise else (0, 2, 3, 1))
    activation = (tflite.ActivationFunctionType.RELU6 if layer.relu6
                  else tflite.ActivationFunctionType.NONE)
    options = dict(Padding=padding, StrideH=layer.stride, StrideW=layer.stride,
                   FusedActivationFunction=activation)
    if depthwise:
        options["DepthMultiplier"] = 1
    return graph.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
                    [current, *_constants(graph, layer.name, weight, w.bias)], layer.name,
                    _nhwc(layer.out_channels, layer.out_size), **options)


def _constants(graph: _Graph, name: str, weight: np.ndarray, bias: np.ndarray) -> list[int]:
    return [graph.tensor(f"{name}.weight", weight.shape, weight),
            graph.tensor(f"{name}.bias", bias.shape, bias)]


def _nhwc(channels: int, size: int) -> tuple[int, int, int, int]:
    return (1, size, size, channels)


def _serialise(graph: _Graph, graph_input: int, graph_output: int, description: str) -> bytes:
    """Write `graph` as a one-subgraph TFLite model (file identifier TFL3, schema version 3)."""
    builder = flatbuffers.Builder(1024)
    buffers = [_table(builder, "Buffer", Data=_bytes(builder, data)) if data
               else _table(builder, "Buffer") for data in graph.buffers]
    tensors = [_table(builder, "Tensor", Name=builder.CreateString(name),
                      Shape=_ints(builder, shape), Type=dtype, Buffer=buffer)
               for name, shape, dtype, buffer in graph.tensors]
    kinds = list(dict.fromkeys(kind for kind, *_ in graph.operators))
    operators = []
    for kind, inputs, output, options in graph.operators:
        # Arguments are evaluated first: vectors and options are complete before the table.
        operators.append(_table(
            builder, "Operator", Inputs=_ints(builder, inputs), Outputs=_ints(builder, [output]),
            OpcodeIndex=kinds.index(kind),
            BuiltinOptionsType=getattr(tflite.BuiltinOptions, OPTIONS[kind]),
            BuiltinOptions=_table(builder, OPTIONS[kind], **options)))
    # Codes above 127 go in BuiltinCode only; the int8 field then holds 127 (TFLite >= 2.4).
    codes = [getattr(tflite.BuiltinOperator, kind) for kind in kinds]
    opcodes = [_table(builder, "OperatorCode", BuiltinCode=code,
                      DeprecatedBuiltinCode=min(code, 127)) for code in codes]
    subgraph = _table(builder, "SubGraph", Tensors=_offsets(builder, tensors),
                      Inputs=_ints(builder, [graph_input]),
                      Outputs=_ints(builder, [graph_output]),
                      Operators=_offsets(builder, operators),
                      Name=builder.CreateString("main"))
    model = _table(builder, "Model", Version=3, OperatorCodes=_offsets(builder, opcodes),
                   Subgraphs=_offsets(builder, [subgraph]), Buffers=_offsets(builder, buffers),
                   Description=builder.CreateString(description))
    builder.Finish(model, file_identifier=b"TFL3")
    return bytes(builder.Output())


def _table(builder: flatbuffers.Builder, name: str, **fields: int) -> int:
    """Build table `name` with the generated ``<name>Start/Add<Field>/End`` functions."""
    getattr(tflite, f"{name}Start")(builder)
    for key, value in fields.items():
        getattr(tflite, f"{name}Add{key}")(builder, value)
    return getattr(tflite, f"{name}End")(builder)


def _ints(builder: flatbuffers.Builder, values: list[int] | tuple[int, ...]) -> int:
    return builder.CreateNumpyVector(np.asarray(values, np.int32))


def _offsets(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _bytes(builder: flatbuffers.Builder, data: bytes) -> int:
    builder.StartVector(1, len(data), BUFFER_ALIGNMENT)
    builder.head -= len(data)
    builder.Bytes[builder.head:builder.head + len(data)] = data
    return builder.EndVector()
