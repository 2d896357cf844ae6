"""Compiled x86 libraries match the NumPy reference and onnxruntime; verify catches mismatches."""

import numpy as np
import pytest
from conftest import run_module
from test_models import onnxruntime_run

from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, compare, seeded_inputs, verify_library
from tvm_mobilenet.frontend.importer import ModelSource, onnx_model
from tvm_mobilenet.runtime.runner import load_local

#: The edges too: the smallest width multiplier the paper lists (0.25) at the smallest
#: resolution the architectures accept (32).
SOURCES = [ModelSource("mobilenet_v1", 1.0, 224), ModelSource("mobilenet_v1", 0.5, 160),
           ModelSource("mobilenet_v2", 1.0, 224), ModelSource("mobilenet_v2", 0.5, 128),
           ModelSource("mobilenet_v2", 0.5, 96, expansion=4),
           ModelSource("mobilenet_v1", 0.25, 32), ModelSource("mobilenet_v2", 0.25, 32)]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.label + f"-t{s.expansion}")
def test_library_matches_reference_and_onnxruntime(built_library, source):
    path, info = built_library(source)
    library = load_local(path)
    model = onnx_model(source)
    for comparison in verify_library(library, model, count=2):
        assert comparison.passes(DEFAULT_RTOL), comparison
        assert comparison.top1_agrees and comparison.topk_agrees
    x = seeded_inputs(info.input_shape, 1, seed=77)[0]
    against_onnxruntime = compare(library.run(x), onnxruntime_run(model, x).astype(np.float64))
    assert against_onnxruntime.rel_error < DEFAULT_RTOL


def test_library_follows_tvm_deploy_convention(built_library):
    import tvm
    from tvm import relax

    path, info = built_library(ModelSource("mobilenet_v2", 0.5, 128))
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    logits = vm["main"](tvm.runtime.tensor(np.zeros(info.input_shape, np.float32))).numpy()
    assert logits.shape == (1, 1000) and np.isfinite(logits).all()


def test_verify_cli_passes_and_fails_on_other_seed(built_library):
    path, _ = built_library(ModelSource("mobilenet_v2", 0.5, 128))
    ok = run_module("verify", str(path))
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.stdout + ok.stderr
    other_seed = run_module("verify", str(path), "--model", "mobilenet_v2", "--alpha", "0.5",
                            "--resolution", "128", "--seed", "1")
    assert other_seed.returncode == 1 and "FAIL" in other_seed.stdout


def test_verify_cli_bad_library(tmp_path):
    result = run_module("verify", str(tmp_path / "missing.so"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_build_cli_from_onnx_file(tmp_path):
    onnx_path = tmp_path / "v1.onnx"
    assert run_module("models", "export", "mobilenet_v1", "--alpha", "0.25", "--resolution", "64",
                      "--seed", "2", "-o", str(onnx_path)).returncode == 0
    lib = tmp_path / "v1.so"
    built = run_module("build", "--model", str(onnx_path), "--target", "x86", "-o", str(lib))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "v1.json").is_file()
    verified = run_module("verify", str(lib), "--model", str(onnx_path))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_bench_cli_compares_with_onnxruntime(built_library):
    path, _ = built_library(ModelSource("mobilenet_v2", 0.5, 128))
    result = run_module("bench", str(path), "--runs", "10", "--threads", "1",
                        "--compare", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in result.stdout and "ratio of medians" in result.stdout
    rejected = run_module("bench", str(path), "--compare", "tensorflow")
    assert rejected.returncode == 2 and "invalid choice: 'tensorflow'" in rejected.stderr
