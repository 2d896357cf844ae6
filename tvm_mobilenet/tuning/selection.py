"""Which tuned schedule each kernel is built with: re-measure the fastest few, pick one.

The tuner measures every candidate once (`tuner.COLD_RUNS` cold runs) at the target's core
count, and MetaSchedule builds with the fastest record. That pick is biased twice:

* it is the minimum of hundreds of noisy measurements, so partly the luckiest one (the
  winner's curse): re-measured, the top record is often not the fastest of the top few;
* the library also runs at other thread counts (1 thread is common on phones and in servers
  that run one model per core), where another tiling may be clearly better.

So after tuning, the `SHORTLIST` fastest records of each task are measured again, in
interleaved rounds, at 1 thread and at every core, and the record with the smallest sum of
slowdowns against the best at each thread count wins. Measured on MobileNetV1's 14×14×512
pointwise conv (5 of its 13 pointwise convs): the log's fastest record re-measured at 1051 µs
(1 thread) and 527 µs (2 threads), its 12th at 979 and 499 µs.

The shortlist also holds the `BORROWED` fastest records of every other log of the same
target that has the task (`tuning_log.sibling_databases`), all measured side by side, so a
layer two models share is built with the better of their searches. (Logs of other CPUs enter
a log earlier, as the seeds of its tune: `transfer.py`.) The task's default schedule
(`defaults.py`) is measured with them, so that a short tune never ends slower than no tune.
A schedule that several of them hold is measured once.

At more than one thread, the layers should also split their work over the cores alike, so
that each core finds in its own cache the activations it produced for the layer before. The
depthwise convs split image rows; a pointwise conv whose rows split evenly over the cores is
therefore picked among its "pixels outer" records (`ROW_SPLIT_ORDER`), when the log has any.
Measured with `python -m tvm_mobilenet.profile` on MobileNetV1 at 2 threads: with its 14×14
pointwise convs split over out-channels instead ("channels outer" picks), the
14×14×512 depthwise conv took 30–32 µs inside the model against 20 µs cold; with them split
over rows, 20–22 µs inside the model too.

The picks are a JSON database of their own (``selected/`` in the log folder, one record per
task, with the times measured here at all cores), written all at once when every task is
picked; a build applies them instead of the full log (`tuning_log.open_schedules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

from tvm_mobilenet.runtime.runner import set_threads
from tvm_mobilenet.transform import prefetch
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.defaults import default_record
from tvm_mobilenet.tuning.schedules import pointwise_order
from tvm_mobilenet.tuning.tasks import Task, conv_shape

#: Records re-measured per task.
SHORTLIST = 32
#: Records also re-measured from each other log of the same target that has the task: models
#: share layers (MobileNetV2's stem and first depthwise conv are MobileNetV1's), and one
#: search may find what another missed.
BORROWED = 8
#: Rounds over a task's shortlist, and cold runs per candidate, thread count and round.
ROUNDS = 3
RUNS_PER_ROUND = 10
#: The source of a pick that is the target's default schedule (`defaults.py`).
DEFAULT_SCHEDULE = "the default schedule"
#: The pointwise loop order that splits rows over the cores, like the depthwise convs do.
ROW_SPLIT_ORDER = "pixels outer"


def best_record(task: Task, database: ms.database.Database,
                target: tvm.target.Target) -> ms.database.TuningRecord | None:
    """The record `database` builds `task` with (the pick, else the fastest), if any."""
    return database.query_tuning_record(task.mod, target, task.name)


def compile_kernel(task: Task, target: tvm.target.Target,
                   record: ms.database.TuningRecord | None = None
                   ) -> tuple[tvm.runtime.Module, list[tvm.runtime.Tensor]]:
    """`task`'s kernel, untuned or with `record`'s schedule, and seeded random arguments. The
    kernel takes its weights in its own layout, as the built model passes them (packed at
    compile time), so arguments differ between schedules."""
    sch = tvm.s_tir.Schedule(task.mod)
    if record is not None:
        record.trace.apply_to_schedule(sch, remove_postproc=False)
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(sch.mod)
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in p.shape]).astype(p.dtype))
            for p in mod["main"].params]
    return tvm.tirx.build(mod, target=target, pipeline=prefetch.PIPELINE), args


def cold_seconds(kernel: tvm.runtime.Module, args: list, runs: int) -> np.ndarray:
    """`runs` times of the kernel, its weights and output flushed from the caches before
    every run (its input stays warm, as in the model), like the tuner measures."""
    timer = kernel.time_evaluator("main", tvm.cpu(), number=1, repeat=runs,
                                  f_preproc="cache_flush_cpu_non_first_arg")
    return np.array(timer(*args).results)


@dataclass
class Pick:
    task: Task
    record: ms.database.TuningRecord
    #: Seconds of the picked record and of the log's fastest, per thread count.
    picked: dict[int, float]
    fastest_logged: dict[int, float]
    rank: int
    #: The other log (folder name) the record was borrowed from, or `DEFAULT_SCHEDULE`.
    borrowed_from: str | None = None
    #: The loop order the pick was restricted to (`required_order`), if any.
    order: str | None = None


def required_order(task: Task, cores: int) -> str | None:
    """`ROW_SPLIT_ORDER` for a pointwise conv whose rows split evenly over `cores` > 1."""
    shape = conv_shape(task.mod["main"])
    if task.kind != "pointwise" or cores < 2 or shape is None or shape.height % cores:
        return None
    return ROW_SPLIT_ORDER


def select(tasks: list[Task], target: tvm.target.Target, log: Path,
           thread_counts: tuple[int, ...]) -> list[Pick]:
    """Re-measure each task's shortlist (with the records borrowed from the target's other
    logs) at `thread_counts`, write the picks to the log's ``selected/`` database once all
    are made, return them (tasks without records in this log are skipped)."""
    database = tuning_log.open_database(log)
    siblings = tuning_log.sibling_databases(log)
    tuning_log.discard_selection(log)
    picks = tuning_log.open_database(log / tuning_log.PICKING_DIR)
    results = []
    for task in tasks:
        order = required_order(task, max(thread_counts))
        candidates = [(None, rank, record)
                      for rank, record in _shortlist(database, task, SHORTLIST, order)]
        if not candidates:
            continue
        candidates += [(name, rank, record) for name, other in siblings.items()
                       if other.has_workload(task.mod)
                       for rank, record in _shortlist(other, task, BORROWED, order)]
        default = default_record(task, target, ms.database.MemoryDatabase())
        if default is not None:  # a short tune must not end slower than the default
            candidates.append((DEFAULT_SCHEDULE, 0, default))
        candidates = _distinct(candidates)
        # The log's fastest record is measured too, for the pick table, if the order ruled it out.
        measured = [record for _, _, record in candidates]
        reference = 0 if candidates[0][1] == 0 else len(measured)
        if reference:
            measured.append(_shortlist(database, task, 1, None)[0][1])
        times = _measure(task, target, measured, thread_counts)
        eligible = times[:len(candidates)]
        score = sum(eligible[:, column] / eligible[:, column].min()
                    for column in range(len(thread_counts)))
        best = int(np.argmin(score))
        source, rank, chosen = candidates[best]
        picks.commit_tuning_record(ms.database.TuningRecord(
            chosen.trace, picks.commit_workload(task.mod),
            [float(times[best, -1])], target, chosen.args_info))
        results.append(Pick(task, chosen, dict(zip(thread_counts, times[best])),
                            dict(zip(thread_counts, times[reference])), rank, source, order))
    tuning_log.commit_selection(log)
    set_threads(max(thread_counts))
    return results


def _distinct(candidates: list[tuple]) -> list[tuple]:
    """`candidates` (source, rank, record) without the repeats of a schedule, first kept."""
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        text = str(candidate[-1].trace)
        if text not in seen:
            seen.add(text)
            kept.append(candidate)
    return kept


def _shortlist(database: ms.database.Database, task: Task, count: int,
               order: str | None) -> list[tuple[int, ms.database.TuningRecord]]:
    """(rank, record) of the `count` fastest records of `task` in `database` whose runs
    succeeded, among those with loop `order` if it has any; rank counts all of them."""
    workload = database.commit_workload(task.mod)
    ranked = [(rank, record) for rank, record in enumerate(
        record for record in database.get_top_k(workload, max(len(database), 1))
        if record.run_secs and mean_seconds(record) < tuning_log.FAILED_SECONDS)]
    if order:
        ranked = [entry for entry in ranked if pointwise_order(entry[1].trace) == order] or ranked
    return ranked[:count]


def mean_seconds(record: ms.database.TuningRecord) -> float:
    """A record's time as its runner measured it: the mean of its runs."""
    return float(np.mean([float(s) for s in record.run_secs]))


def _measure(task: Task, target: tvm.target.Target, records: list,
             thread_counts: tuple[int, ...]) -> np.ndarray:
    """Seconds [record, thread count]: the median of each round's runs, the fastest round
    (interference on a shared machine only ever adds time, and may last a whole round)."""
    kernels = [compile_kernel(task, target, record) for record in records]
    medians = np.zeros((len(kernels), len(thread_counts), ROUNDS))
    for round_index in range(ROUNDS):
        for column, threads in enumerate(thread_counts):
            set_threads(threads)
            for row, (kernel, args) in enumerate(kernels):
                medians[row, column, round_index] = np.median(
                    cold_seconds(kernel, args, RUNS_PER_ROUND))
    return medians.min(axis=2)


def pick_table(picks: list[Pick], thread_counts: tuple[int, ...]) -> str:
    """Per task: the pick's rank in the log and its times against the log's fastest (the loop
    order the pick was restricted to, and the log it was borrowed from, if any)."""
    header = "  ".join(f"{t} thr: fastest -> picked us" for t in thread_counts)
    rows = [f"{'kind':<11} {'shape':<30} {'rank':>4}  {header}"]
    for pick in picks:
        cells = "  ".join(f"{pick.fastest_logged[t] * 1e6:>9.1f} -> {pick.picked[t] * 1e6:>9.1f}"
                          for t in thread_counts)
        origin = "".join(f"  ({note})" for note in (
            pick.order, pick.borrowed_from and f"from {pick.borrowed_from}") if note)
        rows.append(f"{pick.task.kind:<11} {pick.task.shape:<30} {pick.rank:>4}  {cells}{origin}")
    totals = "  ".join(
        f"{sum(p.fastest_logged[t] * p.task.weight for p in picks) * 1e6:>9.1f} -> "
        f"{sum(p.picked[t] * p.task.weight for p in picks) * 1e6:>9.1f}" for t in thread_counts)
    rows.append(f"{'all kernels of the model, weighted by occurrences':<48}  {totals}")
    return "\n".join(rows)
