"""A deploy bundle: a built library plus everything a device needs to verify it by itself.

    python -m tvm_mobilenet.bundle out/rpi4-mobilenet_v2.so -o bundle/
    scp -r bundle/ pi@raspberrypi:  &&  ssh pi@raspberrypi python3 bundle/run.py

The folder holds ``model.so``, ``model.json`` (input/output spec, model, target), a seeded
``input.npy`` with the NumPy reference's ``expected.npy`` logits, and ``run.py``
(`deploy_run.py`), which needs only NumPy and TVM's runtime on the device.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import deploy_run, reference
from .build import LibraryInfo
from .cli import UserError, run_cli
from .frontend import ModelSource, onnx_model
from .verify import seeded_inputs

BUNDLE_INPUT_SEED = 2024


def write_bundle(library: Path, directory: Path) -> Path:
    """Fill `directory` with `library`, its spec, verification data and run.py."""
    if not library.is_file():
        raise UserError(f"library {library} does not exist")
    info = LibraryInfo.load(library)
    model = onnx_model(ModelSource(**info.source))
    x = seeded_inputs(info.input_shape, 1, BUNDLE_INPUT_SEED)[0]
    expected = reference.run(model, {info.input_name: x})[0]
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(library, directory / "model.so")
    spec = asdict(info) | {"output_shape": list(expected.shape), "input_dtype": "float32",
                           "input_layout": "NCHW"}
    (directory / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
    np.save(directory / "input.npy", x)
    np.save(directory / "expected.npy", expected)
    shutil.copyfile(deploy_run.__file__, directory / "run.py")
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.bundle",
        description="Write a deploy folder for a built library: model.so, model.json, a seeded "
                    "input with the NumPy reference's logits, and run.py, which verifies and "
                    "times the model on the device with only NumPy and TVM's runtime.")
    parser.add_argument("library", type=Path, help="library built by tvm_mobilenet.build")
    parser.add_argument("-o", "--output", type=Path, required=True, help="bundle folder")
    args = parser.parse_args(argv)

    def run() -> None:
        folder = write_bundle(args.library, args.output)
        print(f"wrote {folder}/ (model.so, model.json, input.npy, expected.npy, run.py); on "
              f"the device: python3 {folder.name}/run.py")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
