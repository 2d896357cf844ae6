"""Classify a photo with torchvision's ImageNet MobileNetV2, compiled by TVM.

    python -m tvm_mobilenet.classify skimage:chelsea
    python -m tvm_mobilenet.classify photo.jpg --lib out/x86-mobilenet_v2_imagenet.so --top 3
    python -m tvm_mobilenet.classify skimage:coffee --target rpi4 --rpc-tracker HOST:9190
"""

from __future__ import annotations

import logging
from pathlib import Path

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning.lookup import compatible_logs, schedules_for

logger = logging.getLogger(__name__)


def default_library(target: str) -> Path:
    """out/<target>-mobilenet_v2_imagenet.so, built the first time it is needed, with the
    schedules of every tuning log that fits the target (`tuning.lookup`)."""
    preset = load_target(target)
    suffix = "" if preset.device == "vulkan" else ".so"  # Vulkan builds are folders
    path = Path("out") / f"{preset.name}-{pretrained.NAME}{suffix}"
    if not path.is_file():
        source = ModelSource(pretrained.NAME)
        logger.info(f"building {path} (once)")
        imported = import_model(source)
        schedules = schedules_for(imported.mod, preset,
                                  compatible_logs(preset, source.tuning_label))
        build_library(imported, preset, path, source, schedules)
    return path
