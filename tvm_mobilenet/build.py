"""Compile a model for a target into a deployable library with its weights embedded.

    python -m tvm_mobilenet.build mobilenet_v2 --target x86 -o mobilenet_v2.so

The output follows TVM's deploy convention::

    vm = tvm.relax.VirtualMachine(tvm.runtime.load_module("mobilenet_v2.so"), tvm.cpu())
    logits = vm["main"](tvm.runtime.tensor(x))       # x: NCHW float32

Beside the library, ``<name>.json`` records the input name and shape, the model, the target
and the tuning log used, so that `verify` and `bench` need no further flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from . import prefetch, tuning_log
from .cli import UserError, add_architecture_args, run_cli
from .graph_passes import prepare
from .linker import linker_for
from .tasks import lower_for_tuning
from .frontend import MODEL_NAMES, ImportedModel, ModelSource, import_model, parse_shape
from .targets import TargetPreset, load_target


@dataclass(frozen=True)
class LibraryInfo:
    """What a built library expects and how it was made (the ``.json`` beside the ``.so``)."""

    input_name: str
    input_shape: tuple[int, ...]
    model: str
    #: The `ModelSource` fields, so `verify` can rebuild the same reference graph.
    source: dict
    target: str
    target_dict: dict
    tuning_log: str | None
    tvm_version: str
    #: Tracker key of the devices it runs on (device presets), None for this machine.
    rpc_key: str | None = None

    @staticmethod
    def path_for(library: Path) -> Path:
        """Beside a .so; inside a Vulkan build's folder."""
        return library.with_suffix(".json") if library.suffix == ".so" else library / "library.json"

    def save(self, library: Path) -> None:
        self.path_for(library).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, library: Path) -> LibraryInfo:
        path = cls.path_for(library)
        if not path.is_file():
            raise UserError(f"{path} is missing: build the library with "
                            "`python -m tvm_mobilenet.build`, which writes it beside the .so")
        try:
            data = json.loads(path.read_text())
            data["input_shape"] = tuple(data["input_shape"])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"{path} is not a library description written by "
                            f"tvm_mobilenet.build ({error})") from error


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
    from .wgpu_executor import adapter_slug, open_device

    return f"{preset.name}-{adapter_slug(open_device()[0])}"


def other_cpu_logs(preset: TargetPreset, label: str,
                   root: Path = tuning_log.LOG_ROOT) -> list[Path]:
    """Logs of `label` tuned for `preset` on other CPUs (a detected-CPU preset only)."""
    if not preset.detected_cpu:
        return []
    own = tuning_log.log_dir(log_target_name(preset), label, root)
    return [directory for directory in sorted(root.glob(f"{preset.name}-*/{label}"))
            if directory != own and tuning_log.record_count(directory) > 0
            and (tuning_log.read_summary(directory) or {}).get("target_preset") == preset.name]


def find_tuning_log(preset: TargetPreset, label: str, explicit: Path | None = None,
                    root: Path = tuning_log.LOG_ROOT) -> Path | None:
    """The log to build with: `explicit`, else tuning_logs/<preset folder>/<label> if it has
    records, else the same preset's log from another CPU (with a note).

    Warns (once) when the log was tuned for another target or CPU than `preset`.
    """
    directory = explicit or tuning_log.log_dir(log_target_name(preset), label, root)
    if tuning_log.record_count(directory) == 0:
        if explicit is not None:
            raise UserError(f"no tuning records in {directory}")
        borrowed = other_cpu_logs(preset, label, root)
        if not borrowed:
            print(f"note: no tuning log at {directory}; building untuned "
                  f"(python -m tvm_mobilenet.tune --target {preset.name} makes one)")
            return None
        print(f"note: no tuning log for this CPU at {directory}; using {borrowed[0]} "
              f"(python -m tvm_mobilenet.tune --target {preset.name} tunes for this CPU)")
        directory = borrowed[0]
    summary = tuning_log.read_summary(directory) or {}
    tuned_for = summary.get("target")
    if tuned_for is not None and tuned_for != preset.target:
        print(f"warning: {directory} was tuned for {tuned_for}, this build targets "
              f"{preset.target}: the schedules still apply but may be slow")
    return directory


def build_library(imported: ImportedModel, preset: TargetPreset, output: Path,
                  source: ModelSource, tuning_dir: Path | None = None) -> LibraryInfo:
    """Compile `imported` for `preset` (with the tuned schedules in `tuning_dir`), write the
    library (a folder for Vulkan presets) and its description."""
    database = tuning_log.open_schedules(tuning_dir) if tuning_dir else None
    if preset.device == "vulkan":
        from .gpu_build import compile_plan

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
        print(f"note: {linker.note}")
    executable = compile_module(imported.mod, preset, database)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        executable.export_library(str(output), fcompile=linker.fcompile() if linker else None)
    except RuntimeError as error:
        lines = [line for line in str(error).splitlines() if "error" in line.lower()]
        raise UserError(f"linking {output} for {preset.name} failed:\n"
                        + "\n".join(lines[-4:] or str(error).splitlines()[-4:])) from error


def add_model_args(parser: argparse.ArgumentParser, flag: str | None = None) -> None:
    """MODEL (positional, or `flag`) plus the flags that shape a built architecture."""
    help_text = ("an .onnx or .tflite file, mobilenet_v1 / mobilenet_v2 (built from the "
                 "paper's table with seeded random weights), or mobilenet_v2_imagenet "
                 "(torchvision's ImageNet weights)")
    if flag:
        parser.add_argument(flag, dest="model", default=None,
                            help=help_text + "; default: the model the library was built from")
    else:
        parser.add_argument("model", help=help_text)
    add_architecture_args(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="weight seed when MODEL is an architecture name (default: 0)")


def model_source(args: argparse.Namespace, built: LibraryInfo | None = None) -> ModelSource:
    """The model the flags name (files by absolute path), else the one `built` came from."""
    if args.model is None and built is not None:
        return ModelSource(**built.source)
    spec = args.model if args.model in MODEL_NAMES else str(Path(args.model).resolve())
    return ModelSource(spec, args.alpha, args.resolution, args.expansion, args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.build",
        description="Compile a MobileNet with TVM (Relax) into a shared library with the "
                    "weights embedded. Writes OUT.so and OUT.json (input spec, model, target).")
    add_model_args(parser)
    parser.add_argument("--target", default="x86",
                        help="target preset name (see `python -m tvm_mobilenet.targets`) or a "
                             "target .json file (default: x86, this machine's CPU)")
    parser.add_argument("--input-shape", default=None,
                        help="input shape N,C,H,W when the model's is symbolic or to check it")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="library file (.so); for Vulkan presets a folder (WGSL kernels, "
                             "launch plan, weights) that runs with wgpu + NumPy")
    logs = parser.add_mutually_exclusive_group()
    logs.add_argument("--tuning-logs", type=Path, default=None, metavar="DIR",
                      help="tuning log folder to apply (default: tuning_logs/<target>/<model>/ "
                           "when it exists)")
    logs.add_argument("--no-tuning-logs", action="store_true", help="build untuned")
    parser.add_argument("--bundle", type=Path, default=None, metavar="DIR",
                        help="also write a deploy folder: the library, its spec, a seeded input "
                             "with the reference's logits and run.py, which verifies and times it "
                             "on the device with only NumPy and TVM's runtime")
    args = parser.parse_args(argv)

    def run() -> None:
        preset = load_target(args.target)
        if args.bundle and preset.device == "vulkan":
            raise UserError("--bundle is for CPU libraries: a Vulkan build's folder already "
                            "runs with wgpu + NumPy")
        if (args.output.suffix == ".so") != (preset.device != "vulkan"):
            raise UserError(f"output {args.output}: a library for {preset.name} is "
                            + ("a folder (no .so)" if preset.device == "vulkan" else "a .so"))
        source = model_source(args)
        start = time.perf_counter()
        shape = parse_shape(args.input_shape) if args.input_shape else None
        imported = import_model(source, shape)
        print(f"imported {args.model} -> Relax, input '{imported.input_name}' "
              f"{list(imported.input_shape)}")
        log = None if args.no_tuning_logs else find_tuning_log(preset, source.tuning_label,
                                                                 args.tuning_logs)
        if log:
            print(f"applying tuning log {log} ({tuning_log.record_count(log)} records)")
        build_library(imported, preset, args.output, source, log)
        print(f"built {args.output} for {preset.name} {preset.target} "
              f"in {time.perf_counter() - start:.1f} s")
        if args.bundle:
            from .bundle import write_bundle  # the bundle needs the reference: a later stage

            write_bundle(args.output, args.bundle)
            print(f"wrote the deploy bundle {args.bundle}/; on the device: python3 run.py")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
