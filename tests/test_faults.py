"""Faults: a tuner stopped by Ctrl-C, a full disk, kill -9, a tracker restart or a device
that drops keeps every finished trial and resumes; an interrupted build or bundle leaves the
previous output whole."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

import numpy as np
import pytest
from conftest import PROJECT_ROOT, free_port, start_tracker, stop_tracker

from tvm_mobilenet.compile import build
from tvm_mobilenet.deploy import bundle
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.resources import COMMITTED_LOGS
from tvm_mobilenet.runtime import emulated_device as device
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.runtime.rpc import Endpoint, registered_devices
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning import tuner as tuner_module
from tvm_mobilenet.tuning.lookup import log_target_name
from tvm_mobilenet.tuning.tasks import extract_tasks
from tvm_mobilenet.tuning.tuner import DEVICE_MEASURE_TIMEOUT_S, tune_tasks

SMALL = ModelSource("mobilenet_v1", 0.25, 64)
#: Rounds of budget a tune on the device gets: enough to go on after a fault.
ROUNDS = 2
#: Candidates per round on the emulated device: short rounds, short test.
DEVICE_ROUND = 4


def tuner(log_root, limit: int | None = None) -> subprocess.Popen:
    """`tvm-mobilenet tune` of SMALL's stem conv (one task, and a budget more than the faults
    need but too small to train the cost model: short rounds), in a process group of its own;
    with `limit`, no file it writes may grow past that many bytes (RLIMIT_FSIZE: a full
    disk)."""
    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "tvm_mobilenet.tune", "--model", "mobilenet_v1",
               "--alpha", "0.25", "--resolution", "64", "--ops", "stem", "--trials", "64",
               "--log-dir", str(log_root), "-o", str(log_root / "v1.so")]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=limit_files if limit else None)


def signal_at(log, records: int, process: subprocess.Popen, signum: int) -> str:
    """Send `signum` to the tuner's process group once the log holds `records`; its output."""
    deadline = time.monotonic() + 300
    while tuning_log.record_count(log) < records and process.poll() is None:
        assert time.monotonic() < deadline, f"no {records} records after 300 s"
        time.sleep(0.2)
    assert process.poll() is None, "the tuner ended before the signal"
    os.killpg(process.pid, signum)
    return process.communicate(timeout=300)[0]


def kept_records(log) -> int:
    """Records in the log after its check: torn lines cut, every other line whole."""
    warnings = tuning_log.check_log(log)
    assert all("torn" in warning for warning in warnings), warnings
    count = tuning_log.record_count(log)
    assert len(tuning_log.open_database(log).get_all_tuning_records()) == count
    return count


def test_a_tuner_stopped_any_way_keeps_its_trials_and_resumes(tmp_path):
    """Ctrl-C, a full disk and kill -9, one after another on one log, then a resume."""
    preset = load_target("x86")
    log = tuning_log.log_dir(log_target_name(preset), SMALL.label, tmp_path)
    # Ctrl-C: SIGINT to the process group, as a terminal sends it; the round in flight ends.
    output = signal_at(log, 3, tuner(tmp_path), signal.SIGINT)
    assert "stopped on Ctrl-C" in output and "Ctrl-C: stopping" in output, output[-1500:]
    kept = kept_records(log)
    assert kept >= 3
    # A full disk: the log may grow by about two records. The write that crosses the limit
    # fails mid-record (EFBIG; Python ignores SIGXFSZ) and the log stops growing; the tuner
    # notices and stops with one line.
    records = (log / tuning_log.RECORD_FILE).stat().st_size
    full = tuner(tmp_path, limit=records + 2 * records // kept)
    output, _ = full.communicate(timeout=600)
    assert full.returncode == 2, output[-2000:]
    assert output.strip().splitlines()[-1].startswith("error: ") and "stopped growing" in output
    survived = kept_records(log)
    assert survived > kept
    # kill -9 mid-round: no handler runs, the lock dies with the process.
    killed = tuner(tmp_path)
    signal_at(log, survived + 3, killed, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    killed_at = kept_records(log)
    assert killed_at >= survived + 3
    # The next run resumes from every kept trial.
    target = preset.tvm_target
    tasks = [t for t in extract_tasks(import_model(SMALL).mod, target) if t.kind == "stem"]
    progress = tune_tasks(tasks, target, log, trials=killed_at + 4)
    assert sum(p.trials for p in progress) >= killed_at + 4
    assert kept_records(log) >= killed_at + 4


def test_a_tracker_restart_and_a_device_drop_mid_tune_lose_nothing(tmp_path, monkeypatch):
    """On an emulated rpi4 of its own tracker: the tracker restarts mid-tune (the device
    registers again), then the device drops. A tune rides through, or stops with one
    `UserError` at once (not after the runner's timeout for every candidate); the log keeps
    every record and the next run resumes from them."""
    monkeypatch.setattr(tuner_module, "MAX_TRIALS_PER_ROUND", DEVICE_ROUND)
    device.setup()
    port = free_port()
    tracker = start_tracker(port)
    endpoint = Endpoint("127.0.0.1", port, key="dropping")
    server = device.start_server(endpoint, log=tmp_path / "device.log")
    preset = load_target("rpi4")
    target = preset.tvm_tuning_target
    task = next(t for t in extract_tasks(import_model(SMALL).mod, target) if t.kind == "stem")
    log = tmp_path / "log"

    def tune_with(fault: Callable[[], None], at: int, trials: int) -> None:
        """Tune toward `trials` records, with `fault` once the log holds `at`. Raises the
        tuner's `UserError` if it stops."""
        def watch() -> None:
            while tuning_log.record_count(log) < at and not done.is_set():
                time.sleep(0.2)
            if not done.is_set():
                fault()

        done = threading.Event()
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            tune_tasks([task], target, log, trials, device=endpoint, linker=linker_for(preset))
        finally:
            done.set()
            watcher.join()

    def restart_tracker() -> None:
        nonlocal tracker
        stop_tracker(tracker)
        tracker = start_tracker(port)

    try:
        device.wait_until_serving(endpoint, server)
        # The tracker restarts after the first round; the device registers again at once, so
        # the tune rides through, or it stops if a round found no device registered yet.
        try:
            tune_with(restart_tracker, at=1, trials=ROUNDS * DEVICE_ROUND)
        except UserError as error:
            assert "no device is registered" in str(error)
        kept = kept_records(log)
        assert kept >= DEVICE_ROUND
        deadline = time.monotonic() + 60
        while registered_devices(endpoint) == 0:
            assert time.monotonic() < deadline, "the device did not register again"
            time.sleep(0.5)
        # The device drops after a round: the next round fails at once and the tune stops,
        # sooner than one candidate waiting out the runner's timeout.
        start = time.monotonic()
        with pytest.raises(UserError, match="no device is registered"):
            tune_with(lambda: device.stop_server(server), at=kept + 1,
                      trials=kept + ROUNDS * DEVICE_ROUND)
        assert time.monotonic() - start < DEVICE_MEASURE_TIMEOUT_S
        resumed = kept_records(log)
        assert resumed >= kept + DEVICE_ROUND
    finally:
        device.stop_server(server)
        stop_tracker(tracker)


def test_a_torn_workload_line_drops_its_records_and_the_log_opens(tmp_path):
    committed = COMMITTED_LOGS / "x86-znver4" / "mobilenet_v1-1.0-224" / tuning_log.SELECTED_DIR
    workloads = (committed / tuning_log.WORKLOAD_FILE).read_bytes().splitlines(keepends=True)
    records = (committed / tuning_log.RECORD_FILE).read_bytes()
    (tmp_path / tuning_log.WORKLOAD_FILE).write_bytes(b"".join(workloads[:3]) + workloads[3][:50])
    (tmp_path / tuning_log.RECORD_FILE).write_bytes(records)
    warnings = tuning_log.check_log(tmp_path)
    assert [warning.split(": ", 1)[1] for warning in warnings] == [
        "cut off a torn last line (an interrupted write)",
        f"dropped {len(records.splitlines()) - 3} records of a workload whose line was torn"]
    assert len(tuning_log.open_database(tmp_path).get_all_tuning_records()) == 3


def test_an_interrupted_build_leaves_the_previous_library_whole(tmp_path, monkeypatch,
                                                                built_library):
    """A build stopped while it writes (here: after half the bytes) leaves the library it was
    replacing, and its description, exactly as they were, and no partial file in sight."""
    library, _ = built_library(SMALL)
    output = tmp_path / "v1.so"
    output.write_bytes(library.read_bytes())
    LibraryInfo.load(library).save(output)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    class HalfWritten:
        def export_library(self, path: str, fcompile=None) -> None:
            with open(path, "wb") as half:
                half.write(library.read_bytes()[: library.stat().st_size // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(build, "compile_module", lambda *args: HalfWritten())
    with pytest.raises(KeyboardInterrupt):
        build.build_library(import_model(SMALL), load_target("x86"), output, SMALL)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_an_interrupted_bundle_leaves_the_previous_bundle_whole(tmp_path, monkeypatch,
                                                                built_library):
    library, _ = built_library(SMALL)
    folder = bundle.write_bundle(library, tmp_path / "bundle")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    saves = []

    def save_then_stop(path, array) -> None:
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt
        np.save(path, array)

    monkeypatch.setattr(bundle.np, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        bundle.write_bundle(library, folder)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bundle"]


def test_a_bundle_never_replaces_a_folder_holding_other_files(tmp_path, built_library):
    library, _ = built_library(SMALL)
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"mine")
    with pytest.raises(UserError, match=r"photos holds files that are not part of a bundle "
                                        r"\(cat.jpg\)"):
        bundle.write_bundle(library, mine)
    assert [path.name for path in mine.iterdir()] == ["cat.jpg"]
