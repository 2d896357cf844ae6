"""A built library's description: the ``.json`` written beside each ``.so`` (or inside a Vulkan
build's folder), with the input it expects and how it was made.

Building writes it; everything that loads a library (the runner, verify, bench, bundles) reads
it, so they need no further flags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tvm_mobilenet.errors import UserError


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
        self.path_for(library).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, library: Path) -> LibraryInfo:
        path = cls.path_for(library)
        if not path.is_file():
            raise UserError(f"{path} is missing: build the library with "
                            "`python -m tvm_mobilenet.build`, which writes it beside the .so")
        try:
            data = json.loads(path.read_text())
            data["input_shape"] = tuple(data["input_shape"])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UserError(f"{path} is not a library description written by "
                            f"tvm_mobilenet.build ({error})") from error
