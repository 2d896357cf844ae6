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
import tempfile
from pathlib import Path
from typing import Callable

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import MODEL_NAMES, ModelSource
from tvm_mobilenet.models.architectures import Architecture, architecture
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.target.presets import host_cores, one_and_all
from tvm_mobilenet.tuning.tasks import TASK_KINDS

#: Exit code for bad input (a model, target, log or flag the user gave), as argparse uses.
EXIT_BAD_INPUT = 2
#: Exit code for anything else that went wrong: a bug of ours.
EXIT_BUG = 3
#: Timed runs of a benchmark, in every verb that times.
DEFAULT_RUNS = 100
#: The architecture flags and their defaults (they shape the model --model names).
ARCHITECTURE_DEFAULTS = {"alpha": 1.0, "resolution": 224, "expansion": None, "seed": 0}
MODEL_HELP = ("an .onnx or .tflite file, mobilenet_v1 / mobilenet_v2 (built from the paper's "
              "table with seeded random weights), or mobilenet_v2_imagenet (torchvision's "
              "ImageNet weights)")


def add_architecture_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alpha", type=positive_float, default=ARCHITECTURE_DEFAULTS["alpha"],
                        help="width multiplier α (default: 1.0)")
    parser.add_argument("--resolution", type=int, default=ARCHITECTURE_DEFAULTS["resolution"],
                        help="input resolution, the resolution multiplier ρ (default: 224)")
    parser.add_argument("--expansion", type=int, default=ARCHITECTURE_DEFAULTS["expansion"],
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
    parser.add_argument("--seed", type=natural, default=ARCHITECTURE_DEFAULTS["seed"],
                        help="weight seed when the model is an architecture name (default: 0)")


def model_source(args: argparse.Namespace, built: LibraryInfo | None = None) -> ModelSource:
    """The model the flags name (files by absolute path), else the one `built` came from."""
    if args.model is None and built is not None:
        given = [flag for flag, default in ARCHITECTURE_DEFAULTS.items()
                 if getattr(args, flag) != default]
        if given:
            raise UserError(f"--{given[0]} shapes the model named by --model; give --model too")
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


def add_log_dir_arg(parser: argparse.ArgumentParser, writes: bool = False) -> None:
    """``--log-dir``: a folder that exists, or (for verbs that write logs) can be made."""
    parser.add_argument("--log-dir", type=writable_path if writes else existing_folder,
                        default=None, metavar="DIR",
                        help="root of the tuning logs, laid out DIR/<target>/<model>/ (default: "
                             "$TVM_MOBILENET_LOG_DIR, else the committed tuning_logs/)")


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return _whole_number(text, 1)


def natural(text: str) -> int:
    """An argparse type: a whole number of at least 0 (seeds, budgets)."""
    return _whole_number(text, 0)


def port(text: str) -> int:
    """An argparse type: a TCP port."""
    value = _whole_number(text, 1)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def writable_path(text: str) -> Path:
    """An argparse type: a file or folder that can be written (its parent folders are made);
    checked by writing a probe file, since permission bits do not bind root."""
    path = Path(text)
    folder = path if path.is_dir() else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tvm_mobilenet_probe_"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot write {text}: {error.strerror or error}") from None
    return path


def file_of(*suffixes: str) -> Callable[[str], Path]:
    """An argparse type: a writable file whose name ends in one of `suffixes`."""
    def check(text: str) -> Path:
        if Path(text).suffix not in suffixes:
            raise argparse.ArgumentTypeError(
                f"{text} must end in {' or '.join(suffixes)}")
        return writable_path(text)

    check.__name__ = "file_of"
    return check


def existing_folder(text: str) -> Path:
    """An argparse type: a folder that exists."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def add_runs_arg(parser: argparse.ArgumentParser, what: str = "timed runs") -> None:
    parser.add_argument("--runs", type=count, default=DEFAULT_RUNS,
                        help=f"{what} (default: {DEFAULT_RUNS})")


def task_kinds(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated task kinds, or ``all``."""
    kinds = TASK_KINDS if text == "all" else tuple(part.strip() for part in text.split(","))
    unknown = [kind for kind in kinds if kind not in TASK_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown op kind(s) {', '.join(unknown)}; choose from {', '.join(TASK_KINDS)} "
            "or 'all'")
    return kinds


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
    return one_and_all(host_cores())


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
    """Run a verb's body; turn `UserError` into one line on stderr and exit code 2, and any
    other exception into one line that calls it a bug, with exit code 3.

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
    except Exception as error:  # the last line of defence: anything else is a bug
        if os.environ.get("TVM_MOBILENET_TRACEBACK"):
            raise
        print(f"error: internal error, a bug in tvm_mobilenet ({type(error).__name__}: "
              f"{str(error).strip().splitlines()[-1] if str(error).strip() else ''}); rerun "
              "with TVM_MOBILENET_TRACEBACK=1 for the traceback", file=sys.stderr)
        return EXIT_BUG
    return 0
