"""Default schedules from the target's vector unit, and records found by kernel in any log."""

from __future__ import annotations

import math
import shutil

import pytest

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, verify_library
from tvm_mobilenet.frontend.importer import ModelSource, import_model, onnx_model
from tvm_mobilenet.runtime.runner import load_local
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.target.vector_unit import VectorUnit, vector_unit
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.defaults import (
    LARGE_LAYER_PIXEL_TILE,
    LARGE_LAYER_PIXELS,
    direct_tile,
    pointwise_tile,
)
from tvm_mobilenet.tuning.lookup import (
    DEFAULT_SOURCE,
    PLAIN_SOURCE,
    compatible_logs,
    log_target_name,
    lookup_schedules,
    schedules_for,
)
from tvm_mobilenet.tuning.schedules import SPACES
from tvm_mobilenet.tuning.tasks import extract_tasks

SMALL_V2 = ModelSource("mobilenet_v2", 0.35, 96)


@pytest.mark.parametrize("preset, unit", [("x86-avx512", VectorUnit(16, 32)),
                                          ("x86-avx2", VectorUnit(8, 16)),
                                          ("rpi4", VectorUnit(4, 32)), ("rpi3", VectorUnit(4, 16))])
def test_vector_unit_follows_the_isa(preset, unit):
    assert vector_unit(load_target(preset).tvm_target) == unit


@pytest.mark.parametrize("unit", [VectorUnit(16, 32), VectorUnit(8, 16), VectorUnit(4, 16)])
@pytest.mark.parametrize("pixels, vectors", [(3136, 8), (196, 32), (49, 64), (12544, 2)])
def test_pointwise_tiles_fill_the_registers_without_spilling(unit, pixels, vectors):
    m1, f1 = pointwise_tile(pixels, vectors, unit)
    assert pixels % m1 == 0 and vectors % f1 == 0
    assert m1 * f1 + f1 + 1 <= unit.registers
    if pixels >= LARGE_LAYER_PIXELS:
        assert m1 <= LARGE_LAYER_PIXEL_TILE
    else:  # most registers accumulate: at least 14 of 32 for 49 pixels (7 × 2 vectors)
        assert m1 * f1 >= unit.registers * 7 // 16


@pytest.mark.parametrize("unit", [VectorUnit(16, 32), VectorUnit(8, 16), VectorUnit(4, 32)])
@pytest.mark.parametrize("height, channels", [(56, 144), (7, 960), (112, 32), (14, 24)])
def test_depthwise_tiles_are_whole_vectors_that_fit(unit, height, channels):
    y1, f1 = direct_tile(height, channels, unit)
    vectors = max(1, f1 // unit.lanes)
    assert height % y1 == 0 and channels % f1 == 0
    # Whole vectors, or the part of one that the channels fill (24 channels, 16 lanes: 8).
    assert f1 % unit.lanes == 0 or f1 == math.gcd(channels, unit.lanes)
    assert y1 * vectors + vectors + 1 <= unit.registers


def test_default_schedules_build_a_verified_library(tmp_path):
    preset = load_target("x86")
    imported = import_model(SMALL_V2)
    schedules = schedules_for(imported.mod, preset, logs=[])
    tasks = extract_tasks(imported.mod, preset.tvm_target)
    for task in tasks:
        expected = DEFAULT_SOURCE if task.kind in SPACES else PLAIN_SOURCE
        assert schedules.sources[task.name] == expected, task
    path = tmp_path / "defaults.so"
    info = build_library(imported, preset, path, SMALL_V2, schedules)
    assert DEFAULT_SOURCE in info.tuning_log
    comparisons = verify_library(load_local(path), onnx_model(SMALL_V2))
    assert all(c.passes(DEFAULT_RTOL) for c in comparisons), comparisons


def test_kernels_are_found_by_workload_in_another_models_log(tmp_path):
    """A model without a log of its own (here V1 at α 1.0, 224, whose stem and first
    depthwise conv are V2's) takes the records of a log tuned for another model."""
    preset = load_target("x86")
    committed = tuning_log.log_dir("x86-znver4", "mobilenet_v2-1.0-224")
    lender = tuning_log.log_dir(log_target_name(preset), "mobilenet_v2-1.0-224", tmp_path)
    shutil.copytree(committed / tuning_log.SELECTED_DIR, lender / tuning_log.SELECTED_DIR)
    shutil.copy(committed / tuning_log.SUMMARY_FILE, lender)
    v1 = ModelSource("mobilenet_v1")
    logs = compatible_logs(preset, v1.tuning_label, tmp_path)
    assert logs == [lender]
    tasks = extract_tasks(import_model(v1).mod, preset.tvm_target)
    schedules = lookup_schedules(tasks, preset.tvm_target, logs, defaults=False)
    borrowed = [task for task in tasks if schedules.sources[task.name] == str(lender)]
    assert {task.kind for task in borrowed} >= {"stem", "depthwise"}, schedules.sources
    assert len(borrowed) < len(tasks)
