"""The per-layer profile adds up, benchmarks/compare.py checks and times every runtime, and a
runtime's turn waits until the others are idle."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT, run_module

from tvm_mobilenet.evaluate.profile import task_of
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.log import log_dir
from tvm_mobilenet.tuning.lookup import log_target_name
from tvm_mobilenet.tuning.tasks import Task, extract_tasks
from tvm_mobilenet.tuning.tuner import tune_tasks


def _table_rows(text: str, header: str) -> dict[str, list[str]]:
    """First Markdown table after the line starting with `header`: {first cell: cells}."""
    lines = text[text.index(header):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| kind"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


@pytest.mark.alone  # another test's load would stretch the whole inference, not each call
def test_profile_splits_an_inference_by_kind(built_library):
    path, _ = built_library(ModelSource("mobilenet_v2", 0.5, 128))
    result = run_module("profile", str(path), "--threads", "1", "--runs", "5")
    assert result.returncode == 0, result.stderr
    header = re.search(r"## 1 thread\(s\): ([\d.]+) ms per inference.*FMA peak (\d+) GFLOP/s",
                       result.stdout)
    assert header, result.stdout
    inference_ms, peak = float(header.group(1)), float(header.group(2))
    assert peak > 1
    rows = _table_rows(result.stdout, "## 1 thread")
    # V2: ReLU6 expansions and linear projections are told apart.
    assert {"stem", "depthwise", "expand", "project", "classifier"} <= rows.keys(), rows
    # The timed calls account for the inference: what is left (dispatch, noise) is small.
    in_calls_ms = sum(float(cells[2]) for kind, cells in rows.items()
                      if not kind.startswith("rest"))
    assert abs(inference_ms - in_calls_ms) < 0.3 * inference_ms, (in_calls_ms, inference_ms)
    assert float(rows["project"][4]) > 0 and "of FMA peak" in rows["project"][6]
    assert "of copy bandwidth" in rows["depthwise"][6]


def test_profile_reports_a_missing_library(tmp_path):
    result = run_module("profile", str(tmp_path / "missing.so"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_compare_script_checks_and_times_every_runtime(tmp_path):
    source = ModelSource("mobilenet_v1", 0.25, 96)
    preset = load_target("x86")
    target = preset.tvm_target
    pointwise = [t for t in extract_tasks(import_model(source).mod, target)
                 if t.kind == "pointwise"]
    log = log_dir(log_target_name(preset), source.label, tmp_path / "logs")
    tune_tasks(pointwise[:1], target, log, trials=2)
    out = tmp_path / "compare"
    result = subprocess.run(
        [sys.executable, "benchmarks/compare.py", "--models", "mobilenet_v1", "--alpha", "0.25",
         "--resolution", "96", "--threads", "1", "--runs", "10", "--processes", "2",
         "--out", str(out), "--log-dir", str(tmp_path / "logs"), "--from-file"],
        capture_output=True, text=True, timeout=900, cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})  # also without `pip install -e`
    assert result.returncode == 0, result.stdout + result.stderr
    # TVM was built from the ONNX file under a name no log has: its tuned kernel was found
    # by workload in the log of the model it was tuned for.
    assert f"1 from {log}\n" in result.stdout, result.stdout
    report = json.loads((out / "compare.json").read_text())
    runtimes = {row["runtime"]: row for row in report["rows"]}
    assert set(runtimes) == {"tvm (tuned)", "tvm (defaults)", "tvm (untuned)", "onnxruntime",
                             "tflite (xnnpack)", "ncnn"}, result.stdout
    for row in runtimes.values():
        assert row["runs"] == 10 and row["rel_error"] <= DEFAULT_RTOL and row["median_ms"] > 0
        assert 0 < row["fastest_round_ms"] <= row["median_ms"]  # the lowest round median <= overall
        assert len(row["round_medians_ms"]) == 2 and min(row["round_medians_ms"]) == row[
            "fastest_round_ms"]
        assert 0 <= row["rounds_tvm_faster"] <= 2
        # Each of the two rounds ran in a fresh process (of its own pid).
        assert len(set(row["round_pids"])) == 2, row["round_pids"]
    # Never faster than itself, always faster than plain TVM: the counts go both ways.
    assert runtimes["tvm (tuned)"]["rounds_tvm_faster"] == 0
    assert runtimes["tvm (untuned)"]["rounds_tvm_faster"] == 2
    assert report["machine"]["versions"]["apache-tvm"] == "0.27.0.post1"
    assert (out / "compare.png").stat().st_size > 0
    assert "| mobilenet_v1-0.25-96 | 1 | onnxruntime |" in (out / "compare.md").read_text()
    # The tuned and default kernels read packed weights; the profile still finds their tasks.
    profiled = run_module("profile", str(out / "mobilenet_v1-0.25-96" / "tuned.so"),
                          "--threads", "1", "--runs", "3", "--top", "40")
    assert profiled.returncode == 0, profiled.stderr
    packed = [line for line in profiled.stdout.splitlines() if "_prepacked" in line]
    kinds = {line.split("|")[2].strip() for line in packed}
    assert packed and kinds == {"stem", "depthwise", "pointwise", "classifier"}, profiled.stdout


def test_profile_maps_kernels_to_tasks():
    tasks = [Task(name, "pointwise", 1, 1.0, "", None)
             for name in ("fused_conv2d1_add1", "fused_conv2d14_add71")]
    assert task_of("fused_conv2d14_add71_prepacked", tasks).name == "fused_conv2d14_add71"
    assert task_of("fused_conv2d1_add1", tasks).name == "fused_conv2d1_add1"
    assert task_of("fused_conv2d1_add", tasks).name == "fused_conv2d1_add1"  # untuned build
    assert task_of("fused_conv2d1_add2", tasks) is None
    assert task_of("vm.builtin.alloc_tensor", tasks) is None


def test_a_turn_waits_until_the_other_runtime_stops_spinning():
    """A process that spins for 0.4 s (like a thread pool after its run) holds the next turn
    back until it stops; an idle one does not."""
    import time

    from tvm_mobilenet.evaluate.bench import wait_until_idle

    spinner = subprocess.Popen([sys.executable, "-c",
                                "import time\nend = time.time() + 0.4\n"
                                "while time.time() < end: pass\ntime.sleep(30)"])
    try:
        time.sleep(0.05)  # the interpreter is up and spinning
        start = time.monotonic()
        wait_until_idle([spinner.pid])
        waited = time.monotonic() - start
        start = time.monotonic()
        wait_until_idle([spinner.pid])
        idle_wait = time.monotonic() - start
    finally:
        spinner.kill()
    assert 0.25 <= waited < 1.5, waited
    assert idle_wait < 0.2, idle_wait
