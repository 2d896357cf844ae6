"""Time a built library, optionally side by side with onnxruntime on the same ONNX graph.

    python -m tvm_mobilenet.bench mobilenet_v2.so --threads 1,2 --compare onnxruntime

Runs are interleaved in small rounds (TVM, onnxruntime, TVM, ...) so that drift of the machine
hits both alike; onnxruntime runs in a process of its own, and each round starts only once
the other runtime's threads have stopped spinning, so that the two thread pools never compete
for the cores. Latencies are medians and 90th percentiles of single runs after warm-up.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .build import add_model_args, model_source
from .cli import UserError, run_cli
from .frontend import onnx_model
from .rpc import add_rpc_args
from .runner import Library, RemoteLibrary, open_library
from .verify import seeded_inputs

WARMUP_RUNS = 5
ROUND_RUNS = 10
#: Before a runtime's turn, the others must have used at most IDLE_CPU_S of CPU over the last
#: IDLE_WINDOW_S (one clock tick: /proc counts in 10 ms ticks), waiting at most MAX_SETTLE_S.
IDLE_WINDOW_S = 0.05
IDLE_CPU_S = 0.01
MAX_SETTLE_S = 2.0
COMPARABLE_RUNTIMES = ("onnxruntime",)


@dataclass(frozen=True)
class Timing:
    runtime: str
    threads: int
    seconds: np.ndarray

    @property
    def median_ms(self) -> float:
        return float(np.median(self.seconds) * 1e3)

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.seconds, 90) * 1e3)


#: Times `n` single runs of something; returns seconds per run.
Timer = Callable[[int], np.ndarray]


def time_calls(run: Callable[[], object]) -> Timer:
    """A `Timer` of a Python callable, one perf_counter interval per call."""
    def timer(n: int) -> np.ndarray:
        seconds = np.empty(n)
        for i in range(n):
            start = time.perf_counter()
            run()
            seconds[i] = time.perf_counter() - start
        return seconds

    return timer


def onnxruntime_session(model: bytes | str, threads: int):
    """An onnxruntime CPU session for an ONNX model (bytes or a path) with `threads` intra-op
    threads and no inter-op parallelism: how runtimes are compared at equal thread counts."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


#: (run one inference, read its output): a runtime set up inside a `RuntimeProcess`.
Runner = tuple[Callable[[], object], Callable[[], np.ndarray]]


def onnxruntime_runner(model: bytes | str, x: np.ndarray, threads: int) -> Runner:
    """onnxruntime on an ONNX model (bytes or a path), its input bound once."""
    session = onnxruntime_session(model, threads)
    binding = session.io_binding()
    binding.bind_cpu_input(session.get_inputs()[0].name, x)
    binding.bind_output(session.get_outputs()[0].name)
    return (lambda: session.run_with_iobinding(binding),
            lambda: binding.copy_outputs_to_cpu()[0])


def _serve(connection, setup: Callable[..., Runner], args: tuple, warmup: int) -> None:
    """A `RuntimeProcess`'s body: send one output, then time runs until told to stop."""
    infer, output = setup(*args)
    infer()
    connection.send(output())
    timer = time_calls(infer)
    while (count := connection.recv()) is not None:
        timer(warmup)
        connection.send(timer(count))


class RuntimeProcess:
    """A runtime in a process of its own, set up by `setup(*args)` (a module-level function).

    Runtimes in one process would share its allocator, caches and thread scheduling; here each
    has its own, as in `benchmarks/compare.py`. Their thread pools still spin after a run, so
    turns are separated by `wait_until_idle`.
    """

    def __init__(self, setup: Callable[..., Runner], *args, warmup: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, remote = context.Pipe()
        self.process = context.Process(target=_serve, args=(remote, setup, args, warmup),
                                       daemon=True)
        self.process.start()
        #: The runtime's output for the input it was set up with.
        self.output: np.ndarray = self.connection.recv()

    def time(self, count: int) -> np.ndarray:
        """Seconds of `count` single runs (after the warm-up runs)."""
        self.connection.send(count)
        return self.connection.recv()

    def close(self) -> None:
        self.connection.send(None)
        self.process.join()


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) that process `pid`'s threads have used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pids: list[int]) -> None:
    """Return once processes `pids` use (almost) no CPU, at most after `MAX_SETTLE_S`.

    Thread pools spin after a run before they sleep; TVM's kept a core busy for ~165 ms
    after a 2-thread MobileNetV1 inference here. A runtime timed during that window gets one
    core less: TFLite's V1 at 2 threads ran at 12 ms right after TVM's rounds, 5.8 ms when
    TVM's pool did not spin (`TVM_THREAD_POOL_SPIN_COUNT=0`).
    """
    deadline = time.monotonic() + MAX_SETTLE_S
    while time.monotonic() < deadline:
        before = sum(_cpu_seconds(pid) for pid in pids)
        time.sleep(IDLE_WINDOW_S)
        if sum(_cpu_seconds(pid) for pid in pids) - before <= IDLE_CPU_S:
            return


def interleave(timers: dict[str, Timer], repeat: int, threads: int,
               settle: Callable[[], None] = lambda: None) -> list[Timing]:
    """Warm every timer up, then take `repeat` samples of each in alternating rounds,
    calling `settle` before each round."""
    for timer in timers.values():
        timer(WARMUP_RUNS)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in timers}
    for start in range(0, repeat, ROUND_RUNS):
        for name, timer in timers.items():
            settle()
            samples[name].append(timer(min(ROUND_RUNS, repeat - start)))
    return [Timing(name, threads, np.concatenate(parts)) for name, parts in samples.items()]


def benchmark(libraries: dict[str, Library], repeat: int, threads: int,
              compare_model: bytes | None = None) -> list[Timing]:
    """Samples for each library (and onnxruntime), interleaved round by round.

    All libraries must take the same input; the first one's description is used.
    """
    info = next(iter(libraries.values())).info
    x = seeded_inputs(info.input_shape, 1, seed=0)[0]
    for library in libraries.values():
        library.set_threads(threads)
    timers: dict[str, Timer] = {
        name: (lambda n, lib=library: lib.time(x, n)) for name, library in libraries.items()}
    if compare_model is None:
        return interleave(timers, repeat, threads)
    onnxruntime = RuntimeProcess(onnxruntime_runner, compare_model, x, threads)
    try:
        return interleave({**timers, "onnxruntime": onnxruntime.time}, repeat, threads,
                          lambda: wait_until_idle([os.getpid(), onnxruntime.process.pid]))
    finally:
        onnxruntime.close()


def report(title: str, timings: list[Timing], where: str, subject: str = "tvm") -> str:
    """Table of medians, then `subject`'s ratio to every other runtime at each thread count;
    `where` says where it ran (`Library.where`)."""
    lines = [f"{title}  on {where}",
             f"{'runtime':<14} {'threads':>7} {'median ms':>10} {'p90 ms':>8} {'runs':>5}"]
    for t in timings:
        lines.append(f"{t.runtime:<14} {t.threads:>7} {t.median_ms:>10.3f} {t.p90_ms:>8.3f} "
                     f"{len(t.seconds):>5}")
    by_threads: dict[int, dict[str, Timing]] = {}
    for t in timings:
        by_threads.setdefault(t.threads, {})[t.runtime] = t
    for threads, runs in by_threads.items():
        for other, timing in runs.items():
            if other == subject or subject not in runs:
                continue
            ratio = timing.median_ms / runs[subject].median_ms
            verdict = "faster" if ratio > 1 else "slower"
            lines.append(f"{threads} thread(s): {subject} is {max(ratio, 1 / ratio):.2f}x "
                         f"{verdict} than {other} (ratio of medians)")
    return "\n".join(lines)


def parse_threads(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad thread list {text!r}, e.g. 1,2") from None
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError("thread counts must be at least 1")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.bench",
        description="Time a built library with TVM's time evaluator: median and p90 of single "
                    "runs after warm-up. With --compare onnxruntime, onnxruntime runs the same "
                    "ONNX graph with the same thread count in a process of its own, "
                    "interleaved round by round, "
                    "and the ratio of medians is printed.")
    parser.add_argument("library", type=Path, help="library built by tvm_mobilenet.build")
    parser.add_argument("--repeat", type=int, default=100, help="timed runs (default 100)")
    parser.add_argument("--threads", type=parse_threads, default=None,
                        help="comma-separated thread counts, e.g. 1,2 (default: all cores)")
    parser.add_argument("--compare", nargs="+", metavar=("RUNTIME", "MODEL"),
                        help="time another runtime on the same model: onnxruntime [MODEL] "
                             "(MODEL defaults to the one the library was built from)")
    add_model_args(parser, flag="--model")
    add_rpc_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        if args.repeat < 1:
            raise UserError("--repeat must be at least 1")
        library = open_library(args.library, args)
        compare_model = None
        if args.compare and isinstance(library, RemoteLibrary):
            raise UserError("--compare runs the other runtime on this machine; it cannot be "
                            "compared with a library running on a device")
        if args.compare:
            runtime, *rest = args.compare
            if runtime not in COMPARABLE_RUNTIMES or len(rest) > 1:
                raise UserError(f"--compare takes {' or '.join(COMPARABLE_RUNTIMES)} and "
                                "optionally a model")
            args.model = rest[0] if rest else args.model
            compare_model = onnx_model(model_source(args, library.info)).SerializeToString()
        # The target's cores (a GPU's library has none: one row).
        default_threads = int(library.info.target_dict.get("num-cores", 1))
        timings = [timing for threads in args.threads or [default_threads]
                   for timing in benchmark({"tvm": library}, args.repeat, threads,
                                           compare_model)]
        print(report(str(args.library), timings, library.where))

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
