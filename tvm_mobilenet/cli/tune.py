"""`tvm-mobilenet tune` (or ``python -m tvm_mobilenet.tune``): the main job.

    tvm-mobilenet tune --target x86 --model mobilenet_v2 --trials 1000
    tvm-mobilenet tune --list-tasks --model mobilenet_v1

Tunes the model's depthwise and pointwise convolutions, picks each kernel's schedule, builds
the library, verifies it and benchmarks it (`tvm_mobilenet.pipeline`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import (
    add_log_dir_arg,
    add_model_args,
    add_runs_arg,
    add_target_arg,
    add_threads_arg,
    default_threads,
    file_of,
    model_source,
    natural,
    parser_for,
    run_cli,
    task_kinds,
    writable_path,
)
from tvm_mobilenet.frontend.importer import import_model
from tvm_mobilenet.pipeline import (
    DEFAULT_TRIALS_PER_TASK,
    TRANSFER_TRIALS_PER_TASK,
    TuneArgs,
    run_tuning,
)
from tvm_mobilenet.runtime.rpc import add_rpc_args, endpoint_from_args
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.tasks import DEFAULT_TUNED_KINDS, TASK_KINDS, extract_tasks, task_table


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("tune", "Autotune a MobileNet's depthwise and pointwise convolutions "
                        "with MetaSchedule (evolutionary search, XGBoost cost model, our conv "
                        "search spaces), then build the tuned library, verify it against the "
                        "NumPy reference and benchmark it against onnxruntime. Logs are resumed.")
    add_target_arg(parser)
    add_model_args(parser, default="mobilenet_v2")
    parser.add_argument("--ops", type=task_kinds, default=DEFAULT_TUNED_KINDS,
                        help="task kinds to tune: comma-separated from "
                             f"{', '.join(TASK_KINDS)}, or 'all' (default: depthwise,pointwise)")
    parser.add_argument("--trials", type=natural, default=None,
                        help="total trials the log should hold for these tasks; existing "
                             f"records count (default: {TRANSFER_TRIALS_PER_TASK} per task when "
                             "other logs of the target seed it, else "
                             f"{DEFAULT_TRIALS_PER_TASK})")
    add_log_dir_arg(parser, writes=True)
    parser.add_argument("--fresh", action="store_true",
                        help="discard the existing log instead of resuming it")
    parser.add_argument("--list-tasks", action="store_true",
                        help="print the model's tasks (kind, shape, MFLOP, occurrences), exit")
    parser.add_argument("-o", "--output", type=writable_path, default=None,
                        help="tuned library (default: out/<target>-<model>.so)")
    add_runs_arg(parser, "benchmark runs")
    add_threads_arg(parser, "1 and all cores here; the target's cores on a device")
    parser.add_argument("--vs-untuned", action="store_true",
                        help="also build and time the untuned library (slow: ~1 s a run)")
    parser.add_argument("--search-seed", type=natural, default=0,
                        help="seed of the tuner's search (default: 0)")
    parser.add_argument("--plot", type=file_of(".png"), default=None, metavar="FILE.png",
                        help="draw per-task latency bars (untuned vs tuned, by kind)")
    add_rpc_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        source = model_source(args)
        preset = load_target(args.target)
        device = endpoint_from_args(args, preset.rpc_key if preset.device == "rpc" else None)
        if args.list_tasks:
            print(task_table(extract_tasks(import_model(source).mod, preset.tvm_target)))
            return
        suffix = "" if preset.device == "vulkan" else ".so"  # Vulkan builds are folders
        output = args.output or Path("out") / f"{preset.name}-{source.label}{suffix}"
        threads = args.threads or ((preset.num_cores,) if device else default_threads())
        run_tuning(TuneArgs(source, args.target, args.ops, args.trials,
                            args.log_dir, args.fresh, output, args.runs, threads,
                            args.vs_untuned, args.search_seed, device, args.plot))

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
