"""A built library's description: the ``.json`` written beside each ``.so`` (or inside a Vulkan
build's folder), with the input it expects and how it was made.

Building writes it; everything that loads a library (the runner, verify, bench, bundles) reads
it, so they need no further flags.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tvm_mobilenet import files
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import MAX_INPUT_BYTES


@dataclass(frozen=True)
class LibraryInfo:
    """What a built library expects and how it was made (the ``.json`` beside the ``.so``)."""

    input_name: str
    input_shape: tuple[int, ...]
    model: str
    #: The `ModelSource` fields, so `verify` can rebuild the same reference graph.
    source: dict
    target: str
    target_dict: dict
    tuning_log: str | None
    tvm_version: str
    #: Tracker key of the devices it runs on (device presets), None for this machine.
    rpc_key: str | None = None

    @staticmethod
    def path_for(library: Path) -> Path:
        """Beside a .so; inside a Vulkan build's folder."""
        return library.with_suffix(".json") if library.suffix == ".so" else library / "library.json"

    def save(self, library: Path) -> None:
        files.write_text(self.path_for(library), json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, library: Path) -> LibraryInfo:
        path = cls.path_for(library)
        if not path.is_file():
            raise UserError(f"{path} is missing: build the library with "
                            "`python -m tvm_mobilenet.build`, which writes it beside the .so")
        try:
            data = json.loads(path.read_text())
            info = cls(**data)
            problem = info._problem()
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as error:
            problem = str(error)
        if problem:
            raise UserError(f"{path} is not a library description written by "
                            f"tvm_mobilenet.build ({problem})")
        return replace(info, input_shape=tuple(info.input_shape))

    def _problem(self) -> str | None:
        """What is wrong with fields read from a file, if anything."""
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(getattr(self, name), kind):
                return f"{name} is {getattr(self, name)!r}"
        shape = self.input_shape
        if len(shape) != 4 or not all(type(size) is int and size > 0 for size in shape):
            return f"input_shape {shape!r} is not 4 positive sizes"
        if 4 * math.prod(shape) > MAX_INPUT_BYTES:
            return f"input_shape {list(shape)} is larger than any image batch tvm_mobilenet builds"
        return None


#: The type each field must have in a description read from a file.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "input_name": str, "input_shape": (list, tuple), "model": str, "source": dict,
    "target": str, "target_dict": dict, "tuning_log": (str, type(None)), "tvm_version": str,
    "rpc_key": (str, type(None))}
