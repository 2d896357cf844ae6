"""`tvm-mobilenet profile LIBRARY`: where one inference's time goes, by task kind."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tvm_mobilenet.cli.common import (
    add_runs_arg,
    add_threads_arg,
    count,
    default_threads,
    parser_for,
    run_cli,
)
from tvm_mobilenet.evaluate.profile import profile


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("profile", "Time every kernel of a built CPU library inside real "
                        "inferences and break the time down by kind (stem, depthwise, pointwise "
                        "/ expand / project, classifier, other, VM runtime) with GFLOP/s against "
                        "the measured FMA peak and GB/s against the measured copy bandwidth. "
                        "Prints Markdown.")
    parser.add_argument("library", type=Path, help="library built by `tvm-mobilenet build`")
    add_threads_arg(parser, "1 and all cores")
    add_runs_arg(parser, "inferences timed")
    parser.add_argument("--top", type=count, default=10,
                        help="slowest kernels listed (default: 10)")
    args: argparse.Namespace = parser.parse_args(argv)
    return run_cli(lambda: print(profile(args.library, list(args.threads or default_threads()),
                                         args.runs, args.top)), args)


if __name__ == "__main__":
    sys.exit(main())
