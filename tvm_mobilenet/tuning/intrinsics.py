"""MetaSchedule's tensor intrinsics, imported without TVMScript's costly stack inspection.

Every `ms.TuneContext` imports `tvm.s_tir.tensor_intrin`, which parses 110 intrinsics with
`@T.prim_func`. Each parse calls `inspect.stack()`, and that looks up the source file, module
and source lines of every frame on the stack, scanning `sys.modules` for frames it cannot
place. Measured here: the import took 15.5 s at a script's top level, and 91 s 60 frames deep
with 1600 modules loaded (inside pytest). The parser uses only the frames themselves and the
source line of its caller's caller (`tvm.script.parser.core.utils`), so during the import
`inspect.stack` returns just those: 2-3.5 s, and the same 110 intrinsics (their TVMScript is
identical, checked in the tests).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import linecache
import sys
from typing import Iterator

#: Frames whose source line is read: TVMScript looks at the third (a class decorator?).
FRAMES_WITH_SOURCE = 3


def light_stack(context: int = 1) -> list[inspect.FrameInfo]:
    """`inspect.stack()` without module lookups: source lines only for the innermost
    `FRAMES_WITH_SOURCE` frames (`context` is accepted and ignored: one line)."""
    frame = sys._getframe(1)
    frames = []
    while frame is not None:
        code = frame.f_code
        line = (linecache.getline(code.co_filename, frame.f_lineno)
                if len(frames) < FRAMES_WITH_SOURCE else "")
        frames.append(inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name,
                                        [line] if line else None, 0 if line else None))
        frame = frame.f_back
    return frames


@contextlib.contextmanager
def light_stack_inspection() -> Iterator[None]:
    """Within the block, `inspect.stack` is `light_stack`."""
    original = inspect.stack
    inspect.stack = light_stack
    try:
        yield
    finally:
        inspect.stack = original


def import_tensor_intrinsics() -> None:
    """Import `tvm.s_tir.tensor_intrin` the fast way (a no-op once it is imported)."""
    with light_stack_inspection():
        importlib.import_module("tvm.s_tir.tensor_intrin")  # registers the intrinsics
