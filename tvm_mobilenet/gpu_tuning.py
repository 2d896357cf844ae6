"""MetaSchedule on a Vulkan GPU: candidates are built into WGSL kernels and timed by wgpu.

MetaSchedule's GPU schedule rules refuse the webgpu target kind, so tasks are tuned for a
Vulkan stand-in target with the same limits (the preset's ``tuning_target``); the builder
ignores the target it is handed and generates WGSL for the preset's webgpu target. The
records apply to the webgpu build, as lookups go by workload.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict

import numpy as np
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from .gpu_build import build_kernels
from .gpu_plan import Kernel, Launch, Plan
from .wgpu_executor import WgpuExecutor, open_device


def wgsl_build(target: dict, mod: tvm.IRModule, _tuning_target, _params) -> dict:
    """LocalBuilder f_build: a scheduled task -> its WGSL kernels (a plain dict, handed to
    `wgsl_export` in the same worker process)."""
    gv = mod.get_global_var("main")
    mod = tvm.IRModule({gv: mod[gv].with_attr("global_symbol", "main")})
    kernels, launches, workspaces = build_kernels(mod, tvm.target.Target(target))
    if workspaces["main"]:
        raise NotImplementedError("a candidate with workspaces between its kernels")
    return {"params": [param.name for param in mod["main"].params],
            "kernels": [asdict(kernels[name]) for name in launches["main"]]}


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


@derived_object
class WgpuRunner(ms.runner.PyRunner):
    """Times candidates on the Vulkan device: random inputs, one warm-up run, then `number`
    runs, each from submit to completion."""

    def __init__(self, number: int = 5) -> None:
        super().__init__()
        self.number = number
        _, self.device = open_device()

    def run(self, runner_inputs: list[ms.runner.RunnerInput]) -> list[ms.runner.RunnerFuture]:
        futures = []
        for runner_input in runner_inputs:
            try:
                with open(runner_input.artifact_path) as stream:
                    plan = task_plan(json.load(stream), runner_input.args_info)
                executor = WgpuExecutor(plan, self.device)
                rng = np.random.default_rng(0)
                executor.set_inputs(*(rng.standard_normal(shape).astype(dtype)
                                      for shape, dtype in plan.inputs))
                executor.time(1)
                seconds = [float(s) for s in executor.time(self.number)]
                futures.append(LocalRunnerFuture(res=seconds, error_message=None))
            except Exception as error:  # noqa: BLE001 (any failure is a failed trial)
                futures.append(LocalRunnerFuture(res=None,
                                                 error_message=f"{type(error).__name__}: {error}"))
        return futures
