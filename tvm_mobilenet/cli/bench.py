"""`tvm-mobilenet bench LIBRARY`: time a built library, optionally beside onnxruntime."""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import (
    add_model_args,
    add_runs_arg,
    add_threads_arg,
    model_source,
    parser_for,
    run_cli,
)
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.evaluate.bench import COMPARABLE_RUNTIMES, benchmark, report
from tvm_mobilenet.frontend.importer import onnx_model
from tvm_mobilenet.runtime.rpc import add_rpc_args
from tvm_mobilenet.runtime.runner import RemoteLibrary, open_library
from tvm_mobilenet.target.presets import one_and_all


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("bench", "Time a built library with TVM's time evaluator: median and "
                        "p90 of single runs after warm-up. With --compare onnxruntime, "
                        "onnxruntime runs the same ONNX graph with the same thread count in a "
                        "process of its own, interleaved round by round, and the ratio of "
                        "medians is printed.")
    parser.add_argument("library", type=Path, help="library built by `tvm-mobilenet build`")
    add_runs_arg(parser)
    add_threads_arg(parser, "1 and all of the target's cores")
    parser.add_argument("--compare", choices=COMPARABLE_RUNTIMES, default=None,
                        help="also time this runtime on the same model (--model, default: the "
                             "one the library was built from)")
    add_model_args(parser, of_library=True)
    add_rpc_args(parser)
    args = parser.parse_args(argv)

    def run() -> None:
        library = open_library(args.library, args)
        source = model_source(args, library.info)
        compare_model = None
        if args.model is not None and not args.compare:
            raise UserError("--model names the model --compare runs: give --compare too")
        if args.compare and isinstance(library, RemoteLibrary):
            raise UserError("--compare runs the other runtime on this machine; it cannot be "
                            "compared with a library running on a device")
        if args.compare:
            compare_model = onnx_model(source).SerializeToString()
        # The target's cores (a GPU's library has none: one row).
        cores = int(library.info.target_dict.get("num-cores", 1))
        threads = args.threads or one_and_all(cores)
        timings = [timing for count in threads
                   for timing in benchmark({"tvm": library}, args.runs, count, compare_model)]
        print(report(str(args.library), timings, library.where))

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
