"""MetaSchedule's tensor intrinsics, imported with the light stack inspection, are TVM's own."""

import inspect
import subprocess
import sys

from conftest import PROJECT_ROOT

from tvm_mobilenet.tuning.intrinsics import FRAMES_WITH_SOURCE, light_stack

# Prints how many intrinsics are registered and a hash of their TVMScript.
INTRINSICS_DIGEST = """
import hashlib, sys
{importer}
from tvm.s_tir._tensor_intrin import TensorIntrin
names = sorted({{value for name, module in list(sys.modules.items())
                if name.startswith("tvm.s_tir.tensor_intrin")
                for key, value in vars(module).items()
                if isinstance(value, str) and key.endswith("INTRIN")}})
digest, count = hashlib.sha256(), 0
for name in names:
    intrin = TensorIntrin.get(name, allow_missing=True)
    if intrin is not None:
        count += 1
        for text in (name, intrin.desc.script(), intrin.impl.script()):
            digest.update(text.encode())
print(count, digest.hexdigest())
"""


def _nested(depth: int) -> tuple[list, list]:
    if depth:
        return _nested(depth - 1)
    return inspect.stack(), light_stack()


def test_light_stack_gives_the_frames_and_the_source_lines_tvmscript_reads():
    full, light = _nested(5)
    # The two calls sit on different lines of `_nested`; every outer frame is the same.
    assert [f.function for f in light] == [f.function for f in full]
    assert [(f.frame, f.filename, f.lineno) for f in light[1:]] == [
        (f.frame, f.filename, f.lineno) for f in full[1:]]
    assert light[0].code_context == ["    return inspect.stack(), light_stack()\n"]
    for mine, theirs in zip(light[1:FRAMES_WITH_SOURCE], full[1:FRAMES_WITH_SOURCE]):
        assert mine.code_context == theirs.code_context and mine.index == theirs.index == 0


def _digest(importer: str) -> str:
    result = subprocess.run([sys.executable, "-c", INTRINSICS_DIGEST.format(importer=importer)],
                            capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_intrinsics_imported_the_light_way_are_tvms_own():
    light = _digest("from tvm_mobilenet.tuning.intrinsics import import_tensor_intrinsics\n"
                    "import_tensor_intrinsics()")
    count = int(light.split()[0])
    assert count >= 100, light
    assert light == _digest("import tvm.s_tir.tensor_intrin")
