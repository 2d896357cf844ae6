"""tuning_logs/: one MetaSchedule JSON database per (target preset, model), with a summary.

    tuning_logs/x86-znver4/mobilenet_v2-1.0-224/database_workload.json
                                                database_tuning_record.json
                                                summary.json            (human-readable)
                                                selected/               (the records builds use)

A preset that detects this machine's CPU keeps one folder per CPU model
(`compile.build.log_target_name`).

MetaSchedule appends one JSON line per measured candidate, so finished trials survive a crash
or Ctrl-C. Before a log is opened its lines are checked: a torn last line (a crash mid-write)
is cut off with a warning, any other bad line is an error naming the file and line. A lock
file keeps two tuning processes from writing the same log.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from tvm.s_tir import meta_schedule as ms

from tvm_mobilenet import files
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.resources import log_root

logger = logging.getLogger(__name__)

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
#: A database of one record per task, picked after tuning (`tuning/selection.py`).
SELECTED_DIR = "selected"
#: Where picks are written while they are made; renamed to `SELECTED_DIR` once all are in.
PICKING_DIR = "selected.partial"
#: Records whose runs failed are stored with huge times; anything slower is not a candidate.
FAILED_SECONDS = 1e9
#: Records a slim log keeps per workload: the fastest, which picking measures again.
SLIM_KEEP = 6
#: How many records a slim log held before it was slimmed: the trials already spent on it.
SLIMMED_FILE = "slimmed.json"


def log_dir(preset: str, model_label: str, root: Path | None = None) -> Path:
    """The log of one model for one target preset (folder), under `resources.log_root`."""
    return log_root(root) / preset / model_label


def _check_lines(path: Path, valid: Any) -> list[str]:
    """Warnings; raises UserError on a malformed line other than a torn last one."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    warnings = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            ok = valid(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            ok = False
        if ok:
            continue
        is_last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
        if is_last and not data.endswith(b"\n"):
            path.write_bytes(data[: len(data) - len(line)])
            warnings.append(f"{path}: cut off a torn last line (an interrupted write)")
            continue
        raise UserError(f"{path} line {number} is not a MetaSchedule tuning record: the log is "
                        "corrupted or was not written by MetaSchedule; move it away or tune with "
                        "--fresh")
    return warnings


def _is_workload(entry: Any) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)


def _is_record(entry: Any) -> bool:
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
            and isinstance(entry[1], list) and len(entry[1]) == 4)


def check_log(directory: Path) -> list[str]:
    """Validate a log folder; returns warnings (torn lines repaired). A workload line torn by
    an interrupted write takes its records with it: without it they cannot be read, and the
    next workload committed would take its index."""
    torn_workload = _check_lines(directory / WORKLOAD_FILE, _is_workload)
    warnings = torn_workload + _check_lines(directory / RECORD_FILE, _is_record)
    records = directory / RECORD_FILE
    if not (records.exists() and (directory / WORKLOAD_FILE).exists()):
        return warnings
    workloads = sum(1 for line in _lines(directory / WORKLOAD_FILE) if line.strip())
    lines = [line for line in _lines(records) if line.strip()]
    orphans = [number for number, line in enumerate(lines, start=1)
               if int(_RECORD_WORKLOAD.match(line)[1]) >= workloads]
    if orphans and not torn_workload:
        raise UserError(f"{records} line {orphans[0]} names a workload the log does not hold "
                        f"(it holds {workloads}): the log is corrupted; move it away or tune "
                        "with --fresh")
    if orphans:
        dropped = set(orphans)
        with files.replaced(records) as temporary:
            temporary.write_bytes(b"".join(line + b"\n" for number, line
                                           in enumerate(lines, start=1) if number not in dropped))
        warnings.append(f"{records}: dropped {len(orphans)} records of a workload whose line "
                        "was torn")
    return warnings


#: The workload index a record line starts with.
_RECORD_WORKLOAD = re.compile(rb"\s*\[\s*(\d+)")


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n") if path.exists() else []


def open_database(directory: Path) -> ms.database.JSONDatabase:
    """The log's database (created if missing), after `check_log`."""
    directory.mkdir(parents=True, exist_ok=True)
    for warning in check_log(directory):
        logger.warning(f"warning: {warning}")
    try:
        return ms.database.JSONDatabase(path_workload=str(directory / WORKLOAD_FILE),
                                        path_tuning_record=str(directory / RECORD_FILE))
    except Exception as error:  # the FFI raises assorted errors for undecodable records
        raise UserError(f"cannot read the tuning log in {directory}: "
                        f"{str(error).strip().splitlines()[-1]}") from error


def open_schedules(directory: Path) -> ms.database.Database:
    """What a build applies: the picks of ``selected/`` if there are (one per task with a
    successful record; new records void them), else the full log (tuned on a device, or not
    picked yet). Reading the picks alone spares a build the full log: 7.6 s for MobileNetV2's
    2,178 records."""
    return open_database(directory / SELECTED_DIR if has_selection(directory) else directory)


def open_locked(logs: Sequence[Path]) -> dict[Path, ms.database.Database]:
    """The databases of `logs` (others than the one being tuned), each read under its lock;
    one being tuned or unreadable is skipped, with a word why."""
    databases = {}
    for other in logs:
        try:
            with exclusive(other):
                databases[other] = open_database(other)
        except UserError as error:
            logger.warning(f"not borrowing records: {error}")
    return databases


def sibling_databases(directory: Path) -> dict[str, ms.database.Database]:
    """The other logs of the same target (other models, widths, resolutions), by folder name
    (`open_locked`)."""
    return {other.name: database for other, database in open_locked(
        [other for other in sorted(directory.parent.iterdir())
         if other != directory and (other / RECORD_FILE).exists()]).items()}


def has_selection(directory: Path) -> bool:
    return (directory / SELECTED_DIR / RECORD_FILE).exists()


def discard_selection(directory: Path) -> None:
    """Forget the picks (new records may beat them; the next `selection.select` redoes them)."""
    for folder in (SELECTED_DIR, PICKING_DIR):
        for name in (WORKLOAD_FILE, RECORD_FILE):
            (directory / folder / name).unlink(missing_ok=True)


def commit_selection(directory: Path) -> None:
    """Make the picks written to `PICKING_DIR` the log's picks, all at once: picking stopped
    half-way (Ctrl-C) leaves no picks, not some."""
    (directory / SELECTED_DIR).mkdir(exist_ok=True)
    for name in (WORKLOAD_FILE, RECORD_FILE):
        os.replace(directory / PICKING_DIR / name, directory / SELECTED_DIR / name)
    (directory / PICKING_DIR).rmdir()


def is_usable(directory: Path) -> bool:
    """Whether a build can use the log: it has picks (all a wheel ships) or records."""
    return has_selection(directory) or record_count(directory) > 0


def record_count(directory: Path) -> int:
    path = directory / RECORD_FILE
    return sum(1 for line in path.read_bytes().splitlines() if line.strip()) if path.exists() else 0


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold the log's lock (the lock file names the holder's pid); a second tuner on the same
    log gets a clear error and leaves the file as it was."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as lock:  # "w" would erase the holder's pid
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{directory} is being tuned by another process; wait for it or "
                            "use another --log-dir") from None
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_summary(directory: Path) -> dict[str, Any] | None:
    path = directory / SUMMARY_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error})") from error


def write_summary(directory: Path, summary: dict[str, Any]) -> None:
    """Atomically replace summary.json (a reader never sees half a file)."""
    summary = {"updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), **summary}
    files.write_text(directory / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def slim(directory: Path, keep: int = SLIM_KEEP) -> tuple[int, int]:
    """Keep only the `keep` fastest successful records of each workload, in their order, and
    the picks: what building and picking need, at a size that can be committed. Returns the
    record counts before and after. Tuning resumes from a slim log as from a full one."""
    with exclusive(directory):
        for warning in check_log(directory):
            logger.warning(warning)
        path = directory / RECORD_FILE
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        fastest: dict[int, list[tuple[float, int]]] = defaultdict(list)
        for index, line in enumerate(lines):
            workload, (_, run_secs, *_) = json.loads(line)
            seconds = sum(map(float, run_secs)) / len(run_secs) if run_secs else FAILED_SECONDS
            if seconds < FAILED_SECONDS:
                fastest[workload].append((seconds, index))
        kept = sorted(index for ranked in fastest.values() for _, index in sorted(ranked)[:keep])
        with files.replaced(path) as temporary:
            temporary.write_bytes(b"".join(lines[index] + b"\n" for index in kept))
        spent = max(len(lines), trials_spent(directory))
        (directory / SLIMMED_FILE).write_text(json.dumps({"records_before": spent}) + "\n")
    return len(lines), len(kept)


def trials_spent(directory: Path) -> int:
    """Trials tuned into the log: its records, or as many as it held before it was slimmed."""
    path = directory / SLIMMED_FILE
    slimmed = json.loads(path.read_text())["records_before"] if path.exists() else 0
    return max(slimmed, record_count(directory))
