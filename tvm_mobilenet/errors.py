"""The errors the library raises for problems with what the user gave it.

Every stage raises `UserError` (or a subclass) for bad input: a model, target, log, library or
flag that cannot be used. The command line turns it into one ``error: ...`` line and exit code
2 (`tvm_mobilenet.cli.common.run_cli`); anything else is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: reported as one line, without a traceback."""


class VulkanUnavailable(UserError):
    """No usable Vulkan adapter (or no wgpu)."""
