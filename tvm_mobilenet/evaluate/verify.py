"""Check a built library against the independent NumPy reference of the same ONNX graph.

    python -m tvm_mobilenet.verify mobilenet_v2.so --model mobilenet_v2

Tolerance (fp32): the largest absolute difference from the float64 reference, divided by the
largest reference magnitude, must be at most 1e-4. Float32 rounding (unit roundoff 6e-8)
accumulated over a few thousand products per output and ~50 layers gives about 1e-6 here;
1e-4 leaves room for the re-associated sums of tuned kernels, while a real defect (a wrong
weight, layout or seed) shows errors of order 1e-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from tvm_mobilenet.reference import interpreter as reference
from tvm_mobilenet.runtime.runner import Library

DEFAULT_RTOL = 1e-4
TOP_K = 5


@dataclass(frozen=True)
class Comparison:
    """How one output compares with its reference."""

    max_abs_error: float
    rel_error: float  # max abs error / max |reference|
    top1_agrees: bool
    topk_agrees: bool  # the same set of top-5 classes

    def passes(self, rtol: float) -> bool:
        return self.rel_error <= rtol


def compare(output: np.ndarray, expected: np.ndarray) -> Comparison:
    output, expected = output.reshape(-1), expected.reshape(-1)
    error = float(np.abs(output.astype(np.float64) - expected).max())
    scale = float(np.abs(expected).max()) or 1.0
    top_out, top_ref = np.argsort(-output)[:TOP_K], np.argsort(-expected)[:TOP_K]
    return Comparison(error, error / scale, bool(top_out[0] == top_ref[0]),
                      set(top_out.tolist()) == set(top_ref.tolist()))


def seeded_inputs(shape: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    """Standard-normal float32 inputs (the scale of ImageNet-normalised images)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


def verify_library(library: Library, model: onnx.ModelProto, count: int = 2,
                   seed: int = 1234) -> list[Comparison]:
    """Run the library and the NumPy reference on `count` seeded inputs and compare."""
    results = []
    for x in seeded_inputs(library.info.input_shape, count, seed):
        expected = reference.run(model, {library.info.input_name: x})[0]
        results.append(compare(library.run(x), expected))
    return results


def report(comparisons: list[Comparison], rtol: float) -> str:
    lines = []
    for index, c in enumerate(comparisons):
        lines.append(f"input {index}: max abs error {c.max_abs_error:.3e}, relative "
                     f"{c.rel_error:.3e} (tolerance {rtol:g}), top-1 "
                     f"{'agrees' if c.top1_agrees else 'DIFFERS'}, top-5 "
                     f"{'agrees' if c.topk_agrees else 'DIFFERS'}  "
                     f"{'ok' if c.passes(rtol) else 'FAIL'}")
    return "\n".join(lines)
