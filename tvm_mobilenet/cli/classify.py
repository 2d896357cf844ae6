"""`tvm-mobilenet classify IMAGE`: label a photo with the pretrained MobileNetV2."""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import parser_for, run_cli
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate import imagenet
from tvm_mobilenet.evaluate.classify import default_library
from tvm_mobilenet.models import pretrained
from tvm_mobilenet.runtime.rpc import add_rpc_args
from tvm_mobilenet.runtime.runner import open_library


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("classify", "Print the most likely ImageNet classes of a photo, "
                        "with softmax "
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

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
