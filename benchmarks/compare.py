"""Tuned TVM vs onnxruntime vs TFLite (LiteRT + XNNPACK), side by side, on this machine.

    python benchmarks/compare.py --models mobilenet_v1,mobilenet_v2 --threads 1,2 --repeat 60

For each model (α=1, 224, seed 0) every runtime's output is first checked against the NumPy
float64 reference (relative error <= 1e-4); then the runtimes are timed interleaved in rounds,
in one process, with the same thread count. Writes a Markdown table, JSON and a PNG chart to
--out (default out/compare). LiteRT (`pip install ai-edge-litert`) runs the TFLite file that
`tvm_mobilenet.tflite_export` writes from the same weights; it is skipped, and says so, when not
installed. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import tvm

from tvm_mobilenet import reference
from tvm_mobilenet.architectures import architecture
from tvm_mobilenet.bench import (Timer, Timing, interleave, onnxruntime_timer,
                                 parse_threads, time_calls)
from tvm_mobilenet.build import build_library, find_tuning_log
from tvm_mobilenet.frontend import ModelSource, import_model
from tvm_mobilenet.models import to_onnx
from tvm_mobilenet.runner import load_local, machine_line, set_threads
from tvm_mobilenet.targets import load_target
from tvm_mobilenet.tflite_export import to_tflite
from tvm_mobilenet.verify import DEFAULT_RTOL, compare, seeded_inputs
from tvm_mobilenet.weights import random_weights


def litert_runner(model: bytes, x_nchw: np.ndarray, threads: int):
    """(run() -> logits) for LiteRT with XNNPACK, or None if ai-edge-litert is missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    interpreter = Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))
    output = interpreter.get_output_details()[0]["index"]

    def run() -> np.ndarray:
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def compare_model(name: str, threads: list[int], repeat: int, out: Path) -> list[dict]:
    arch = architecture(name)
    weights = random_weights(arch, 0)
    onnx_graph = to_onnx(arch, weights)
    x = seeded_inputs(arch.input_shape, 1, seed=0)[0]
    expected = reference.run(onnx_graph, {"input": x})[0]
    preset, source = load_target("x86"), ModelSource(name)
    library_path = out / f"{arch.label}.so"
    build_library(import_model(source), preset, library_path, source,
                  find_tuning_log(preset, source.tuning_label))
    library = load_local(library_path)
    rows = []
    for count in threads:
        set_threads(count)
        session = onnxruntime.InferenceSession(onnx_graph.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        outputs = {"tvm (tuned)": library.run(x),
                   "onnxruntime": session.run(None, {"input": x})[0]}
        timers: dict[str, Timer] = {
            "tvm (tuned)": lambda n: library.time(x, n),
            "onnxruntime": onnxruntime_timer(onnx_graph.SerializeToString(), "input", x, count)}
        litert = litert_runner(to_tflite(arch, weights), x, count)
        if litert is None:
            print("LiteRT skipped: pip install ai-edge-litert")
        else:
            outputs["tflite (xnnpack)"] = litert()
            timers["tflite (xnnpack)"] = time_calls(litert)
        for runtime, logits in outputs.items():
            error = compare(logits, expected).rel_error
            if error > DEFAULT_RTOL:
                sys.exit(f"{runtime} on {arch.label}: relative error {error:.2e} exceeds "
                         f"{DEFAULT_RTOL}; not timing a wrong result")
        for timing in interleave(timers, repeat, count):
            rows.append(row(arch.label, timing, compare(outputs[timing.runtime],
                                                        expected).rel_error))
    return rows


def row(model: str, timing: Timing, rel_error: float) -> dict:
    return {"model": model, "runtime": timing.runtime, "threads": timing.threads,
            "median_ms": round(timing.median_ms, 3), "p90_ms": round(timing.p90_ms, 3),
            "runs": len(timing.seconds), "rel_error": float(f"{rel_error:.2e}")}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | threads | runtime | median ms | p90 ms | vs tuned TVM | rel. error |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        tvm_ms = next(o["median_ms"] for o in rows if o["model"] == r["model"]
                      and o["threads"] == r["threads"] and o["runtime"] == "tvm (tuned)")
        lines.append(f"| {r['model']} | {r['threads']} | {r['runtime']} | {r['median_ms']:.2f} "
                     f"| {r['p90_ms']:.2f} | {r['median_ms'] / tvm_ms:.2f}x | "
                     f"{r['rel_error']:.1e} |")
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["model"], r["threads"]) for r in rows})
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    figure, axes = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(runtimes)
    for offset, runtime in enumerate(runtimes):
        values = [next((r["median_ms"] for r in rows if (r["model"], r["threads"]) == group
                        and r["runtime"] == runtime), 0.0) for group in groups]
        axes.bar([i + offset * width for i in range(len(groups))], values, width,
                 label=runtime)
    axes.set_xticks([i + width * (len(runtimes) - 1) / 2 for i in range(len(groups))],
                    [f"{model}\n{threads} thread(s)" for model, threads in groups], fontsize=8)
    axes.set_ylabel("median latency, ms (lower is better)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenet_v1,mobilenet_v2")
    parser.add_argument("--threads", type=parse_threads, default=[1, 2])
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("out/compare"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [r for name in args.models.split(",")
            for r in compare_model(name, args.threads, args.repeat, args.out)]
    versions = {"machine": machine_line(), "platform": platform.platform(),
                "tvm": tvm.__version__, "onnxruntime": onnxruntime.__version__}
    table = markdown(rows)
    (args.out / "compare.md").write_text(f"{versions['machine']}\n\n{table}\n")
    (args.out / "compare.json").write_text(json.dumps({"versions": versions, "rows": rows},
                                                      indent=2) + "\n")
    chart(rows, args.out / "compare.png")
    print(versions["machine"])
    print(table)
    print(f"wrote {args.out}/compare.md, compare.json, compare.png")


if __name__ == "__main__":
    main()
