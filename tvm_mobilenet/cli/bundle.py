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
    args = parser.parse_args(argv)

    def run() -> None:
        folder = write_bundle(args.library, args.output)
        print(f"wrote {folder}/ (model.so, model.json, input.npy, expected.npy, run.py); on "
              f"the device: python3 {folder.name}/run.py")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
