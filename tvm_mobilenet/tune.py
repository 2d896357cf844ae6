"""The main job: tune a MobileNet's depthwise and pointwise convolutions, then build, verify
and benchmark the tuned library.

    python -m tvm_mobilenet.tune --target x86 --model mobilenet_v2 --trials 1000
    python -m tvm_mobilenet.tune --list-tasks --model mobilenet_v1

Logs live in tuning_logs/<target>/<model>/ and are resumed: ``--trials`` is the total the log
should hold for the tuned tasks, so a second run continues where the first stopped (or does
nothing when the log is complete). Ctrl-C stops after the round in flight. After tuning on
this machine, each task's fastest records are measured again at 1 thread and at all cores to
pick the schedule the library is built with (`selection.py`).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms

from . import tuning_log
from .bench import benchmark, parse_threads, report
from .build import (add_model_args, build_library, log_target_name, model_source,
                    other_cpu_logs)
from .cli import UserError, run_cli
from .frontend import ModelSource, import_model, import_onnx, onnx_model
from .linker import linker_for
from .selection import (SHORTLIST, best_record, cold_seconds, compile_kernel, mean_seconds,
                        pick_table, select)
from .rpc import Endpoint, add_rpc_args, endpoint_from_args, probe
from .runner import load, set_threads, vulkan_device
from .targets import TargetPreset, host_cpu, load_target
from .tasks import DEFAULT_TUNED_KINDS, TASK_KINDS, Task, extract_tasks, task_table
from .tuner import tune_tasks
from .tuning_plot import plot_task_latencies
from .verify import DEFAULT_RTOL, report as verify_report, verify_library

DEFAULT_TRIALS_PER_TASK = 32


@dataclass(frozen=True)
class TuneArgs:
    """Everything one tuning job needs (printed once at the start)."""

    source: ModelSource
    target: str
    ops: tuple[str, ...]
    trials: int | None
    log_dir: Path
    fresh: bool
    output: Path
    repeat: int
    threads: tuple[int, ...]
    vs_untuned: bool
    seed: int
    #: Where candidates and the library run: None for this machine.
    device: Endpoint | None = None
    plot: Path | None = None


def parse_ops(text: str) -> tuple[str, ...]:
    kinds = TASK_KINDS if text == "all" else tuple(part.strip() for part in text.split(","))
    unknown = [kind for kind in kinds if kind not in TASK_KINDS]
    if unknown:
        raise UserError(f"unknown op kind(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(TASK_KINDS)} or 'all'")
    return kinds


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
    print(f"Tuning with arguments: {args}")
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
        from .wgpu_executor import adapter_label

        measured_on = adapter_label(vulkan_device()[0])
    print(f"measuring on {measured_on}")
    # The ONNX graph is both what TVM imports and what the reference verifies: build it once
    # (and refuse a .tflite model now, not after tuning, since verification needs ONNX).
    graph = onnx_model(args.source)
    imported = import_onnx(graph)
    log = tuning_log.log_dir(log_target_name(preset), args.source.tuning_label, args.log_dir)
    print(f"[1/5] tasks of {args.source.label} for {preset.name} {preset.target}")
    all_tasks = extract_tasks(imported.mod, target)
    tasks = [task for task in all_tasks if task.kind in args.ops]
    print(task_table(tasks))
    trials = args.trials if args.trials is not None else DEFAULT_TRIALS_PER_TASK * len(tasks)
    with tuning_log.exclusive(log):
        if args.fresh:
            for name in (tuning_log.WORKLOAD_FILE, tuning_log.RECORD_FILE):
                (log / name).unlink(missing_ok=True)
            tuning_log.discard_selection(log)
        print(f"[2/5] tuning {len(tasks)} tasks up to {trials} trials, log {log} "
              f"({tuning_log.record_count(log)} records so far)")
        start, records_before = time.perf_counter(), tuning_log.record_count(log)
        progress = tune_tasks(tasks, target, log, trials, args.seed, args.device, linker,
                              preset.target if gpu else None)
        elapsed = time.perf_counter() - start
        print(f"tuning took {elapsed:.0f} s; the log holds "
              f"{sum(p.trials for p in progress)} trials for these tasks")
        # Picks and the summary cover every logged task, not only this run's kinds: new
        # records voided all the picks, and the summary describes the whole log.
        logged = logged_tasks(all_tasks, log)
        on_host = args.device is None and not gpu
        picking = on_host and not tuning_log.has_selection(log)
        if picking:
            thread_counts = tuple(sorted({1, preset.num_cores}))
            print(f"picking each task's schedule: its {SHORTLIST} fastest records measured "
                  f"again at {' and '.join(map(str, thread_counts))} thread(s)")
            start = time.perf_counter()
            other_cpus = other_cpu_logs(preset, args.source.tuning_label, args.log_dir)
            picks = select(logged, target, log, thread_counts, other_cpus)
            print(pick_table(picks, thread_counts))
            print(f"picking took {time.perf_counter() - start:.0f} s")
        database = tuning_log.open_schedules(log)
        if on_host:
            set_threads(preset.num_cores)
            print("[3/5] per-task latency, untuned vs tuned")
            table, entries = task_report(logged, lambda task: (
                kernel_seconds(task, target), kernel_seconds(task, target, database)))
        else:
            print("[3/5] per-task latency of the best records, as measured on the device")
            table, entries = task_report(logged, lambda task: (
                None, recorded_seconds(task, database, target)))
        print(table)
        if args.plot:
            plot_task_latencies(entries, f"{args.source.label} on {preset.name}: per-task "
                                         "latency before/after tuning", args.plot)
            print(f"wrote {args.plot}")
        # A run that measured nothing leaves the (possibly committed) summary as it was.
        if (picking or tuning_log.record_count(log) != records_before
                or not tuning_log.read_summary(log)):
            tuning_log.write_summary(log, {
                "model": args.source.tuning_label, "target": preset.target,
                "target_preset": preset.name, "measured_on": measured_on,
                "tvm_version": tvm.__version__, "trials": tuning_log.record_count(log),
                "tasks": entries})
    where = "on the device" if args.device or gpu else "on this machine"
    print(f"[4/5] building {args.output} with the log, verifying it {where} against the NumPy "
          "reference")
    build_library(imported, preset, args.output, args.source, log)
    library = load(args.output, args.device)
    comparisons = verify_library(library, graph)
    print(verify_report(comparisons, DEFAULT_RTOL))
    if not all(c.passes(DEFAULT_RTOL) for c in comparisons):
        raise UserError(f"{args.output} does not match the reference; not benchmarking it")
    print(f"[5/5] benchmark ({args.repeat} runs each, interleaved)")
    libraries = {"tvm": library}
    if args.vs_untuned:
        untuned_path = args.output.with_name(args.output.stem + "-untuned.so")
        build_library(imported, preset, untuned_path, args.source, None)
        libraries["tvm-untuned"] = load(untuned_path, args.device)
    # onnxruntime runs on this machine: it is compared only with libraries that run here too.
    model_bytes = None if args.device else graph.SerializeToString()
    timings = [timing for threads in args.threads
               for timing in benchmark(libraries, args.repeat, threads, model_bytes)]
    print(report(f"{args.source.label} tuned ({tuning_log.record_count(log)} records)", timings,
                 library.where))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.tune",
        description="Autotune a MobileNet's depthwise and pointwise convolutions with "
                    "MetaSchedule (evolutionary search, XGBoost cost model, our conv search "
                    "spaces), then build the tuned library, verify it against the NumPy "
                    "reference and benchmark it against onnxruntime. Logs are resumed.")
    parser.add_argument("--target", default="x86",
                        help="target preset or .json file (default: x86, this machine)")
    add_model_args(parser, flag="--model")
    parser.add_argument("--ops", default=",".join(DEFAULT_TUNED_KINDS),
                        help="task kinds to tune: comma-separated from "
                             f"{', '.join(TASK_KINDS)}, or 'all' (default: depthwise,pointwise)")
    parser.add_argument("--trials", type=int, default=None,
                        help="total trials the log should hold for these tasks; existing "
                             f"records count (default: {DEFAULT_TRIALS_PER_TASK} per task)")
    parser.add_argument("--log-dir", type=Path, default=tuning_log.LOG_ROOT,
                        help="root of the tuning logs (default: the project's tuning_logs/)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the existing log instead of resuming it")
    parser.add_argument("--list-tasks", action="store_true",
                        help="print the model's tasks (kind, shape, MFLOP, occurrences), exit")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="tuned library (default: out/<target>-<model>.so)")
    parser.add_argument("--repeat", type=int, default=50, help="benchmark runs (default 50)")
    parser.add_argument("--threads", type=parse_threads, default=None,
                        help="benchmark thread counts (default 1,2 here; the target's cores "
                             "on a device)")
    parser.add_argument("--vs-untuned", action="store_true",
                        help="also build and time the untuned library (slow: ~1 s a run)")
    parser.add_argument("--tune-seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="draw per-task latency bars (untuned vs tuned, by kind)")
    add_rpc_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        args.model = args.model or "mobilenet_v2"
        source = model_source(args)
        if args.list_tasks:
            preset = load_target(args.target)
            print(task_table(extract_tasks(import_model(source).mod, preset.tvm_target)))
            return
        if args.trials is not None and args.trials < 0:
            raise UserError("--trials must be at least 0")
        preset = load_target(args.target)
        suffix = "" if preset.device == "vulkan" else ".so"  # Vulkan builds are folders
        output = args.output or Path("out") / f"{args.target}-{source.label}{suffix}"
        device = endpoint_from_args(args, preset.rpc_key if preset.device == "rpc" else None)
        threads = args.threads or ([preset.num_cores] if device else [1, 2])
        run_tuning(TuneArgs(source, args.target, parse_ops(args.ops), args.trials,
                            args.log_dir, args.fresh, output, args.repeat, tuple(threads),
                            args.vs_untuned, args.tune_seed, device, args.plot))

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
