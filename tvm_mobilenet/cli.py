"""Shared command-line plumbing: architecture flags and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .architectures import Architecture, architecture

#: Exit code for bad input (a model, target, log or flag the user gave), as argparse uses.
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """A problem with the user's input: reported as one line, without a traceback."""


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


def run_cli(body: Callable[[], None]) -> int:
    """Run a CLI body; turn `UserError` into one line on stderr and exit code 2.

    Set TVM_MOBILENET_TRACEBACK=1 to see the full traceback instead.
    """
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
