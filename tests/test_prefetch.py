"""Weight prefetch: where it goes, that it changes no result, that the tile stays in registers."""

import numpy as np
import pytest
import tvm
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.target.vector_unit import vector_unit
from tvm_mobilenet.transform import prefetch
from tvm_mobilenet.transform.graph_passes import prepare
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.defaults import replay
from tvm_mobilenet.tuning.schedules import UNROLL_CHOICES
from tvm_mobilenet.tuning.tasks import extract_tasks, lower_for_tuning


@pytest.fixture(scope="module")
def v1_tasks():
    target = load_target("x86").tvm_tuning_target
    tasks = extract_tasks(import_model(ModelSource("mobilenet_v1")).mod, target)
    return target, {(t.kind, t.shape): t for t in tasks}


def tiled(task, target, pixels: int, vectors: int, unroll: int) -> tvm.IRModule:
    """`task` scheduled by our pointwise space ("pixels outer") with a register tile of
    `pixels` × `vectors` vectors and the `unroll` limit, as the tuner builds it."""
    lanes = vector_unit(target).lanes
    _, height, width, channels = (int(d) for d in task.mod["main"].params[-1].shape)
    sch = replay(task, target, "pixels outer",
                 [[height * width // pixels, pixels], [channels // lanes // vectors, vectors],
                  UNROLL_CHOICES.index(unroll)])
    assert sch is not None
    return RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(sch.mod)


def prefetch_count(func: tvm.tirx.PrimFunc) -> int:
    return func.script().count("T.prefetch(")


def outputs(kernel, mod: tvm.IRModule) -> np.ndarray:
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in p.shape]).astype(p.dtype))
            for p in mod["main"].params]
    kernel(*args)
    return args[-1].numpy()


def test_weights_are_prefetched_in_the_register_tile_loop(v1_tasks):
    """14×14×512→512 (1 MiB of weights) with 14 pixels × 2 vectors of accumulators: per
    in-channel step the tile reads 2 vectors of weights, 2 cache lines, so 2 prefetches; the
    result is bit-identical, and the tile (1.75 KiB) is no longer a heap workspace."""
    target, tasks = v1_tasks
    mod = tiled(tasks["pointwise", "14x14x512->512 k1 s1"], target, pixels=14, vectors=2,
                unroll=16)
    assert prefetch_count(mod["main"]) == 0
    assert prefetch_count(prefetch.insert_weight_prefetch(mod["main"])) == 2
    plain = tvm.tirx.build(mod, target=target)
    prefetching = tvm.tirx.build(mod, target=target, pipeline=prefetch.PIPELINE)
    np.testing.assert_array_equal(outputs(prefetching, mod), outputs(plain, mod))
    assert "prefetcht0" in prefetching.inspect_source("asm")
    assert "TVMBackendAllocWorkspace" in plain.inspect_source("ll")
    assert "TVMBackendAllocWorkspace" not in prefetching.inspect_source("ll")


def test_no_prefetch_where_the_tile_cannot_stay_in_registers(v1_tasks):
    """14 pixels × 4 vectors (3.5 KiB of accumulators), all its loops unrolled (the epilogue's
    too, with the unroll limit 512), is more than the registers hold: on the stack LLVM would
    split it into registers that spill, in a heap workspace the prefetch would force it to
    memory at every step; so the pipeline drops the prefetch. (With the epilogue's loops kept,
    the tile stays in memory on the stack, like in the workspace, and keeps its prefetch.)"""
    target, tasks = v1_tasks
    mod = tiled(tasks["pointwise", "14x14x512->512 k1 s1"], target, pixels=14, vectors=4,
                unroll=512)
    assert prefetch_count(prefetch.insert_weight_prefetch(mod["main"])) > 0
    built = tvm.tirx.build(mod, target=target, pipeline=prefetch.PIPELINE)
    assert "llvm.prefetch" not in built.inspect_source("ll")


@pytest.mark.parametrize("kind, shape", [("pointwise", "56x56x64->128 k1 s1"),
                                         ("depthwise", "14x14x512->512 k3 s1 g512")])
def test_small_weights_are_left_to_the_caches(v1_tasks, kind, shape):
    """32 KiB of pointwise weights and 18 KiB of depthwise ones: no prefetch."""
    _, tasks = v1_tasks
    func = tasks[kind, shape].mod["main"]
    assert prefetch.insert_weight_prefetch(func).same_as(func)


def test_packed_kernels_keep_their_names_and_weight_marks():
    """In a tuned model the packed-weight kernels are marked so the prefetch finds their
    weights, and keep the ``<task>_prepacked`` names that the profiler matches."""
    preset = load_target("x86")
    source = ModelSource("mobilenet_v1")
    database = tuning_log.open_schedules(tuning_log.log_dir("x86-rocketlake", source.tuning_label))
    mod = lower_for_tuning(prepare(import_model(source).mod), preset.tvm_target, database)
    packed = {gv.name_hint: func for gv, func in mod.functions.items()
              if gv.name_hint.endswith("_prepacked")}
    assert len(packed) >= 20
    for name, func in packed.items():
        assert list(func.attrs["layout_free_buffers"]) == [1, 2], name
