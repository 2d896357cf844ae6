"""`tvm-mobilenet bundle LIBRARY -o DIR`: a deploy folder that verifies and times itself on the
device."""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import parser_for, run_cli, writable_path
from tvm_mobilenet.deploy.bundle import write_bundle


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("bundle", "Write a deploy folder for a built library: model.so, "
                        "model.json, a seeded "
                    "input with the NumPy reference's logits, and run.py, which verifies and "
                    "times the model on the device with only NumPy and TVM's runtime.")
    parser.add_argument("library", type=Path, help="library built by tvm_mobilenet.build")
    parser.add_argument("-o", "--output", type=writable_path, required=True,
                        help="bundle folder")
    parser.add_argument("--native", action="store_true",
                        help="also the native runner, the C API and TVM's runtime for the "
                        "library's platform (x86_64 or aarch64 Linux), built with CMake: the "
                        "device then needs no Python")
    args = parser.parse_args(argv)

    def run() -> None:
        folder = write_bundle(args.library, args.output, native_code=args.native)
        if args.native:
            print(f"wrote {folder}/ (model.so, model.json, self-check data, bin/, lib/, "
                  f"include/); on the device: {folder.name}/bin/tvm-mobilenet-run")
        else:
            print(f"wrote {folder}/ (model.so, model.json, input.npy, expected.npy, run.py); "
                  f"on the device: python3 {folder.name}/run.py")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
