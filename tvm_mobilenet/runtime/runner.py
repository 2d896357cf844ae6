"""Load a built library and run or time it: on this machine, or on a device over TVM's RPC."""

from __future__ import annotations

import argparse
import os
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import tvm
from tvm import relax

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.runtime.rpc import (
    Endpoint,
    connect,
    device_label,
    endpoint_from_args,
    is_emulated,
)
from tvm_mobilenet.target.presets import host_cores, host_cpu

#: TVM thread-pool affinity mode kSpecifyThreadShareAllCore: every worker may run on every
#: listed core. The "big cores" mode would pin the calling thread (and so onnxruntime's
#: threads created later) to a single core.
_AFFINITY_SHARE_ALL_CORES = -3
_AFFINITY_BIG_CORES = 1


def set_threads(count: int) -> None:
    """Size TVM's runtime thread pool (like TVM_NUM_THREADS, but changeable at run time)."""
    cores = [str(core) for core in sorted(os.sched_getaffinity(0))]
    tvm.get_global_func("runtime.config_threadpool")(_AFFINITY_SHARE_ALL_CORES, count, cores)


def machine_line() -> str:
    """This machine, for reports: architecture, CPU, cores, TVM and Python versions."""
    return (f"{platform.machine()} {host_cpu()} ({host_cores()} cores), TVM {tvm.__version__}, "
            f"Python {platform.python_version()}")


class Library:
    """A library built by `tvm_mobilenet.build`, loaded into a Relax VM on a CPU."""

    def __init__(self, info: LibraryInfo, module: tvm.runtime.Module, device: tvm.Device,
                 where: str | None = None) -> None:
        #: Where it runs, for reports.
        self.where = where or machine_line()
        self.info = info
        self.device = device
        self.vm = relax.VirtualMachine(module, device)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._set_input(x)
        self.vm.invoke_stateful("main")
        return self.vm.get_outputs("main").numpy()

    def time(self, x: np.ndarray, repeat: int) -> np.ndarray:
        """Seconds per run, `repeat` single runs timed by TVM's time evaluator."""
        self._set_input(x)
        timer = self.vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=repeat)
        return np.asarray(timer("main").results)

    def set_threads(self, count: int) -> None:
        set_threads(count)

    def _check(self, x: np.ndarray) -> None:
        if tuple(x.shape) != self.info.input_shape or x.dtype != np.float32:
            raise UserError(f"the library expects float32 {list(self.info.input_shape)}, "
                            f"got {x.dtype} {list(x.shape)}")

    def _set_input(self, x: np.ndarray) -> None:
        self._check(x)
        self.vm.set_input("main", tvm.runtime.tensor(x, self.device))


def _last_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


def load_local(path: Path, info: LibraryInfo | None = None) -> Library:
    info = info or LibraryInfo.load(_existing(path))
    try:
        module = tvm.runtime.load_module(str(path))
    except RuntimeError as error:
        raise UserError(f"cannot load {path} on this machine: {_last_line(error)}") from error
    return Library(info, module, tvm.cpu())


def _existing(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"library {path} does not exist")
    return path


class RemoteLibrary(Library):
    """A library uploaded to a device and run there over RPC. A device that disconnects
    mid-run ends the call with a `UserError`."""

    def __init__(self, path: Path, info: LibraryInfo, endpoint: Endpoint) -> None:
        self.session = connect(endpoint)
        self.where = device_label(endpoint, is_emulated(self.session))
        with self._device_errors():
            self.session.upload(str(path))
            module = self.session.load_module(path.name)
            super().__init__(info, module, self.session.cpu(), self.where)

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._device_errors():
            return super().run(x)

    def time(self, x: np.ndarray, repeat: int) -> np.ndarray:
        with self._device_errors():
            return super().time(x, repeat)

    def set_threads(self, count: int) -> None:
        with self._device_errors():
            # The core list cannot cross RPC; nothing else runs on the device, so the "big
            # cores" mode (which pins the calling thread) is harmless there.
            self.session.get_function("runtime.config_threadpool")(_AFFINITY_BIG_CORES, count)

    @contextmanager
    def _device_errors(self) -> Iterator[None]:
        try:
            yield
        except (RuntimeError, OSError) as error:
            raise UserError(f"the device ({self.where}) failed: {_last_line(error)}") from error


def vulkan_device():
    """(adapter, device) of this machine's Vulkan GPU; a `UserError` naming what to install
    when there is none."""
    from tvm_mobilenet.gpu.wgpu_executor import VulkanUnavailable, open_device

    try:
        return open_device()
    except VulkanUnavailable as error:
        raise UserError(str(error)) from error


class VulkanLibrary(Library):
    """A Vulkan build (a `gpu.plan` folder) run by our wgpu executor on this machine's first
    Vulkan adapter. Reports name the adapter, "emulated GPU" for a CPU one (lavapipe)."""

    def __init__(self, path: Path, info: LibraryInfo) -> None:
        from tvm_mobilenet.gpu.plan import Plan
        from tvm_mobilenet.gpu.wgpu_executor import WgpuExecutor, adapter_label

        adapter, device = vulkan_device()
        self.info = info
        self.where = f"{adapter_label(adapter)} on {machine_line()}"
        self.executor = WgpuExecutor(Plan.load(path), device)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        return self.executor.run(x)

    def time(self, x: np.ndarray, repeat: int) -> np.ndarray:
        self._check(x)
        self.executor.set_inputs(x)
        return self.executor.time(repeat)

    def set_threads(self, count: int) -> None:
        """The GPU has no thread pool to size."""


def open_library(path: Path, args: argparse.Namespace | None = None) -> Library:
    """The library at `path`: on the device the RPC flags in `args` name, else (libraries
    built for a device preset such as rpi4) on a device with the preset's key at the default
    tracker, else on this machine."""
    info = LibraryInfo.load(_existing(path))
    flags = args if args is not None else argparse.Namespace(rpc=None, rpc_tracker=None,
                                                             rpc_key=None)
    return load(path, endpoint_from_args(flags, info.rpc_key), info)


def load(path: Path, device: Endpoint | None, info: LibraryInfo | None = None) -> Library:
    """The library at `path` on `device`, or on this machine when `device` is None."""
    if path.is_dir():
        return VulkanLibrary(path, info or LibraryInfo.load(path))
    info = info or LibraryInfo.load(_existing(path))
    return RemoteLibrary(path, info, device) if device else load_local(path, info)
