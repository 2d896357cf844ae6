"""Graph-level preparation of an imported Relax module, shared by tuning and building.

Tuning extracts its tasks from the prepared module and the build compiles the same module, so
every tuned workload is found again at compile time.

1. ONNX's Clip is imported as ``call_tir(maximum/minimum)`` kernels, opaque to layout
   conversion. They are turned back into Relax ``maximum``/``minimum`` with constant bounds.
2. Convolutions are converted to NHWC activations with HWIO weights: the output-channel axis
   is innermost in activations *and* weights, so even an untuned kernel's inner loop loads and
   stores whole vectors (tuned kernels go further and repack their weights: `schedules.py`).
   Measured: NHWC kernels beat NCHW ones at equal tuning budgets, 3x for depthwise 3×3, 1.3x
   for pointwise convs.
3. Constants are folded, so weight transposes cost nothing at run time.
"""

from __future__ import annotations

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


def prepare(mod: tvm.IRModule) -> tvm.IRModule:
    """Canonicalise Clip, convert convs to NHWC/HWIO, fold constants."""
    return tvm.transform.Sequential([
        relax.transform.FoldConstant(),
        canonicalize_clip,
        relax.transform.ConvertLayout({"relax.nn.conv2d": CONV_LAYOUT}),
        relax.transform.FoldConstant(),
    ])(mod)
