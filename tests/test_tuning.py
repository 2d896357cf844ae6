"""Tuning: exact task classification, resumable logs, verified tuned builds, clear log errors."""

import os
import shutil
from collections import Counter

import numpy as np
import pytest
import tvm
from conftest import run_module
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, verify_library
from tvm_mobilenet.frontend.importer import ModelSource, import_model, onnx_model
from tvm_mobilenet.models.architectures import architecture
from tvm_mobilenet.pipeline import logged_tasks
from tvm_mobilenet.runtime.runner import load_local
from tvm_mobilenet.target.presets import host_cpu, load_target
from tvm_mobilenet.target.vector_unit import vector_unit
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning import selection
from tvm_mobilenet.tuning import tuner as tuner_module
from tvm_mobilenet.tuning.defaults import default_record
from tvm_mobilenet.tuning.lookup import (
    compatible_logs,
    log_target_name,
    schedules_for,
    transfer_logs,
)
from tvm_mobilenet.tuning.schedules import (
    POINTWISE_ORDERS,
    direct_conv_space,
    pointwise_order,
    pointwise_space,
    space_generator,
)
from tvm_mobilenet.tuning.selection import best_record, select
from tvm_mobilenet.tuning.tasks import extract_tasks
from tvm_mobilenet.tuning.tuner import tune_tasks

POINTWISE_LAYERS = ("pointwise", "expand", "project")
#: The committed logs' folder for the AMD Zen 4 machine they were tuned on (read on any CPU).
ZNVER4 = "x86-znver4"


def expected_tasks(arch) -> tuple[Counter, Counter]:
    """From the layer table: distinct fused kernels per kind, and layers per kind."""
    distinct, layers = Counter(), Counter()
    seen = set()
    for layer in arch.layers:
        kind = "pointwise" if layer.kind in POINTWISE_LAYERS else layer.kind
        if kind not in ("depthwise", "pointwise"):
            continue
        signature = (kind, layer.in_size, layer.in_channels, layer.out_channels, layer.stride,
                     layer.relu6, layer.residual_from is not None)
        layers[kind] += 1
        if signature not in seen:
            seen.add(signature)
            distinct[kind] += 1
    return distinct, layers


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_task_classification_matches_layer_table(name):
    arch = architecture(name, 1.0, 224)
    tasks = extract_tasks(import_model(ModelSource(name)).mod, load_target("x86").tvm_target)
    distinct, layers = expected_tasks(arch)
    for kind in ("depthwise", "pointwise"):
        of_kind = [task for task in tasks if task.kind == kind]
        assert len(of_kind) == distinct[kind], kind
        assert sum(task.weight for task in of_kind) == layers[kind], kind
    assert [task.kind for task in tasks].count("stem") == 1
    assert [task.kind for task in tasks].count("classifier") == 1


def test_list_tasks_cli():
    result = run_module("tune", "--list-tasks", "--model", "mobilenet_v2")
    assert result.returncode == 0, result.stderr
    assert "10 depthwise, 19 pointwise, 1 stem, 1 classifier" in result.stdout


SMALL = ModelSource("mobilenet_v1", 0.25, 64)


def test_tune_resumes_and_tuned_build_verifies(tmp_path, monkeypatch):
    preset = load_target("x86")
    imported = import_model(SMALL)
    tasks = extract_tasks(imported.mod, preset.tvm_target)
    chosen = [next(t for t in tasks if t.kind == "depthwise"),
              next(t for t in tasks if t.kind == "pointwise")]
    log = tuning_log.log_dir(preset.name, SMALL.label, tmp_path)
    first = tune_tasks(chosen, preset.tvm_target, log, trials=4)
    assert sum(p.trials for p in first) == 4 == tuning_log.record_count(log)
    # What `tune` picks and summarises after tuning some kinds: every task the log covers.
    assert logged_tasks(tasks, log) == chosen
    select(chosen, preset.tvm_target, log, (1, 2))
    assert tuning_log.has_selection(log)
    second = tune_tasks(chosen, preset.tvm_target, log, trials=8)
    assert sum(p.trials for p in second) == 8 == tuning_log.record_count(log)
    assert all(p.trials > 0 for p in second)
    assert not tuning_log.has_selection(log), "new records must void the picks"
    # Picking stopped after the first task (as by Ctrl-C) leaves no picks: builds use the log.
    measure, measured = selection._measure, []

    def measure_one_task(*args):
        if measured:
            raise KeyboardInterrupt
        measured.append(args[0])
        return measure(*args)

    with monkeypatch.context() as patch:
        patch.setattr(selection, "_measure", measure_one_task)
        with pytest.raises(KeyboardInterrupt):
            select(chosen, preset.tvm_target, log, (1, 2))
    assert measured and not tuning_log.has_selection(log)
    assert len(tuning_log.open_schedules(log).get_all_tuning_records()) == 8
    picks = select(chosen, preset.tvm_target, log, (1, 2))
    database, schedules = tuning_log.open_database(log), tuning_log.open_schedules(log)
    assert len(schedules.get_all_tuning_records()) == len(picks) == 2
    for task, pick in zip(chosen, picks, strict=True):
        logged = database.get_top_k(database.commit_workload(task.mod), 100)
        if pick.borrowed_from != selection.DEFAULT_SCHEDULE:
            assert str(pick.record.trace) == str(logged[pick.rank].trace)
        used = best_record(task, schedules, preset.tvm_target)
        assert str(used.trace) == str(pick.record.trace)
        assert all(pick.picked[t] > 0 for t in (1, 2))
    library_path = tmp_path / "tuned.so"
    schedules = schedules_for(imported.mod, preset, [log], defaults=False)
    assert [schedules.sources[task.name] for task in chosen] == [str(log)] * 2
    info = build_library(imported, preset, library_path, SMALL, schedules)
    assert f"2 from {log}" in info.tuning_log
    comparisons = verify_library(load_local(library_path), onnx_model(SMALL))
    assert all(c.passes(DEFAULT_RTOL) for c in comparisons)
    # A slim log keeps each task's fastest records and the picks, counts the trials it had,
    # and both picking and resuming work from it.
    fastest = {task.name: [str(r.trace) for r in database.get_top_k(
        database.commit_workload(task.mod), 2)] for task in chosen}
    assert tuning_log.slim(log, keep=2) == (8, 4)
    slim = tuning_log.open_database(log)
    for task in chosen:
        kept = slim.get_top_k(slim.commit_workload(task.mod), 100)
        assert [str(r.trace) for r in kept] == fastest[task.name]
    assert tuning_log.trials_spent(log) == 8 and tuning_log.has_selection(log)
    assert sum(p.trials for p in tune_tasks(chosen, preset.tvm_target, log, trials=8)) == 4
    assert tuning_log.has_selection(log), "a finished tune stays finished after slimming"
    tune_tasks(chosen, preset.tvm_target, log, trials=10)
    assert tuning_log.record_count(log) == 6
    assert len(select(chosen, preset.tvm_target, log, (1, 2))) == 2


def test_a_build_takes_its_own_log_first_then_other_cpus_with_the_same_vector_unit(tmp_path):
    """Host presets keep a log per CPU model. A build takes the model's own log, then the
    other logs of its CPU folder, then the same preset's logs of CPUs with this one's vector
    registers (the same model's first); never another preset's, nor another vector unit's."""
    preset = load_target("x86")
    assert log_target_name(preset) == f"x86-{host_cpu()}"
    label, other_model = "mobilenet_v1-1.0-224", "mobilenet_v2-1.0-224"
    assert compatible_logs(preset, label, tmp_path) == []
    committed = tuning_log.log_dir(ZNVER4, label)

    def lend(folder: str, model: str, preset_name: str, cpu: str):
        log = tuning_log.log_dir(folder, model, tmp_path)
        shutil.copytree(committed / tuning_log.SELECTED_DIR, log / tuning_log.SELECTED_DIR)
        summary = tuning_log.read_summary(committed)
        tuning_log.write_summary(log, {**summary, "target_preset": preset_name,
                                       "target": {**summary["target"], "mcpu": cpu}})
        return log

    other_unit = "haswell" if vector_unit(preset.tvm_target).lanes == 16 else "skylake-avx512"
    lend("x86-avx2-haswell", label, "x86-avx2", host_cpu())
    lend("x86-othercpu", label, "x86", other_unit)
    assert compatible_logs(preset, label, tmp_path) == []
    same_unit_other_model = lend("x86-samecpu", other_model, "x86", host_cpu())
    same_unit = lend("x86-samecpu2", label, "x86", host_cpu())
    assert compatible_logs(preset, label, tmp_path) == [same_unit, same_unit_other_model]
    own_other_model = lend(log_target_name(preset), other_model, "x86", host_cpu())
    own = lend(log_target_name(preset), label, "x86", host_cpu())
    assert compatible_logs(preset, label, tmp_path) == [own, own_other_model, same_unit,
                                                        same_unit_other_model]
    # A new log starts from every other log of the preset, whatever its CPU (re-measured).
    other_unit_log = tuning_log.log_dir("x86-othercpu", label, tmp_path)
    assert transfer_logs(preset, label, tmp_path) == [own_other_model, other_unit_log,
                                                      same_unit_other_model, same_unit]


def test_picks_also_measure_records_borrowed_from_the_targets_other_logs(tmp_path, monkeypatch,
                                                                          caplog):
    """MobileNetV2's stem is MobileNetV1's: a pick weighs every log of the target that has the
    task, re-measured side by side; a log being tuned is left alone."""
    preset = load_target("x86")
    target = preset.tvm_target
    task = next(t for t in extract_tasks(import_model(SMALL).mod, target) if t.kind == "depthwise")
    mine, other = (tuning_log.log_dir(preset.name, label, tmp_path) for label in ("mine", "other"))
    tune_tasks([task], target, other, trials=3, seed=1)
    tune_tasks([task], target, mine, trials=1)
    others = tuning_log.open_database(other)
    borrowable = [str(r.trace) for r in others.get_top_k(others.commit_workload(task.mod), 10)
                  if r.run_secs and selection.mean_seconds(r) < tuning_log.FAILED_SECONDS]
    assert borrowable
    measured = []
    original = selection._measure
    monkeypatch.setattr(selection, "_measure", lambda task, target, records, threads: (
        measured.append(len(records)) or original(task, target, records, threads)))

    [pick] = select([task], target, mine, (1,))
    # This log's record, the borrowable ones and the task's default schedule, each once.
    own = tuning_log.open_database(mine)
    [own_record] = own.get_top_k(own.commit_workload(task.mod), 10)
    default = str(default_record(task, target, ms.database.MemoryDatabase()).trace)
    assert measured == [len({str(own_record.trace), default, *borrowable})]
    if pick.borrowed_from is None:
        assert pick.rank == 0
    elif pick.borrowed_from != selection.DEFAULT_SCHEDULE:
        assert pick.borrowed_from == "other" and str(pick.record.trace) in borrowable

    with tuning_log.exclusive(other):  # as while it is tuned
        select([task], target, mine, (1,))
    assert measured[-1] == len({str(own_record.trace), default})
    assert f"not borrowing records: {other} is being tuned" in caplog.text


def test_corrupted_log_names_the_file(tmp_path):
    (tmp_path / tuning_log.RECORD_FILE).write_text('[0, [1, 2, 3, 4]]\nthis is not json\n'
                                                   '[0, [1, 2, 3, 4]]\n')
    with pytest.raises(UserError, match=r"database_tuning_record.json line 2 .*corrupted"):
        tuning_log.check_log(tmp_path)


def test_foreign_log_is_rejected(tmp_path):
    (tmp_path / tuning_log.WORKLOAD_FILE).write_text('{"autotvm": "v0.2"}\n')
    with pytest.raises(UserError, match="database_workload.json line 1"):
        tuning_log.open_database(tmp_path)


def test_torn_last_line_is_repaired(tmp_path):
    path = tmp_path / tuning_log.RECORD_FILE
    path.write_text('[0, [1, 2, 3, 4]]\n[0, [1, 2')
    warnings = tuning_log.check_log(tmp_path)
    assert len(warnings) == 1 and "torn" in warnings[0]
    assert path.read_text() == '[0, [1, 2, 3, 4]]\n'


def test_second_tuner_on_same_log_is_refused(tmp_path):
    with tuning_log.exclusive(tmp_path):
        with pytest.raises(UserError, match="being tuned by another process"):
            with tuning_log.exclusive(tmp_path):
                pass
        # The refused attempt (picks read other logs this way) keeps the holder's pid.
        assert (tmp_path / tuning_log.LOCK_FILE).read_text() == str(os.getpid())


def test_build_cli_reports_corrupted_log(tmp_path):
    log = tuning_log.log_dir(log_target_name(load_target("x86")), "mobilenet_v1-0.25-64",
                             tmp_path)
    log.mkdir(parents=True)
    (log / tuning_log.RECORD_FILE).write_text("garbage\n[0, [1, 2, 3, 4]]\n")
    result = run_module("build", "--model", "mobilenet_v1", "--alpha", "0.25", "--resolution",
                        "64", "--log-dir", str(tmp_path), "-o", str(tmp_path / "x.so"))
    assert result.returncode == 2
    assert "database_tuning_record.json line 1" in result.stderr


def test_unknown_op_kind_is_rejected():
    result = run_module("tune", "--ops", "winograd")
    assert result.returncode == 2 and "unknown op kind(s) winograd" in result.stderr


def test_plot_of_committed_summary(tmp_path):
    from tvm_mobilenet.tuning.plot import plot_task_latencies

    summary = tuning_log.read_summary(tuning_log.log_dir(ZNVER4, "mobilenet_v1-1.0-224"))
    path = tmp_path / "v1.png"
    plot_task_latencies(summary["tasks"], "mobilenet_v1", path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_pointwise_order_is_read_off_each_design_space():
    target = load_target("x86").tvm_tuning_target
    tasks = extract_tasks(import_model(SMALL).mod, target)
    pointwise = next(t for t in tasks if t.kind == "pointwise")
    spaces = pointwise_space(2, 16)(Schedule(pointwise.mod, seed=1))
    assert [pointwise_order(s.trace) for s in spaces] == list(POINTWISE_ORDERS)
    depthwise = Schedule(next(t for t in tasks if t.kind == "depthwise").mod, seed=1)
    direct_conv_space(2)(depthwise)
    assert pointwise_order(depthwise.trace) is None


def test_pointwise_tiles_may_cross_rows_and_hold_three_vectors():
    """A 14x14 conv tiled 4 pixels (tiles that cross rows) × 3 vectors of out-channels at a
    time, in each loop order: the schedule passes MetaSchedule's postprocessors (no loop of
    dynamic extent), computes what the untuned kernel computes, and vectorises one vector at a
    time (LLVM builds a vector of 48 floats lane by lane)."""
    target = load_target("x86").tvm_tuning_target
    lanes = vector_unit(target).lanes
    tasks = extract_tasks(import_model(ModelSource("mobilenet_v2")).mod, target)
    task = next(t for t in tasks if t.shape == "14x14x96->576 k1 s1")
    untuned, args = selection.compile_kernel(task, target)
    expected = run_into_nans(untuned, args)
    context = ms.TuneContext(mod=task.mod, target=target, task_name=task.name,
                             space_generator=space_generator("pointwise", target))
    for space in context.generate_design_space():
        pixel_tiles, vector_tiles = [i for i in space.trace.insts
                                     if i.kind.name == "SamplePerfectTile"][:2]
        trace = space.trace.with_decision(pixel_tiles, [49, 4], remove_postproc=True)
        trace = trace.with_decision(vector_tiles, [576 // lanes // 3, 3],
                                   remove_postproc=True)
        sch = Schedule(task.mod)
        trace.apply_to_schedule(sch, remove_postproc=True)
        # Before the postprocessors the weights are in their own layout: comparable.
        got = run_into_nans(tvm.tirx.build(sch.mod, target=target), args)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        for postproc in context.space_generator.postprocs:
            assert postproc.apply(sch), (pointwise_order(trace), postproc)
        assert vectorized_extents(sch) == {lanes}, pointwise_order(trace)


def vectorized_extents(sch: Schedule) -> set[int]:
    """Extents of the vectorised loops around the blocks of a scheduled PrimFunc."""
    blocks = [sch.get_sblock(name) for name in ("conv2d_nhwc_init", "conv2d_nhwc_update")]
    blocks += sch.get_child_blocks(sch.get_sblock("root"))[-1:]  # the epilogue
    return {int(sch.get(loop).extent) for block in blocks for loop in sch.get_loops(block)
            if sch.get(loop).kind == tvm.tirx.ForKind.VECTORIZED}


def run_into_nans(kernel, args: list) -> np.ndarray:
    """The kernel's output, written over NaNs (so nothing left from an earlier run counts)."""
    output = args[-1]
    output.copyfrom(np.full(output.shape, np.nan, output.dtype))
    kernel(*args)
    return output.numpy()


def test_picks_split_rows_like_the_depthwise_convs():
    """At 2 cores a 14x14 pointwise conv is picked among "pixels outer" records; a 7x7 one (7
    rows do not split evenly) and any conv at 1 core among all."""
    target = load_target("x86").tvm_tuning_target
    tasks = {(t.kind, t.shape): t for t in extract_tasks(import_model(ModelSource(
        "mobilenet_v1")).mod, target)}
    rows14 = tasks["pointwise", "14x14x512->512 k1 s1"]
    rows7 = tasks["pointwise", "7x7x1024->1024 k1 s1"]
    assert selection.required_order(rows14, 2) == selection.ROW_SPLIT_ORDER == "pixels outer"
    assert selection.required_order(rows14, 1) is None
    assert selection.required_order(rows7, 2) is None
    assert selection.required_order(tasks["depthwise", "14x14x512->512 k3 s1 g512"], 2) is None
    database = tuning_log.open_database(
        tuning_log.log_dir(ZNVER4, ModelSource("mobilenet_v1").tuning_label))
    everything = selection._shortlist(database, rows14, 10**6, None)
    orders = Counter(pointwise_order(record.trace) for _, record in everything)
    assert orders["pixels outer"] and orders["channels outer"], orders
    shortlist = selection._shortlist(database, rows14, 8, "pixels outer")
    assert len(shortlist) == min(8, orders["pixels outer"])  # a slim log keeps a few
    for rank, record in shortlist:
        assert pointwise_order(record.trace) == "pixels outer"
        assert str(everything[rank][1].trace) == str(record.trace)
    assert [rank for rank, _ in shortlist] == sorted(rank for rank, _ in shortlist)


def test_a_run_that_cannot_train_its_cost_model_searches_a_small_population():
    untrained = ms.cost_model.XGBModel(num_tuning_cores=1)
    warmup = untrained.num_warmup_samples
    assert tuner_module.population_size(untrained, warmup - 1) == tuner_module.UNTRAINED_POPULATION
    assert tuner_module.population_size(untrained, warmup) == tuner_module.POPULATION
