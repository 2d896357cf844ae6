"""Graph preparation: NumPy constant folding gives what Relax's FoldConstant gives."""

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant

from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.transform.graph_passes import fold_constants_with_numpy, prepare


def _constant_inputs_only(mod: tvm.IRModule) -> list[str]:
    """Ops in `mod`'s main whose tensor arguments are all constants (left to fold)."""
    left = []
    for block in mod["main"].body.blocks:
        for binding in block.bindings:
            call = binding.value
            if (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op)
                    and all(isinstance(arg, (Constant, relax.ShapeExpr)) for arg in call.args)):
                left.append(call.op.name)
    return left


def test_numpy_folding_matches_fold_constant():
    rng = np.random.default_rng(0)
    weight, bias = (rng.standard_normal(shape).astype("float32") for shape in ((8, 4, 3, 3), (8,)))
    x = relax.Var("x", relax.TensorType((1, 8, 5, 5), "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        with builder.dataflow():
            builder.emit(relax.op.permute_dims(relax.const(weight), [2, 3, 1, 0]))
            column = builder.emit(relax.op.reshape(relax.const(bias), (1, 8, 1, 1)))
            nan = builder.emit(relax.op.isnan(relax.const(np.float32(np.nan))))
            bound = builder.emit(relax.op.where(nan, relax.const(np.float32(-np.inf)),
                                                relax.const(np.float32(6.0))))
            out = builder.emit_output(relax.op.add(relax.op.add(x, column), bound))
        builder.emit_func_output(out)
    mod = builder.get()
    folded = fold_constants_with_numpy(mod)
    assert _constant_inputs_only(mod) and not _constant_inputs_only(folded)
    tvm.ir.assert_structural_equal(relax.transform.FoldConstant()(folded),
                                   relax.transform.FoldConstant()(mod), map_free_vars=True)


def test_prepared_model_leaves_fold_constant_nothing_to_compile():
    assert not _constant_inputs_only(prepare(import_model(ModelSource("mobilenet_v2")).mod))
