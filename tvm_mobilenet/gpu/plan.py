"""A compiled model for a Vulkan GPU as plain data: WGSL kernels, the ordered launches of the
model's `main`, its memory plan and its weights. Written by `gpu.codegen.compile_plan`, run by
`wgpu_executor`; saved as a folder that needs only NumPy and `wgpu` (no TVM) to run.

    plan.json       kernels (entry point, bindings, launch sizes), launches, values, input/output
    kernels/*.wgsl  one self-contained WGSL module per kernel
    weights.npz     the constants, uploaded to the device once
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tvm_mobilenet.errors import UserError

PLAN_FILE = "plan.json"
WEIGHTS_FILE = "weights.npz"
KERNELS_DIR = "kernels"
#: A kernel name (it names a file of the plan) and the largest buffer a plan may ask for.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_BUFFER_BYTES = 1 << 30


@dataclass(frozen=True)
class Kernel:
    """One WGSL entry point: its buffer bindings 0..n-1, then a uniform `PODArgs`."""

    name: str
    wgsl: str
    #: Buffer parameter names, in binding order (the codegen's order, not the PrimFunc's).
    buffer_params: tuple[str, ...]
    #: 1 where the kernel writes the buffer (read_write binding), 0 where it only reads.
    write_access: tuple[int, ...]
    #: blockIdx extents (x, y, z) and threadIdx extents (the WGSL @workgroup_size).
    grid: tuple[int, int, int]
    workgroup: tuple[int, int, int]

    @classmethod
    def from_dict(cls, entry: dict, wgsl: str) -> Kernel:
        """From `asdict(kernel)` (JSON turns its tuples into lists), with its WGSL."""
        return cls(entry["name"], wgsl, tuple(entry["buffer_params"]),
                   tuple(entry["write_access"]), tuple(entry["grid"]), tuple(entry["workgroup"]))


@dataclass(frozen=True)
class Launch:
    """One dispatch of `kernel`, with the value bound at each of its buffer bindings."""

    kernel: str
    buffers: tuple[str, ...]


@dataclass
class Plan:
    kernels: dict[str, Kernel]
    launches: list[Launch]
    #: value id -> ["storage", nbytes] | ["view", storage id, byte offset, nbytes]
    #:             | ["const", index] | ["input", index]
    values: dict[str, list]
    constants: list[np.ndarray]
    #: (shape, dtype) of each input, and the output's value id, shape, dtype.
    inputs: list[tuple[tuple[int, ...], str]]
    output: tuple[str, tuple[int, ...], str]
    stats: dict = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        (folder / KERNELS_DIR).mkdir(parents=True, exist_ok=True)
        for kernel in self.kernels.values():
            (folder / KERNELS_DIR / f"{kernel.name}.wgsl").write_text(kernel.wgsl)
        meta = {
            "kernels": [{k: v for k, v in asdict(kernel).items() if k != "wgsl"}
                        for kernel in self.kernels.values()],
            "launches": [asdict(launch) for launch in self.launches],
            "values": self.values, "inputs": self.inputs, "output": self.output,
            "stats": self.stats}
        (folder / PLAN_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        np.savez(folder / WEIGHTS_FILE, *self.constants)

    @classmethod
    def load(cls, folder: Path) -> Plan:
        """The plan saved in `folder`, checked whole; raises `UserError` if it is not one."""
        try:
            meta = json.loads((folder / PLAN_FILE).read_text())
            with np.load(folder / WEIGHTS_FILE) as weights:  # no pickles: no code runs
                constants = [weights[f"arr_{index}"] for index in range(len(weights.files))]
            problem = _problem(meta, len(constants))
            if problem is None:
                kernels = {entry["name"]: Kernel.from_dict(
                    entry, (folder / KERNELS_DIR / f"{entry['name']}.wgsl").read_text())
                    for entry in meta["kernels"]}
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError,
                zipfile.BadZipFile) as error:  # JSON and Unicode errors are ValueErrors
            problem = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        if problem:
            raise UserError(f"{folder} is not a Vulkan build written by tvm_mobilenet.build "
                            f"({problem})")
        return cls(kernels, [Launch(e["kernel"], tuple(e["buffers"])) for e in meta["launches"]],
                   meta["values"], constants,
                   [(tuple(shape), dtype) for shape, dtype in meta["inputs"]],
                   (meta["output"][0], tuple(meta["output"][1]), meta["output"][2]),
                   meta.get("stats", {}))


def _problem(meta: dict, constants: int) -> str | None:
    """What is wrong with a plan's JSON, if anything: names that are not identifiers (they
    become file names), references to kernels or values that do not exist, buffers larger
    than any MobileNet needs."""
    kernels = {entry["name"]: entry for entry in meta["kernels"]}
    values = meta["values"]
    names = [name for name in kernels if not (isinstance(name, str) and _NAME.match(name))]
    if names:
        return f"kernel name {names[0]!r}"
    for launch in meta["launches"]:
        kernel = kernels.get(launch["kernel"])
        if kernel is None or len(launch["buffers"]) != len(kernel["buffer_params"]):
            return f"a launch of kernel {launch['kernel']!r} does not fit it"
        if not all(value in values for value in launch["buffers"]):
            return f"a launch of {launch['kernel']} binds a value that does not exist"
    limits = {"storage": None, "const": constants, "input": len(meta["inputs"])}
    for name, (kind, *rest) in values.items():
        if kind == "storage" and not (type(rest[0]) is int and 0 < rest[0] <= MAX_BUFFER_BYTES):
            return f"value {name} asks for {rest[0]!r} bytes"
        if kind == "view":
            owner = values.get(rest[0], [None, 0])
            if owner[0] != "storage" or not 0 <= rest[1] <= rest[1] + rest[2] <= owner[1]:
                return f"value {name} is a view outside its storage"
        elif kind in ("const", "input") and not 0 <= rest[0] < limits[kind]:
            return f"value {name} is {kind} {rest[0]} of {limits[kind]}"
        elif kind not in limits:
            return f"value {name} is of unknown kind {kind!r}"
    if meta["output"][0] not in values:
        return "the output is not a value of the plan"
    return None
