"""Which schedule each kernel of a build gets, from every tuning log that fits the target.

MetaSchedule finds a record by its workload (the kernel's TIR), not by the model it was tuned
for, so one log serves every model that shares a kernel: MobileNetV2's stem is V1's, and a
user's own ONNX MobileNetV2 has the kernels of ``mobilenet_v2-1.0-224``. Each kernel of a
build takes the first of:

1. a record of the model's own log (its pick, else its fastest record);
2. a pick for the same kernel from another log of the same target folder (other models,
   widths and resolutions);
3. a pick from the same preset's logs of other CPUs with the same vector unit, the same
   model's first (a detected-CPU preset only);
4. the target's default schedule (`defaults.py`), for depthwise and pointwise convs;
5. TVM's plain schedule.

Logs are folders ``<root>/<target folder>/<model>/`` (`tuning.log`); a preset that detects the
CPU keeps one target folder per CPU model (``x86-rocketlake``), since a schedule tuned on one
CPU model can be slow on another.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.resources import log_root
from tvm_mobilenet.target.presets import TargetPreset
from tvm_mobilenet.target.vector_unit import VectorUnit, vector_unit
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.defaults import default_record
from tvm_mobilenet.tuning.tasks import Task, extract_tasks

logger = logging.getLogger(__name__)

#: The source of a kernel built with its target's default schedule, or with TVM's own.
DEFAULT_SOURCE = "default schedule"
PLAIN_SOURCE = "TVM's plain schedule"


def log_target_name(preset: TargetPreset) -> str:
    """The tuning_logs/ folder of a preset: its name, plus this machine's CPU for presets that
    detect it (x86-znver4), since a schedule tuned on one CPU model can be slow on another,
    or the adapter for Vulkan presets (vulkan-llvmpipe), since GPUs differ even more."""
    if preset.detected_cpu:
        return f"{preset.name}-{preset.target['mcpu']}"
    if preset.device != "vulkan":
        return preset.name
    from tvm_mobilenet.gpu.wgpu_executor import adapter_slug, open_device

    return f"{preset.name}-{adapter_slug(open_device()[0])}"


def transfer_logs(preset: TargetPreset, label: str, root: Path | None = None) -> list[Path]:
    """The logs a new log of `label` for `preset` starts from (`tuning/transfer.py`): every
    other log of its target folder and, for a detected-CPU preset, every log of the preset
    tuned on any other CPU. Their records are measured again here before they count."""
    root = log_root(root)
    own_folder = root / log_target_name(preset)
    folders = [own_folder]
    if preset.detected_cpu:
        folders += [folder for folder in sorted(root.glob(f"{preset.name}-*/"))
                    if folder != own_folder]
    return [log for folder in folders for log in sorted(folder.glob("*/"))
            if log != own_folder / label and tuning_log.is_usable(log)
            and (folder == own_folder
                 or (tuning_log.read_summary(log) or {}).get("target_preset") == preset.name)]


def compatible_logs(preset: TargetPreset, label: str, root: Path | None = None) -> list[Path]:
    """Every log whose records may serve a build of `label` for `preset`, best first: the
    model's own log, the other logs of its target folder, then (detected-CPU presets) the
    logs of other CPUs with the same vector unit, the same model's first."""
    root = log_root(root)
    own_folder = root / log_target_name(preset)
    own = own_folder / label
    logs = [own] + sorted(path for path in own_folder.glob("*/") if path != own)
    if preset.detected_cpu:
        unit = vector_unit(preset.tvm_target)
        others = [path for path in sorted(root.glob(f"{preset.name}-*/*/"))
                  if path.parent != own_folder and _same_vector_unit(path, preset, unit)]
        logs += sorted(others, key=lambda path: path.name != label)
    return [path for path in logs if tuning_log.is_usable(path)]


def _same_vector_unit(log: Path, preset: TargetPreset, unit: VectorUnit) -> bool:
    summary = tuning_log.read_summary(log) or {}
    if summary.get("target_preset") != preset.name or "target" not in summary:
        return False
    return vector_unit(tvm.target.Target(summary["target"])) == unit


@dataclass
class Schedules:
    """The database a build applies, and where each kernel's schedule came from."""

    database: ms.database.Database
    #: Task name -> the log folder of its record, `DEFAULT_SOURCE` or `PLAIN_SOURCE`.
    sources: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        counts = Counter(self.sources.values())
        return "; ".join(f"{count} from {source}" for source, count in counts.most_common())


def lookup_schedules(tasks: list[Task], target: tvm.target.Target, logs: list[Path],
                     defaults: bool = True) -> Schedules:
    """A database with one record per task: the first of `logs` that has one for the task's
    kernel, else (with `defaults`) its default schedule."""
    schedules = Schedules(ms.database.MemoryDatabase())
    databases = [(log, tuning_log.open_schedules(log)) for log in logs]
    for task in tasks:
        record, source = None, PLAIN_SOURCE
        for log, database in databases:
            found = database.query_tuning_record(task.mod, target, task.name)
            if found is not None:
                record, source = found, str(log)
                break
        workload = schedules.database.commit_workload(task.mod)
        if record is not None:
            schedules.database.commit_tuning_record(ms.database.TuningRecord(
                trace=record.trace, workload=workload, run_secs=record.run_secs,
                target=target, args_info=record.args_info))
        elif defaults:
            record = default_record(task, target, schedules.database)
            if record is not None:
                schedules.database.commit_tuning_record(record)
                source = DEFAULT_SOURCE
        schedules.sources[task.name] = source
        logger.debug(f"{task.kind:<11} {str(task.shape):<30} {source}")
    return schedules


def schedules_for(mod: tvm.IRModule, preset: TargetPreset, logs: list[Path],
                  defaults: bool = True) -> Schedules:
    """The schedules a build of the imported model `mod` for `preset` applies: `lookup_schedules`
    over its kernels on CPUs; on Vulkan, the first log as it is (no defaults: GPU kernels use
    MetaSchedule's own space)."""
    if preset.device == "vulkan":
        if not logs:
            return Schedules(ms.database.MemoryDatabase())
        return Schedules(tuning_log.open_schedules(logs[0]), {"every kernel": str(logs[0])})
    target = preset.tvm_target
    return lookup_schedules(extract_tasks(mod, target), target, logs, defaults)
