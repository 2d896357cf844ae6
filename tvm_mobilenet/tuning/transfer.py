"""Transfer tuning: a new log starts from what the other logs and the target's defaults know.

On a CPU without a log of its own, a search from scratch spends its first hundreds of trials
rediscovering what the logs of other CPUs and models already hold. So before searching,
`tuner.tune_tasks` takes three steps from here:

1. **Seeds.** Each kernel the log has no record of gets its default schedule (`defaults.py`)
   and the `SEEDS_PER_LOG` fastest records of every other log of the preset that has its
   workload (any model, any CPU), measured here like any candidate. They enter the log as
   ordinary trials, and MetaSchedule's evolutionary search draws its first population from
   the log's fastest records.
2. **A trained cost model.** The XGBoost model is trained on every record those logs hold for
   the kernels, before the first search round. XGBModel compares costs within one workload
   (each relative to the workload's fastest), so a ranking measured on another CPU still
   teaches it which tiles are good.
3. **The budget where time is lost.** A budget too small for a search round of every kernel
   goes to the slowest kernels (best seed time × occurrences), at least `MIN_SEARCH_TRIALS`
   each, until they hold `HOT_SHARE` of the model's time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import tvm
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.defaults import default_record
from tvm_mobilenet.tuning.tasks import Task

logger = logging.getLogger(__name__)

#: Fastest records of each other log measured here as seeds of a kernel.
SEEDS_PER_LOG = 2
#: Share of the model's time (seed time × occurrences) whose kernels are searched further.
HOT_SHARE = 0.8
#: Fewest trials a searched kernel gets: one round of MetaSchedule's evolutionary search
#: costs about as much to prepare as to measure, so a short budget goes to few kernels.
MIN_SEARCH_TRIALS = 8


@dataclass(frozen=True)
class Measured:
    """Schedules of one kernel and their measured seconds (None: the run failed)."""

    task: Task
    schedules: list[tvm.s_tir.Schedule]
    seconds: list[list[float] | None]


def logged_records(task: Task, databases: list[ms.database.Database],
                   per_log: int | None = None) -> list[ms.database.TuningRecord]:
    """The successful records of `task`'s workload in `databases`, fastest first per
    database, at most `per_log` of each."""
    records = []
    for database in databases:
        if not database.has_workload(task.mod):
            continue
        ranked = database.get_top_k(database.commit_workload(task.mod), len(database))
        ok = [record for record in ranked if record.run_secs
              and max(float(s) for s in record.run_secs) < tuning_log.FAILED_SECONDS]
        records += ok[:per_log]
    return records


def schedule_of(task: Task, record: ms.database.TuningRecord) -> tvm.s_tir.Schedule:
    sch = tvm.s_tir.Schedule(task.mod)
    record.trace.apply_to_schedule(sch, remove_postproc=False)
    return sch


def args_of(sch: tvm.s_tir.Schedule) -> list[ms.arg_info.ArgInfo]:
    """The arguments a scheduled kernel is called with (weights in their rewritten layout),
    as MetaSchedule's task scheduler gives them to the runner."""
    return ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)


def seed_schedules(task: Task, target: tvm.target.Target,
                   databases: list[ms.database.Database]) -> list[tvm.s_tir.Schedule]:
    """The default schedule of `task` and the fastest records of each database."""
    default = default_record(task, target, ms.database.MemoryDatabase())
    records = ([default] if default is not None else []) + logged_records(
        task, databases, SEEDS_PER_LOG)
    return [schedule_of(task, record) for record in records]


def measure(seeds: dict[Task, list[tvm.s_tir.Schedule]], target: tvm.target.Target,
            builder: ms.builder.Builder, runner: ms.runner.Runner) -> list[Measured]:
    """Build and run every schedule of `seeds` with the tuner's (CPU) builder and runner."""
    flat = [(task, sch) for task, schedules in seeds.items() for sch in schedules]
    built = builder.build([ms.builder.BuilderInput(sch.mod, target) for _, sch in flat])
    inputs = [(index, ms.runner.RunnerInput(result.artifact_path, "cpu", args_of(sch)))
              for index, ((_, sch), result) in enumerate(zip(flat, built))
              if result.error_msg is None]
    seconds: list[list[float] | None] = [None] * len(flat)
    futures = runner.run([runner_input for _, runner_input in inputs])
    for (index, _), future in zip(inputs, futures):
        result = future.result()
        if result.error_msg is None and result.run_secs:
            seconds[index] = [float(s) for s in result.run_secs]
    measured, start = [], 0
    for task, schedules in seeds.items():
        measured.append(Measured(task, schedules, seconds[start:start + len(schedules)]))
        start += len(schedules)
    return measured


def seed_log(tasks: list[Task], target: tvm.target.Target, database: ms.database.Database,
             sources: list[ms.database.Database], builder: ms.builder.Builder,
             runner: ms.runner.Runner) -> list[Measured]:
    """Measure the seeds of the tasks `database` has no record of, and commit them to it."""
    new = [task for task in tasks
           if not database.get_top_k(database.commit_workload(task.mod), 1)]
    seeds = {task: seed_schedules(task, target, sources) for task in new}
    measured = measure(seeds, target, builder, runner) if seeds else []
    for entry in measured:
        workload = database.commit_workload(entry.task.mod)
        for sch, seconds in zip(entry.schedules, entry.seconds):
            if seconds is not None:
                database.commit_tuning_record(ms.database.TuningRecord(
                    sch.trace, workload, seconds, target, args_of(sch)))
    logger.info(f"seeded {sum(len(m.schedules) for m in measured)} schedules of "
                f"{len(measured)} kernels (defaults and {len(sources)} other logs)")
    return measured


def trained_model(tasks: list[Task], target: tvm.target.Target,
                  sources: list[ms.database.Database], cores: int) -> ms.cost_model.XGBModel:
    """An XGBoost cost model trained on every record `sources` hold for `tasks`."""
    model = ms.cost_model.XGBModel(num_tuning_cores=cores)
    for task in tasks:
        records = logged_records(task, sources)
        if not records:
            continue
        context = ms.TuneContext(mod=task.mod, target=target, task_name=task.name,
                                 num_threads=cores)
        model.update(context,
                     [ms.MeasureCandidate(schedule_of(task, record), record.args_info)
                      for record in records],
                     [ms.runner.RunnerResult(record.run_secs, None) for record in records])
    return model


def hot_tasks(tasks: list[Task], database: ms.database.Database, trials: int,
              share: float = HOT_SHARE) -> list[Task]:
    """The tasks a search of `trials` spends its budget on: the fewest that hold `share` of
    the model's logged time (best logged time × occurrences; a task without a record counts
    as the slowest), slowest first, at most one per `MIN_SEARCH_TRIALS`."""
    def cost(task: Task) -> float:
        best = database.get_top_k(database.commit_workload(task.mod), 1)
        if not best or not best[0].run_secs:
            return float("inf")
        return task.weight * sum(float(s) for s in best[0].run_secs) / len(best[0].run_secs)

    ranked = sorted(((cost(task), task) for task in tasks), key=lambda pair: -pair[0])
    total = sum(seconds for seconds, _ in ranked)
    hot, covered = [], 0.0
    for seconds, task in ranked:
        if hot and (covered >= share * total or len(hot) * MIN_SEARCH_TRIALS >= trials):
            break
        hot.append(task)
        covered += seconds
    return hot
