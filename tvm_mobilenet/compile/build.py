"""Compile a model for a target into a deployable library with its weights embedded.

    python -m tvm_mobilenet.build mobilenet_v2 --target x86 -o mobilenet_v2.so

The output follows TVM's deploy convention::

    vm = tvm.relax.VirtualMachine(tvm.runtime.load_module("mobilenet_v2.so"), tvm.cpu())
    logits = vm["main"](tvm.runtime.tensor(x))       # x: NCHW float32

Beside the library, ``<name>.json`` records the input name and shape, the model, the target
and the tuning log used, so that `verify` and `bench` need no further flags.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import (
    ImportedModel,
    ModelSource,
)
from tvm_mobilenet.resources import log_root
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import TargetPreset
from tvm_mobilenet.transform import prefetch
from tvm_mobilenet.transform.graph_passes import prepare
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.tasks import lower_for_tuning

logger = logging.getLogger(__name__)


def compile_module(mod: tvm.IRModule, preset: TargetPreset,
                   database: ms.database.Database | None = None) -> relax.VMExecutable:
    """Relax module -> executable: our graph preparation (NHWC), the tuned schedules of
    `database` applied to the fused kernels they were tuned for, then TVM's default pipeline
    with our weight prefetch (`prefetch.PIPELINE`).

    Kernels are fused exactly as `tasks.extract_tasks` fused them, so lookups hit.
    """
    target = preset.tvm_target
    mod = prepare(mod)
    if database is not None:
        mod = lower_for_tuning(mod, target, database)
    return tvm.compile(mod, target, relax_pipeline=relax.get_default_pipeline(target),
                       tir_pipeline=prefetch.PIPELINE)


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


def other_cpu_logs(preset: TargetPreset, label: str,
                   root: Path | None = None) -> list[Path]:
    """Logs of `label` tuned for `preset` on other CPUs (a detected-CPU preset only)."""
    if not preset.detected_cpu:
        return []
    root = log_root(root)
    own = tuning_log.log_dir(log_target_name(preset), label, root)
    return [directory for directory in sorted(root.glob(f"{preset.name}-*/{label}"))
            if directory != own and tuning_log.is_usable(directory)
            and (tuning_log.read_summary(directory) or {}).get("target_preset") == preset.name]


def find_tuning_log(preset: TargetPreset, label: str, explicit: Path | None = None,
                    root: Path | None = None) -> Path | None:
    """The log to build with: `explicit`, else tuning_logs/<preset folder>/<label> if it has
    records, else the same preset's log from another CPU (with a note).

    Warns (once) when the log was tuned for another target or CPU than `preset`.
    """
    directory = explicit or tuning_log.log_dir(log_target_name(preset), label, root)
    if not tuning_log.is_usable(directory):
        if explicit is not None:
            raise UserError(f"no tuning records in {directory}")
        borrowed = other_cpu_logs(preset, label, root)
        if not borrowed:
            logger.info(f"note: no tuning log at {directory}; building untuned "
                  f"(python -m tvm_mobilenet.tune --target {preset.name} makes one)")
            return None
        logger.info(f"note: no tuning log for this CPU at {directory}; using {borrowed[0]} "
              f"(python -m tvm_mobilenet.tune --target {preset.name} tunes for this CPU)")
        directory = borrowed[0]
    summary = tuning_log.read_summary(directory) or {}
    tuned_for = summary.get("target")
    if tuned_for is not None and tuned_for != preset.target:
        logger.warning(f"warning: {directory} was tuned for {tuned_for}, this build targets "
              f"{preset.target}: the schedules still apply but may be slow")
    return directory


def build_library(imported: ImportedModel, preset: TargetPreset, output: Path,
                  source: ModelSource, tuning_dir: Path | None = None) -> LibraryInfo:
    """Compile `imported` for `preset` (with the tuned schedules in `tuning_dir`), write the
    library (a folder for Vulkan presets) and its description."""
    database = tuning_log.open_schedules(tuning_dir) if tuning_dir else None
    if preset.device == "vulkan":
        from tvm_mobilenet.gpu.codegen import compile_plan

        compile_plan(imported.mod, preset.tvm_target, database).save(output)
    else:
        _build_shared_library(imported, preset, output, database)
    info = LibraryInfo(input_name=imported.input_name, input_shape=imported.input_shape,
                       model=source.label, source=asdict(source), target=preset.name,
                       target_dict=preset.target,
                       tuning_log=str(tuning_dir) if tuning_dir else None,
                       tvm_version=tvm.__version__,
                       rpc_key=preset.rpc_key if preset.device == "rpc" else None)
    info.save(output)
    return info


def _build_shared_library(imported: ImportedModel, preset: TargetPreset, output: Path,
                          database: ms.database.Database | None) -> None:
    linker = linker_for(preset)
    if linker is not None and linker.note:
        logger.info(f"note: {linker.note}")
    executable = compile_module(imported.mod, preset, database)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        executable.export_library(str(output), fcompile=linker.fcompile() if linker else None)
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if "error" in line.lower()]
        raise UserError(f"linking {output} for {preset.name} failed:\n"
                        + "\n".join(lines[-4:] or str(error).splitlines()[-4:])) from error
