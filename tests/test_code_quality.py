"""ARM code gauges: loops, FMAs and spills read off assembly, llvm-mca's estimate, and the
rpi4 default schedules' pointwise convs as register-tiled NEON loops."""

import statistics
import subprocess
import sys

from conftest import PROJECT_ROOT

from tvm_mobilenet.evaluate import code_quality

LISTING = """\
\t.type\tkernel_compute_,@function
kernel_compute_:
\tmov\tx8, xzr
.LBB0_1:
\tmov\tx9, xzr
.LBB0_2:
\tldr\tq0, [x1, x9]
\tfmla\tv1.4s, v0.4s, v2.s[0]
\tfmla\tv3.4s, v0.4s, v2.s[1]
\tadd\tx9, x9, #16
\tcmp\tx9, #256
\tb.ne\t.LBB0_2
\tstr\tq1, [sp, #32]
\tadd\tx8, x8, #1
\tcmp\tx8, #8
\tb.ne\t.LBB0_1
\tret
other_compute_:
\tret
"""


def test_the_hot_loop_is_the_innermost_with_fmas_and_spills_are_counted():
    functions = code_quality.functions(LISTING)
    assert set(functions) == {"kernel_compute_", "other_compute_"}
    [inner] = code_quality.innermost_loops(functions["kernel_compute_"])
    assert inner[0] == ".LBB0_2:" and inner[-1].strip().startswith("b.ne")
    gauge = code_quality.hot_loop("kernel_compute_", functions["kernel_compute_"],
                                  "aarch64-linux-gnu", "cortex-a72")
    assert (gauge.fmas, gauge.instructions, gauge.spills) == (2, 6, 1)
    assert 0 < gauge.fmas_per_cycle <= code_quality.fma_ceiling("aarch64-linux-gnu",
                                                                "cortex-a72")
    assert code_quality.hot_loop("other_compute_", functions["other_compute_"],
                                 "aarch64-linux-gnu", "cortex-a72") is None


def test_rpi4_default_pointwise_convs_are_register_tiled_neon_loops():
    """Each default pointwise tile holds 8 or more accumulators (enough FMAs in flight to hide
    their latency) and, in most kernels, never spills (an estimate, not a device timing)."""
    result = subprocess.run(
        [sys.executable, "benchmarks/arm_code.py", "--target", "rpi4", "--model",
         "mobilenet_v1", "--alpha", "0.25", "--resolution", "64", "--schedules", "defaults"],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert "A57 scheduling model to cortex-a72; not device timings" in result.stdout
    rows = [[cell.strip() for cell in line.split("|")[1:-1]]
            for line in result.stdout.splitlines() if line.startswith("| pointwise")]
    assert len(rows) >= 8, result.stdout
    assert all(int(row[2]) >= 8 for row in rows), result.stdout
    assert statistics.median(int(row[4]) for row in rows) == 0
    assert statistics.median(float(row[7].rstrip("%")) for row in rows) >= 90
