"""`tvm-mobilenet build`: compile a model for a target into a library with its weights embedded.

    tvm-mobilenet build --model mobilenet_v2 --target x86 -o mobilenet_v2.so

The output follows TVM's deploy convention::

    vm = tvm.relax.VirtualMachine(tvm.runtime.load_module("mobilenet_v2.so"), tvm.cpu())
    logits = vm["main"](tvm.runtime.tensor(x))       # x: NCHW float32

Beside the library, ``<name>.json`` records the input name and shape, the model, the target
and the tuning log used, so that `verify` and `bench` need no further flags.
"""

from __future__ import annotations

import logging
import sys
import time

from tvm_mobilenet.cli.common import (
    add_log_dir_arg,
    add_model_args,
    add_target_arg,
    model_source,
    parser_for,
    run_cli,
    writable_path,
)
from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.deploy.bundle import write_bundle
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import import_model, parse_shape
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.lookup import compatible_logs, schedules_for

logger = logging.getLogger(__name__)

#: What `--schedules` may ask for.
SCHEDULE_CHOICES = ("tuned", "defaults", "plain")


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("build", "Compile a MobileNet with TVM (Relax) into a shared library "
                        "with the weights embedded. Writes OUT.so and OUT.json (input spec, "
                        "model, target).")
    add_model_args(parser, required=True)
    add_target_arg(parser)
    parser.add_argument("--input-shape", default=None,
                        help="input shape N,C,H,W when the model's is symbolic or to check it")
    parser.add_argument("-o", "--output", type=writable_path, required=True,
                        help="library file (.so); for Vulkan presets a folder (WGSL kernels, "
                             "launch plan, weights) that runs with wgpu + NumPy")
    add_log_dir_arg(parser)
    parser.add_argument("--schedules", choices=SCHEDULE_CHOICES, default="tuned",
                        help="tuned: each kernel's record from the tuning logs that fit the "
                             "target, else its default schedule; defaults: the target's default "
                             "schedules only; plain: TVM's own schedules, the untuned baseline "
                             "(default: tuned)")
    parser.add_argument("--bundle", type=writable_path, default=None, metavar="DIR",
                        help="also write a deploy folder (see `tvm-mobilenet bundle`)")
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
        logger.info(f"imported {args.model} -> Relax, input '{imported.input_name}' "
                    f"{list(imported.input_shape)}")
        schedules = None
        if args.schedules != "plain":
            logs = (compatible_logs(preset, source.tuning_label, args.log_dir)
                    if args.schedules == "tuned" else [])
            schedules = schedules_for(imported.mod, preset, logs)
            logger.info(f"schedules: {schedules.summary()}")
        build_library(imported, preset, args.output, source, schedules)
        print(f"built {args.output} for {preset.name} {preset.target} "
              f"in {time.perf_counter() - start:.1f} s")
        if args.bundle:
            write_bundle(args.output, args.bundle)
            print(f"wrote the deploy bundle {args.bundle}/; on the device: python3 run.py")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
