"""Reading a whole TFLite flatbuffer before TVM's frontend sees it.

A flatbuffer is read lazily: a corrupt offset surfaces only when a field is reached, as a
``struct.error`` or a ``TypeError`` from deep inside a converter, or as a vector length that
claims billions of entries. `check_flatbuffer` reaches every field of every table once, bounds
every vector by the file's size and every index by the vector it points into, and raises
`UserError` naming the first thing that is wrong.
"""

from __future__ import annotations

import functools
import inspect
import struct
from typing import Any

import tflite
from flatbuffers.table import Table

from tvm_mobilenet.errors import UserError

#: Accessors that are not fields.
_NOT_FIELDS = ("Init", "GetRootAs")


@functools.cache
def _accessors(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A generated table class's field getters: (no argument, one index argument, for
    vectors of tables and strings)."""
    plain, indexed = [], []
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith(_NOT_FIELDS) or name.endswith(("BufferHasIdentifier", "IsNone")):
            continue
        arguments = len(inspect.signature(method).parameters) - 1
        (plain if arguments == 0 else indexed if arguments == 1 else []).append(name)
    # A vector of numbers is read whole by its AsNumpy twin, which NumPy bounds by the file.
    indexed = [name for name in indexed if not hasattr(cls, f"{name}AsNumpy")]
    return tuple(plain), tuple(indexed)


def _union_member(owner: Any, field: str, table: Table) -> Any:
    """A union field's table as its generated class (e.g. Conv2DOptions), or None."""
    kind = getattr(owner, f"{field}Type")()
    names = {value: name for name, value in vars(getattr(tflite, field)).items()
             if not name.startswith("_")}
    cls = getattr(tflite, names.get(kind, ""), None)
    if not isinstance(cls, type):
        return None
    member = cls()
    member.Init(table.Bytes, table.Pos)
    return member


def _walk(table: Any, size: int) -> None:
    plain, indexed = _accessors(type(table))
    for name in plain:
        value = getattr(table, name)()
        if name.endswith("Length") and not 0 <= value <= size:
            raise UserError(f"{type(table).__name__}.{name[:-6]} claims {value} entries")
        if isinstance(value, Table) and not hasattr(value, "_tab"):
            value = _union_member(table, name, value)
        if hasattr(value, "_tab"):
            _walk(value, size)
    for name in indexed:
        for index in range(getattr(table, f"{name}Length")()):
            value = getattr(table, name)(index)
            if hasattr(value, "_tab"):
                _walk(value, size)


def _check_indices(model: Any) -> None:
    """Every tensor, buffer and operator code an index names exists."""
    buffers, codes = model.BuffersLength(), model.OperatorCodesLength()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        tensors = subgraph.TensorsLength()
        for t in range(tensors):
            if not 0 <= subgraph.Tensors(t).Buffer() < max(buffers, 1):
                raise UserError(f"tensor {t} names buffer {subgraph.Tensors(t).Buffer()} "
                                f"of {buffers}")
        used = [subgraph.Inputs(i) for i in range(subgraph.InputsLength())]
        used += [subgraph.Outputs(i) for i in range(subgraph.OutputsLength())]
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            if not 0 <= operator.OpcodeIndex() < codes:
                raise UserError(f"operator {o} names operator code {operator.OpcodeIndex()} "
                                f"of {codes}")
            used += [operator.Inputs(i) for i in range(operator.InputsLength())]
            used += [operator.Outputs(i) for i in range(operator.OutputsLength())]
        wrong = [index for index in used if not -1 <= index < tensors]  # -1: optional input
        if wrong:
            raise UserError(f"subgraph {g} names tensor {wrong[0]} of {tensors}")


def check_flatbuffer(data: bytes) -> Any:
    """The TFLite model in `data`, every field of it read and every index checked."""
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise UserError("it has no subgraph")
        _walk(model, len(data))
        _check_indices(model)
    except (struct.error, TypeError, ValueError, IndexError, AttributeError,
            UnicodeDecodeError) as error:
        raise UserError(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from error
    return model
