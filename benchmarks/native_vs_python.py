"""What the C API costs: the native runner and Python's timing of the same library, in turns.

    python benchmarks/native_vs_python.py out/v2.so --rounds 10 --runs 50

Writes a native bundle of the library, then alternates, `--rounds` times per thread count:
`bin/tvm-mobilenet-run` (a fresh process: `--warmup` runs, then `--runs` timed calls of
`tvm_mobilenet_run`, input copy included) and the library loaded once in this process and
timed as `tvm-mobilenet bench` times it (TVM's time evaluator on the Relax VM). Each turn
starts when this process is idle, and the sides take turns going first. Prints Markdown: the
median of each side's per-round medians.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tvm_mobilenet.deploy.bundle import write_bundle
from tvm_mobilenet.evaluate.bench import WARMUP_RUNS, wait_until_idle
from tvm_mobilenet.evaluate.verify import seeded_inputs
from tvm_mobilenet.runtime.runner import load_local


def native_median_ms(bundle: Path, runs: int, threads: int) -> float:
    result = subprocess.run([str(bundle / "bin" / "tvm-mobilenet-run"), "--runs", str(runs),
                             "--warmup", str(WARMUP_RUNS), "--threads", str(threads)],
                            capture_output=True, text=True, check=True)
    return float(re.search(r"median ([\d.]+) ms", result.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", type=Path, help="an x86 library built by tvm-mobilenet build")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per round and side")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    library = load_local(args.library)
    x = seeded_inputs(library.info.input_shape, 1, seed=0)[0]
    print(f"{args.library}: {args.rounds} rounds of {args.runs} runs per side, on "
          f"{library.where}\n")
    print("| threads | native runner (C API) ms | Python (bench) ms | native / Python |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        bundle = write_bundle(args.library, Path(scratch) / "bundle", native_code=True)
        for threads in args.threads:
            library.set_threads(threads)
            library.time(x, WARMUP_RUNS)
            native, python = [], []
            turns = (lambda: native.append(native_median_ms(bundle, args.runs, threads)),
                     lambda: python.append(float(np.median(library.time(x, args.runs))) * 1e3))
            for round_ in range(args.rounds):
                for turn in turns[::-1] if round_ % 2 else turns:  # each side goes first in turn
                    wait_until_idle([os.getpid()])
                    turn()
            ratio = np.median(native) / np.median(python)
            print(f"| {threads} | {np.median(native):.3f} | {np.median(python):.3f} | "
                  f"{ratio:.3f} |")


if __name__ == "__main__":
    main()
