"""Import a MobileNet-like model (ONNX or TFLite file, or an architecture name) into Relax.

Relax is the graph IR that replaced Relay in TVM; ``tvm.relax.frontend.onnx`` and
``tvm.relax.frontend.tflite`` do the conversion, this module adds input handling and clear
errors. Weights are bound into the module as constants.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import onnx
import tvm
from google.protobuf.message import DecodeError

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.tflite_check import check_flatbuffer
from tvm_mobilenet.models import onnx_export as models
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.models.architectures import ARCHITECTURES, architecture

MODEL_SUFFIXES = (".onnx", ".tflite")
#: The largest input batch accepted, in bytes of float32 (64 images of 1024x1024 RGB fit).
MAX_INPUT_BYTES = 1 << 30
#: Models given by name: the architectures (seeded random weights) and the pretrained one.
MODEL_NAMES = ARCHITECTURES + (pretrained.NAME,)


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a file, an architecture built with seeded weights, or the
    pretrained ImageNet MobileNetV2 (`pretrained.NAME`)."""

    spec: str
    alpha: float = 1.0
    resolution: int = 224
    expansion: int | None = None
    seed: int = 0

    @property
    def is_named(self) -> bool:
        """A model given by name (built here), not a file."""
        return self.spec in MODEL_NAMES

    @property
    def label(self) -> str:
        """``mobilenet_v2-1.0-224`` for an architecture, ``mobilenet_v2_imagenet`` for the
        pretrained model, the file's stem for a file."""
        if self.spec == pretrained.NAME:
            return pretrained.NAME
        if self.is_named:
            return architecture(self.spec, self.alpha, self.resolution, self.expansion).label
        return Path(self.spec).stem

    @property
    def tuning_label(self) -> str:
        """Folder of the model's tuning log: kernels depend on the architecture, not on the
        weights, so the pretrained model shares ``mobilenet_v2-1.0-224``'s log."""
        if self.spec == pretrained.NAME:
            return pretrained.pretrained_architecture(self.alpha, self.resolution,
                                                      self.expansion).label
        return self.label


@dataclass(frozen=True)
class ImportedModel:
    mod: tvm.IRModule
    input_name: str
    input_shape: tuple[int, ...]


def load_onnx_file(path: str | Path) -> onnx.ModelProto:
    """Read and check an ONNX file; any problem becomes a one-line `UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError, RuntimeError) as error:
        raise UserError(f"{path} is not a readable ONNX model ({_first_line(error)})") from error
    if not model.graph.node:
        raise UserError(f"{path} is not an ONNX model: its graph has no nodes")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise UserError(f"{path} is not a valid ONNX model: {_first_line(error)}") from error
    return model


def onnx_model(source: ModelSource) -> onnx.ModelProto:
    """The ONNX graph of a source: exported from the builder (pretrained or seeded weights),
    or read from an .onnx file."""
    if source.spec == pretrained.NAME:
        arch = pretrained.pretrained_architecture(source.alpha, source.resolution,
                                                  source.expansion)
        return models.to_onnx(arch, pretrained.pretrained_weights())
    if source.is_named:
        arch = architecture(source.spec, source.alpha, source.resolution, source.expansion)
        return models.export(arch, source.seed)
    if Path(source.spec).suffix == ".tflite":
        raise UserError(f"{source.spec} is a TFLite file; this step needs an ONNX model")
    return load_onnx_file(_checked_path(source.spec))


def onnx_input(model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None,
               batch: int = 1) -> tuple[str, tuple[int, ...]]:
    """Name and concrete shape of the model's single image input.

    A symbolic first (batch) dimension becomes `batch`; `input_shape`, when given, must agree
    with every static dimension of the model. Sizes written as -1 or 0, as some exporters
    write a dynamic size, are symbolic too.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"expected one image input, the model has {len(inputs)}: "
                        f"{', '.join(value.name for value in inputs)}")
    value = inputs[0]
    dims = [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0
            else (dim.dim_param or "?") for dim in value.type.tensor_type.shape.dim]
    shown = "[" + ", ".join(str(dim) for dim in dims) + "]"
    if input_shape is not None:
        if len(input_shape) != len(dims) or any(
                isinstance(d, int) and d != s for d, s in zip(dims, input_shape)):
            raise UserError(f"input shape {list(input_shape)} does not match the model's input "
                            f"'{value.name}' {shown}")
        return value.name, tuple(input_shape)
    if len(dims) != 4:
        raise UserError(f"input '{value.name}' {shown} is not an image batch (N, C, H, W)")
    if not isinstance(dims[0], int):
        dims[0] = batch
    if not all(isinstance(dim, int) for dim in dims):
        raise UserError(f"input '{value.name}' {shown} has symbolic sizes; "
                        "pass --input-shape N,C,H,W")
    return value.name, tuple(dims)


def import_onnx(model: onnx.ModelProto, input_shape: tuple[int, ...] | None = None,
                batch: int = 1) -> ImportedModel:
    """Convert an ONNX graph to a Relax module with its weights bound."""
    from tvm.relax.frontend.onnx import from_onnx

    name, shape = onnx_input(model, input_shape, batch)
    _check_input_size(name, shape)
    try:
        mod = from_onnx(model, shape_dict={name: shape}, keep_params_in_input=False)
    except tvm.error.OpNotImplemented as error:
        raise UserError(_unsupported_ops_message(model, str(error))) from error
    except (ValueError, TypeError, RuntimeError, AssertionError) as error:
        raise UserError(f"TVM could not import the model with input '{name}' "
                        f"{list(shape)}: {_first_line(error)}") from error
    return ImportedModel(mod, name, shape)


def import_tflite(path: str | Path, input_shape: tuple[int, ...] | None = None) -> ImportedModel:
    """Convert a TFLite flatbuffer (NHWC input) to a Relax module with its weights bound."""
    from tvm.relax.frontend.tflite import from_tflite

    try:
        model = check_flatbuffer(Path(path).read_bytes())
        subgraph = model.Subgraphs(0)
        if subgraph.InputsLength() != 1:
            raise UserError(f"it has {subgraph.InputsLength()} inputs, not one image")
        tensor = subgraph.Tensors(subgraph.Inputs(0))
        name, shape = tensor.Name().decode(), tuple(int(d) for d in tensor.ShapeAsNumpy())
    except UserError as error:
        raise UserError(f"{path} is not a readable TFLite model ({error})") from error
    if input_shape is not None and tuple(input_shape) != shape:
        raise UserError(f"input shape {list(input_shape)} does not match the model's input "
                        f"'{name}' {list(shape)}")
    _check_input_size(name, shape)
    try:
        mod = from_tflite(model, shape_dict={name: shape}, dtype_dict={name: "float32"})
    except tvm.error.OpNotImplemented as error:
        raise UserError(f"{path}: {_first_line(error)}") from error
    except (ValueError, TypeError, IndexError, KeyError, AssertionError, struct.error,
            RuntimeError) as error:  # well-formed, but not a graph TVM can convert
        raise UserError(f"{path}: TVM's TFLite importer cannot convert it "
                        f"({type(error).__name__}: {_first_line(error)})") from error
    if isinstance(mod, tuple):
        mod = mod[0]
    return ImportedModel(mod, name, shape)


def import_model(source: ModelSource, input_shape: tuple[int, ...] | None = None,
                 batch: int = 1) -> ImportedModel:
    """Any model source -> Relax module."""
    if not source.is_named and Path(source.spec).suffix == ".tflite":
        return import_tflite(_checked_path(source.spec), input_shape)
    return import_onnx(onnx_model(source), input_shape, batch)


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' -> (1, 3, 224, 224)."""
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"bad shape {text!r}: expected comma-separated integers, "
                        "e.g. 1,3,224,224") from None
    if any(dim <= 0 for dim in shape):
        raise UserError(f"bad shape {text!r}: sizes must be positive")
    return shape


def _checked_path(spec: str) -> Path:
    path = Path(spec)
    if path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"unknown model {spec!r}: give an .onnx or .tflite file or one of "
                        f"{', '.join(MODEL_NAMES)}")
    if not path.is_file():
        raise UserError(f"model file {path} does not exist")
    return path


def _check_input_size(name: str, shape: tuple[int, ...]) -> None:
    """Refuse an input no device holds (a corrupt or hostile size), before anything is sized
    by it."""
    size = 4 * math.prod(shape)
    if not all(dim > 0 for dim in shape) or size > MAX_INPUT_BYTES:
        raise UserError(f"input '{name}' {list(shape)} is not a plausible image batch "
                        f"(at most {MAX_INPUT_BYTES >> 20} MiB of float32)")


def _unsupported_ops_message(model: onnx.ModelProto, message: str) -> str:
    listed = message.split(":", 1)[-1]
    ops = {op.strip() for op in re.split(r"[,\s]+", listed) if op.strip()}
    nodes = [node for node in model.graph.node if node.op_type in ops]
    where = ", ".join(f"{node.op_type} (node '{node.name or node.output[0]}')"
                      for node in nodes[:5])
    return f"the model uses operators TVM's ONNX importer does not support: {where}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
