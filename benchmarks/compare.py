"""Tuned TVM against TVM on default schedules, untuned TVM, onnxruntime, TFLite (LiteRT +
XNNPACK) and ncnn, side by side.

    python benchmarks/compare.py --models mobilenet_v1,mobilenet_v2 --threads 1,2 --runs 60

For each model (α=1, 224 unless --alpha/--resolution say otherwise; seed 0) one file per
runtime is made from the same weights: the ONNX graph (onnxruntime), a TFLite flatbuffer
written by `models/tflite_export.py` (LiteRT), an ncnn model converted from the ONNX file by
`pnnx`, and the TVM libraries: tuned with the schedules a build picks (the tuning logs that
fit, then defaults), with the target's default schedules alone, and untuned. Every runtime
runs in its own process with the same thread count, so no runtime's spinning thread pool
slows another; each process first checks
its output against the NumPy float64 reference (relative error <= 1e-4). Then the runtimes
are timed in rounds, A B C, B C A, C A B, ...: each turn is 2 warm-up runs and 5 timed ones,
and starts only once every other runtime's threads have stopped spinning (TVM's pool keeps a
core busy for ~165 ms after a run; see `bench.wait_until_idle`). Reported per runtime: the
median and 90th percentile of all timed runs, the fastest round (the lowest of its
per-round medians), and in how many rounds tuned TVM's median was the lower of the two. The
last two are there because this 2-vCPU VM has spells, tens of seconds long, in which two
threads run at about one core's speed, for every runtime; a spell that covers more of one
runtime's turns than another's skews the medians, while every runtime has calm rounds, and
the turns of one round lie seconds apart, so a round mostly shares one machine state.
The rounds are shared out among --processes fresh processes per runtime, one after another,
because a process's speed, lucky or not, lasts as long as it does (`PROCESSES`).
--skip-untuned leaves untuned TVM out, to afford more rounds. Writes a Markdown table, JSON
and a PNG chart to --out (default out/compare). LiteRT (`pip install ai-edge-litert`)
and ncnn (`pip install ncnn` and `pip install --no-deps pnnx`: pnnx declares torch, which
its converter does not need) are skipped, and say so, when not installed. Not a test:
it takes minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from tvm_mobilenet.cli.common import (
    add_log_dir_arg,
    default_threads,
    existing_folder,
    thread_counts,
)
from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.evaluate.bench import (
    Runner,
    RuntimeProcess,
    onnxruntime_runner,
    wait_until_idle,
)
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, compare, seeded_inputs
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.models.architectures import architecture
from tvm_mobilenet.models.onnx_export import to_onnx
from tvm_mobilenet.models.tflite_export import to_tflite
from tvm_mobilenet.models.weights import random_weights
from tvm_mobilenet.reference import interpreter as reference
from tvm_mobilenet.runtime.runner import load_local, machine_line
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.lookup import compatible_logs, schedules_for

TUNED = "tvm (tuned)"
#: The same model built with the target's default schedules only (`tuning/defaults.py`).
DEFAULTS = "tvm (defaults)"
ROUND_RUNS = 5
ROUND_WARMUP = 2
#: Fresh processes per runtime that share its rounds. One process is not enough: three
#: processes of the same TVM library, interleaved, differed by up to 5.7% in their medians
#: round after round (XNNPACK's by up to 1.6%), enough to decide a close cell.
PROCESSES = 4
#: The name `--from-file` saves the ONNX file under: one no tuning log is named after.
USER_FILE = "user_model.onnx"


def tvm_runner(path: str, x: np.ndarray, threads: int) -> Runner:
    library = load_local(Path(path))
    library.set_threads(threads)
    library.run(x)  # sets the input
    return (lambda: library.vm.invoke_stateful("main"),
            lambda: library.vm.get_outputs("main").numpy())


def litert_runner(path: str, x: np.ndarray, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)  # XNNPACK by default
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    output = interpreter.get_output_details()[0]["index"]
    return interpreter.invoke, lambda: interpreter.get_tensor(output)


def ncnn_runner(path: str, x: np.ndarray, threads: int) -> Runner:
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = threads
    # fp32 throughout, like the other runtimes (ncnn may store or compute in fp16 / bf16).
    for option in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)
    net.load_param(f"{path}.param")
    net.load_model(f"{path}.bin")
    image = ncnn.Mat(np.ascontiguousarray(x[0]))
    outputs: list[np.ndarray] = []

    def run() -> None:
        extractor = net.create_extractor()  # ncnn's per-inference object
        extractor.input("in0", image)
        outputs[:] = [np.array(extractor.extract("out0")[1])]

    return run, lambda: outputs[0].reshape(1, -1)


RUNNERS: dict[str, Callable[[str, np.ndarray, int], Runner]] = {
    "tvm": tvm_runner, "onnxruntime": onnxruntime_runner, "tflite (xnnpack)": litert_runner,
    "ncnn": ncnn_runner}


@dataclass(frozen=True)
class TvmBuilds:
    """The TVM libraries of a comparison: tuned with the logs under `log_root`, and those the
    other fields ask for."""

    log_root: Path | None = None
    untuned: bool = True
    defaults: bool = True
    target: str = "x86"
    #: Build from the ONNX file saved as `USER_FILE` (no log has its name), not by model name.
    from_file: bool = False
    #: A second root of tuning logs, built as a row of its own (a full tune beside a short one).
    other_logs: Path | None = None


def model_files(source: ModelSource, out: Path, tvm_builds: TvmBuilds
                ) -> tuple[dict[str, tuple[str, Path]], np.ndarray, np.ndarray]:
    """{runtime: (runner kind, file)} for one model, its input and its reference logits."""
    arch = architecture(source.spec, source.alpha, source.resolution)
    weights = random_weights(arch, 0)
    graph = to_onnx(arch, weights)
    x = seeded_inputs(arch.input_shape, 1, seed=0)[0]
    expected = reference.run(graph, {"input": x})[0]
    folder = out / arch.label
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    onnx_path = folder / "model.onnx"
    onnx_path.write_bytes(graph.SerializeToString())
    if tvm_builds.from_file:
        (folder / USER_FILE).write_bytes(graph.SerializeToString())
        source = ModelSource(str(folder / USER_FILE))
    preset = load_target(tvm_builds.target)
    imported = import_model(source)

    def tuned(root: Path | None):
        return schedules_for(imported.mod, preset,
                             compatible_logs(preset, source.tuning_label, root))

    builds = [(TUNED, "tuned", tuned(tvm_builds.log_root))]
    if tvm_builds.other_logs is not None:
        builds.append((f"tvm ({tvm_builds.other_logs.name})", "other-logs",
                       tuned(tvm_builds.other_logs)))
    if tvm_builds.defaults:
        builds.append((DEFAULTS, "defaults", schedules_for(imported.mod, preset, [])))
    if tvm_builds.untuned:
        builds.append(("tvm (untuned)", "untuned", None))
    for runtime, name, schedules in builds:
        library = folder / f"{name}.so"
        build_library(imported, preset, library, source, schedules)
        if schedules:
            print(f"{runtime}: {schedules.summary()}", flush=True)
        files[runtime] = ("tvm", library)
    files["onnxruntime"] = ("onnxruntime", onnx_path)
    if _installed("ai_edge_litert", "pip install ai-edge-litert"):
        tflite_path = folder / "model.tflite"
        tflite_path.write_bytes(to_tflite(arch, weights))
        files["tflite (xnnpack)"] = ("tflite (xnnpack)", tflite_path)
    converter = pnnx_binary()
    if _installed("ncnn", "pip install ncnn") and converter is not None:
        files["ncnn"] = ("ncnn", convert_to_ncnn(converter, onnx_path, arch.input_shape))
    elif converter is None:
        print("ncnn skipped: the ONNX -> ncnn converter is missing (pip install --no-deps pnnx)")
    return files, x, expected


def _installed(module: str, how: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        print(f"{module} is not installed, skipped ({how})")
        return False


def pnnx_binary() -> Path | None:
    """The pnnx executable inside the `pnnx` package, found without importing the package
    (its Python side imports torch; the converter itself needs nothing)."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(spec.submodule_search_locations[0]) / "pnnx"
    return binary if binary.is_file() else None


def convert_to_ncnn(pnnx: Path, onnx_path: Path, input_shape: tuple[int, ...]) -> Path:
    """ONNX -> ncnn with pnnx; returns the stem of the .param/.bin pair."""
    stem = onnx_path.with_name("model.ncnn")
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch, "model.onnx")
        shutil.copy(onnx_path, copy)
        shape = ",".join(str(d) for d in input_shape)
        # fp16=0: pnnx stores weights as fp16 by default (relative error ~2e-3).
        subprocess.run([str(pnnx), str(copy), f"inputshape=[{shape}]", "fp16=0"], cwd=scratch,
                       check=True, capture_output=True)
        for suffix in (".param", ".bin"):
            shutil.copy(Path(scratch, f"model.ncnn{suffix}"), f"{stem}{suffix}")
    return stem


def compare_model(source: ModelSource, threads: list[int], repeat: int, out: Path,
                  tvm_builds: TvmBuilds, processes: int = PROCESSES) -> list[dict]:
    files, x, expected = model_files(source, out, tvm_builds)
    label = source.label
    rows = []
    rounds = _rounds(repeat)
    for count in threads:
        names = list(files)
        samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
        pids: dict[str, list[int]] = {name: [] for name in names}
        errors: dict[str, float] = {name: 0.0 for name in names}
        for block in np.array_split(np.arange(len(rounds)), min(processes, len(rounds))):
            workers, checked = _checked_workers(files, x, count, expected, label)
            errors = {name: max(errors[name], checked[name]) for name in names}
            for round_index in block:
                # The order rotates every round, so no runtime always follows the same one.
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    wait_until_idle([worker.process.pid for worker in workers.values()])
                    samples[name].append(workers[name].time(rounds[round_index]))
                    pids[name].append(workers[name].process.pid)
            for worker in workers.values():
                worker.close()
        round_medians = {name: [float(np.median(turn)) for turn in turns]
                         for name, turns in samples.items()}
        for name in names:
            seconds = np.concatenate(samples[name])
            rows.append({"model": label, "runtime": name, "threads": count,
                         "median_ms": round(float(np.median(seconds)) * 1e3, 3),
                         "p90_ms": round(float(np.percentile(seconds, 90)) * 1e3, 3),
                         "fastest_round_ms": round(min(round_medians[name]) * 1e3, 3),
                         "round_medians_ms": [round(m * 1e3, 3) for m in round_medians[name]],
                         "round_pids": pids[name],
                         "rounds_tvm_faster": sum(
                             mine > tvm for mine, tvm in zip(round_medians[name],
                                                             round_medians[TUNED])),
                         "runs": len(seconds), "rel_error": float(f"{errors[name]:.2e}")})
        print(markdown([r for r in rows if r["threads"] == count]), flush=True)
    return rows


def _rounds(repeat: int) -> list[int]:
    """Timed runs per round: `ROUND_RUNS` each, the last round takes what is left."""
    return [min(ROUND_RUNS, repeat - start) for start in range(0, repeat, ROUND_RUNS)]


def _checked_workers(files: dict[str, tuple[str, Path]], x: np.ndarray, threads: int,
                     expected: np.ndarray, label: str
                     ) -> tuple[dict[str, RuntimeProcess], dict[str, float]]:
    """A fresh process per runtime, and the relative error of each one's output against the
    reference; exits if one is above `DEFAULT_RTOL`."""
    workers = {runtime: RuntimeProcess(RUNNERS[kind], str(path), x, threads,
                                       warmup=ROUND_WARMUP)
               for runtime, (kind, path) in files.items()}
    errors = {runtime: compare(w.output, expected).rel_error for runtime, w in workers.items()}
    for runtime, error in errors.items():
        if error > DEFAULT_RTOL:
            for worker in workers.values():
                worker.close()
            sys.exit(f"{runtime} on {label}: relative error {error:.2e} exceeds "
                     f"{DEFAULT_RTOL}; not timing a wrong result")
    return workers, errors


def markdown(rows: list[dict]) -> str:
    lines = ["| model | threads | runtime | median ms | p90 ms | vs tuned TVM | fastest round ms "
             "| vs tuned TVM | rounds TVM won | rel. error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tvm = next(o for o in rows if o["model"] == r["model"]
                   and o["threads"] == r["threads"] and o["runtime"] == TUNED)
        won = "" if r is tvm else f"{r['rounds_tvm_faster']} of {len(r['round_medians_ms'])}"
        lines.append(f"| {r['model']} | {r['threads']} | {r['runtime']} | {r['median_ms']:.2f} "
                     f"| {r['p90_ms']:.2f} | {_versus(r, tvm, 'median_ms')} "
                     f"| {r['fastest_round_ms']:.2f} | {_versus(r, tvm, 'fastest_round_ms')} "
                     f"| {won} | {r['rel_error']:.1e} |")
    return "\n".join(lines)


def _versus(row: dict, tvm: dict, key: str) -> str:
    if row is tvm:
        return ""
    ratio = row[key] / tvm[key]
    return f"{ratio:.2f}x slower than TVM" if ratio > 1 else f"{1 / ratio:.2f}x faster than TVM"


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["runtime"] != "tvm (untuned)"]  # 30-100x off the scale
    groups = sorted({(r["model"], r["threads"]) for r in rows})
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(runtimes)
    for offset, runtime in enumerate(runtimes):
        values = [next((r["median_ms"] for r in rows if (r["model"], r["threads"]) == group
                        and r["runtime"] == runtime), 0.0) for group in groups]
        axes.bar([i + offset * width for i in range(len(groups))], values, width,
                 label=runtime)
    axes.set_xticks([i + width * (len(runtimes) - 1) / 2 for i in range(len(groups))],
                    [f"{model}\n{threads} thread(s)" for model, threads in groups], fontsize=8)
    axes.set_ylabel("median latency, ms (lower is better)")
    axes.set_title("untuned TVM left out: see the table", fontsize=8)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def machine() -> dict:
    """CPU model and vector flags, and the versions of everything timed."""
    cpu = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        cpu.setdefault(key.strip(), value.strip())
    flags = [f for f in cpu.get("flags", "").split() if f.startswith(("avx", "fma", "neon"))]
    versions = {}
    for package in ("apache-tvm", "onnxruntime", "ai-edge-litert", "ncnn", "pnnx", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"summary": machine_line(), "cpu": cpu.get("model name"), "vector_flags": flags,
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenet_v1,mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=1.0, help="width multiplier (1.0)")
    parser.add_argument("--resolution", type=int, default=224, help="input size (224)")
    parser.add_argument("--threads", type=thread_counts, default=default_threads(),
                        help="thread counts (default: 1 and all cores)")
    parser.add_argument("--runs", type=int, default=60, help="timed runs per runtime (60)")
    parser.add_argument("--processes", type=_positive, default=PROCESSES,
                        help=f"fresh processes per runtime, taking its rounds in turn "
                             f"({PROCESSES}): one process's speed persists for its life")
    parser.add_argument("--skip-untuned", action="store_true",
                        help="leave untuned TVM out (it takes ~1 s a run for V1), e.g. to afford "
                             "more rounds with --runs")
    parser.add_argument("--target", default="x86",
                        help="a host preset for the TVM libraries, e.g. x86-avx2 (default: x86)")
    parser.add_argument("--skip-defaults", action="store_true",
                        help="leave out TVM on the target's default schedules alone")
    parser.add_argument("--from-file", action="store_true",
                        help=f"build TVM from the ONNX file saved as {USER_FILE}, as from a "
                             "user's own export: no log has its name, so its kernels are found "
                             "by workload alone")
    parser.add_argument("--other-log-dir", type=existing_folder, metavar="DIR",
                        help="also build TVM with the tuning logs under DIR, as a row of its own "
                             "(e.g. a full tune beside a short one)")
    parser.add_argument("--out", type=Path, default=Path("out/compare"))
    add_log_dir_arg(parser)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(info["summary"], "|", info["cpu"], "|", " ".join(info["vector_flags"]), flush=True)
    tvm_builds = TvmBuilds(args.log_dir, not args.skip_untuned, not args.skip_defaults,
                           args.target, args.from_file, args.other_log_dir)
    rows = [r for name in args.models.split(",")
            for r in compare_model(ModelSource(name, args.alpha, args.resolution), args.threads,
                                   args.runs, args.out, tvm_builds, args.processes)]
    table = markdown(rows)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    (args.out / "compare.md").write_text(f"{info['summary']}; {info['cpu']}; {versions}; "
                                         f"{args.processes} processes per runtime\n\n"
                                         f"{table}\n")
    (args.out / "compare.json").write_text(json.dumps(
        {"machine": info, "processes_per_runtime": args.processes, "rows": rows},
        indent=2) + "\n")
    chart(rows, args.out / "compare.png")
    print(table)
    print(f"wrote {args.out}/compare.md, compare.json, compare.png")


if __name__ == "__main__":
    main()
