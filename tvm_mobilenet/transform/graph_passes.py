"""Graph-level preparation of an imported Relax module, shared by tuning and building.

Tuning extracts its tasks from the prepared module and the build compiles the same module, so
every tuned workload is found again at compile time.

1. ONNX's Clip is imported as ``call_tir(maximum/minimum)`` kernels, opaque to layout
   conversion. They are turned back into Relax ``maximum``/``minimum`` with constant bounds.
2. Convolutions are converted to NHWC activations with HWIO weights: the output-channel axis
   is innermost in activations *and* weights, so even an untuned kernel's inner loop loads and
   stores whole vectors (tuned kernels go further and repack their weights: `tuning/schedules.py`).
   Measured: NHWC kernels beat NCHW ones at equal tuning budgets, 3x for depthwise 3×3, 1.3x
   for pointwise convs.
3. Constants are folded, so weight transposes cost nothing at run time. The ops the ONNX
   import and the layout conversion leave on constants (reshape, permute_dims, and isnan/where
   around Clip's bounds) are evaluated with NumPy: Relax's FoldConstant compiles an LLVM kernel
   for each one it folds, which took 6.5 s for MobileNetV2's 175 (0.2 s with NumPy), at every
   tune, build and test. FoldConstant still runs after, for anything else.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import TuplePattern, is_const, is_op, wildcard

#: Layouts for relax.nn.conv2d after preparation: activations, weights.
CONV_LAYOUT = ["NHWC", "HWIO"]

_ELEMENTWISE_BOUNDS = {"maximum": relax.op.maximum, "minimum": relax.op.minimum}


def _bounds_as_relax_ops(func: relax.Function) -> relax.Function:
    """call_tir(maximum|minimum, (x, constant)) -> relax maximum|minimum(x, constant)."""
    data, bound, kernel = wildcard(), is_const(), wildcard()
    pattern = is_op("relax.call_tir")(kernel, TuplePattern([data, bound]), add_constraint=False)

    def rewrite(call: relax.Call, matches: dict) -> relax.Expr:
        name = matches[kernel].name_hint.rstrip("0123456789_")
        op = _ELEMENTWISE_BOUNDS.get(name)
        return op(matches[data], matches[bound]) if op else call

    return relax.dpl.rewrite_call(pattern, rewrite, func)


@tvm.transform.module_pass(opt_level=0, name="CanonicalizeClip")
def canonicalize_clip(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    updated = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            updated[gvar] = _bounds_as_relax_ops(func)
    return relax.transform.DeadCodeElimination()(updated)


def _array(const: relax.Expr) -> np.ndarray:
    return const.value.numpy()


def _reshape(call: relax.Call) -> np.ndarray | None:
    shape = call.args[1]
    if not isinstance(shape, relax.ShapeExpr) or not all(
            isinstance(dim, tvm.tirx.IntImm) for dim in shape.values):
        return None  # a symbolic shape: left to FoldConstant
    return np.reshape(_array(call.args[0]), [int(dim) for dim in shape.values])


def _permute_dims(call: relax.Call) -> np.ndarray:
    axes = call.attrs.axes
    return np.transpose(_array(call.args[0]), None if axes is None else [int(a) for a in axes])


#: (pattern, NumPy evaluation or None to leave the call), in an order where each fold may
#: feed the next (isnan's result is where's condition).
_NUMPY_FOLDS: list[tuple[Callable[[], object], Callable[[relax.Call], np.ndarray | None]]] = [
    (lambda: is_op("relax.reshape")(is_const(), wildcard()), _reshape),
    (lambda: is_op("relax.permute_dims")(is_const()), _permute_dims),
    (lambda: is_op("relax.isnan")(is_const()), lambda call: np.isnan(_array(call.args[0]))),
    (lambda: is_op("relax.where")(is_const(), is_const(), is_const()),
     lambda call: np.where(*[_array(arg) for arg in call.args])),
]


def _fold_with_numpy(func: relax.Function) -> relax.Function:
    def rewriter(evaluate):
        def rewrite(call: relax.Call, _matches: dict) -> relax.Expr:
            result = evaluate(call)
            return call if result is None else relax.const(np.array(result, order="C"))
        return rewrite

    for pattern, evaluate in _NUMPY_FOLDS:
        func = relax.dpl.rewrite_call(pattern(), rewriter(evaluate), func)
    return func


@tvm.transform.module_pass(opt_level=0, name="FoldConstantsWithNumPy")
def fold_constants_with_numpy(mod: tvm.IRModule,
                              _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    updated = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            updated[gvar] = _fold_with_numpy(func)
    return updated


def _fold_constants() -> tvm.transform.Pass:
    return tvm.transform.Sequential([fold_constants_with_numpy, relax.transform.FoldConstant()])


def prepare(mod: tvm.IRModule) -> tvm.IRModule:
    """Canonicalise Clip, convert convs to NHWC/HWIO, fold constants."""
    return tvm.transform.Sequential([
        _fold_constants(),
        canonicalize_clip,
        relax.transform.ConvertLayout({"relax.nn.conv2d": CONV_LAYOUT}),
        _fold_constants(),
    ])(mod)
