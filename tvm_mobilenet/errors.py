"""The errors the library raises for problems with what the user gave it.

Every stage raises `UserError` (or a subclass) for bad input: a model, target, log, library or
flag that cannot be used. The command line turns it into one ``error: ...`` line and exit code
2 (`tvm_mobilenet.cli.common.run_cli`); anything else is a bug.
"""

from __future__ import annotations

import subprocess


class UserError(Exception):
    """A problem with the user's input: reported as one line, without a traceback."""


class VulkanUnavailable(UserError):
    """No usable Vulkan adapter (or no wgpu)."""


def run_tool(command: list[str], what: str, tail: int = 5, **kwargs) -> None:
    """Run an external tool (apt-get, dpkg, pip, cmake); if it fails, raise a `UserError`
    naming `what`, with the last `tail` lines the tool printed."""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        lines = "\n".join((result.stderr or result.stdout).strip().splitlines()[-tail:])
        raise UserError(f"{what} failed ({' '.join(command[:3])} ...):\n{lines}")
