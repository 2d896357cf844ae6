"""Time a built library, optionally side by side with onnxruntime on the same ONNX graph.

    python -m tvm_mobilenet.bench mobilenet_v2.so --threads 1,2 --compare onnxruntime

Runs are interleaved in small rounds (TVM, onnxruntime, TVM, ...) so that drift of the machine
hits both alike; onnxruntime runs in a process of its own, and each round starts only once
the other runtime's threads have stopped spinning, so that the two thread pools never compete
for the cores. Latencies are medians and 90th percentiles of single runs after warm-up.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tvm_mobilenet.evaluate.verify import seeded_inputs
from tvm_mobilenet.runtime.runner import Library

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
