"""Compile an imported model for a target preset into a library with its weights embedded.

`build_library` runs our graph preparation, applies the schedules `tuning.lookup` chose, and
compiles with TVM's default pipeline plus the weight prefetch; it writes a shared library (a
folder of WGSL kernels for Vulkan presets) and its description (`runtime.library`). The
command line is `tvm-mobilenet build`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.files import replaced
from tvm_mobilenet.frontend.importer import ImportedModel, ModelSource
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import TargetPreset
from tvm_mobilenet.transform import prefetch
from tvm_mobilenet.transform.graph_passes import prepare
from tvm_mobilenet.tuning.lookup import Schedules
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


def build_library(imported: ImportedModel, preset: TargetPreset, output: Path,
                  source: ModelSource, schedules: Schedules | None = None) -> LibraryInfo:
    """Compile `imported` for `preset` with `schedules` (None: TVM's plain schedules), write
    the library (a folder for Vulkan presets) and its description."""
    database = schedules.database if schedules else None
    if preset.device == "vulkan":
        from tvm_mobilenet.gpu.codegen import compile_plan

        plan = compile_plan(imported.mod, preset.tvm_target, database)
        with replaced(output) as folder:
            plan.save(folder)
    else:
        _build_shared_library(imported, preset, output, database)
    info = LibraryInfo(input_name=imported.input_name, input_shape=imported.input_shape,
                       model=source.label, source=asdict(source), target=preset.name,
                       target_dict=preset.target,
                       tuning_log=schedules.summary() if schedules else None,
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
    try:
        with replaced(output) as temporary:
            executable.export_library(str(temporary),
                                      fcompile=linker.fcompile() if linker else None)
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if "error" in line.lower()]
        raise UserError(f"linking {output} for {preset.name} failed:\n"
                        + "\n".join(lines[-4:] or str(error).splitlines()[-4:])) from error
