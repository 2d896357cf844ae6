"""Run a `gpu.plan.Plan` on a Vulkan device through `wgpu` (wgpu-native: naga translates the
WGSL to SPIR-V for Vulkan). This is the one piece the TVM wheel lacks: it has TVM's WebGPU code
generator but no WebGPU or Vulkan runtime. Needs only NumPy and wgpu.

Everything is created once (pipelines, buffers, bind groups, weights on the device); a run
writes the input, records every dispatch in one compute pass, submits and reads the output.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np

from tvm_mobilenet.errors import VulkanUnavailable
from tvm_mobilenet.gpu.plan import Kernel, Plan

INSTALL_HELP = ("install a Vulkan driver and wgpu: `apt-get install mesa-vulkan-drivers` "
                "(lavapipe, a CPU Vulkan driver) or your GPU's driver, and `pip install wgpu`")


def open_device():
    """(adapter, device) of the first Vulkan adapter; `VulkanUnavailable` says what to
    install when there is none."""
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
    try:
        import wgpu
    except ImportError as error:
        raise VulkanUnavailable(f"the wgpu package is missing; {INSTALL_HELP}") from error
    adapters = [adapter for adapter in wgpu.gpu.enumerate_adapters_sync()
                if adapter.info.get("backend_type") == "Vulkan"]
    if not adapters:
        raise VulkanUnavailable(f"no Vulkan adapter found; {INSTALL_HELP}")
    return adapters[0], adapters[0].request_device_sync()


def adapter_label(adapter) -> str:
    """E.g. 'llvmpipe (LLVM 15.0.6, 256 bits) (CPU, emulated GPU)'."""
    info = adapter.info
    kind = info.get("adapter_type", "")
    emulated = ", emulated GPU" if kind == "CPU" else ""
    return f"{info.get('device', 'unknown')} (Vulkan, {kind}{emulated})"


def adapter_slug(adapter) -> str:
    """A short file-name-safe name of the adapter, e.g. 'llvmpipe'."""
    return re.sub(r"[^a-z0-9]+", "-", adapter.info.get("device", "gpu").lower().split("(")[0]
                  ).strip("-") or "gpu"


def _runtime_dir() -> str:
    path = f"/tmp/runtime-{os.getuid()}"
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def split_grid(grid: tuple[int, int, int], limit: int) -> tuple[int, int, int]:
    """Dispatch size for a blockIdx grid. TVM's WebGPU kernels reserve blockIdx.z: an x extent
    above the device limit is spread over (x, z), and the kernel rebuilds
    blockIdx.x = blockIdx.z * gridDim.x + blockIdx.x (as TVM's web runtime does)."""
    x, y, z = grid
    if z != 1 or y > limit:
        raise ValueError(f"grid {grid} does not fit TVM's WebGPU launch convention")
    layers = 1
    while x > limit:
        x, layers = (x + 1) // 2, layers * 2
    return x, y, layers


def pod_args(kernel: Kernel) -> bytes:
    """The uniform `PODArgs` (our kernels have no scalar parameters): `packGridDimX`. A kernel
    returns early when its rebuilt blockIdx.x > packGridDimX, so pass the last valid index."""
    return np.array([kernel.grid[0] - 1], np.uint32).tobytes()


def _padded(nbytes: int) -> int:
    return (nbytes + 3) // 4 * 4


class WgpuExecutor:
    """A plan on a device: `run(x)` returns the output, `time(n)` times n runs."""

    def __init__(self, plan: Plan, device) -> None:
        import wgpu

        self.plan, self.device, self._wgpu = plan, device, wgpu
        usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        self._usage = usage
        self._constants = [device.create_buffer_with_data(data=np.ascontiguousarray(c),
                                                          usage=usage)
                           for c in plan.constants]
        self._inputs = [device.create_buffer(
            size=_padded(int(np.prod(shape)) * np.dtype(dtype).itemsize), usage=usage)
            for shape, dtype in plan.inputs]
        self._views: dict[str, tuple] = {}
        pipelines = {name: self._pipeline(kernel) for name, kernel in plan.kernels.items()}
        limit = device.limits["max-compute-workgroups-per-dimension"]
        self._dispatches = []
        for launch in plan.launches:
            kernel = plan.kernels[launch.kernel]
            pipeline, layout = pipelines[launch.kernel]
            uniform = device.create_buffer_with_data(data=pod_args(kernel),
                                                     usage=wgpu.BufferUsage.UNIFORM)
            entries = [{"binding": index, "resource": dict(zip(("buffer", "offset", "size"),
                                                                self._view(value)))}
                       for index, value in enumerate(launch.buffers)]
            entries.append({"binding": len(entries),
                            "resource": {"buffer": uniform, "offset": 0, "size": uniform.size}})
            self._dispatches.append((pipeline, device.create_bind_group(layout=layout,
                                                                         entries=entries),
                                     split_grid(kernel.grid, limit)))
        self._sync = device.create_buffer(size=4, usage=wgpu.BufferUsage.COPY_SRC)

    def _pipeline(self, kernel: Kernel):
        wgpu = self._wgpu
        kinds = [wgpu.BufferBindingType.storage if writes
                 else wgpu.BufferBindingType.read_only_storage for writes in kernel.write_access]
        kinds.append(wgpu.BufferBindingType.uniform)
        layout = self.device.create_bind_group_layout(entries=[
            {"binding": index, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": kind}}
            for index, kind in enumerate(kinds)])
        pipeline = self.device.create_compute_pipeline(
            layout=self.device.create_pipeline_layout(bind_group_layouts=[layout]),
            compute={"module": self.device.create_shader_module(code=kernel.wgsl),
                     "entry_point": kernel.name})
        return pipeline, layout

    def _view(self, value: str) -> tuple:
        """(buffer, byte offset, size) of a value of the plan."""
        if value not in self._views:
            kind, *rest = self.plan.values[value]
            if kind == "storage":
                size = _padded(rest[0])
                view = (self.device.create_buffer(size=size, usage=self._usage), 0, size)
            elif kind == "view":
                buffer, base, _ = self._view(rest[0])
                view = (buffer, base + rest[1], _padded(rest[2]))
            else:  # "const" or "input"
                buffer = (self._constants if kind == "const" else self._inputs)[rest[0]]
                view = (buffer, 0, buffer.size)
            self._views[value] = view
        return self._views[value]

    def _submit(self) -> None:
        encoder = self.device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        for pipeline, bind_group, grid in self._dispatches:
            compute.set_pipeline(pipeline)
            compute.set_bind_group(0, bind_group)
            compute.dispatch_workgroups(*grid)
        compute.end()
        self.device.queue.submit([encoder.finish()])

    def set_inputs(self, *inputs: np.ndarray) -> None:
        for buffer, x in zip(self._inputs, inputs):
            self.device.queue.write_buffer(buffer, 0, np.ascontiguousarray(x))

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        self.set_inputs(*inputs)
        self._submit()
        value, shape, dtype = self.plan.output
        buffer, offset, size = self._view(value)
        count = int(np.prod(shape))
        data = self.device.queue.read_buffer(buffer, offset, size)
        return np.frombuffer(data, dtype, count=count).reshape(shape).copy()

    def time(self, repeat: int) -> np.ndarray:
        """Seconds per run (submit to completion) of `repeat` runs on the current inputs."""
        seconds = np.empty(repeat)
        for index in range(repeat):
            start = time.perf_counter()
            self._submit()
            self.device.queue.read_buffer(self._sync)  # returns when the queue is done
            seconds[index] = time.perf_counter() - start
        return seconds
