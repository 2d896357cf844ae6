"""Target presets: JSON files in the project's `targets/` folder, one per device class.

A preset holds the TVM target dict (``"auto"`` for ``mcpu`` and ``num-cores`` means: detect on
this machine), where the library runs (``device``), and notes. ``--target`` takes a preset
name or the path of such a file.

    python -m tvm_mobilenet.targets        # list the presets
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.resources import PRESETS_DIR

#: Where a library runs: this machine's CPU, a device reached through TVM's RPC, or this
#: machine's Vulkan GPU (through wgpu, see gpu/wgpu_executor.py).
DEVICES = ("host", "rpc", "vulkan")
#: Names that stand for a preset.
ALIASES = {"arm_cpu": "rpi4"}


@dataclass(frozen=True)
class TargetPreset:
    name: str
    description: str
    target: dict[str, Any]
    device: str
    notes: str = ""
    path: Path | None = None
    #: Tracker key of the devices (rpc presets).
    rpc_key: str | None = None
    #: {"command": compiler driver, "package": Debian package that provides it}.
    cross_compiler: dict[str, str] | None = None
    #: The target MetaSchedule tunes for when it differs from `target` (vulkan presets).
    tuning_target: dict[str, Any] | None = None
    #: Whether ``mcpu`` was "auto", i.e. is this machine's CPU rather than the preset's.
    detected_cpu: bool = False

    @property
    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target(self.target)

    @property
    def tvm_tuning_target(self) -> tvm.target.Target:
        return tvm.target.Target(self.tuning_target or self.target)

    @property
    def num_cores(self) -> int:
        return int(self.target["num-cores"])


def host_cpu() -> str:
    """The LLVM name of this machine's CPU, e.g. ``znver4`` or ``skylake-avx512``."""
    return str(tvm.get_global_func("target.llvm_get_system_cpu")())


@functools.cache
def host_cores() -> int:
    """Cores this process may use (taken once, before any thread pool pins threads)."""
    return len(os.sched_getaffinity(0))


def one_and_all(cores: int) -> tuple[int, ...]:
    """The thread counts a library is timed and picked at: 1 and all `cores`."""
    return tuple(sorted({1, cores}))


def _resolve_auto(target: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(target)
    if resolved.get("mcpu") == "auto":
        resolved["mcpu"] = host_cpu()
    if resolved.get("num-cores") == "auto":
        resolved["num-cores"] = host_cores()
    return resolved


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.json"))


def load_target(spec: str) -> TargetPreset:
    """A preset by name (``x86``) or file path, or a TVM target as a JSON dict or a tag (built
    for and run on this machine); raises `UserError` with the choices."""
    spec = ALIASES.get(spec, spec)
    if spec.lstrip().startswith("{"):
        try:
            data = json.loads(spec)
        except json.JSONDecodeError as error:
            raise UserError(f"--target is not valid JSON ({error})") from error
        if not isinstance(data, dict):
            raise UserError("--target JSON must be an object, a TVM target dict")
        return _preset("custom", data if "target" in data else _on_this_machine(data),
                       "the --target JSON", None)
    if spec in tvm.target.tag.list_tags():
        return _preset(spec.replace("/", "-"),
                       _on_this_machine(dict(tvm.target.Target(spec).export())),
                       f"TVM target tag {spec}", None)
    path = Path(spec)
    if path.suffix != ".json":
        path = PRESETS_DIR / f"{spec}.json"
        if not path.is_file():
            raise UserError(f"unknown target {spec!r}; presets: {', '.join(preset_names())} "
                            "(or the path of a preset .json file, a TVM target JSON dict or a "
                            "TVM target tag)")
    elif not path.is_file():
        raise UserError(f"target file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"target file {path} is not JSON ({error})") from error
    return _preset(path.stem, data, f"target file {path}", path)


def _on_this_machine(target: dict[str, Any]) -> dict[str, Any]:
    """A preset for a bare TVM target: an llvm target runs on this machine's CPU (with its
    cores unless given), a webgpu target on its Vulkan GPU."""
    devices = {"llvm": "host", "webgpu": "vulkan"}
    kind = target.get("kind")
    if kind not in devices:
        raise UserError(f"a {kind!r} target cannot run here: tvm_mobilenet builds llvm targets "
                        "for CPUs and webgpu targets for Vulkan")
    if kind == "llvm":
        target = {"num-cores": "auto", **target}
    return {"description": "a TVM target given on the command line", "target": target,
            "device": devices[kind]}


def _preset(name: str, data: Any, origin: str, path: Path | None) -> TargetPreset:
    """Validate a preset's JSON data; `origin` names it in errors."""
    if not (isinstance(data, dict) and isinstance(data.get("target"), dict)):
        raise UserError(f"{origin} is malformed: it needs a 'target' dict and a 'device'")
    try:
        preset = TargetPreset(name=name, description=data.get("description", ""),
                              target=_resolve_auto(data["target"]), device=data["device"],
                              notes=data.get("notes", ""), path=path,
                              rpc_key=data.get("rpc_key"),
                              cross_compiler=data.get("cross_compiler"),
                              tuning_target=data.get("tuning_target"),
                              detected_cpu=data["target"].get("mcpu") == "auto")
    except (KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{origin} is malformed ({type(error).__name__}: {error}); "
                        "it needs a 'target' dict and a 'device'") from error
    if preset.device == "rpc" and not preset.rpc_key:
        raise UserError(f"{origin}: an rpc device needs an 'rpc_key'")
    if preset.device not in DEVICES:
        raise UserError(f"{origin}: unknown device {preset.device!r}; "
                        f"expected one of {', '.join(DEVICES)}")
    if "num-cores" not in preset.target and preset.device != "vulkan":
        raise UserError(f"{origin}: the target needs 'num-cores' (MetaSchedule requires it)")
    try:
        preset.tvm_target, preset.tvm_tuning_target
    except (RuntimeError, ValueError, TypeError) as error:
        raise UserError(f"{origin}: TVM rejects the target "
                        f"({str(error).strip().splitlines()[-1]})") from error
    _check_cpu(preset.tvm_target, origin)
    return preset


def _check_cpu(target: tvm.target.Target, origin: str) -> None:
    """Refuse an `mcpu` LLVM does not know for the triple (LLVM itself would silently build
    for a generic CPU, without the vector units the preset names)."""
    cpu = target.attrs.get("mcpu")
    if target.kind.name != "llvm" or not cpu:
        return
    triple = str(target.attrs.get("mtriple") or "")
    if not tvm.target.codegen.llvm_is_valid_cpu(str(cpu), triple):
        raise UserError(f"{origin}: LLVM knows no CPU {cpu!r} for {triple or 'this machine'} "
                        "(see `llc -mtriple=TRIPLE -mcpu=help`)")
