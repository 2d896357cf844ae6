"""Code-quality gauges of an ARM build, for CPUs this machine cannot time.

    python benchmarks/arm_code.py --target rpi4 --model mobilenet_v1
    python benchmarks/arm_code.py --target android-arm64 --model mobilenet_v2 --schedules defaults

Compiles the model for the target (default schedules unless a log fits, as `build` does),
then, for each kernel, reads its hot loop off the assembly: FMAs per iteration, vector
registers spilled to the stack, and llvm-mca's cycles per iteration on the target CPU's
scheduling model. Every figure is an estimate of the code, not a device timing
(`tvm_mobilenet/evaluate/code_quality.py`). Prints Markdown.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from tvm_mobilenet.cli.common import add_model_args, model_source
from tvm_mobilenet.compile.build import compile_module
from tvm_mobilenet.evaluate import code_quality
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.lookup import compatible_logs, schedules_for
from tvm_mobilenet.tuning.tasks import extract_tasks

SCHEDULES = ("tuned", "defaults")


def gauge_table(source: ModelSource, target_name: str, schedules: str) -> str:
    """Markdown: one row per kernel with a NEON FMA loop, grouped by task kind."""
    preset = load_target(target_name)
    mtriple, mcpu = preset.target["mtriple"], preset.target["mcpu"]
    imported = import_model(source)
    logs = compatible_logs(preset, source.tuning_label) if schedules == "tuned" else []
    database = schedules_for(imported.mod, preset, logs).database
    assembly = compile_module(imported.mod, preset, database).mod.imports[0].inspect_source("s")
    kinds = {task.name: task.kind for task in extract_tasks(imported.mod, preset.tvm_target)}
    ceiling = code_quality.fma_ceiling(mtriple, mcpu)
    rows = defaultdict(list)
    for name, lines in code_quality.functions(assembly).items():
        kind = next((k for task, k in kinds.items() if name.startswith(task)), None)
        gauge = code_quality.hot_loop(name, lines, mtriple, mcpu) if kind else None
        if gauge is not None:
            rows[kind].append(gauge)
    model = code_quality.scheduling_model(mtriple, mcpu)
    header = (f"{source.label} for {preset.name} ({mcpu}), {schedules} schedules. Estimates "
              f"from llvm-mca, which applies its {model} scheduling model to {mcpu}; not "
              f"device timings. The model's FMA ceiling: {ceiling:.2f} four-lane FMAs per "
              "cycle.\n\n"
              "| kind | kernel | FMAs per iteration | instructions | stack spills | "
              "est. cycles per iteration | est. FMAs per cycle | est. share of ceiling |\n"
              "|---|---|---|---|---|---|---|---|")
    lines = [header]
    for kind in sorted(rows):
        for gauge in sorted(rows[kind], key=lambda g: g.function):
            lines.append(f"| {kind} | {gauge.function} | {gauge.fmas} | {gauge.instructions} "
                         f"| {gauge.spills} | {gauge.cycles:.1f} | {gauge.fmas_per_cycle:.2f} "
                         f"| {gauge.fmas_per_cycle / ceiling:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_model_args(parser, default="mobilenet_v1")
    parser.add_argument("--target", default="rpi4", help="an ARM preset (default: rpi4)")
    parser.add_argument("--schedules", choices=SCHEDULES, default="tuned",
                        help="as `build --schedules` (default: tuned: logs, then defaults)")
    args = parser.parse_args()
    print(gauge_table(model_source(args), args.target, args.schedules))


if __name__ == "__main__":
    main()
