"""Classify a photo with torchvision's ImageNet MobileNetV2, compiled by TVM.

    python -m tvm_mobilenet.classify skimage:chelsea
    python -m tvm_mobilenet.classify photo.jpg --lib out/x86-mobilenet_v2_imagenet.so --top 3
    python -m tvm_mobilenet.classify skimage:coffee --target rpi4 --rpc-tracker HOST:9190
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import imagenet, pretrained
from .build import build_library, find_tuning_log
from .cli import UserError, run_cli
from .frontend import ModelSource, import_model
from .rpc import add_rpc_args
from .runner import open_library
from .targets import load_target

def default_library(target: str) -> Path:
    """out/<target>-mobilenet_v2_imagenet.so, built the first time it is needed, with the
    model's tuning log for that target if there is one."""
    preset = load_target(target)
    suffix = "" if preset.device == "vulkan" else ".so"  # Vulkan builds are folders
    path = Path("out") / f"{preset.name}-{pretrained.NAME}{suffix}"
    if not path.is_file():
        source = ModelSource(pretrained.NAME)
        print(f"building {path} (once)")
        log = find_tuning_log(preset, source.tuning_label)
        build_library(import_model(source), preset, path, source, log)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.classify",
        description="Print the most likely ImageNet classes of a photo, with softmax "
                    "probabilities, from torchvision's pretrained MobileNetV2 compiled by TVM.")
    parser.add_argument("image", help="image file, or "
                        + " / ".join(imagenet.SAMPLE_PREFIX + name
                                     for name in imagenet.SAMPLE_PHOTOS)
                        + " (scikit-image's sample photos)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--lib", type=Path, default=None,
                       help=f"library built from {pretrained.NAME}")
    which.add_argument("--target", default="x86",
                       help=f"target preset: use out/<target>-{pretrained.NAME}.so, built if "
                            "missing (default: x86, this machine); device presets run over RPC, "
                            "vulkan on this machine's Vulkan GPU")
    parser.add_argument("--top", type=int, default=5, help="how many classes (default: 5)")
    add_rpc_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        if not 1 <= args.top <= 1000:
            raise UserError(f"--top must be between 1 and 1000, got {args.top}")
        x = imagenet.preprocess(imagenet.load_image(args.image))
        library = open_library(args.lib or default_library(args.target), args)
        if library.info.model != pretrained.NAME:
            print(f"warning: {library.info.model} is not {pretrained.NAME}: "
                  "the class names may not fit its outputs")
        print(f"{library.info.model} on {library.where}")
        names = imagenet.class_names()
        for index, probability in imagenet.top_classes(library.run(x), args.top):
            print(f"{probability:7.2%}  {index:>3}  {names[index]}")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
