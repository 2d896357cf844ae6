"""Compile a model for a Vulkan GPU with TVM's WebGPU code generator, into a `gpu.plan.Plan`.

The TVM wheel has no Vulkan code generator or runtime, but it does generate WGSL compute
shaders, which wgpu (naga) turns into SPIR-V for Vulkan. We lower the model with TVM's generic
GPU Relax pipeline (fusion, tuned schedules from the log, dlight's default GPU schedules for the
rest, static memory planning), stop before the VM-specific passes, and read `main` as a flat
list of kernel launches. Each PrimFunc becomes one or more WGSL kernels.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import tvm
from tvm import relax, tirx
from tvm.s_tir import dlight
from tvm.s_tir import meta_schedule as ms
from tvm.tirx.build import codegen_build, split_host_device_mods

from tvm_mobilenet.gpu.plan import Kernel, Launch, Plan
from tvm_mobilenet.transform.graph_passes import prepare

_KERNEL_HEADER = re.compile(r"(?m)^//-{40}\n// Function: (\S+)\n//-{40}\n")
#: dlight's GPU rules without Reduction/GeneralReduction: those give each depthwise output a
#: 64-thread workgroup where 9 threads work, 6.5x slower for MobileNetV2 on lavapipe.
DLIGHT_RULES = (dlight.gpu.Matmul(), dlight.gpu.GEMV(), dlight.gpu.Fallback())


def lower_for_gpu(mod: tvm.IRModule, target: tvm.target.Target,
                  database: ms.database.Database | None = None) -> tvm.IRModule:
    """Prepared Relax module -> scheduled PrimFuncs and a statically planned `main`: TVM's
    generic GPU pipeline (tuned schedules first, then dlight) up to memory planning."""
    from tvm.relax.backend.gpu_generic import pipeline as gpu

    with target:
        legalize = gpu.legalize_passes(target)[:-1]  # its last pass is dlight's default rules
        if database is not None:
            legalize.append(relax.transform.MetaScheduleApplyDatabase(enable_warning=False))
        passes = (gpu.library_dispatch_passes(target) + legalize
                  + [dlight.ApplyDefaultSchedule(*DLIGHT_RULES)]
                  + gpu.dataflow_lower_passes(target)
                  + [relax.transform.StaticPlanBlockMemory(),
                     relax.transform.AttachGlobalSymbol()])
        if database is None:
            return tvm.transform.Sequential(passes)(mod)
        with database:
            return tvm.transform.Sequential(passes)(mod)


def _walk(stmt, visit) -> None:
    """Call `visit` on every statement under `stmt` (the 0.27 Python API has no visitor)."""
    if stmt is None:
        return
    visit(stmt)
    if isinstance(stmt, tirx.SeqStmt):
        for child in stmt.seq:
            _walk(child, visit)
    for name in ("body", "then_case", "else_case"):
        if hasattr(stmt, name):
            _walk(getattr(stmt, name), visit)


def _thread_extents(func: tirx.PrimFunc) -> dict[str, int]:
    extents: dict[str, int] = {}

    def visit(stmt) -> None:
        if isinstance(stmt, tirx.AttrStmt) and stmt.attr_key == "thread_extent":
            extents[stmt.node.thread_tag] = int(stmt.value)

    _walk(func.body, visit)
    return extents


def _kernel_calls(func: tirx.PrimFunc) -> list[str]:
    """The device kernels a host function launches, in order."""
    calls: list[str] = []

    def visit(stmt) -> None:
        if isinstance(stmt, tirx.Evaluate) and isinstance(stmt.value, tvm.ir.Call) \
                and getattr(stmt.value.op, "name", "") == "tirx.call_ffi_kernel":
            calls.append(stmt.value.args[0].value)

    _walk(func.body, visit)
    return calls


def _workspaces(func: tirx.PrimFunc) -> dict[str, int]:
    """Global buffers the host part of a PrimFunc allocates between its kernels: name -> bytes."""
    found: dict[str, int] = {}

    def visit(stmt) -> None:
        if isinstance(stmt, tirx.AllocBuffer) and stmt.buffer.scope() == "global":
            buffer = stmt.buffer
            found[buffer.name] = (int(np.prod([int(d) for d in buffer.shape]))
                                  * np.dtype(str(buffer.dtype)).itemsize)

    _walk(func.body, visit)
    return found


def _param_name(kernel_param: str) -> str:
    return kernel_param.removesuffix("_ptr")


def build_kernels(primfuncs: tvm.IRModule, target: tvm.target.Target
                  ) -> tuple[dict[str, Kernel], dict[str, list[str]], dict[str, dict[str, int]]]:
    """Scheduled PrimFuncs -> (WGSL kernels by name, each PrimFunc's kernels in launch order,
    each PrimFunc's workspaces). `tvm.tirx.build`'s steps, stopped before host code."""
    mod = tvm.tirx.transform.BindTarget(target)(primfuncs)
    pipeline, _, finalize_device = tvm.tirx.get_tir_pipeline("default")
    host, device_mods = split_host_device_mods(pipeline(mod))
    launches = {gv.name_hint: _kernel_calls(func) for gv, func in host.functions_items()}
    workspaces = {gv.name_hint: _workspaces(func) for gv, func in host.functions_items()}
    ((device_target, device_mod),) = device_mods.items()
    device_mod = finalize_device()(device_mod)
    source = codegen_build(device_mod, device_target)
    info = json.loads(source.inspect_source("func_info"))
    parts = _KERNEL_HEADER.split(source.inspect_source())
    wgsl = dict(zip(parts[1::2], parts[2::2]))
    kernels = {}
    for gv, func in device_mod.functions_items():
        name, extents = gv.name_hint, _thread_extents(func)
        access = next(tag for tag in info[name]["launch_param_tags"]
                      if tag.startswith("paramWriteAccess:"))
        handles = [p.name for p in func.params if str(p.ty).startswith("T.handle")]
        if len(handles) != len(func.params):
            raise NotImplementedError(f"kernel {name} takes scalar parameters")
        kernels[name] = Kernel(
            name, wgsl[name], tuple(handles),
            tuple(json.loads(access.split(":", 1)[1])),
            tuple(extents.get(f"blockIdx.{axis}", 1) for axis in "xyz"),
            tuple(extents.get(f"threadIdx.{axis}", 1) for axis in "xyz"))
    return kernels, launches, workspaces


class _PlanReader:
    """Turns the bindings of a lowered `main` into the plan's values and launches."""

    def __init__(self, lowered: tvm.IRModule, launches: dict[str, list[str]],
                 kernels: dict[str, Kernel], workspaces: dict[str, dict[str, int]]) -> None:
        self.lowered, self.kernel_order, self.kernels = lowered, launches, kernels
        self.workspaces = workspaces
        self.values: dict[str, list] = {}
        self.ids: dict = {}
        self.constants: list[np.ndarray] = []
        self._constant_nodes: list = []
        self.launches: list[Launch] = []

    def value_id(self, expr) -> str:
        if isinstance(expr, tvm.ir.GenericConst):
            for index, node in enumerate(self._constant_nodes):
                if node.same_as(expr):
                    return f"const{index}"
            self._constant_nodes.append(expr)
            self.constants.append(expr.value.numpy())
            index = len(self.constants) - 1
            self.values[f"const{index}"] = ["const", index]
            return f"const{index}"
        return self.ids[expr]

    def call(self, callee: tvm.ir.GlobalVar, args) -> None:
        func = self.lowered[callee]
        bound = {param.name: self.value_id(arg) for param, arg in zip(func.params, args)}
        for name, nbytes in self.workspaces.get(callee.name_hint, {}).items():
            bound[name] = f"workspace:{callee.name_hint}:{name}"
            self.values[bound[name]] = ["storage", nbytes]
        for kernel in self.kernel_order[callee.name_hint]:
            params = self.kernels[kernel].buffer_params
            self.launches.append(Launch(kernel, tuple(bound[_param_name(p)] for p in params)))

    def read(self, main: relax.Function) -> None:
        for index, param in enumerate(main.params):
            self.ids[param] = f"input{index}"
            self.values[f"input{index}"] = ["input", index]
        for block in main.body.blocks:
            for binding in block.bindings:
                self.bind(binding.var, binding.value)

    def bind(self, var, value) -> None:
        if isinstance(value, tvm.ir.Var):
            self.ids[var] = self.ids[value]
            return
        if isinstance(value.op, tvm.ir.GlobalVar):
            self.call(value.op, value.args)
            return
        op, args, vid = value.op.name, value.args, f"v{len(self.values)}:{var.name}"
        if op == "relax.memory.alloc_storage":
            self.values[vid] = ["storage", int(args[0].values[0])]
        elif op == "relax.memory.alloc_tensor":
            self.values[vid] = ["view", self.ids[args[0]], int(args[1].value),
                                _nbytes(args[2], args[3])]
        elif op == "relax.builtin.alloc_tensor":
            self.values[vid] = ["storage", _nbytes(args[0], args[1])]
        elif op == "relax.reshape":
            vid = self.ids[args[0]]
        else:
            raise NotImplementedError(f"the Vulkan plan cannot run {op} ({var.name})")
        self.ids[var] = vid


def _nbytes(shape: relax.ShapeExpr, dtype) -> int:
    return int(np.prod([int(d) for d in shape.values])) * np.dtype(str(dtype.value)).itemsize


def compile_plan(mod: tvm.IRModule, target: tvm.target.Target,
                 database: ms.database.Database | None = None) -> Plan:
    """Imported Relax module (static shapes, weights as constants) -> Plan for `target`
    (a webgpu target: the WGSL runs on Vulkan through wgpu)."""
    start = time.perf_counter()
    lowered = lower_for_gpu(prepare(mod), target, database)
    primfuncs = tvm.IRModule({gv: func for gv, func in lowered.functions_items()
                              if isinstance(func, tirx.PrimFunc)})
    kernels, launches, workspaces = build_kernels(primfuncs, target)
    reader = _PlanReader(lowered, launches, kernels, workspaces)
    main = lowered["main"]
    reader.read(main)
    result = main.body.body
    inputs = [(tuple(int(d) for d in p.ty.shape), str(p.ty.dtype)) for p in main.params]
    output = (reader.ids[result], tuple(int(d) for d in result.ty.shape), str(result.ty.dtype))
    stats = {"kernels": len(kernels), "launches": len(reader.launches),
             "wgsl_bytes": sum(len(k.wgsl) for k in kernels.values()),
             "weight_bytes": sum(c.nbytes for c in reader.constants),
             "compile_s": round(time.perf_counter() - start, 1)}
    return Plan(kernels, reader.launches, reader.values, reader.constants, inputs, output, stats)
