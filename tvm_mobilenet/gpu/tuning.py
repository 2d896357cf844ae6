"""MetaSchedule on a Vulkan GPU: candidates are built into WGSL kernels and timed by wgpu.

MetaSchedule's GPU schedule rules refuse the webgpu target kind, so tasks are tuned for a
Vulkan stand-in target with the same limits (the preset's ``tuning_target``); the builder
ignores the target it is handed and generates WGSL for the preset's webgpu target. The
records apply to the webgpu build, as lookups go by workload.

MetaSchedule does not check what a candidate computes, and on a GPU a fast candidate can be a
wrong one (in CI, a tuned pointwise task once gave the model a relative error of 0.65). So the
runner checks every candidate's output against the untuned kernel run on this machine's CPU,
like AutoTVM's ``check_correctness``: a wrong candidate is a failed trial and never a record
that a build uses.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import asdict

import numpy as np
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from tvm_mobilenet.gpu.codegen import build_kernels
from tvm_mobilenet.gpu.plan import Kernel, Launch, Plan
from tvm_mobilenet.gpu.wgpu_executor import WgpuExecutor, open_device

#: Most WGSL one kernel of a candidate may have. Drivers compile a shader at its first
#: dispatch, and lavapipe's compile time grows steeply with unrolled code: a candidate of a
#: 48x48x16 depthwise conv unrolled into 342 KiB of WGSL took 136 s to compile (then 19 ms a
#: run) and stalled a test run for minutes, while one of 258 KiB took 0.15 s. The limit errs
#: low: it refuses that 258 KiB candidate too.
MAX_WGSL_BYTES = 256 * 1024


def check_shader_sizes(kernels: list[dict]) -> None:
    """Raise ValueError (the candidate fails as a trial) if a kernel's WGSL is too large."""
    for kernel in kernels:
        size = len(kernel["wgsl"])
        if size > MAX_WGSL_BYTES:
            raise ValueError(f"kernel {kernel['name']} has {size // 1024} KiB of WGSL, over the "
                             f"{MAX_WGSL_BYTES // 1024} KiB a shader may have: a driver can take "
                             "minutes to compile that much")


def wgsl_build(target: dict, mod: tvm.IRModule, _tuning_target, _params) -> dict:
    """LocalBuilder f_build: a scheduled task -> its WGSL kernels (a plain dict, handed to
    `wgsl_export` in the same worker process)."""
    gv = mod.get_global_var("main")
    mod = tvm.IRModule({gv: mod[gv].with_attr("global_symbol", "main")})
    kernels, launches, workspaces = build_kernels(mod, tvm.target.Target(target))
    if workspaces["main"]:
        raise NotImplementedError("a candidate with workspaces between its kernels")
    launched = [asdict(kernels[name]) for name in launches["main"]]
    check_shader_sizes(launched)
    return {"params": [param.name for param in mod["main"].params], "kernels": launched}


def wgsl_export(artifact: dict) -> str:
    """LocalBuilder f_export: the kernels as JSON; the runner gets the path."""
    path = os.path.join(tempfile.mkdtemp(prefix="tvm_mobilenet_wgsl_"), "kernels.json")
    with open(path, "w") as stream:
        json.dump(artifact, stream)
    return path


def task_plan(artifact: dict, args_info) -> Plan:
    """A plan running one candidate's kernels on its arguments (all plan inputs)."""
    index = {name: f"input{i}" for i, name in enumerate(artifact["params"])}
    kernels = [Kernel.from_dict(k, k["wgsl"]) for k in artifact["kernels"]]
    shapes = [(tuple(int(d) for d in info.shape), str(info.dtype)) for info in args_info]
    return Plan({k.name: k for k in kernels},
                [Launch(k.name, tuple(index[p.removesuffix("_ptr")] for p in k.buffer_params))
                 for k in kernels],
                {value: ["input", i] for i, value in enumerate(index.values())}, [], shapes,
                (f"input{len(shapes) - 1}", *shapes[-1]))


#: Largest error of a candidate's output, relative to the largest output of the untuned kernel
#: (the model verification's tolerance: float32 sums in another order differ by ~1e-6).
KERNEL_RTOL = 1e-4

Signature = tuple[tuple[tuple[int, ...], str], ...]


def seeded_arguments(signature: Signature) -> list[np.ndarray]:
    """The arguments every candidate and reference of a signature runs on (output last)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape, dtype in signature]


class ReferenceOutputs:
    """What the tuned tasks compute on `seeded_arguments`: their untuned kernels, built for
    this machine's CPU. Tasks are told apart by their argument shapes; a candidate matching
    any task of its shapes passes."""

    def __init__(self, tasks: list[tvm.IRModule]) -> None:
        self._tasks: dict[Signature, list[tvm.IRModule]] = defaultdict(list)
        for mod in tasks:
            self._tasks[signature(mod["main"].params)].append(mod)
        self._outputs: dict[Signature, list[np.ndarray]] = {}

    def outputs(self, shapes: Signature) -> list[np.ndarray]:
        if shapes not in self._outputs:
            self._outputs[shapes] = []
            for mod in self._tasks.get(shapes, []):
                arguments = [tvm.runtime.tensor(a) for a in seeded_arguments(shapes)]
                tvm.tirx.build(mod, target="llvm")(*arguments)
                self._outputs[shapes].append(arguments[-1].numpy())
        return self._outputs[shapes]

    def error(self, shapes: Signature, output: np.ndarray) -> float:
        """The smallest relative error of `output` against the tasks of `shapes` (NaN counts
        as infinite: the runner fills outputs with NaN, so unwritten elements show)."""
        references = self.outputs(shapes)
        if not references:
            raise LookupError(f"no tuned task takes arguments {shapes}")
        errors = [float(np.abs(output.astype(np.float64) - ref).max())
                  / (float(np.abs(ref).max()) or 1.0) for ref in references]
        return min(np.inf if np.isnan(e) else e for e in errors)


def signature(params) -> Signature:
    """(shape, dtype) of each buffer parameter of a PrimFunc, or of MetaSchedule's args_info."""
    return tuple((tuple(int(d) for d in p.shape), str(p.dtype)) for p in params)


@derived_object
class WgpuRunner(ms.runner.PyRunner):
    """Times candidates on the Vulkan device: random inputs, one run checked against
    `references` (a wrong output fails the trial), then `number` timed runs, each from submit
    to completion."""

    def __init__(self, references: ReferenceOutputs, number: int = 5) -> None:
        super().__init__()
        self.references, self.number = references, number
        _, self.device = open_device()

    def run(self, runner_inputs: list[ms.runner.RunnerInput]) -> list[ms.runner.RunnerFuture]:
        futures = []
        for runner_input in runner_inputs:
            try:
                with open(runner_input.artifact_path) as stream:
                    plan = task_plan(json.load(stream), runner_input.args_info)
                executor = WgpuExecutor(plan, self.device)
                shapes = signature(runner_input.args_info)
                arguments = seeded_arguments(shapes)
                arguments[-1] = np.full_like(arguments[-1], np.nan)
                error = self.references.error(shapes, executor.run(*arguments))
                if not error <= KERNEL_RTOL:
                    raise ArithmeticError(f"wrong output: relative error {error:.2g} against "
                                          "the untuned kernel on the CPU")
                seconds = [float(s) for s in executor.time(self.number)]
                futures.append(LocalRunnerFuture(res=seconds, error_message=None))
            except Exception as error:  # noqa: BLE001 (any failure is a failed trial)
                futures.append(LocalRunnerFuture(res=None,
                                                 error_message=f"{type(error).__name__}: {error}"))
        return futures
