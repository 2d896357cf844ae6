"""Default schedules: one point of each of our search spaces, chosen from the target's vector unit
and the kernel's shape, without measuring anything.

This is the analytic choice XNNPACK makes by hand for each ISA. The facts used are the
target's float32 lanes per vector register and its number of vector registers (AVX-512:
16 lanes × 32 registers, AVX2: 8 × 16, aarch64 NEON: 4 × 32, armv7 NEON: 4 × 16 q-registers).

* Pointwise convs (a GEMM, pixels × in-channels → out-channels): an m1-pixel × f1-vector
  register tile keeps m1·f1 accumulators, loads f1 weight vectors and broadcasts one input
  value per in-channel, so it needs m1·f1 + f1 + 1 registers and does m1·f1 FMAs per m1 + f1
  loads; the tile with the most FMAs per load wins. On layers of 28×28 pixels and more the
  tile holds at most 4 pixels: there, bigger tiles measured up to 1.5× slower. The loops run
  over pixels outermost, so each input tile is read once, unless the weights exceed 256 KiB:
  then over out-channels outermost, so each weight tile, cold in a real inference, is read
  once.
* Depthwise convs and the stem: a tile of up to 4 output rows × 1 column × 2 vectors of
  channels, accumulated over the taps. Tiles along a row instead measured 2–10× slower.
* The classifier: panels of one vector of classes (it is bound by reading its weights).

The chosen decisions are replayed through the search space and MetaSchedule's postprocessors,
exactly as the tuner would build that candidate, and stored as a tuning record, so a build
applies a default like any tuned schedule.
"""

from __future__ import annotations

import math

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.schedule import Schedule

from tvm_mobilenet.target.vector_unit import VectorUnit, vector_unit
from tvm_mobilenet.tuning.intrinsics import import_tensor_intrinsics
from tvm_mobilenet.tuning.schedules import (
    MAX_PIXEL_TILE,
    MAX_TILE_VECTORS,
    POINTWISE_ORDERS,
    SPACES,
    UNROLL_CHOICES,
    pointwise_order,
    space_generator,
)
from tvm_mobilenet.tuning.tasks import Task

#: The unroll limit of a default: none beyond the register tiles, which the spaces unroll.
DEFAULT_UNROLL = 0
#: Pointwise layers with at least this many pixels get register tiles of at most
#: `LARGE_LAYER_PIXEL_TILE` pixels.
LARGE_LAYER_PIXELS = 28 * 28
LARGE_LAYER_PIXEL_TILE = 4
#: Pointwise weights above this size are looped over once (out-channels outermost).
COLD_WEIGHT_BYTES = 256 * 1024
#: Most output rows in a depthwise (or stem) register tile, and vectors of channels.
DIRECT_TILE_ROWS = 4
DIRECT_TILE_VECTORS = 2
#: The time stored with a default record: it was never measured.
UNMEASURED_SECONDS = 1.0


def divisors(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def pointwise_tile(pixels: int, vectors: int, unit: VectorUnit) -> tuple[int, int]:
    """(m1 pixels, f1 vectors) of the register tile with the most FMAs per load that fits
    the vector registers; m1 divides `pixels` and f1 divides `vectors`."""
    most_pixels = LARGE_LAYER_PIXEL_TILE if pixels >= LARGE_LAYER_PIXELS else MAX_PIXEL_TILE
    best, best_key = (1, 1), (0.0, 0)
    for m1 in divisors(pixels, most_pixels):
        for f1 in divisors(vectors, MAX_TILE_VECTORS):
            accumulators = m1 * f1  # plus f1 weight vectors and one broadcast input
            if accumulators + f1 + 1 > unit.registers:
                continue
            key = (accumulators / (m1 + f1), accumulators)
            if key > best_key:
                best, best_key = (m1, f1), key
    return best


def direct_tile(height: int, channels: int, unit: VectorUnit) -> tuple[int, int]:
    """(y1 rows, f1 channels) of a depthwise or stem register tile (one column wide): whole
    vectors of channels, two where they divide the channels."""
    widths = [unit.lanes * vectors for vectors in range(DIRECT_TILE_VECTORS, 0, -1)]
    f1 = next((width for width in widths if channels % width == 0),
              math.gcd(channels, unit.lanes))
    return max(divisors(height, DIRECT_TILE_ROWS)), f1


def _decisions(task: Task, target: tvm.target.Target) -> tuple[str | None, list]:
    """The pointwise loop order (None for other kinds) and the decisions of the space's
    sampling instructions, in the order the space samples them."""
    unit = vector_unit(target)
    unroll = UNROLL_CHOICES.index(DEFAULT_UNROLL)
    func = task.mod["main"]
    if task.kind == "classifier":
        classes = int(func.params[-1].shape[-1])
        lanes = math.gcd(classes, unit.lanes)
        return None, [[classes // lanes, 1], unroll]
    _, height, width, channels = (int(d) for d in func.params[-1].shape)
    if task.kind in ("depthwise", "stem"):
        y1, f1 = direct_tile(height, channels, unit)
        return None, [[height // y1, y1], [width, 1], [channels // f1, f1], unroll]
    pixels = height * width
    lanes = math.gcd(channels, unit.lanes)
    vectors = channels // lanes
    m1, f1 = pointwise_tile(pixels, vectors, unit)
    in_channels = int(func.params[0].shape[-1])
    cold = in_channels * channels * 4 > COLD_WEIGHT_BYTES
    order = POINTWISE_ORDERS[1] if cold else POINTWISE_ORDERS[0]
    return order, [[pixels // m1, m1], [vectors // f1, f1], unroll]


def replay(task: Task, target: tvm.target.Target, order: str | None,
           decisions: list) -> Schedule | None:
    """`task` scheduled by its search space (the design space of loop `order`, for pointwise
    convs) with `decisions` for the space's sampling instructions, in order, then by
    MetaSchedule's postprocessors, exactly as the tuner builds a candidate; None if a
    postprocessor rejects it."""
    import_tensor_intrinsics()  # TuneContext imports them: 15-90 s, unless done this way
    context = ms.TuneContext(mod=task.mod, target=target, task_name=task.name,
                             space_generator=space_generator(task.kind, target))
    spaces = context.space_generator.generate_design_space(task.mod)
    trace = next(s for s in spaces if order is None or pointwise_order(s.trace) == order).trace
    samples = [inst for inst in trace.insts
               if inst.kind.name in ("SamplePerfectTile", "SampleCategorical")]
    for inst, decision in zip(samples, decisions, strict=True):
        trace = trace.with_decision(inst, decision, remove_postproc=True)
    sch = Schedule(task.mod)
    trace.apply_to_schedule(sch, remove_postproc=True)
    sch.enter_postproc()
    if all(postproc.apply(sch) for postproc in context.space_generator.postprocs):
        return sch
    return None


def default_record(task: Task, target: tvm.target.Target,
                   database: ms.database.Database) -> ms.database.TuningRecord | None:
    """A tuning record of `task`'s default schedule (its workload committed to `database`),
    or None for kinds without one."""
    if task.kind not in SPACES:
        return None
    sch = replay(task, target, *_decisions(task, target))
    if sch is None:
        return None
    return ms.database.TuningRecord(
        trace=sch.trace, workload=database.commit_workload(task.mod),
        run_secs=[UNMEASURED_SECONDS], target=target,
        args_info=ms.arg_info.ArgInfo.from_prim_func(task.mod["main"]))
