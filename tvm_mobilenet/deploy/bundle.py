"""A deploy bundle: a built library plus everything a device needs to verify it by itself.

    python -m tvm_mobilenet.bundle out/rpi4-mobilenet_v2.so -o bundle/
    scp -r bundle/ pi@raspberrypi:  &&  ssh pi@raspberrypi python3 bundle/run.py

The folder holds ``model.so``, ``model.json`` (input/output spec, model, target), a seeded
``input.npy`` with the NumPy reference's ``expected.npy`` logits, and ``run.py``
(`on_device.py`), which needs only NumPy and TVM's runtime on the device.

A native bundle (``--native``, `native.py`) adds ``bin/tvm-mobilenet-run``, the C API
(``include/``, ``lib/libtvm_mobilenet.so``) and TVM's runtime libraries, and records the
library's SHA-256 in ``model.json``, which the C API checks before loading it; the pretrained
model's bundle also holds ``labels.txt``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tvm_mobilenet.deploy import native, on_device
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.verify import seeded_inputs
from tvm_mobilenet.files import replaced
from tvm_mobilenet.frontend.importer import ModelSource, onnx_model
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.reference import interpreter as reference
from tvm_mobilenet.resources import IMAGENET_CLASSES
from tvm_mobilenet.runtime.library import LibraryInfo

BUNDLE_INPUT_SEED = 2024


#: What a bundle folder holds; a folder with anything else is not replaced by one.
BUNDLE_FILES = ("model.so", "model.json", "input.npy", "expected.npy", "run.py", "labels.txt",
                *native.NATIVE_FILES)


def write_bundle(library: Path, directory: Path, native_code: bool = False) -> Path:
    """Write `directory`, whole: `library`, its spec, verification data and run.py, and with
    `native_code` the native runner, C API and TVM runtime for the library's platform. An
    existing bundle there is replaced; a folder holding other files is refused."""
    if not library.is_file():
        raise UserError(f"library {library} does not exist")
    others = sorted(p.name for p in directory.iterdir()
                    if p.name not in BUNDLE_FILES) if directory.is_dir() else []
    if others:
        raise UserError(f"{directory} holds files that are not part of a bundle "
                        f"({', '.join(others[:3])}); give a new or empty folder")
    info = LibraryInfo.load(library)
    # A platform without a native runtime is refused before any work.
    platform = native.native_platform(info) if native_code else None
    model = onnx_model(ModelSource(**info.source))
    x = seeded_inputs(info.input_shape, 1, BUNDLE_INPUT_SEED)[0]
    expected = reference.run(model, {info.input_name: x})[0]
    spec = asdict(info) | {"output_shape": list(expected.shape), "input_dtype": "float32",
                           "input_layout": "NCHW",
                           "library_sha256": hashlib.sha256(library.read_bytes()).hexdigest()}
    with replaced(directory) as folder:
        folder.mkdir()
        shutil.copyfile(library, folder / "model.so")
        (folder / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
        np.save(folder / "input.npy", x)
        np.save(folder / "expected.npy", expected)
        shutil.copyfile(on_device.__file__, folder / "run.py")
        if info.source.get("spec") == pretrained.NAME:
            shutil.copyfile(IMAGENET_CLASSES, folder / "labels.txt")
        if platform is not None:
            native.add_native_files(platform, folder)
    return directory
