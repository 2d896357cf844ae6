"""The main job: tune a MobileNet's depthwise and pointwise convolutions, then build, verify
and benchmark the tuned library.

    python -m tvm_mobilenet.tune --target x86 --model mobilenet_v2 --trials 1000
    python -m tvm_mobilenet.tune --list-tasks --model mobilenet_v1

Logs live in tuning_logs/<target>/<model>/ and are resumed: ``--trials`` is the total the log
should hold for the tuned tasks, so a second run continues where the first stopped (or does
nothing when the log is complete). Ctrl-C stops after the round in flight. After tuning on
this machine, each task's fastest records are measured again at 1 thread and at all cores to
pick the schedule the library is built with (`tuning/selection.py`).
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.bench import benchmark, report
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, verify_library
from tvm_mobilenet.evaluate.verify import report as verify_report
from tvm_mobilenet.frontend.importer import ModelSource, import_onnx, onnx_model
from tvm_mobilenet.runtime.rpc import Endpoint, probe
from tvm_mobilenet.runtime.runner import load, set_threads, vulkan_device
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import TargetPreset, host_cpu, load_target, one_and_all
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.lookup import (
    compatible_logs,
    log_target_name,
    schedules_for,
    transfer_logs,
)
from tvm_mobilenet.tuning.plot import plot_task_latencies
from tvm_mobilenet.tuning.selection import (
    SHORTLIST,
    best_record,
    cold_seconds,
    compile_kernel,
    mean_seconds,
    pick_table,
    select,
)
from tvm_mobilenet.tuning.tasks import (
    Task,
    extract_tasks,
    task_table,
)
from tvm_mobilenet.tuning.tuner import tune_tasks

logger = logging.getLogger(__name__)

#: The default budget of a log tuned from scratch, and of one that starts from other logs
#: (`tuning/transfer.py`): enough for its seeds and a short search of the slowest kernels.
DEFAULT_TRIALS_PER_TASK = 32
TRANSFER_TRIALS_PER_TASK = 4


@dataclass(frozen=True)
class TuneArgs:
    """Everything one tuning job needs (printed once at the start)."""

    source: ModelSource
    target: str
    ops: tuple[str, ...]
    trials: int | None
    #: Root of the tuning logs (None: `resources.log_root`).
    log_dir: Path | None
    fresh: bool
    output: Path
    runs: int
    threads: tuple[int, ...]
    vs_untuned: bool
    search_seed: int
    #: Where candidates and the library run: None for this machine.
    device: Endpoint | None = None
    plot: Path | None = None


def kernel_seconds(task: Task, target: tvm.target.Target,
                   database: ms.database.Database | None = None) -> float | None:
    """Median time of one task's kernel with cold weights: untuned, or with the schedule
    `database` builds it with (None when the database has no record for it)."""
    record = best_record(task, database, target) if database is not None else None
    if database is not None and record is None:
        return None
    return float(np.median(cold_seconds(*compile_kernel(task, target, record), runs=15)))


def logged_tasks(tasks: list[Task], log: Path) -> list[Task]:
    """The tasks of `tasks` whose workloads the log at `log` holds (every task ever tuned into
    it, with or without a successful record), in order."""
    database = tuning_log.open_database(log)
    return [task for task in tasks if database.has_workload(task.mod)]


def recorded_seconds(task: Task, database: ms.database.Database,
                     target: tvm.target.Target) -> float | None:
    """The measured time of the record `database` builds `task` with."""
    record = best_record(task, database, target)
    if record is None or not record.run_secs:
        return None
    return mean_seconds(record)


def task_report(tasks: list[Task],
                measure: Callable[[Task], tuple[float | None, float | None]]
                ) -> tuple[str, list[dict]]:
    """Per-task table (kind, shape, untuned vs tuned µs, speed-up) and its summary rows;
    `measure` gives a task's (untuned, tuned) seconds, either may be unknown."""
    def us(seconds: float | None) -> str:
        return f"{seconds * 1e6:.1f}" if seconds else "-"

    rows, entries = [f"{'kind':<11} {'shape':<30} {'x':>2} {'untuned us':>11} "
                     f"{'tuned us':>9} {'speed-up':>8} {'GFLOP/s':>8}"], []
    for task in tasks:
        untuned, tuned = measure(task)
        entries.append({"name": task.name, "kind": task.kind, "shape": task.shape,
                        "weight": task.weight, "mflop": round(task.flops / 1e6, 2),
                        "untuned_us": round(untuned * 1e6, 1) if untuned else None,
                        "tuned_us": round(tuned * 1e6, 1) if tuned else None})
        speedup = f"{untuned / tuned:.1f}x" if untuned and tuned else "-"
        gflops = f"{task.flops / tuned / 1e9:.1f}" if tuned else "-"
        rows.append(f"{task.kind:<11} {task.shape:<30} {task.weight:>2} {us(untuned):>11} "
                    f"{us(tuned):>9} {speedup:>8} {gflops:>8}")
    return "\n".join(rows), entries


def run_tuning(args: TuneArgs) -> None:
    logger.info(f"Tuning with arguments: {args}")
    preset: TargetPreset = load_target(args.target)
    target, gpu = preset.tvm_tuning_target, preset.device == "vulkan"
    measured_on, linker = f"{platform.machine()} {host_cpu()}", None
    if (args.device is not None or gpu) and (args.plot or args.vs_untuned):
        raise UserError("--plot and --vs-untuned time untuned kernels on this machine's CPU "
                        "only; elsewhere, time an untuned build with `bench`")
    if args.device is not None:
        linker = linker_for(preset)
        measured_on = probe(args.device)  # fails now, with setup help, not after extraction
    if gpu:
        from tvm_mobilenet.gpu.wgpu_executor import adapter_label

        measured_on = adapter_label(vulkan_device()[0])
    logger.info(f"measuring on {measured_on}")
    # The ONNX graph is both what TVM imports and what the reference verifies: build it once
    # (and refuse a .tflite model now, not after tuning, since verification needs ONNX).
    graph = onnx_model(args.source)
    imported = import_onnx(graph)
    log = tuning_log.log_dir(log_target_name(preset), args.source.tuning_label, args.log_dir)
    logger.info(f"[1/5] tasks of {args.source.label} for {preset.name} {preset.target}")
    all_tasks = extract_tasks(imported.mod, target)
    tasks = [task for task in all_tasks if task.kind in args.ops]
    logger.info(task_table(tasks))
    transfer_from = [] if gpu else transfer_logs(preset, args.source.tuning_label, args.log_dir)
    per_task = TRANSFER_TRIALS_PER_TASK if transfer_from else DEFAULT_TRIALS_PER_TASK
    trials = args.trials if args.trials is not None else per_task * len(tasks)
    with tuning_log.exclusive(log):
        if args.fresh:
            for name in (tuning_log.WORKLOAD_FILE, tuning_log.RECORD_FILE):
                (log / name).unlink(missing_ok=True)
            tuning_log.discard_selection(log)
        logger.info(f"[2/5] tuning {len(tasks)} tasks up to {trials} trials, log {log} "
              f"({tuning_log.record_count(log)} records so far)")
        start, records_before = time.perf_counter(), tuning_log.record_count(log)
        progress = tune_tasks(tasks, target, log, trials, args.search_seed, args.device, linker,
                              preset.target if gpu else None, transfer_from)
        elapsed = time.perf_counter() - start
        logger.info(f"tuning took {elapsed:.0f} s; the log holds "
              f"{sum(p.trials for p in progress)} trials for these tasks")
        # Picks and the summary cover every logged task, not only this run's kinds: new
        # records voided all the picks, and the summary describes the whole log.
        logged = logged_tasks(all_tasks, log)
        on_host = args.device is None and not gpu
        picking = on_host and not tuning_log.has_selection(log)
        if picking:
            thread_counts = one_and_all(preset.num_cores)
            logger.info(f"picking each task's schedule: its {SHORTLIST} fastest records measured "
                  f"again at {' and '.join(map(str, thread_counts))} thread(s)")
            start = time.perf_counter()
            picks = select(logged, target, log, thread_counts)
            logger.info(pick_table(picks, thread_counts))
            logger.info(f"picking took {time.perf_counter() - start:.0f} s")
        database = tuning_log.open_schedules(log)
        if on_host:
            set_threads(preset.num_cores)
            logger.info("[3/5] per-task latency, untuned vs tuned")
            table, entries = task_report(logged, lambda task: (
                kernel_seconds(task, target), kernel_seconds(task, target, database)))
        else:
            logger.info("[3/5] per-task latency of the best records, as measured on the device")
            table, entries = task_report(logged, lambda task: (
                None, recorded_seconds(task, database, target)))
        logger.info(table)
        if args.plot:
            plot_task_latencies(entries, f"{args.source.label} on {preset.name}: per-task "
                                         "latency before/after tuning", args.plot)
            logger.info(f"wrote {args.plot}")
        # A run that measured nothing leaves the (possibly committed) summary as it was.
        if (picking or tuning_log.record_count(log) != records_before
                or not tuning_log.read_summary(log)):
            tuning_log.write_summary(log, {
                "model": args.source.tuning_label, "target": preset.target,
                "target_preset": preset.name, "measured_on": measured_on,
                "tvm_version": tvm.__version__, "trials": tuning_log.trials_spent(log),
                "tasks": entries})
    where = "on the device" if args.device or gpu else "on this machine"
    logger.info(f"[4/5] building {args.output} with the log, verifying it {where} against "
                "the NumPy reference")
    schedules = schedules_for(imported.mod, preset, compatible_logs(
        preset, args.source.tuning_label, args.log_dir))
    logger.info(f"schedules: {schedules.summary()}")
    build_library(imported, preset, args.output, args.source, schedules)
    library = load(args.output, args.device)
    comparisons = verify_library(library, graph)
    logger.info(verify_report(comparisons, DEFAULT_RTOL))
    if not all(c.passes(DEFAULT_RTOL) for c in comparisons):
        raise UserError(f"{args.output} does not match the reference; not benchmarking it")
    logger.info(f"[5/5] benchmark ({args.runs} runs each, interleaved)")
    libraries = {"tvm": library}
    if args.vs_untuned:
        untuned_path = args.output.with_name(args.output.stem + "-untuned.so")
        build_library(imported, preset, untuned_path, args.source, None)
        libraries["tvm-untuned"] = load(untuned_path, args.device)
    # onnxruntime runs on this machine: it is compared only with libraries that run here too.
    model_bytes = None if args.device else graph.SerializeToString()
    timings = [timing for threads in args.threads
               for timing in benchmark(libraries, args.runs, threads, model_bytes)]
    records = tuning_log.record_count(log)
    logger.info(report(f"{args.source.label} tuned ({records} records)", timings,
                       library.where))
