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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm

from .cli import UserError, run_cli

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"
#: Where a library runs: this machine's CPU, a device reached through TVM's RPC, or this
#: machine's Vulkan GPU (through wgpu, see wgpu_executor.py).
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


def _resolve_auto(target: dict[str, Any]) -> dict[str, Any]:
    resolved = dict(target)
    if resolved.get("mcpu") == "auto":
        resolved["mcpu"] = host_cpu()
    if resolved.get("num-cores") == "auto":
        resolved["num-cores"] = host_cores()
    return resolved


def preset_names() -> list[str]:
    return sorted(path.stem for path in TARGETS_DIR.glob("*.json"))


def load_target(spec: str) -> TargetPreset:
    """A preset by name (``x86``) or by file path; raises `UserError` with the choices."""
    spec = ALIASES.get(spec, spec)
    path = Path(spec)
    if path.suffix != ".json":
        path = TARGETS_DIR / f"{spec}.json"
        if not path.is_file():
            raise UserError(f"unknown target {spec!r}; presets: {', '.join(preset_names())} "
                            "(or give the path of a target .json file)")
    elif not path.is_file():
        raise UserError(f"target file {path} does not exist")
    try:
        data = json.loads(path.read_text())
        preset = TargetPreset(name=path.stem, description=data.get("description", ""),
                              target=_resolve_auto(data["target"]), device=data["device"],
                              notes=data.get("notes", ""), path=path,
                              rpc_key=data.get("rpc_key"),
                              cross_compiler=data.get("cross_compiler"),
                              tuning_target=data.get("tuning_target"),
                              detected_cpu=data["target"].get("mcpu") == "auto")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"target file {path} is malformed ({type(error).__name__}: {error}); "
                        "it needs a 'target' dict and a 'device'") from error
    if preset.device == "rpc" and not preset.rpc_key:
        raise UserError(f"target file {path}: an rpc device needs an 'rpc_key'")
    if preset.device not in DEVICES:
        raise UserError(f"target file {path}: unknown device {preset.device!r}; "
                        f"expected one of {', '.join(DEVICES)}")
    if "num-cores" not in preset.target and preset.device != "vulkan":
        raise UserError(f"target file {path}: the target needs 'num-cores' (MetaSchedule "
                        "requires it)")
    try:
        preset.tvm_target, preset.tvm_tuning_target
    except (RuntimeError, ValueError, TypeError) as error:
        raise UserError(f"target file {path}: TVM rejects the target "
                        f"({str(error).strip().splitlines()[-1]})") from error
    return preset


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tvm_mobilenet.targets",
                                     description=f"List the target presets in {TARGETS_DIR}.")
    parser.parse_args(argv)

    def run() -> None:
        for name in preset_names():
            preset = load_target(name)
            print(f"{name:<14} {preset.description}\n{'':<14} {json.dumps(preset.target)}")
        for alias, name in ALIASES.items():
            print(f"{alias:<14} alias of {name}")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
