"""Search spaces for NHWC depthwise and pointwise convolutions (MetaSchedule `ScheduleFn`s).

Like AutoTVM templates, each fixes the loop structure that suits the operator and leaves a few
knobs to the search (tile sizes, unrolling), so the XGBoost-guided search needs far fewer
trials than MetaSchedule's generic space:

* pointwise (a GEMM: pixels × in-channels → out-channels): tile pixels and out-channels into a
  register block, split the reduction for cache reuse; out-channels innermost (contiguous in
  NHWC outputs). Three loop orders around the register block (`POINTWISE_ORDERS`) are three
  design spaces, so the search picks per layer.
* depthwise: tile rows, columns and channels; the 3×3 taps loop outside a register tile of
  outputs; channels innermost.

Both fuse the epilogue (bias, ReLU6, residual add) into the conv's tile loop. Parallelism,
vectorisation and unrolling are left to MetaSchedule's postprocessor via root annotations, so
that the trace replays for every tile choice. The `RewriteLayout` postprocessor then lays the
weights out in the order the schedule reads them (for pointwise convs: contiguous panels of
the register block's out-channels); the build folds that into the constants
(`tasks.lower_for_tuning`).
"""

from __future__ import annotations

from typing import Callable

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.schedule import Schedule

from .tasks import block_names

#: Unroll limits the search may pick (0 = no explicit unrolling).
UNROLL_CHOICES = [0, 16, 64, 512]
#: Largest innermost tile: four AVX-512 vectors, or eight AVX2/NEON ones.
MAX_VECTOR_TILE = 64


def _split(sch: Schedule, loop, levels: int, max_inner: int) -> list:
    factors = sch.sample_perfect_tile(loop, n=levels, max_innermost_factor=max_inner)
    return list(sch.split(loop, factors=factors))


def _prologue_epilogue(sch: Schedule) -> tuple:
    """Inline padding and the elementwise chain; returns (conv block, last epilogue block)."""
    names = block_names(sch.mod["main"])
    conv_index = next(i for i, name in enumerate(names) if "conv2d" in name)
    for name in names[:conv_index]:
        sch.compute_inline(sch.get_sblock(name))
    for name in names[conv_index + 1:-1]:
        sch.compute_inline(sch.get_sblock(name))
    output = sch.get_sblock(names[-1]) if len(names) > conv_index + 1 else None
    return sch.get_sblock(names[conv_index]), output


def _annotate_root(sch: Schedule, num_cores: int) -> None:
    root = sch.get_sblock("root")
    sch.annotate(root, "meta_schedule.parallel", num_cores * 16)
    sch.annotate(root, "meta_schedule.vectorize", MAX_VECTOR_TILE)
    unroll = sch.sample_categorical(UNROLL_CHOICES, probs=[1 / len(UNROLL_CHOICES)] * 4)
    sch.annotate(root, "meta_schedule.unroll_explicit", unroll)


#: Loop orders of the pointwise space, outermost first (m: pixels, f: out-channels, k: in-
#: channels; the register tile m1 × k1 × f1 is always innermost):
#: * pixels outer: each input tile is read once (early layers: many pixels, few channels);
#: * channels outer: each weight tile is read once (late layers, whose weights are cold);
#: * k-blocked: a k1 × f1 weight block stays in L1 while every pixel tile uses it, and the
#:   output tile is accumulated in memory across blocks (GotoBLAS-style cache blocking).
POINTWISE_ORDERS = ("pixels outer", "channels outer", "k-blocked")


def pointwise_order(trace: tvm.s_tir.schedule.Trace) -> str | None:
    """Which of `POINTWISE_ORDERS` a trace of `pointwise_space` follows (None for other traces),
    read off its reorder: the first loop is the outer pixel tile (pixels outer), or the outer
    out-channel tile followed by the outer pixel tile (channels outer), or not (k-blocked)."""
    pixels = pixel_tiles = None
    for inst in trace.insts:
        kind = inst.kind.name
        if kind == "EnterPostproc":
            break
        if kind == "Fuse" and pixels is None:
            pixels = inst.outputs[0]
        elif kind == "Split" and pixels is not None and inst.inputs[0].same_as(pixels):
            pixel_tiles = inst.outputs
        elif kind == "Reorder" and pixel_tiles is not None:
            first, second = inst.inputs[:2]
            if first.same_as(pixel_tiles[0]):
                return POINTWISE_ORDERS[0]
            return POINTWISE_ORDERS[1 if second.same_as(pixel_tiles[0]) else 2]
    return None


def pointwise_space(num_cores: int) -> Callable[[Schedule], list[Schedule]]:
    def tile(sch: Schedule, order: str) -> Schedule:
        conv, output = _prologue_epilogue(sch)
        n, y, x, f, ry, rx, rc = sch.get_loops(conv)
        pixels = sch.fuse(n, y, x)
        m0, m1 = _split(sch, pixels, 2, 8)
        f0, f1 = _split(sch, f, 2, MAX_VECTOR_TILE)
        k0, k1 = _split(sch, rc, 2, 64 if order != "k-blocked" else 128)
        outer = {"pixels outer": (m0, f0, ry, rx, k0), "channels outer": (f0, m0, ry, rx, k0),
                 "k-blocked": (f0, ry, rx, k0, m0)}[order]
        sch.reorder(*outer, m1, k1, f1)
        if output is not None:
            sch.reverse_compute_at(output, f0 if order == "k-blocked" else outer[1])
        _annotate_root(sch, num_cores)
        return sch

    def schedule(sch: Schedule) -> list[Schedule]:
        return [tile(sch.copy(), order) for order in POINTWISE_ORDERS]

    return schedule


def depthwise_space(num_cores: int) -> Callable[[Schedule], None]:
    def schedule(sch: Schedule) -> None:
        conv, output = _prologue_epilogue(sch)
        n, y, x, f, ry, rx, rc = sch.get_loops(conv)
        y0, y1 = _split(sch, y, 2, 4)
        x0, x1 = _split(sch, x, 2, 8)
        f0, f1 = _split(sch, f, 2, MAX_VECTOR_TILE)
        sch.reorder(n, y0, x0, f0, ry, rx, rc, y1, x1, f1)
        if output is not None:
            sch.reverse_compute_at(output, f0)
        _annotate_root(sch, num_cores)

    return schedule


#: Task kind -> our search space; other kinds use MetaSchedule's default space.
SPACES: dict[str, Callable[[int], Callable[[Schedule], None]]] = {
    "pointwise": pointwise_space,
    "depthwise": depthwise_space,
}


def space_generator(kind: str, target: tvm.target.Target) -> ms.space_generator.SpaceGenerator:
    """A fresh space generator for a task of `kind` (generators bind to one task)."""
    if kind not in SPACES:
        return ms.space_generator.PostOrderApply()
    num_cores = int(target.attrs["num-cores"])
    return ms.space_generator.ScheduleFn(
        SPACES[kind](num_cores), sch_rules=[],
        postprocs=[ms.postproc.DisallowDynamicLoop(), ms.postproc.RewriteParallelVectorizeUnroll(),
                   ms.postproc.RewriteReductionBlock(), ms.postproc.RewriteLayout()],
        mutator_probs={ms.mutator.MutateTileSize(): 0.9, ms.mutator.MutateUnroll(): 0.1})
