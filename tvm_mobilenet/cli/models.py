"""`tvm-mobilenet models`: export MobileNetV1/V2 from the papers' tables, or summarise them."""

from __future__ import annotations

import sys

import onnx

from tvm_mobilenet.cli.common import (
    add_architecture_args,
    architecture_from_args,
    file_of,
    natural,
    parser_for,
    run_cli,
)
from tvm_mobilenet.models.architectures import ARCHITECTURES
from tvm_mobilenet.models.onnx_export import export, summary_table
from tvm_mobilenet.models.tflite_export import to_tflite
from tvm_mobilenet.models.weights import random_weights


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("models", "Build MobileNetV1/V2 from the papers' layer tables: "
                        "export them to ONNX "
                    "with seeded random weights (BatchNorm folded, ReLU6 as Clip) or print "
                    "their per-layer summary.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    export_parser = verbs.add_parser("export", help="write an ONNX or TFLite file")
    summary_parser = verbs.add_parser("summary", help="print layers, MACs and params")
    for sub in (export_parser, summary_parser):
        sub.add_argument("name", choices=ARCHITECTURES)
        add_architecture_args(sub)
    export_parser.add_argument("--seed", type=natural, default=0,
                               help="random seed of the weights (default: 0)")
    export_parser.add_argument("-o", "--output", type=file_of(".onnx", ".tflite"), required=True,
                               help="ONNX file, or TFLite (NHWC input) if it ends in .tflite")
    args = parser.parse_args(argv)

    def run() -> None:
        arch = architecture_from_args(args.name, args)
        if args.verb == "summary":
            print(summary_table(arch))
            return
        if args.output.suffix == ".tflite":
            args.output.write_bytes(to_tflite(arch, random_weights(arch, args.seed)))
        else:
            onnx.save(export(arch, args.seed), args.output)
        print(f"wrote {args.output} ({arch.label}, seed {args.seed}, "
              f"{arch.macs / 1e6:.1f} M MACs, {arch.params / 1e6:.2f} M params)")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
