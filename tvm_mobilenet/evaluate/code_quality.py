"""Gauges of generated ARM code, for targets this machine cannot time: the FMAs in each
kernel's hot loop, its register spills, and LLVM's machine-code analyser (llvm-mca) estimate
of the loop's cycles on the target CPU's scheduling model.

Every figure here is an *estimate* read off the assembly; llvm-mca models the core's
pipelines, not its caches or memory, so it bounds what the loop could do with its data in L1.
Only a device timing says what a kernel does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from tvm_mobilenet.errors import UserError

#: A NEON fused multiply-add (vector or by-element), single precision.
FMA = re.compile(r"^\s*fmla\s+v\d+\.\d*s")
#: A vector or FP register stored to or loaded from the stack: a spill or its reload.
SPILL = re.compile(r"^\s*(str|ldr|stp|ldp|stur|ldur)\s+[qd]\d+.*\[sp")
LABEL = re.compile(r"^(\.LBB\d+_\d+):")
BRANCH = re.compile(r"^\s*(b(\.\w+)?|cbn?z|tbn?z)\s+.*?(\.LBB\d+_\d+)\s*$")
FUNCTION = re.compile(r"^([A-Za-z_][\w.$]*):")
#: Independent FMAs that llvm-mca runs to find the core's FMA ceiling (enough accumulators
#: to cover any FMA latency).
CEILING_FMAS = 24


@dataclass(frozen=True)
class LoopGauge:
    """One kernel function's hot loop: the innermost loop with the most FMAs."""

    function: str
    fmas: int
    instructions: int
    spills: int
    #: llvm-mca's cycles per loop iteration, and FMAs per cycle at that rate (estimates).
    cycles: float
    fmas_per_cycle: float


def functions(assembly: str) -> dict[str, list[str]]:
    """Lines of each function of an LLVM assembly listing, by name."""
    found: dict[str, list[str]] = {}
    current = None
    for line in assembly.splitlines():
        match = FUNCTION.match(line)
        if match and not line.startswith("."):
            current = match.group(1)
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return found


def innermost_loops(lines: list[str]) -> list[list[str]]:
    """Bodies (label to backward branch) of the loops that contain no other loop."""
    labels = {match.group(1): index for index, line in enumerate(lines)
              if (match := LABEL.match(line))}
    loops = [(labels[match.group(3)], index) for index, line in enumerate(lines)
             if (match := BRANCH.match(line)) and labels.get(match.group(3), index) < index]
    return [lines[start:end + 1] for start, end in loops
            if not any(start <= other_start and other_end <= end and (other_start, other_end)
                       != (start, end) for other_start, other_end in loops)]


def instructions(body: list[str]) -> list[str]:
    """The instruction lines of a loop body (no labels, directives or comments)."""
    kept = []
    for line in body:
        text = line.split("//")[0].rstrip()
        if text.strip() and not text.lstrip().startswith(".") and not LABEL.match(text):
            kept.append(text)
    return kept


def _mca(body: list[str], mtriple: str, mcpu: str, iterations: int) -> str:
    """llvm-mca's report on the instruction lines `body`."""
    tool = shutil.which("llvm-mca") or shutil.which("llvm-mca-14")
    if tool is None:
        raise UserError("llvm-mca is not installed (Debian: apt-get install llvm)")
    result = subprocess.run([tool, f"-mtriple={mtriple}", f"-mcpu={mcpu}",
                             f"-iterations={iterations}"], input="\n".join(body) + "\n",
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or "Total Cycles:" not in result.stdout:
        raise UserError(f"llvm-mca failed on a loop: {result.stderr.strip()[-300:]}")
    return result.stdout


def mca_cycles(body: list[str], mtriple: str, mcpu: str, iterations: int = 200) -> float:
    """llvm-mca's estimate of cycles per iteration of the instruction lines `body`."""
    report = _mca(body, mtriple, mcpu, iterations)
    return int(re.search(r"Total Cycles:\s+(\d+)", report).group(1)) / iterations


def _ceiling_body() -> list[str]:
    return [f"fmla v{i}.4s, v30.4s, v31.4s" for i in range(CEILING_FMAS)]


def fma_ceiling(mtriple: str, mcpu: str) -> float:
    """FMAs per cycle llvm-mca's model of `mcpu` allows at most: independent 4-lane FMAs."""
    return CEILING_FMAS / mca_cycles(_ceiling_body(), mtriple, mcpu)


def scheduling_model(mtriple: str, mcpu: str) -> str:
    """The scheduling model llvm-mca applies to `mcpu`, by its resources' prefix (LLVM 14
    models the Cortex-A72 and A76 as a Cortex-A57, for example)."""
    report = _mca(_ceiling_body(), mtriple, mcpu, 1)
    match = re.search(r"^\[[\d.]+\]\s+-\s+([A-Za-z0-9]+?)Unit", report, re.MULTILINE)
    return match.group(1) if match else "an unnamed"


def hot_loop(name: str, lines: list[str], mtriple: str, mcpu: str) -> LoopGauge | None:
    """The gauge of function `name`'s innermost loop with the most FMAs (None: no FMA loop)."""
    loops = [instructions(body) for body in innermost_loops(lines)]
    loops = [body for body in loops if any(FMA.match(line) for line in body)]
    if not loops:
        return None
    body = max(loops, key=lambda b: sum(1 for line in b if FMA.match(line)))
    fmas = sum(1 for line in body if FMA.match(line))
    cycles = mca_cycles(body, mtriple, mcpu)
    return LoopGauge(name, fmas, len(body), sum(1 for line in lines if SPILL.match(line)),
                     cycles, fmas / cycles)
