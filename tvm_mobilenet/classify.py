"""Classify a photo with torchvision's ImageNet MobileNetV2, compiled by TVM.

    python -m tvm_mobilenet.classify skimage:chelsea
    python -m tvm_mobilenet.classify photo.jpg --lib out/x86-mobilenet_v2_imagenet.so --top 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import imagenet, pretrained
from .build import build_library, find_tuning_log
from .cli import UserError, run_cli
from .frontend import ModelSource, import_model
from .runner import LocalLibrary
from .targets import load_target

DEFAULT_LIBRARY = Path("out") / f"x86-{pretrained.NAME}.so"


def default_library() -> Path:
    """`DEFAULT_LIBRARY`, built for this machine (x86) the first time it is needed, with the
    model's tuning log if there is one."""
    if not DEFAULT_LIBRARY.is_file():
        source, preset = ModelSource(pretrained.NAME), load_target("x86")
        print(f"building {DEFAULT_LIBRARY} (once)")
        log = find_tuning_log(preset, source.tuning_label)
        build_library(import_model(source), preset, DEFAULT_LIBRARY, source, log)
    return DEFAULT_LIBRARY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvm_mobilenet.classify",
        description="Print the most likely ImageNet classes of a photo, with softmax "
                    "probabilities, from torchvision's pretrained MobileNetV2 compiled by TVM.")
    parser.add_argument("image", help="image file, or "
                        + " / ".join(imagenet.SAMPLE_PREFIX + name
                                     for name in imagenet.SAMPLE_PHOTOS)
                        + " (scikit-image's sample photos)")
    parser.add_argument("--lib", type=Path, default=None,
                        help=f"library built from {pretrained.NAME} (default: "
                             f"{DEFAULT_LIBRARY}, built for x86 if missing)")
    parser.add_argument("--top", type=int, default=5, help="how many classes (default: 5)")
    args = parser.parse_args(argv)

    def run() -> None:
        if not 1 <= args.top <= 1000:
            raise UserError(f"--top must be between 1 and 1000, got {args.top}")
        x = imagenet.preprocess(imagenet.load_image(args.image))
        library = LocalLibrary(args.lib or default_library())
        if library.info.model != pretrained.NAME:
            print(f"warning: {library.info.model} is not {pretrained.NAME}: "
                  "the class names may not fit its outputs")
        names = imagenet.class_names()
        for index, probability in imagenet.top_classes(library.run(x), args.top):
            print(f"{probability:7.2%}  {index:>3}  {names[index]}")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
