"""Per-layer profile of a built library: where the time of one inference goes, by task kind.

    python -m tvm_mobilenet.profile out/x86-mobilenet_v2-1.0-224.so --threads 1,2

TVM 0.27's Relax VM has no profiler in Python, so every kernel call of the real inference is
timed through the VM's instrument hook (the hook runs between kernels, outside the timed
interval). Each kernel is matched to its tuning task for FLOPs and bytes, and the kinds are
set against two ceilings measured on this machine in the same run: the FMA peak (a register-
only multiply-add loop, compiled with -O3 -march=native, on every thread) and the copy
bandwidth (NumPy copies of 8 MiB per thread, about what one layer's activations and weights
span). Pointwise convs are compute-bound, so they are read against the peak; depthwise and
elementwise kernels are memory-bound, so against the bandwidth.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.verify import seeded_inputs
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.runtime.runner import Library, load_local
from tvm_mobilenet.tuning.tasks import Task, extract_tasks

#: Report order; "expand"/"project" split V2's pointwise convs (project ones are linear).
PROFILE_KINDS = ("stem", "depthwise", "pointwise", "expand", "project", "classifier", "other",
                 "runtime")
COMPUTE_BOUND = ("stem", "pointwise", "expand", "project")

_FMA_PROBE_C = """
typedef float v16 __attribute__((vector_size(64)));
float fma_probe(long iterations, float a, float b) {
    v16 acc[12];
    for (int j = 0; j < 12; ++j) acc[j] = (v16){0} + (float)j;
    for (long i = 0; i < iterations; ++i)
        for (int j = 0; j < 12; ++j) acc[j] = acc[j] * a + b;
    float sum = 0;
    for (int j = 0; j < 12; ++j) for (int k = 0; k < 16; ++k) sum += acc[j][k];
    return sum;
}
"""
#: FLOPs per probe iteration: 12 independent 16-lane fused multiply-adds.
_PROBE_FLOPS = 12 * 16 * 2


def _parallel_seconds(work, threads: int) -> float:
    """Wall time of `work()` running on `threads` Python threads at once (both release the
    GIL: a ctypes call and NumPy copies)."""
    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def fma_peak_gflops(threads: int) -> float:
    """Measured multiply-add peak of `threads` cores (compiled with the host's cc,
    -march=native), best of 5."""
    with tempfile.TemporaryDirectory() as scratch:
        source, library = Path(scratch, "probe.c"), Path(scratch, "probe.so")
        source.write_text(_FMA_PROBE_C)
        try:
            subprocess.run(["cc", "-O3", "-march=native", "-ffp-contract=fast", "-shared",
                            "-fPIC", str(source), "-o", str(library)],
                           check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise UserError(f"cannot compile the FMA peak probe with cc: {error}") from error
        probe = ctypes.CDLL(str(library)).fma_probe
    probe.argtypes, probe.restype = [ctypes.c_long, ctypes.c_float, ctypes.c_float], ctypes.c_float
    iterations = 20_000_000
    best = min(_parallel_seconds(lambda: probe(iterations, 0.999, 0.001), threads)
               for _ in range(5))
    return threads * iterations * _PROBE_FLOPS / best / 1e9


def copy_bandwidth_gbs(threads: int, mebibytes: int = 8) -> float:
    """Bytes read + written per second by `threads` NumPy copies of `mebibytes` each."""
    buffers = [(np.ones(mebibytes << 18, np.float32), np.empty(mebibytes << 18, np.float32))
               for _ in range(threads)]
    passes = 20

    def work() -> None:
        source, destination = buffers.pop()
        for _ in range(passes):
            np.copyto(destination, source)

    seconds = _parallel_seconds(work, threads)
    return threads * passes * 2 * (mebibytes << 20) / seconds / 1e9


def _is_linear_pointwise(task: Task) -> bool:
    """A pointwise conv without ReLU6 (whose clamp fuses in as maximum/minimum)."""
    return task.kind == "pointwise" and "maximum" not in task.name


def profile_kind(task: Task | None, linear_pointwise: bool) -> str:
    """Kind for the profile: the task's, with V2's pointwise convs split into expand (ReLU6)
    and project (linear) when the model has linear ones; VM builtins are "runtime"."""
    if task is None:
        return "runtime"
    if task.kind == "pointwise" and linear_pointwise:
        return "project" if _is_linear_pointwise(task) else "expand"
    return task.kind


def task_of(symbol: str, tasks: list[Task]) -> Task | None:
    """The task a kernel of the built library came from. Task extraction marks weights as
    layout-free, which renames each kernel with a ``1`` (``..._minimum7`` -> ``..._minimum71``);
    a tuned build names the kernels that read packed weights ``<task>_prepacked``, and an
    untuned build keeps the original names."""
    base = symbol.removesuffix("_prepacked")
    return next((t for t in tasks if t.name in (base, base + "1")), None)


@dataclass
class KernelTime:
    name: str
    kind: str
    calls: int
    #: Median over inferences of this kernel's total time in one inference.
    seconds: float
    flops: float = 0.0
    bytes: float = 0.0


def _tensor_bytes(task: Task) -> float:
    return float(sum(np.prod([int(d) for d in p.shape]) * np.dtype(p.dtype).itemsize
                     for p in task.mod["main"].params))


def kernel_times(library: Library, tasks: list[Task], x: np.ndarray,
                 runs: int) -> list[KernelTime]:
    """Time every call of every kernel over `runs` inferences of `x` (after warm-up), in the
    order the model runs them."""
    per_run: dict[str, list[float]] = {}
    started: list[float] = []

    def instrument(_func, symbol: str, before: bool, _ret, *_args) -> int:
        now = time.perf_counter()
        if before:
            started.append(now)
        else:
            per_run.setdefault(symbol, []).append(now - started.pop())
        return 0

    for _ in range(3):
        library.run(x)
    library.vm.set_instrument(instrument)
    for _ in range(runs):
        library.run(x)
    linear = any(_is_linear_pointwise(t) for t in tasks)
    result = []
    for symbol, seconds in per_run.items():
        count = len(seconds) // runs
        totals = np.asarray(seconds[: count * runs]).reshape(runs, count).sum(axis=1)
        task = task_of(symbol, tasks)
        result.append(KernelTime(symbol, profile_kind(task, linear), count,
                                 float(np.median(totals)),
                                 task.flops * count if task else 0.0,
                                 _tensor_bytes(task) * count if task else 0.0))
    return result


@dataclass
class KindRow:
    kind: str
    kernels: list[KernelTime] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    @property
    def gflops(self) -> float:
        return sum(k.flops for k in self.kernels) / self.seconds / 1e9

    @property
    def gbs(self) -> float:
        return sum(k.bytes for k in self.kernels) / self.seconds / 1e9


def kind_table(kernels: list[KernelTime], inference_s: float, peak_gflops: float,
               bandwidth_gbs: float) -> str:
    """Markdown table by kind: time, share of the inference, GFLOP/s against the FMA peak
    (compute-bound kinds) or GB/s against the copy bandwidth (memory-bound ones)."""
    rows = {kind: KindRow(kind) for kind in PROFILE_KINDS}
    for kernel in kernels:
        rows[kernel.kind].kernels.append(kernel)
    lines = ["| kind | calls | ms | share | GFLOP/s | GB/s | vs ceiling |",
             "|---|---|---|---|---|---|---|"]
    for row in rows.values():
        if not row.kernels:
            continue
        if row.kind == "runtime":
            ceiling = "VM builtins (allocation)"
        elif row.kind in COMPUTE_BOUND:
            ceiling = f"{row.gflops / peak_gflops:.0%} of FMA peak"
        else:
            ceiling = f"{row.gbs / bandwidth_gbs:.0%} of copy bandwidth"
        lines.append(f"| {row.kind} | {sum(k.calls for k in row.kernels)} | "
                     f"{row.seconds * 1e3:.3f} | {row.seconds / inference_s:.0%} | "
                     f"{row.gflops:.1f} | {row.gbs:.1f} | {ceiling} |")
    in_calls = sum(k.seconds for k in kernels)
    lines.append(f"| rest (VM dispatch; ± noise) | | {(inference_s - in_calls) * 1e3:.3f} | "
                 f"{(inference_s - in_calls) / inference_s:.0%} | | | |")
    return "\n".join(lines)


def slowest_table(kernels: list[KernelTime], count: int) -> str:
    lines = ["| kernel | kind | calls | ms | GFLOP/s | GB/s |", "|---|---|---|---|---|---|"]
    for k in sorted(kernels, key=lambda k: -k.seconds)[:count]:
        lines.append(f"| {k.name} | {k.kind} | {k.calls} | {k.seconds * 1e3:.3f} | "
                     f"{k.flops / k.seconds / 1e9:.1f} | {k.bytes / k.seconds / 1e9:.1f} |")
    return "\n".join(lines)


#: Spin iterations of an idle TVM worker before it sleeps. The instrument hook (Python) runs
#: between kernels for longer than the default spin, so with the default every kernel would
#: pay a worker wake-up that uninstrumented inferences do not.
PROFILE_SPIN_COUNT = "100000000"


def profile(path: Path, threads: list[int], runs: int, top: int) -> str:
    """The Markdown profile of the library at `path`, one section per thread count.

    Each thread count is profiled in a fresh process, so that no thread count inherits the
    thread pool, instrumented VMs and caches of the one before."""
    library = load_local(path)
    if library.info.target_dict.get("kind") != "llvm" or library.info.rpc_key:
        raise UserError("profile runs CPU libraries built for this machine")
    sections = [f"# Profile of {path} ({library.info.model}) on {library.where}"]
    context = multiprocessing.get_context("spawn")
    for count in threads:
        with context.Pool(1, initializer=_spin_while_idle) as pool:
            sections += pool.apply(_thread_count_sections, (path, count, runs, top))
    return "\n".join(sections)


def _spin_while_idle() -> None:
    """First thing in a profiling process, before its TVM thread pool reads the spin count
    (set here, not in the caller's environment, which later processes would inherit)."""
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", PROFILE_SPIN_COUNT)


def _thread_count_sections(path: Path, count: int, runs: int, top: int) -> list[str]:
    library = load_local(path)
    target = tvm.target.Target(library.info.target_dict)
    tasks = extract_tasks(import_model(ModelSource(**library.info.source)).mod, target)
    x = seeded_inputs(library.info.input_shape, 1, seed=0)[0]
    library.set_threads(count)
    library.time(x, 10)
    inference_s = float(np.median(library.time(x, runs)))
    kernels = kernel_times(library, tasks, x, runs)
    peak, bandwidth = fma_peak_gflops(count), copy_bandwidth_gbs(count)
    return [f"\n## {count} thread(s): {inference_s * 1e3:.3f} ms per inference (median of "
            f"{runs}, uninstrumented); FMA peak {peak:.0f} GFLOP/s, copy bandwidth "
            f"{bandwidth:.0f} GB/s (both measured now on {count} thread(s))\n",
            kind_table(kernels, inference_s, peak, bandwidth),
            f"\nSlowest {top} kernels:\n", slowest_table(kernels, top)]
