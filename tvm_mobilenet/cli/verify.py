"""`tvm-mobilenet verify LIBRARY`: compare a built library with the NumPy reference.

Exit code 0 = pass, 1 = mismatch, 2 = bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import (
    add_model_args,
    count,
    model_source,
    natural,
    parser_for,
    positive_float,
    run_cli,
)
from tvm_mobilenet.evaluate.verify import DEFAULT_RTOL, report, verify_library
from tvm_mobilenet.frontend.importer import onnx_model
from tvm_mobilenet.runtime.rpc import add_rpc_args
from tvm_mobilenet.runtime.runner import open_library


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("verify", "Run a built library and an independent NumPy (float64) "
                        "reference of the same ONNX graph on seeded inputs; compare the logits. "
                        "Passes when max |library - reference| / max |reference| <= "
                        f"{DEFAULT_RTOL:g} (the fp32 tolerance, see docs/verification.md). Exit "
                        "code 0 = pass, 1 = mismatch, 2 = bad input.")
    parser.add_argument("library", type=Path, help="library built by `tvm-mobilenet build`")
    add_model_args(parser, of_library=True)
    parser.add_argument("--inputs", type=count, default=2,
                        help="how many seeded inputs (default: 2)")
    parser.add_argument("--input-seed", type=natural, default=1234,
                        help="seed of the inputs (default: 1234)")
    parser.add_argument("--rtol", type=positive_float, default=DEFAULT_RTOL,
                        help=f"relative tolerance (default: {DEFAULT_RTOL:g})")
    add_rpc_args(parser)
    args = parser.parse_args(argv)
    outcome = {"passed": False}

    def run() -> None:
        library = open_library(args.library, args)
        source = model_source(args, library.info)
        comparisons = verify_library(library, onnx_model(source), args.inputs, args.input_seed)
        print(f"{args.library} on {library.where} vs NumPy reference of {source.label} "
              f"(input {list(library.info.input_shape)})")
        print(report(comparisons, args.rtol))
        outcome["passed"] = all(c.passes(args.rtol) for c in comparisons)
        print("PASS" if outcome["passed"] else "FAIL: outputs differ beyond tolerance")

    code = run_cli(run, args)
    return code if code else (0 if outcome["passed"] else 1)


if __name__ == "__main__":
    sys.exit(main())
