"""`tvm-mobilenet targets`: list the target presets."""

from __future__ import annotations

import json
import sys

from tvm_mobilenet.cli.common import parser_for, run_cli
from tvm_mobilenet.target.presets import ALIASES, PRESETS_DIR, load_target, preset_names


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("targets", f"List the target presets in {PRESETS_DIR}.")
    args = parser.parse_args(argv)

    def run() -> None:
        for name in preset_names():
            preset = load_target(name)
            print(f"{name:<14} {preset.description}\n{'':<14} {json.dumps(preset.target)}")
        for alias, name in ALIASES.items():
            print(f"{alias:<14} alias of {name}")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
