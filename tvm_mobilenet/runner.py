"""Load a built library and run or time it on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from .build import LibraryInfo
from .cli import UserError

#: TVM thread-pool affinity mode kSpecifyThreadShareAllCore: every worker may run on every
#: listed core. The "big cores" mode would pin the calling thread (and so onnxruntime's
#: threads created later) to a single core.
_AFFINITY_SHARE_ALL_CORES = -3


def set_threads(count: int) -> None:
    """Size TVM's runtime thread pool (like TVM_NUM_THREADS, but changeable at run time)."""
    cores = [str(core) for core in sorted(os.sched_getaffinity(0))]
    tvm.get_global_func("runtime.config_threadpool")(_AFFINITY_SHARE_ALL_CORES, count, cores)


class LocalLibrary:
    """A library built by `tvm_mobilenet.build`, loaded into a Relax VM on the CPU."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise UserError(f"library {path} does not exist")
        self.info = LibraryInfo.load(path)
        try:
            module = tvm.runtime.load_module(str(path))
        except RuntimeError as error:
            raise UserError(f"cannot load {path} on this machine: "
                            f"{str(error).strip().splitlines()[-1]}") from error
        self.device = tvm.cpu()
        self.vm = relax.VirtualMachine(module, self.device)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        return self.vm["main"](tvm.runtime.tensor(x, self.device)).numpy()

    def time(self, x: np.ndarray, repeat: int) -> np.ndarray:
        """Seconds per run, `repeat` single runs timed by TVM's time evaluator."""
        self._check(x)
        self.vm.set_input("main", tvm.runtime.tensor(x, self.device))
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=repeat)
        return np.asarray(timer("main").results)

    def _check(self, x: np.ndarray) -> None:
        if tuple(x.shape) != self.info.input_shape or x.dtype != np.float32:
            raise UserError(f"the library expects float32 {list(self.info.input_shape)}, "
                            f"got {x.dtype} {list(x.shape)}")
