"""Where the files that ship with tvm_mobilenet are: target presets and committed tuning logs.

In a checkout, ``tvm_mobilenet/data/targets`` and ``tvm_mobilenet/data/tuning_logs`` are links to
the project's ``targets/`` and ``tuning_logs/``; a wheel carries copies of them. New logs go
where ``--log-dir`` or ``$TVM_MOBILENET_LOG_DIR`` says, else beside the committed ones.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
#: Target presets, one JSON file each.
PRESETS_DIR = (DATA_DIR / "targets").resolve()
#: The committed tuning logs, tuning_logs/<target>/<model>/.
COMMITTED_LOGS = (DATA_DIR / "tuning_logs").resolve()
LOG_DIR_VARIABLE = "TVM_MOBILENET_LOG_DIR"
#: ImageNet's 1,000 class names, one per line in index order.
IMAGENET_CLASSES = DATA_DIR / "imagenet_classes.txt"


def log_root(explicit: Path | None = None) -> Path:
    """The root of the tuning logs: `explicit`, else $TVM_MOBILENET_LOG_DIR, else the committed
    logs."""
    if explicit is not None:
        return explicit
    from_environment = os.environ.get(LOG_DIR_VARIABLE)
    return Path(from_environment) if from_environment else COMMITTED_LOGS
