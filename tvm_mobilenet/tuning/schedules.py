"""Search spaces for NHWC depthwise and pointwise convolutions (MetaSchedule `ScheduleFn`s).

Like AutoTVM templates, each fixes the loop structure that suits the operator and leaves a few
knobs to the search (tile sizes, unrolling), so the XGBoost-guided search needs far fewer
trials than MetaSchedule's generic space:

* pointwise (a GEMM: pixels × in-channels → out-channels): the pixels become one axis, so a
  register tile may hold any number of them; per in-channel the tile does m1 pixels × f1
  out-channels of FMAs (m1 unrolled, f1 whole vectors), into accumulators that stay in
  registers across the reduction, like a BLAS microkernel. Three loop orders around the tile
  (`POINTWISE_ORDERS`) are three design spaces, so the search picks per layer.
* depthwise: tile rows, columns and channels; the 3×3 taps loop outside a register tile of
  outputs; channels innermost.

Both fuse the epilogue (bias, ReLU6, residual add) into the conv's tile loop. Parallelism,
unrolling (beyond the pointwise tile's pixels) and the depthwise space's vectorisation are left
to MetaSchedule's postprocessor via root annotations, so that the trace replays for every tile
choice. The `RewriteLayout` postprocessor then lays the weights out in the order the schedule
reads them (for pointwise convs: contiguous panels of the register tile's out-channels); the
build folds that into the constants (`tasks.lower_for_tuning`).
"""

from __future__ import annotations

import math
from typing import Callable

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.schedule import Schedule

from tvm_mobilenet.target.vector_unit import vector_unit
from tvm_mobilenet.tuning.tasks import block_names

#: Unroll limits the search may pick (0 = no explicit unrolling).
UNROLL_CHOICES = [0, 16, 64, 512]
#: Largest innermost depthwise tile: four AVX-512 vectors, or eight AVX2/NEON ones.
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


def _annotate_root(sch: Schedule, num_cores: int, vectorize: bool) -> None:
    root = sch.get_sblock("root")
    sch.annotate(root, "meta_schedule.parallel", num_cores * 16)
    if vectorize:
        sch.annotate(root, "meta_schedule.vectorize", MAX_VECTOR_TILE)
    unroll = sch.sample_categorical(UNROLL_CHOICES, probs=[1 / len(UNROLL_CHOICES)] * 4)
    sch.annotate(root, "meta_schedule.unroll_explicit", unroll)


#: Loop orders of the pointwise space, outermost first (m: pixels, f: out-channels, k: in-
#: channels; the register tile k1 × m1 × f1 is always innermost):
#: * pixels outer: each input tile is read once (early layers: many pixels, few channels);
#: * channels outer: each weight tile is read once (late layers, whose weights are cold);
#: * k-blocked: a k1 × f1 weight block stays in L1 while every pixel tile uses it, and the
#:   output tile is accumulated in memory across blocks (GotoBLAS-style cache blocking).
POINTWISE_ORDERS = ("pixels outer", "channels outer", "k-blocked")
#: Largest register tile: pixels, and vectors of out-channels.
MAX_PIXEL_TILE = 16
MAX_TILE_VECTORS = 4
#: Largest in-channel block the register tile accumulates over before it is stored.
MAX_K_TILE = 512


def pointwise_order(trace: tvm.s_tir.schedule.Trace) -> str | None:
    """Which of `POINTWISE_ORDERS` a trace of `pointwise_space` follows (None for other traces),
    read off its reorder: the first loop is the outer pixel tile (pixels outer), or the outer
    out-channel tile followed by the outer pixel tile (channels outer), or not (k-blocked).
    The pixel tiles are the first split after the pixels are made one loop (by
    `_flatten_pixels`, or by a fuse in this space's earlier version)."""
    flattened = False
    pixel_tiles = None
    for inst in trace.insts:
        kind = inst.kind.name
        if kind == "EnterPostproc":
            break
        if kind in ("Fuse", "TransformBlockLayout"):
            flattened = True
        elif kind == "Split" and flattened and pixel_tiles is None:
            pixel_tiles = inst.outputs
        elif kind == "Reorder" and pixel_tiles is not None:
            first, second = inst.inputs[:2]
            if first.same_as(pixel_tiles[0]):
                return POINTWISE_ORDERS[0]
            return POINTWISE_ORDERS[1 if second.same_as(pixel_tiles[0]) else 2]
    return None


def _flatten_pixels(sch: Schedule, conv, output) -> list:
    """Make the conv (and its epilogue) iterate over one pixel axis ``p = y * W + x`` instead
    of (n, y, x), so that a tile of any number of pixels covers a contiguous range of the
    output, and the epilogue can run on each tile while it is in registers. Returns the conv's
    loops (p, f, ry, rx, rc)."""
    _, y, x, *_ = sch.get_loops(conv)
    height, width = int(sch.get(y).extent), int(sch.get(x).extent)

    def pixel(n, y, x):
        return (n * height + y) * width + x

    sch.transform_block_layout(conv, lambda n, y, x, f, ry, rx, rc: (pixel(n, y, x), f, ry, rx, rc))
    if output is not None:
        sch.transform_layout(conv, ("write", 0), lambda n, y, x, f: (pixel(n, y, x), f))
        sch.transform_block_layout(output, lambda n, y, x, f: (pixel(n, y, x), f))
    return sch.get_loops(conv)


def _vector_tile(sch: Schedule, loop, lanes: int) -> tuple:
    """Split out-channels into (outer, vectors, lane): the tile is `vectors` whole vectors of
    `lanes` (or of the largest power of two dividing the channel count, if `lanes` does not),
    each its own vector instruction. Vectorising the whole tile as one loop instead makes
    vectors of 48 floats for a tile of three, which LLVM builds lane by lane: 56×56×24→144
    with 4 pixels × 48 channels took 5.9 ms instead of 0.21 ms (1 thread, cold weights)."""
    extent = int(sch.get(loop).extent)
    lanes = math.gcd(extent, lanes)
    vectors, lane = sch.split(loop, [None, lanes])
    outer, inner = _split(sch, vectors, 2, MAX_TILE_VECTORS)
    return outer, inner, lane


def pointwise_space(num_cores: int, lanes: int) -> Callable[[Schedule], list[Schedule]]:
    """Pointwise convs as a GEMM microkernel: per in-channel, an m1-pixel × f1-channel block
    of FMAs (m1 unrolled, f1 vectors of `lanes`) into accumulators that stay in registers
    across the k1 block. The tile holds up to 16 × 4 vectors; with two FMA units of ~4 cycles'
    latency a core needs 8 independent accumulators to stay busy."""
    def tile(sch: Schedule, order: str) -> Schedule:
        conv, output = _prologue_epilogue(sch)
        pixels, f, ry, rx, rc = _flatten_pixels(sch, conv, output)
        m0, m1 = _split(sch, pixels, 2, MAX_PIXEL_TILE)
        f0, vectors, lane = _vector_tile(sch, f, lanes)
        if order == "k-blocked":
            k0, k1 = _split(sch, rc, 2, MAX_K_TILE)
            outer = (f0, ry, rx, k0, m0)
        else:  # the register tile accumulates over all in-channels
            k1 = rc
            outer = (m0, f0, ry, rx) if order == "pixels outer" else (f0, m0, ry, rx)
        sch.reorder(*outer, k1, m1, vectors, lane)
        sch.unroll(m1)
        sch.unroll(vectors)
        sch.vectorize(lane)
        if output is not None:
            # Unit loops kept, so that the trace replays for tiles of one pixel.
            sch.reverse_compute_at(output, f0 if order == "k-blocked" else outer[1],
                                   preserve_unit_loops=True)
            channels = sch.get_loops(output)[-1]
            sch.vectorize(sch.split(channels, [None, int(sch.get(lane).extent)])[1])
        _annotate_root(sch, num_cores, vectorize=False)
        return sch

    def schedule(sch: Schedule) -> list[Schedule]:
        return [tile(sch.copy(), order) for order in POINTWISE_ORDERS]

    return schedule


def direct_conv_space(num_cores: int) -> Callable[[Schedule], None]:
    """Depthwise convs and the stem (a dense 3×3 conv of 3 channels): a register tile of
    y1 rows × x1 columns × f1 channels, accumulated over the kernel's taps (and the stem's
    in-channels), channels innermost."""
    def schedule(sch: Schedule) -> None:
        conv, output = _prologue_epilogue(sch)
        n, y, x, f, ry, rx, rc = sch.get_loops(conv)
        y0, y1 = _split(sch, y, 2, 4)
        x0, x1 = _split(sch, x, 2, 8)
        f0, f1 = _split(sch, f, 2, MAX_VECTOR_TILE)
        sch.reorder(n, y0, x0, f0, ry, rx, rc, y1, x1, f1)
        if output is not None:
            sch.reverse_compute_at(output, f0)
        _annotate_root(sch, num_cores, vectorize=True)

    return schedule


def classifier_space(num_cores: int, lanes: int) -> Callable[[Schedule], None]:
    """The classifier (a matrix-vector product, bound by reading its weights): out-classes in
    panels of whole vectors, each accumulated over all in-features in registers, the panels
    spread over the cores; `RewriteLayout` packs the weights panel by panel, so that they
    stream contiguously."""
    def schedule(sch: Schedule) -> None:
        names = block_names(sch.mod["main"])
        product = sch.get_sblock(names[0])
        row, classes, features = sch.get_loops(product)
        outer, vectors, lane = _vector_tile(sch, classes, lanes)
        sch.reorder(row, outer, features, vectors, lane)
        sch.unroll(vectors)
        sch.vectorize(lane)
        if len(names) > 1:
            sch.reverse_compute_at(sch.get_sblock(names[-1]), outer, preserve_unit_loops=True)
        _annotate_root(sch, num_cores, vectorize=False)

    return schedule


#: Task kind -> its search space of ours; other kinds get MetaSchedule's default space.
SPACES = {
    "pointwise": lambda cores, lanes: pointwise_space(cores, lanes),
    "depthwise": lambda cores, lanes: direct_conv_space(cores),
    "stem": lambda cores, lanes: direct_conv_space(cores),
    "classifier": lambda cores, lanes: classifier_space(cores, lanes),
}


def space_generator(kind: str, target: tvm.target.Target) -> ms.space_generator.SpaceGenerator:
    """A fresh space generator for a task of `kind` (generators bind to one task): ours for
    the kinds in `SPACES`, MetaSchedule's default space for the rest."""
    num_cores = int(target.attrs["num-cores"])
    if kind not in SPACES:
        return ms.space_generator.PostOrderApply()
    space = SPACES[kind](num_cores, vector_unit(target).lanes)
    return ms.space_generator.ScheduleFn(
        space, sch_rules=[],
        postprocs=[ms.postproc.DisallowDynamicLoop(), ms.postproc.RewriteParallelVectorizeUnroll(),
                   ms.postproc.RewriteReductionBlock(), ms.postproc.RewriteLayout()],
        mutator_probs={ms.mutator.MutateTileSize(): 0.9, ms.mutator.MutateUnroll(): 0.1})
