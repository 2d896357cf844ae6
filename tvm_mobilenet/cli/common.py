"""The command line's shared vocabulary: one flag means the same thing in every verb.

Each verb module (`cli/<verb>.py`) parses its flags with these helpers and calls one library
function. `run_cli` turns a `UserError` into one ``error: ...`` line with exit code 2, and sets
up logging: the library reports progress through `logging`, the verbs print their results.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import MODEL_NAMES, ModelSource
from tvm_mobilenet.models.architectures import Architecture, architecture
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.target.presets import host_cores

#: Exit code for bad input (a model, target, log or flag the user gave), as argparse uses.
EXIT_BAD_INPUT = 2
#: Timed runs of a benchmark, in every verb that times.
DEFAULT_RUNS = 100
MODEL_HELP = ("an .onnx or .tflite file, mobilenet_v1 / mobilenet_v2 (built from the paper's "
              "table with seeded random weights), or mobilenet_v2_imagenet (torchvision's "
              "ImageNet weights)")


def add_architecture_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="width multiplier α (default: 1.0)")
    parser.add_argument("--resolution", type=int, default=224,
                        help="input resolution, the resolution multiplier ρ (default: 224)")
    parser.add_argument("--expansion", type=int, default=None,
                        help="MobileNetV2 expansion factor t (default: 6)")


def architecture_from_args(name: str, args: argparse.Namespace) -> Architecture:
    try:
        return architecture(name, args.alpha, args.resolution, args.expansion)
    except ValueError as error:
        raise UserError(str(error)) from error


def add_model_args(parser: argparse.ArgumentParser, default: str | None = None,
                   required: bool = False, of_library: bool = False) -> None:
    """``--model`` plus the flags that shape a built architecture and its weights' seed."""
    suffix = ("; default: the model the library was built from" if of_library
              else f" (default: {default})" if default else "")
    parser.add_argument("--model", default=default, required=required,
                        help=MODEL_HELP + suffix)
    add_architecture_args(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="weight seed when the model is an architecture name (default: 0)")


def model_source(args: argparse.Namespace, built: LibraryInfo | None = None) -> ModelSource:
    """The model the flags name (files by absolute path), else the one `built` came from."""
    if args.model is None and built is not None:
        return ModelSource(**built.source)
    spec = args.model if args.model in MODEL_NAMES else str(Path(args.model).resolve())
    source = ModelSource(spec, args.alpha, args.resolution, args.expansion, args.seed)
    if spec in MODEL_NAMES and spec != "mobilenet_v2_imagenet":
        architecture_from_args(spec, args)  # out-of-range α, ρ or t: one clear error here
    return source


def add_target_arg(parser: argparse.ArgumentParser, default: str | None = "x86") -> None:
    parser.add_argument("--target", default=default,
                        help="target preset (see `tvm-mobilenet targets`), a preset .json file, "
                             "or a TVM target as JSON or tag"
                             + (f" (default: {default}, this machine's CPU)" if default else ""))


def add_log_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-dir", type=Path, default=None, metavar="DIR",
                        help="root of the tuning logs, laid out DIR/<target>/<model>/ (default: "
                             "$TVM_MOBILENET_LOG_DIR, else the committed tuning_logs/)")


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_runs_arg(parser: argparse.ArgumentParser, what: str = "timed runs") -> None:
    parser.add_argument("--runs", type=count, default=DEFAULT_RUNS,
                        help=f"{what} (default: {DEFAULT_RUNS})")


def thread_counts(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated thread counts, e.g. ``1,2``."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated thread counts such as 1,2, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be at least 1, got {text!r}")
    return counts


def default_threads() -> tuple[int, ...]:
    """1 thread and all of this machine's cores."""
    return tuple(sorted({1, host_cores()}))


def add_threads_arg(parser: argparse.ArgumentParser, default_help: str) -> None:
    parser.add_argument("--threads", type=thread_counts, default=None, metavar="N,N",
                        help=f"thread counts to time (default: {default_help})")


def add_verbosity_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="also log details")
    group.add_argument("-q", "--quiet", action="store_true", help="log warnings only")


def parser_for(verb: str, description: str) -> argparse.ArgumentParser:
    """A verb's parser, with the flags every verb has."""
    parser = argparse.ArgumentParser(prog=f"tvm-mobilenet {verb}", description=description)
    add_verbosity_args(parser)
    return parser


def configure_logging(args: argparse.Namespace) -> None:
    """Progress to stdout as plain lines; -v adds details, -q keeps warnings only."""
    level = (logging.DEBUG if getattr(args, "verbose", False)
             else logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("tvm_mobilenet")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False


def run_cli(body: Callable[[], None], args: argparse.Namespace | None = None) -> int:
    """Run a verb's body; turn `UserError` into one line on stderr and exit code 2.

    Set TVM_MOBILENET_TRACEBACK=1 to see the full traceback instead.
    """
    configure_logging(args or argparse.Namespace())
    try:
        body()
    except UserError as error:
        if os.environ.get("TVM_MOBILENET_TRACEBACK"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
