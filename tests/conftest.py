"""Shared fixtures: compiled libraries are built once per test session and reused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from tvm_mobilenet.build import LibraryInfo, build_library
from tvm_mobilenet.frontend import ModelSource, import_model
from tvm_mobilenet.targets import load_target

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_module(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m tvm_mobilenet.<module> args...` as a user would."""
    return subprocess.run([sys.executable, "-m", f"tvm_mobilenet.{module}", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)


@pytest.fixture(scope="session")
def built_library(tmp_path_factory: pytest.TempPathFactory
                  ) -> Callable[[ModelSource], tuple[Path, LibraryInfo]]:
    """Build (once) an untuned x86 library for a model source; returns its path and info."""
    cache: dict[ModelSource, tuple[Path, LibraryInfo]] = {}
    folder = tmp_path_factory.mktemp("libs")

    def build(source: ModelSource) -> tuple[Path, LibraryInfo]:
        if source not in cache:
            path = folder / f"{source.label}-seed{source.seed}.so"
            info = build_library(import_model(source), load_target("x86"), path, source)
            cache[source] = (path, info)
        return cache[source]

    return build
