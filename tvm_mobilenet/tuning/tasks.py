"""Tuning tasks of a model: extracted by MetaSchedule from the fused Relax module, classified.

Every fused kernel (a conv with its bias, ReLU6 and residual add) is one task; identical
kernels are one task with a weight (how often the model runs it). The kind is read from the
TIR: the convolution's weight shape (HWIO) gives kernel size and groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops

from tvm_mobilenet.transform.graph_passes import prepare

#: Task kinds, in report order. The design tunes depthwise and pointwise by default.
TASK_KINDS = ("depthwise", "pointwise", "stem", "classifier", "other")
DEFAULT_TUNED_KINDS = ("depthwise", "pointwise")


@dataclass(frozen=True)
class ConvShape:
    """An NHWC convolution: input (H, W, C), output channels, kernel, stride, groups."""

    height: int
    width: int
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int

    def __str__(self) -> str:
        group = f" g{self.groups}" if self.groups > 1 else ""
        return (f"{self.height}x{self.width}x{self.in_channels}->{self.out_channels} "
                f"k{self.kernel} s{self.stride}{group}")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str
    weight: int
    flops: float
    shape: str
    #: The TIR module MetaSchedule tunes.
    mod: tvm.IRModule


def block_names(func: tvm.tirx.PrimFunc) -> list[str]:
    """Names of the top-level blocks of a PrimFunc (``pad_temp``, ``conv2d_nhwc``, ...)."""
    sch = tvm.s_tir.Schedule(func)
    return [sch.get(block).name_hint for block in sch.get_child_blocks(sch.get_sblock("root"))]


def conv_shape(func: tvm.tirx.PrimFunc) -> ConvShape | None:
    """Shape of the NHWC/HWIO convolution in `func`, or None if it has none."""
    if not any("conv2d" in name for name in block_names(func)):
        return None
    data, weight, *_, output = func.params
    _, height, width, channels = (int(d) for d in data.shape)
    kernel_h, _, group_channels, out_channels = (int(d) for d in weight.shape)
    out_height = int(output.shape[1])
    stride = max(1, round(height / out_height))
    return ConvShape(height, width, channels, out_channels, kernel_h, stride,
                     channels // group_channels)


def classify(func: tvm.tirx.PrimFunc) -> tuple[str, str]:
    """(kind, shape description) of a task's PrimFunc."""
    conv = conv_shape(func)
    if conv is not None:
        if conv.groups == conv.in_channels and conv.groups > 1:
            return "depthwise", str(conv)
        if conv.kernel == 1 and conv.groups == 1:
            return "pointwise", str(conv)
        if conv.groups == 1:
            return "stem", str(conv)
        return "other", str(conv)
    shapes = "x".join(str(int(d)) for d in func.params[0].shape)
    if any("matmul" in name for name in block_names(func)):
        return "classifier", f"{shapes} @ {'x'.join(str(int(d)) for d in func.params[1].shape)}"
    return "other", shapes


def lower_for_tuning(mod: tvm.IRModule, target: tvm.target.Target,
                     database: ms.database.Database | None = None) -> tvm.IRModule:
    """Prepared Relax module -> fused TIR kernels (the "zero" pipeline: legalize, fuse), with
    the tuned schedules of `database` applied.

    On CPUs the weights (constants) are marked layout-free: a tuned kernel may then read them
    in a layout of its own, e.g. packed in panels of its register tile's out-channels so that
    they stream contiguously, like XNNPACK's packed GEMM weights. The conversion is split out
    of the kernel and folded into the constants at compile time, so it costs nothing at run
    time.
    """
    packs_weights = target.kind.name == "llvm"
    with target:
        mod = relax.get_pipeline("zero")(mod)
        if packs_weights:
            mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
        if database is None:
            return mod
        with database:
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        if packs_weights:
            mod = tvm.transform.Sequential([relax.transform.SplitLayoutRewritePreproc(),
                                            relax.transform.FoldConstant(),
                                            relax.transform.CanonicalizeBindings()])(mod)
            mark_weights(mod)
        return mod


def mark_weights(mod: tvm.IRModule) -> None:
    """Mark (in place) the kernels' constant arguments, their packed weights, as layout-free
    again, which tells `prefetch` which buffers are weights. The split into packing and kernel
    dropped the mark, and Relax's `AttachAttrLayoutFreeBuffers` would rename the kernels,
    which `profile` matches to tasks by name."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    marks: dict = {}

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and expr.op.same_as(call_tir):
            kernel, args = expr.args[0], expr.args[1].fields
            marks[kernel] = [i for i, arg in enumerate(args)
                             if isinstance(arg, tvm.ir.expr.Constant)]

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func.body, visit)
    for kernel, weights in marks.items():
        if weights:
            mod.update_func(kernel, mod[kernel].with_attr("layout_free_buffers", weights))


def extract_tasks(mod: tvm.IRModule, target: tvm.target.Target) -> list[Task]:
    """Tasks of an imported (not yet prepared) Relax module, largest FLOPs first per kind."""
    lowered = lower_for_tuning(prepare(mod), target)
    tasks = []
    for extracted in ms.relax_integration.extract_tasks(lowered, target):
        tir_mod = extracted.dispatched[0]
        kind, shape = classify(tir_mod["main"])
        tasks.append(Task(extracted.task_name, kind, int(extracted.weight),
                          float(estimate_tir_flops(tir_mod)), shape, tir_mod))
    return sorted(tasks, key=lambda t: (TASK_KINDS.index(t.kind), -t.flops * t.weight))


def task_table(tasks: list[Task]) -> str:
    """The `--list-tasks` table: kind, shape, MFLOPs, occurrences, name; counts per kind."""
    rows = [f"{'#':>3} {'kind':<11} {'shape':<32} {'MFLOP':>8} {'x':>3}  task"]
    for index, task in enumerate(tasks):
        rows.append(f"{index:>3} {task.kind:<11} {task.shape:<32} {task.flops / 1e6:>8.1f} "
                    f"{task.weight:>3}  {task.name}")
    counts = ", ".join(f"{sum(t.kind == kind for t in tasks)} {kind}" for kind in TASK_KINDS)
    rows.append(f"{len(tasks)} tasks: {counts}")
    return "\n".join(rows)
