"""MetaSchedule tuning of a model's tasks: our search spaces, XGBoost cost model, resumable log.

The tuner is MetaSchedule's own parts put together (`tune_tasks` with an evolutionary search,
`XGBModel`, `LocalBuilder`/`LocalRunner`, a `JSONDatabase`); what we add is the search space
per task kind (`tuning/schedules.py`), a lighter build function, progress, and a clean stop on
Ctrl-C.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import tvm
from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.runtime.rpc import Endpoint, free_devices, registered_devices
from tvm_mobilenet.target.linker import Linker
from tvm_mobilenet.target.presets import host_cores
from tvm_mobilenet.transform import prefetch
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning import transfer
from tvm_mobilenet.tuning.intrinsics import import_tensor_intrinsics
from tvm_mobilenet.tuning.schedules import space_generator
from tvm_mobilenet.tuning.tasks import Task

logger = logging.getLogger(__name__)

#: Most candidates built and measured per round of a task (small: progress stays visible and
#: Ctrl-C loses at most one round); fewer when the budget is small, so every task gets some.
MAX_TRIALS_PER_ROUND = 16
#: Schedules the evolutionary search samples and evolves per round to pick a round's candidates.
POPULATION = 256
#: The population of a run whose cost model never trains: XGBModel scores candidates at random
#: until it has seen `num_warmup_samples` (100) measurements, so evolving a large population
#: on its scores picks at random too, at ~10 s per round of a small task.
UNTRAINED_POPULATION = 32
#: GPU spaces (MetaSchedule's rules: thread binding, shared-memory staging) are much slower to
#: sample and evolve than our CPU spaces, so their population is smaller.
GPU_POPULATION = 64
#: Runs per candidate, each with the kernel's weights and output flushed from the caches (its
#: input stays warm): in a model, a kernel's input was just written by the previous kernel but
#: its weights were last touched one inference ago. Warm-weight timings favour schedules that
#: re-read weights per pixel tile, which run up to 2x slower in the model (7x7x1024 pointwise).
COLD_RUNS = 10
#: Seconds a device may take to measure one candidate (an emulated device is ~50x slower).
DEVICE_MEASURE_TIMEOUT_S = 120


def export_shared(linker: Linker, module: tvm.runtime.Module) -> str:
    """Link a candidate into a .so with `linker` (a cross compiler for device targets), so
    that the device loads it without a compiler of its own."""
    path = os.path.join(tempfile.mkdtemp(prefix="tvm_mobilenet_candidate_"), "candidate.so")
    module.export_library(path, fcompile=linker.fcompile())
    return path


def builder_and_runner(device: Endpoint | None, linker: Linker | None, gpu_target: dict | None,
                       tasks: list[Task]) -> tuple[ms.builder.Builder, ms.runner.Runner]:
    """Builder and runner of `tasks`: this machine's CPU; WGSL kernels checked and timed on
    this machine's Vulkan GPU (`gpu_target`: the webgpu target they are generated for); or
    cross-compiled candidates timed on the devices registered under `device`'s tracker key
    through MetaSchedule's RPCRunner: one worker per device free now, so a farm of K boards
    measures K candidates at a time."""
    evaluator = ms.runner.EvaluatorConfig(number=1, repeat=COLD_RUNS, min_repeat_ms=0,
                                          enable_cpu_cache_flush=True)
    if gpu_target is not None:
        from tvm_mobilenet.gpu.tuning import ReferenceOutputs, WgpuRunner, wgsl_build, wgsl_export

        return (ms.builder.LocalBuilder(f_build=functools.partial(wgsl_build, gpu_target),
                                        f_export=wgsl_export, max_workers=host_cores(),
                                        timeout_sec=120),
                WgpuRunner(ReferenceOutputs([task.mod for task in tasks])))
    if device is None:
        return (ms.builder.LocalBuilder(f_build=light_build, max_workers=host_cores(),
                                        timeout_sec=60),
                ms.runner.LocalRunner(timeout_sec=30, evaluator_config=evaluator))
    if not device.key:
        raise UserError("tuning on a device needs an RPC tracker and key (MetaSchedule's "
                        "RPCRunner asks a tracker for devices): pass --rpc-tracker and --rpc-key")
    if linker is None:
        raise UserError("tuning on a device needs the target preset's cross compiler")
    devices = max(1, free_devices(device))
    logger.info(f"measuring candidates on {devices} device(s) under {device}")
    config = ms.runner.RPCConfig(tracker_host=device.host, tracker_port=device.port,
                                 tracker_key=device.key, session_priority=1,
                                 session_timeout_sec=DEVICE_MEASURE_TIMEOUT_S)
    return (ms.builder.LocalBuilder(f_build=light_build,
                                    f_export=functools.partial(export_shared, linker),
                                    max_workers=host_cores(), timeout_sec=60),
            ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator,
                                max_workers=devices, f_create_session=session_on_a_device))


def session_on_a_device(config: ms.runner.RPCConfig):
    """A session on a device under the tracker key, failing at once when none is registered
    (the tracker would hold the request until the runner's timeout, for every candidate)."""
    endpoint = Endpoint(config.tracker_host, config.tracker_port, key=config.tracker_key)
    if registered_devices(endpoint) == 0:
        raise RuntimeError(f"no device is registered under {endpoint}")
    return config.connect_server()


def light_build(mod: tvm.IRModule, target: tvm.target.Target, _params: dict | None) -> tvm.Module:
    """MetaSchedule's default build minus its `import tvm.s_tir.tensor_intrin`, which costs
    ~13 s in every fresh builder process (float32 kernels tensorize nothing at build time),
    plus our weight prefetch (`prefetch.PIPELINE`), as the library will run it."""
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    return tvm.tirx.build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod),
                          target=target, pipeline=prefetch.PIPELINE)


@dataclass
class TaskProgress:
    task: Task
    trials: int = 0
    best_seconds: float = math.inf

    @property
    def best_gflops(self) -> float:
        return self.task.flops / self.best_seconds / 1e9 if self.best_seconds < math.inf else 0.0


@derived_object
class ProgressCallback(ms.measure_callback.PyMeasureCallback):
    """Progress bars (overall and current task), a graceful stop on Ctrl-C, and a stop when
    the log stops growing (MetaSchedule's log writer ignores a full disk) or when a round
    failed because no device is registered any more."""

    def __init__(self, progress: list[TaskProgress], total: int, records: Path,
                 device: Endpoint | None) -> None:
        super().__init__()
        self.progress = progress
        self.records = records
        self.records_size = _size(records)
        self.device = device
        #: Why the tune cannot go on (a full disk, no device), raised out of the tuning loop.
        self.fault: UserError | None = None
        self.overall = tqdm(total=total, desc="tuning", unit="trial", position=0,
                            dynamic_ncols=True)
        self.current = tqdm(desc="task", position=1, leave=False, dynamic_ncols=True,
                            bar_format="  {desc}: {n} trials this run{postfix}")
        self.current_task = -1
        self.stop_requested = False
        self.stopped = False

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results,
              runner_results) -> None:
        state = self.progress[task_id]
        for result in runner_results:
            if result.error_msg is None and result.run_secs:
                seconds = sum(float(s) for s in result.run_secs) / len(result.run_secs)
                state.best_seconds = min(state.best_seconds, seconds)
        state.trials += len(runner_results)
        if task_id != self.current_task:
            self.current_task = task_id
            self.current.reset()
            self.current.set_description(f"{state.task.kind} {state.task.shape}")
        self.current.update(len(runner_results))
        self.current.set_postfix_str(f"best {state.best_gflops:.1f} GFLOP/s")
        self.overall.update(len(runner_results))
        size = _size(self.records)
        if runner_results and size <= self.records_size:
            self.fault = UserError(
                f"{self.records} stopped growing: the disk is full or the file may grow no "
                "further. The trials written before are kept; make room and run again to resume")
        self.records_size = size
        if (self.device and all(result.error_msg for result in runner_results)
                and registered_devices(self.device) == 0):
            self.fault = UserError(
                f"no device is registered under {self.device} any more (it dropped, or the "
                "tracker restarted and it has not registered again). The trials measured "
                "before are kept; bring it back and run again to resume")
        if self.fault:
            raise self.fault  # ends MetaSchedule's loop at once; the round is in the log
        if self.stop_requested and not self.stopped:
            self.stopped = True
            for index in range(len(self.progress)):
                try:
                    task_scheduler.terminate_task(index)
                except RuntimeError:  # the task had already used its budget
                    pass

    def close(self) -> None:
        self.current.close()
        self.overall.close()


def tune_tasks(tasks: list[Task], target: tvm.target.Target, log: Path, trials: int,
               seed: int = 0, device: Endpoint | None = None, linker: Linker | None = None,
               gpu_target: dict | None = None, transfer_from: Sequence[Path] = ()
               ) -> list[TaskProgress]:
    """Tune `tasks` until the log holds about `trials` records for them (resumes a log;
    a slim log counts the records it was slimmed from, `tuning_log.trials_spent`).

    Candidates run on this machine's CPU; with `device` (a tracker and key) on that device,
    linked by `linker`; with `gpu_target` (a webgpu target) on this machine's Vulkan GPU, with
    MetaSchedule's GPU rules for `target` (a vulkan stand-in) instead of our CPU spaces.

    On CPUs, the tasks the log has no record of start from the logs `transfer_from`
    (`transfer.py`): their seeds are measured first and count as trials, the cost model is
    trained on those logs' records, and a budget too small for a round of every task is spent
    on the tasks that hold most of the time.

    Ctrl-C stops after the round in flight (then KeyboardInterrupt is raised); every finished
    trial stays in the log.
    """
    database = tuning_log.open_database(log)
    done = {task.name: len(database.get_top_k(database.commit_workload(task.mod), 10**6))
            for task in tasks}
    # A slim log counts the trials it was slimmed from, so a finished tune stays finished.
    remaining = trials - max(sum(done.values()), tuning_log.trials_spent(log))
    progress = [TaskProgress(task, trials=done[task.name]) for task in tasks]
    if remaining <= 0 or not tasks:
        return progress
    tuning_log.discard_selection(log)  # new records may beat the picks
    if device is None and gpu_target is None:
        # Kernels measured here use TVM's thread pool: give it every core the target has.
        os.environ["TVM_NUM_THREADS"] = str(target.attrs["num-cores"])
    builder, runner = builder_and_runner(device, linker, gpu_target, tasks)
    import_tensor_intrinsics()  # TuneContext imports them: 15-90 s, unless done this way
    searched, cost_model = tasks, ms.cost_model.XGBModel(num_tuning_cores=host_cores())
    if gpu_target is None and transfer_from:
        sources = list(tuning_log.open_locked(transfer_from).values())
        for entry in transfer.seed_log(tasks, target, database, sources, builder, runner):
            progress[tasks.index(entry.task)].trials += len(entry.schedules)
            remaining -= len(entry.schedules)
        if remaining <= 0:
            return progress
        cost_model = transfer.trained_model(tasks, target, sources, host_cores())
        if remaining < MAX_TRIALS_PER_ROUND * len(tasks):
            searched = transfer.hot_tasks(tasks, database, remaining)
            logger.info(f"searching the {len(searched)} slowest of {len(tasks)} kernels "
                        f"({remaining} trials)")
    population = GPU_POPULATION if gpu_target else population_size(cost_model, remaining)
    contexts = [
        ms.TuneContext(mod=task.mod, target=target, task_name=task.name,
                       space_generator=(ms.space_generator.PostOrderApply() if gpu_target
                                        else space_generator(task.kind, target)),
                       search_strategy=ms.search_strategy.EvolutionarySearch(
                           population_size=population,
                           init_min_unmeasured=32),
                       rand_state=seed + index + 1, num_threads=host_cores())
        for index, task in enumerate(searched)]
    callback = ProgressCallback([entry for entry in progress if entry.task in searched],
                                remaining, log / tuning_log.RECORD_FILE, device)
    previous_handler = signal.signal(signal.SIGINT, _request_stop(callback))
    per_round = max(1, min(MAX_TRIALS_PER_ROUND, remaining // len(searched)))
    per_task = max(per_round, math.ceil(2 * remaining / len(searched)))
    try:
        with tempfile.TemporaryDirectory(prefix="tvm_mobilenet_tune_") as scratch:
            ms.tune_tasks(
                tasks=contexts, task_weights=[float(task.weight) for task in searched],
                work_dir=scratch, max_trials_global=remaining, max_trials_per_task=per_task,
                num_trials_per_iter=per_round,
                builder=builder, runner=runner,
                database=database, cost_model=cost_model,
                measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                                   callback],
                task_scheduler=ms.task_scheduler.GradientBased(seed=seed))
    except Exception:
        if callback.fault is None:  # the callback's own error comes back wrapped by the FFI
            raise
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        callback.close()
    if callback.fault:
        raise callback.fault
    if callback.stop_requested:
        logger.info("stopped on Ctrl-C; finished trials are in the log, run again to resume")
        raise KeyboardInterrupt
    return progress


def population_size(cost_model: ms.cost_model.XGBModel, trials: int) -> int:
    """The population of a CPU search: `UNTRAINED_POPULATION` when `trials` more measurements
    cannot train `cost_model` (one trained on other logs' records predicts from the first
    round), else `POPULATION`. (GPU searches keep `GPU_POPULATION`: with 32, the Vulkan
    test's tune took 4-6x longer on lavapipe.)"""
    if cost_model.data_size + trials < cost_model.num_warmup_samples:
        return UNTRAINED_POPULATION
    return POPULATION


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _request_stop(callback: ProgressCallback):
    def handler(_signum, _frame) -> None:
        callback.stop_requested = True
        tqdm.write("Ctrl-C: stopping after the round in flight (Ctrl-C again kills)")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return handler
