"""Vulkan: TVM's WGSL kernels run by our wgpu executor on a Vulkan adapter (lavapipe in CI),
verified against the NumPy reference; depthwise and pointwise tasks tuned on it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tvm
from conftest import PROJECT_ROOT, run_module
from tvm import te
from tvm.s_tir import dlight
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, verify_library
from tvm_mobilenet.frontend.importer import ModelSource, import_model, onnx_model
from tvm_mobilenet.gpu.tuning import (
    ReferenceOutputs,
    WgpuRunner,
    check_shader_sizes,
    wgsl_build,
    wgsl_export,
)
from tvm_mobilenet.gpu.wgpu_executor import VulkanUnavailable, open_device
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.runtime.runner import VulkanLibrary, open_library
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.lookup import schedules_for
from tvm_mobilenet.tuning.tasks import extract_tasks
from tvm_mobilenet.tuning.tuner import tune_tasks

SMALL = ModelSource("mobilenet_v2", 0.35, 96)


@pytest.fixture(scope="module")
def vulkan():
    """Skips (with the reason) only off CI when this machine has no Vulkan adapter; CI must
    have one (.ci/system-packages installs lavapipe)."""
    try:
        return open_device()
    except VulkanUnavailable as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Vulkan adapter here: {error}")


@pytest.fixture(scope="module")
def plan_folder(vulkan, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vulkan") / "v2"
    build_library(import_model(SMALL), load_target("vulkan"), folder, SMALL)
    return folder


def test_mobilenet_v2_on_vulkan_matches_the_reference(plan_folder):
    library = open_library(plan_folder)
    assert isinstance(library, VulkanLibrary) and "Vulkan" in library.where
    comparisons = verify_library(library, onnx_model(SMALL))
    assert all(c.passes(DEFAULT_RTOL) and c.topk_agrees for c in comparisons), comparisons
    # Against weights of another seed the same comparison fails: the check can fail.
    other = onnx_model(ModelSource("mobilenet_v2", 0.35, 96, seed=1))
    assert not any(c.passes(DEFAULT_RTOL) for c in verify_library(library, other))
    kernels = list((plan_folder / "kernels").glob("*.wgsl"))
    assert len(kernels) > 30 and all("@compute" in k.read_text() for k in kernels)


def test_plan_folder_runs_without_tvm(plan_folder):
    """The built folder needs only NumPy and wgpu: run it with TVM made unimportable."""
    script = (
        "import sys; sys.modules['tvm'] = None; sys.modules['tvm_ffi'] = None\n"
        "from pathlib import Path; import numpy as np\n"
        "from tvm_mobilenet.gpu.plan import Plan\n"
        "from tvm_mobilenet.gpu.wgpu_executor import WgpuExecutor, open_device\n"
        f"plan = Plan.load(Path({str(plan_folder)!r}))\n"
        "x = np.random.default_rng(0).standard_normal(plan.inputs[0][0]).astype('float32')\n"
        "np.save(sys.argv[1], WgpuExecutor(plan, open_device()[1]).run(x))\n")
    out = plan_folder.parent / "out.npy"
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                            text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    np.testing.assert_array_equal(np.load(out), open_library(plan_folder).run(x))


def test_missing_vulkan_driver_names_what_to_install(plan_folder):
    env = dict(os.environ, VK_ICD_FILENAMES="/nonexistent.json",
               VK_DRIVER_FILES="/nonexistent.json")
    result = subprocess.run([sys.executable, "-m", "tvm_mobilenet.verify", str(plan_folder)],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, env=env,
                            timeout=300)
    assert result.returncode == 2
    assert "no Vulkan adapter" in result.stderr and "mesa-vulkan-drivers" in result.stderr


@pytest.mark.alone  # lavapipe once left a whole round's outputs unwritten under load
def test_tune_depthwise_and_pointwise_on_vulkan(vulkan, tmp_path):
    preset = load_target("vulkan")
    tasks = extract_tasks(import_model(SMALL).mod, preset.tvm_tuning_target)
    chosen = [next(t for t in tasks if t.kind == kind) for kind in ("depthwise", "pointwise")]
    log = tmp_path / "log"
    # 6 trials per task: about 1 GPU candidate in 4-8 fails to build for WebGPU (a TVM storage
    # rewrite check on vectorized fetches), and some leave outputs unwritten or wrong on
    # lavapipe, more often under load (a failed trial too): once all 5 depthwise candidates of
    # a 5-trial round failed in the full suite, so a task could end with no valid record.
    progress = tune_tasks(chosen, preset.tvm_tuning_target, log, 12, gpu_target=preset.target)
    assert all(p.trials >= 1 and p.best_seconds < 1.0 for p in progress), progress
    assert tuning_log.record_count(log) >= 2
    folder = tmp_path / "tuned"
    imported = import_model(SMALL)
    build_library(imported, preset, folder, SMALL, schedules_for(imported.mod, preset, [log]))
    assert LibraryInfo.load(folder).tuning_log == f"1 from {log}"
    comparisons = verify_library(open_library(folder), onnx_model(SMALL))
    assert all(c.passes(DEFAULT_RTOL) for c in comparisons), comparisons


def test_candidates_with_oversized_shaders_fail_before_they_run():
    """A candidate unrolled into 342 KiB of WGSL took lavapipe 136 s to compile at its first
    dispatch: such candidates fail at build time instead."""
    small = {"name": "main_kernel", "wgsl": "x" * 4096}
    check_shader_sizes([small])
    with pytest.raises(ValueError, match="342 KiB of WGSL"):
        check_shader_sizes([small, {"name": "main_kernel", "wgsl": "x" * (342 * 1024)}])


def test_the_gpu_runner_fails_candidates_that_compute_wrong_outputs(vulkan, tmp_path):
    """A candidate kernel is checked against the untuned kernel on the CPU before it is timed:
    a slightly wrong constant or an unwritten block of outputs fails the trial."""
    preset = load_target("vulkan")
    x = te.placeholder((1, 48, 48, 16), name="x")
    y = te.compute(x.shape, lambda *i: x(*i) * 2.0 + 1.0, name="y")
    task = tvm.IRModule({"main": te.create_prim_func([x, y])})
    with preset.tvm_tuning_target:  # (the pass schedules the module it is given in place)
        scheduled = dlight.ApplyDefaultSchedule(dlight.gpu.Fallback())(
            tvm.IRModule({"main": te.create_prim_func([x, y])}))
    kernel = wgsl_build(preset.target, scheduled, None, None)
    wgsl = kernel["kernels"][0]["wgsl"]
    variants = {"as built": wgsl,
                "multiplies by 2.001": wgsl.replace("2.000000e+00f", "2.001000e+00f"),
                "skips the last workgroup": wgsl.replace("> podArgs.packGridDimX",
                                                         ">= podArgs.packGridDimX")}
    assert len(set(variants.values())) == 3, wgsl
    args_info = ms.arg_info.ArgInfo.from_prim_func(task["main"])
    inputs = []
    for name, source in variants.items():
        kernel["kernels"][0]["wgsl"] = source
        inputs.append(ms.runner.RunnerInput(wgsl_export(kernel), "vulkan", args_info))
    results = [future.result() for future in
               WgpuRunner(ReferenceOutputs([task])).run(inputs)]
    assert results[0].error_msg is None and len(results[0].run_secs) == 5
    for result in results[1:]:
        assert result.run_secs is None and "wrong output" in result.error_msg


def test_bench_labels_a_cpu_vulkan_adapter(plan_folder):
    result = run_module("bench", str(plan_folder), "--runs", "3")
    assert result.returncode == 0, result.stderr
    assert "Vulkan" in result.stdout
