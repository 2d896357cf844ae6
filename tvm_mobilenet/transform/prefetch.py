"""Software prefetch of a kernel's weights, ahead of the loop that streams them.

In the model, a kernel's weights were last touched one inference ago, so a pointwise conv with
hundreds of in-channels starts with its 0.1–4 MiB of weights out of the caches. Its register
tile reads the packed weights as one sequential stream, yet timed with cold weights (as the
tuner does), MobileNetV1's 14×14×512→512 conv took 719 µs against 529 µs with warm ones
(1 thread, Xeon): the core waits for the stream. No schedule primitive emits a prefetch, so
`insert_weight_prefetch` adds one to the scheduled TIR: in the innermost serial loop that walks
a large weight buffer, each iteration prefetches the cache lines that the iteration
`PREFETCH_BYTES` ahead reads (``tirx.prefetch``, which LLVM lowers to ``prefetcht0`` on x86
and ``prfm`` on ARM). Measured on picks from logs tuned from empty, at 1 thread, cold weights:
every pointwise conv of MobileNetV1 and V2 with ≥ 64 KiB of weights got 4–24% faster.

`PIPELINE` is TVM's default TIR pipeline with this pass in front, plus
`keep_tiles_in_registers` before the host lowering. Every CPU build of a tuned kernel uses it
(tuning, picking, the library), so schedules are searched and picked as they will run.
"""

from __future__ import annotations

import math
from typing import Callable

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir import SBlockRealize
from tvm.sym.analyzer import Analyzer
from tvm.target.codegen import llvm_get_vector_width

#: How far ahead of the streaming loop the weights are prefetched. On 14×14×512→512,
#: 7×7×1024→1024, 28×28×256→256 and 56×56×128→128, distances of 1–8 KiB were within 5% of
#: each other except 512 bytes (too short for 7×7×1024→1024); 2 and 4 KiB were best.
PREFETCH_BYTES = 2048
#: Weights smaller than this are left to the caches (depthwise and stem filters: ≤ 36 KiB).
MIN_WEIGHT_BYTES = 64 * 1024
CACHE_LINE_BYTES = 64
#: Most prefetches per iteration: a loop that walks more than 1 KiB of weights per step is
#: not a register tile's stream.
MAX_LINES_PER_STEP = 16
#: Fewest output elements a loop's iteration must compute per prefetched line. Records of
#: this space's earlier versions walk the in-channels in two loops with the pixels between
#: (k0, pixels, k1, channels): a prefetch in k1 ran once per 2 FMAs there and made
#: 14×14×512→512 twice as slow. In today's register tiles (k, then pixels unrolled and
#: channels vectorised) it runs once per 7–28 vector FMAs.
MIN_ELEMENTS_PER_LINE = 64
#: Buffers up to this size TVM itself keeps on the stack (`kMaxStackAlloca`).
TVM_STACK_BYTES = 1024
#: Largest buffer kept on the stack in a kernel that prefetches (the 49 pixels × 32 channels
#: that a k-blocked 7×7 conv accumulates are 6 KiB; thread stacks are megabytes).
MAX_STACK_BYTES = 16 * 1024
#: The TIR pipeline to pass to `tvm.tirx.build` / `tvm.compile` for CPU kernels.
PIPELINE = "tvm_mobilenet_prefetch"


def _nbytes(dtype: str, elements: int = 1) -> int:
    data_type = tvm.DataType(dtype)
    return elements * data_type.bits * data_type.lanes // 8


def _buffer_bytes(buffer: tirx.Var) -> int:
    return _nbytes(buffer.dtype, math.prod(int(d) for d in buffer.shape))


def _substitute(expr: tvm.ir.PrimExpr, mapping: dict) -> tvm.ir.PrimExpr:
    def replace(var):
        return next((value for key, value in mapping.items() if key.same_as(var)), var)

    return tvm_ffi.structural_map(expr, [(tirx.Var, replace)])


def _flat_index(buffer: tirx.Var, indices: list) -> tvm.ir.PrimExpr:
    dtype = str(indices[0].ty.dtype)
    flat = tirx.const(0, dtype)
    for extent, index in zip(buffer.shape, indices):
        flat = flat * tirx.const(int(extent), dtype) + index
    return flat


def _prefetch_lines(loop: tirx.For, inner: list[tirx.For], buffer: tirx.Var,
                    indices: list) -> list[tirx.Stmt]:
    """Prefetches of the lines of `buffer` read by iteration ``loop + distance`` (the `inner`
    loops at their start); none unless the weights advance by a constant step per iteration."""
    analyzer = Analyzer()
    var = loop.loop_var
    base = [_substitute(index, {l.loop_var: tirx.const(0, str(l.loop_var.ty.dtype))
                                for l in inner}) for index in indices]
    step = analyzer.simplify(_flat_index(buffer, [_substitute(i, {var: var + 1}) for i in base])
                             - _flat_index(buffer, base))
    if not isinstance(step, tirx.IntImm) or step.value <= 0:
        return []
    distance = math.ceil(PREFETCH_BYTES / _nbytes(buffer.dtype, step.value))
    ahead = [analyzer.simplify(_substitute(i, {var: var + distance})) for i in base]
    line = CACHE_LINE_BYTES // _nbytes(buffer.dtype)
    # Indices past a dimension's end still address the next elements in memory (the next
    # panel of packed weights); a prefetch never faults, even past the buffer's end.
    return [tirx.Evaluate(tirx.call_intrin(
                "void", "tirx.prefetch",
                tirx.address_of(tirx.BufferLoad(buffer, [*ahead[:-1], ahead[-1] + offset])),
                0, 3, 1))  # read, keep in all cache levels, data cache
            for offset in range(0, step.value, line)[:MAX_LINES_PER_STEP]]


def _weight_streams(func: tirx.PrimFunc, weights: list) -> dict:
    """{loop var: prefetch statements} for the innermost serial loop around each block that
    reads one of `weights` (the loops inside it are the vectorised or unrolled tile)."""
    plans: dict = {}

    def visit(stmt, loops: list[tirx.For]) -> None:
        if isinstance(stmt, tirx.For):
            visit(stmt.body, [*loops, stmt])
        elif isinstance(stmt, tirx.SeqStmt):
            for child in stmt.seq:
                visit(child, loops)
        elif isinstance(stmt, SBlockRealize):
            loads = _loads(stmt.block.body, weights)
            if stmt.block.iter_vars and loads:
                _plan_stream(stmt, loads[0], loops, plans)
            visit(stmt.block.body, loops)
        elif hasattr(stmt, "body"):
            visit(stmt.body, loops)

    visit(func.body, [])
    return plans


def _loads(stmt: tirx.Stmt, buffers: list) -> list:
    found: list = []

    def visit(load) -> None:
        if any(load.source.same_as(buffer) for buffer in buffers):
            found.append(load)

    tvm_ffi.structural_walk(stmt, [(tvm.ir.expr.TensorLoad, visit)])
    return found


def _plan_stream(realize: SBlockRealize, load, loops: list[tirx.For], plans: dict) -> None:
    """Plan the prefetch of `load`'s weights in the innermost serial loop that walks them, if
    that loop holds a register tile: only unrolled or vectorised loops inside it, which
    compute at least `MIN_ELEMENTS_PER_LINE` outputs per prefetched line."""
    bindings = {iv.var: value for iv, value in zip(realize.block.iter_vars, realize.iter_values)}
    indices = [_substitute(index, bindings) for index in load.indices]
    used: list = []
    for index in indices:
        tvm_ffi.structural_walk(index, [(tirx.Var, used.append)])
    for position in range(len(loops) - 1, -1, -1):
        loop, inner = loops[position], loops[position + 1:]
        if loop.kind != tirx.ForKind.SERIAL:
            continue
        if not any(v.same_as(loop.loop_var) for v in used):
            if int(loop.extent) > 1:
                return  # a serial loop inside the stream: not a register tile
            continue
        lines = _prefetch_lines(loop, inner, load.source, indices)
        outputs = math.prod(int(l.extent) for l in inner)
        if lines and outputs >= MIN_ELEMENTS_PER_LINE * len(lines):
            plans[loop.loop_var] = lines
        return


def insert_weight_prefetch(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """`func` (scheduled, before lowering) with its large weights — the buffers the tuner
    laid out for it (``layout_free_buffers``) of at least `MIN_WEIGHT_BYTES` — prefetched
    ahead of the loops that stream them."""
    if func.attrs is None or "layout_free_buffers" not in func.attrs:
        return func
    weights = [func.params[int(i)] for i in func.attrs["layout_free_buffers"]]
    weights = [w for w in weights if _buffer_bytes(w) >= MIN_WEIGHT_BYTES]
    plans = _weight_streams(func, weights) if weights else {}
    if not plans:
        return func

    def insert(loop: tirx.For) -> tirx.For:
        lines = next((stmts for var, stmts in plans.items() if var.same_as(loop.loop_var)), None)
        if lines is None:
            return loop
        return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind,
                        tirx.SeqStmt([*lines, loop.body]), loop.thread_binding, loop.annotations)

    return func.with_body(tvm_ffi.structural_map(func.body, [(tirx.For, insert)]))


def _is_prefetch(call) -> bool:
    return call.op.same_as(tvm.ir.Op.get("tirx.prefetch"))


def _only_constant_indices(func: tirx.PrimFunc, buffer: tirx.Var) -> bool:
    """Whether every access to `buffer` in `func` has a constant index (its loops unrolled)."""
    indices: list = []

    def collect(access) -> None:
        target = access.buffer if isinstance(access, tirx.BufferStore) else access.source
        if target.same_as(buffer):
            indices.extend(access.indices)

    tvm_ffi.structural_walk(func.body, [((tirx.BufferStore, tvm.ir.expr.TensorLoad), collect)])
    variables: list = []
    for index in indices:
        tvm_ffi.structural_walk(index, [(tirx.Var, variables.append)])
    return not variables


def _register_file_bytes(func: tirx.PrimFunc) -> int:
    """Bytes of the 32 vector registers of AVX-512 and AArch64 (fewer elsewhere, where the
    tiles that fit are under TVM's own stack limit anyway)."""
    target = func.attrs.get("target") if func.attrs is not None else None
    vector_bits = llvm_get_vector_width(target) if target is not None else 128
    return max(TVM_STACK_BYTES, 32 * vector_bits // 8)


def _stack_worthy(func: tirx.PrimFunc, alloc: tirx.AllocBuffer) -> bool:
    """A buffer LLVM handles well on the stack: one that fits in the vector registers, or a
    larger one (≤ `MAX_STACK_BYTES`) that loops index, which LLVM leaves in memory. A larger
    one whose loops are all unrolled, LLVM splits into registers that spill: 7×7×512→1024's
    6 KiB of accumulators, unrolled, ran 2.6× slower on the stack than in a heap workspace."""
    nbytes = _buffer_bytes(alloc.buffer)
    return nbytes <= _register_file_bytes(func) or (
        nbytes <= MAX_STACK_BYTES and not _only_constant_indices(func, alloc.buffer))


def keep_tiles_in_registers(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """`func` (lowered) with its buffers on the stack if it prefetches and all of them suit
    the stack (`_stack_worthy`), else without its prefetches.

    TVM moves every buffer over 1 KiB, such as a register tile's accumulators, to a heap
    workspace, whose pointer LLVM cannot tell apart from the weights'. A prefetch in the loop
    then counts as a possible read of the accumulators, so LLVM stores them to memory at
    every step instead of keeping them in registers: 14×14×512→512 with 14 × 2 vectors of
    accumulators ran twice as slow with the prefetch, and 15% faster than without it once its
    tile was on the stack.
    """
    calls: list = []
    tvm_ffi.structural_walk(func.body, [(tvm.ir.expr.Call, lambda call: calls.append(call)
                                         if _is_prefetch(call) else None)])
    if not calls:
        return func
    allocs: list = []
    tvm_ffi.structural_walk(func.body, [(tirx.AllocBuffer, allocs.append)])
    if not all(_stack_worthy(func, alloc) for alloc in allocs):
        def drop(stmt: tirx.Evaluate) -> tirx.Stmt:
            value = stmt.value
            is_call = isinstance(value, tvm.ir.expr.Call)
            return tirx.Evaluate(tirx.const(0, "int32")) if is_call and _is_prefetch(value) \
                else stmt

        return func.with_body(tvm_ffi.structural_map(func.body, [(tirx.Evaluate, drop)]))

    def keep(alloc: tirx.AllocBuffer) -> tirx.AllocBuffer:
        return tirx.AllocBuffer(alloc.buffer, {**alloc.annotations,
                                               "disable_lower_builtin": tirx.const(1, "bool")})

    return func.with_body(tvm_ffi.structural_map(func.body, [(tirx.AllocBuffer, keep)]))


def _on_prim_funcs(function: Callable[[tirx.PrimFunc], tirx.PrimFunc]) -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name=function.__name__)
    def apply(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        return tvm.IRModule({gv: function(func) if isinstance(func, tirx.PrimFunc) else func
                             for gv, func in mod.functions.items()}, attrs=mod.attrs)

    return apply


def _pipeline() -> tuple:
    lower, finalize_host, finalize_device = tvm.tirx.get_tir_pipeline("default")
    return (tvm.transform.Sequential([_on_prim_funcs(insert_weight_prefetch), lower]),
            lambda: tvm.transform.Sequential([_on_prim_funcs(keep_tiles_in_registers),
                                              finalize_host()]),
            finalize_device)


tvm.tirx.register_tir_pipeline(PIPELINE, _pipeline)
