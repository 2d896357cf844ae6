"""Transfer tuning: a new log starts from other logs' records measured here, a cost model
trained on them, and a search of the slowest kernels only."""

import numpy as np
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning import transfer
from tvm_mobilenet.tuning.defaults import default_record
from tvm_mobilenet.tuning.tasks import extract_tasks
from tvm_mobilenet.tuning.tuner import tune_tasks

SMALL = ModelSource("mobilenet_v1", 0.25, 64)
#: The committed log read as another CPU's (its records are measured again before they count).
COMMITTED_V1 = tuning_log.log_dir("x86-znver4", "mobilenet_v1-1.0-224")


def traces(database: ms.database.Database, task) -> list[str]:
    return [str(r.trace) for r in database.get_top_k(database.commit_workload(task.mod), 100)]


def test_a_new_log_is_seeded_with_other_logs_best_records_measured_here(tmp_path):
    target = load_target("x86").tvm_target
    tasks = extract_tasks(import_model(SMALL).mod, target)
    chosen = [next(t for t in tasks if t.kind == kind) for kind in ("depthwise", "pointwise")]
    other, mine = tmp_path / "x86-othercpu" / "m", tmp_path / "x86-mine" / "m"
    tune_tasks(chosen, target, other, trials=6, seed=1)
    others = tuning_log.open_database(other)
    expected = {task.name: {str(default_record(task, target, others).trace),
                            *traces(others, task)[:transfer.SEEDS_PER_LOG]} for task in chosen}
    seeds = sum(len(names) for names in expected.values())

    # A budget of exactly the seeds: they are measured, nothing is searched.
    progress = tune_tasks(chosen, target, mine, trials=seeds, transfer_from=[other])
    assert sum(p.trials for p in progress) == seeds == tuning_log.record_count(mine)
    own = tuning_log.open_database(mine)
    for task in chosen:
        assert set(traces(own, task)) == expected[task.name]
        theirs = {str(r.trace): r.run_secs for r in others.get_top_k(
            others.commit_workload(task.mod), 100)}
        for record in own.get_top_k(own.commit_workload(task.mod), 100):
            assert len(record.run_secs) > 1 and all(float(s) > 0 for s in record.run_secs)
            assert record.run_secs != theirs.get(str(record.trace)), "measured here, not copied"
    # A budget too small for a round of each kernel searches the slowest one only.
    progress = tune_tasks(chosen, target, mine, trials=seeds + transfer.MIN_SEARCH_TRIALS,
                          transfer_from=[other])
    [slowest] = transfer.hot_tasks(chosen, own, transfer.MIN_SEARCH_TRIALS)
    searched = {p.task.name: p.trials for p in progress}
    assert tuning_log.record_count(mine) > seeds
    assert searched[slowest.name] > len(expected[slowest.name])


def test_hot_tasks_are_the_slowest_by_time_times_occurrences():
    target = load_target("x86").tvm_target
    tasks = [t for t in extract_tasks(import_model(SMALL).mod, target)
             if t.kind in ("depthwise", "pointwise")][:4]
    database = ms.database.MemoryDatabase()
    seconds = [4e-6, 1e-6, 2e-6, 3e-6]
    for task, time in zip(tasks, seconds):
        record = default_record(task, target, database)
        database.commit_tuning_record(ms.database.TuningRecord(
            record.trace, record.workload, [time], target, record.args_info))
    weighted = sorted(tasks, key=lambda t: -t.weight * seconds[tasks.index(t)])
    assert transfer.hot_tasks(tasks, database, transfer.MIN_SEARCH_TRIALS) == weighted[:1]
    everything = transfer.hot_tasks(tasks, database, 10**6, share=1.0)
    assert everything == weighted
    most = transfer.hot_tasks(tasks, database, 10**6, share=0.5)
    total = sum(t.weight * s for t, s in zip(tasks, seconds))
    held = sum(t.weight * seconds[tasks.index(t)] for t in most)
    assert held >= 0.5 * total and held - most[-1].weight * seconds[tasks.index(most[-1])] \
        < 0.5 * total


def test_the_cost_model_is_trained_on_the_other_logs_before_the_first_round():
    """An untrained XGBoost model scores candidates at random; a trained one, repeatably."""
    target = load_target("x86").tvm_target
    tasks = extract_tasks(import_model(ModelSource("mobilenet_v1")).mod, target)
    committed = tuning_log.open_database(COMMITTED_V1)
    records = sum(len(transfer.logged_records(task, [committed])) for task in tasks)
    assert records >= 100, "enough records to pass XGBModel's warm-up"
    task = next(t for t in tasks if t.kind == "pointwise")
    context = ms.TuneContext(mod=task.mod, target=target, num_threads=1)
    candidates = [ms.MeasureCandidate(transfer.schedule_of(task, record), record.args_info)
                  for record in transfer.logged_records(task, [committed])]
    trained = transfer.trained_model(tasks, target, [committed], 1)
    first, second = (trained.predict(context, candidates) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    untrained = ms.cost_model.XGBModel(num_tuning_cores=1)
    assert not np.array_equal(untrained.predict(context, candidates),
                              untrained.predict(context, candidates))
