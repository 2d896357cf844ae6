"""TFLite import: a file we write (no TensorFlow here) compiles and matches the ONNX reference."""

import numpy as np
from conftest import run_module

from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, compare, seeded_inputs
from tvm_mobilenet.models.architectures import architecture
from tvm_mobilenet.models.onnx_export import export
from tvm_mobilenet.reference import interpreter as reference
from tvm_mobilenet.runtime.runner import load_local


def test_tflite_library_matches_reference(tmp_path):
    path, lib = tmp_path / "v2.tflite", tmp_path / "v2.so"
    exported = run_module("models", "export", "mobilenet_v2", "--alpha", "0.5", "--resolution",
                          "96", "--seed", "3", "-o", str(path))
    assert exported.returncode == 0, exported.stderr
    built = run_module("build", "--model", str(path), "-o", str(lib))
    assert built.returncode == 0, built.stderr
    library = load_local(lib)
    assert library.info.input_shape == (1, 96, 96, 3)  # TFLite is NHWC
    x_nchw = seeded_inputs((1, 3, 96, 96), 1, seed=8)[0]
    expected = reference.run(export(architecture("mobilenet_v2", 0.5, 96), seed=3),
                             {"input": x_nchw})[0]
    result = compare(library.run(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))), expected)
    assert result.rel_error < DEFAULT_RTOL and result.topk_agrees


def test_garbage_tflite_file_is_rejected(tmp_path):
    path = tmp_path / "junk.tflite"
    path.write_bytes(b"\x00\x01garbage" * 10)
    result = run_module("build", "--model", str(path), "-o", str(tmp_path / "x.so"))
    assert result.returncode == 2 and "not a readable TFLite model" in result.stderr
