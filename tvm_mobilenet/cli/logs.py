"""`tvm-mobilenet logs`: list the tuning logs, or slim one down to what builds and picking need.

    tvm-mobilenet logs list
    tvm-mobilenet logs slim tuning_logs/x86-rocketlake/mobilenet_v2-1.0-224
"""

from __future__ import annotations

import sys
from pathlib import Path

from tvm_mobilenet.cli.common import add_log_dir_arg, count, parser_for, run_cli
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.resources import log_root
from tvm_mobilenet.tuning import log as tuning_log


def main(argv: list[str] | None = None) -> int:
    parser = parser_for("logs", "List the tuning logs, or slim a log: keep each workload's "
                        "fastest records and the picks, so that it can be committed.")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="each log: target, model, records, picks")
    add_log_dir_arg(listing)
    slim = commands.add_parser("slim", help="keep each workload's fastest records")
    slim.add_argument("log", type=Path, help="a log folder, <root>/<target>/<model>")
    slim.add_argument("--keep", type=count, default=tuning_log.SLIM_KEEP,
                      help=f"records kept per workload (default: {tuning_log.SLIM_KEEP})")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.command == "list":
            root = log_root(args.log_dir)
            for directory in sorted(root.glob("*/*/")):
                picked = "picked" if tuning_log.has_selection(directory) else "not picked"
                print(f"{directory.parent.name:<18} {directory.name:<28} "
                      f"{tuning_log.record_count(directory):>6} records, {picked}")
            return
        if not (args.log / tuning_log.RECORD_FILE).is_file():
            raise UserError(f"{args.log} is not a tuning log (no {tuning_log.RECORD_FILE})")
        before, after = tuning_log.slim(args.log, args.keep)
        print(f"{args.log}: kept {after} of {before} records")

    return run_cli(run, args)


if __name__ == "__main__":
    sys.exit(main())
