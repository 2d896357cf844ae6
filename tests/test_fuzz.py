"""Fuzzing the file readers (`fuzz_readers.py`): seeded truncations, byte flips and repeated
chunks of valid files, then well-formed files that are wrong inside. Each mutated case must be
read or refused with one `UserError`, each wrong one refused; a crash, a hang, another exception
or a runaway allocation fails the test."""

import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

#: Mutated cases per reader (each reader takes 2-5 s for these on 2 cores).
CASES = {"onnx": 150, "tflite": 150, "target": 150, "library": 150, "log": 150,
         "checkpoint": 60, "plan": 150}
SEED = 2026
#: A reader that allocates more than this for a file of at most a few MB has run away.
PEAK_MEMORY_KIB = 3 * 1024 * 1024


@pytest.mark.parametrize("reader", CASES)
def test_a_reader_survives_fuzzing(reader):
    result = subprocess.run([sys.executable, "tests/fuzz_readers.py", reader,
                             str(CASES[reader]), str(SEED)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=240)
    cases = [line for line in result.stdout.splitlines() if line.startswith("case ")]
    assert result.returncode == 0, (f"crashed (code {result.returncode}) at "
                                    f"{cases[-1] if cases else 'the valid file'}\n"
                                    f"{result.stderr[-2000:]}")
    assert len(cases) == CASES[reader]
    bugs = [line for line in cases if "BUG" in line]
    assert not bugs, "\n".join(bugs)
    wrong = [line for line in result.stdout.splitlines() if line.startswith("wrong ")]
    assert wrong and all(line.endswith(": error") for line in wrong), "\n".join(wrong)
    peak = int(re.search(r"peak memory: (\d+) KiB", result.stdout).group(1))
    assert peak < PEAK_MEMORY_KIB
    outcomes = {kind: sum(line.endswith(kind) for line in cases) for kind in ("ok", "error")}
    print(f"{reader}: {len(cases)} cases, {outcomes['ok']} read, {outcomes['error']} refused, "
          f"{len(wrong)} wrong ones refused, peak {peak // 1024} MiB")
