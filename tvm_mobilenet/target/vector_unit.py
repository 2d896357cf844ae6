"""A CPU target's vector registers, as far as a register tile needs them."""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm.target.codegen import target_has_features


@dataclass(frozen=True)
class VectorUnit:
    """A CPU's vector registers, as far as a register tile needs them."""

    lanes: int
    registers: int


def vector_unit(target: tvm.target.Target) -> VectorUnit:
    """Float32 lanes per vector register and the number of vector registers of `target`."""
    triple = str(target.attrs.get("mtriple", ""))
    if triple.startswith("aarch64"):
        return VectorUnit(lanes=4, registers=32)
    if triple.startswith("arm"):
        return VectorUnit(lanes=4, registers=16)
    if target_has_features("avx512f", target):
        return VectorUnit(lanes=16, registers=32)
    if target_has_features("avx2", target):
        return VectorUnit(lanes=8, registers=16)
    return VectorUnit(lanes=4, registers=16)
