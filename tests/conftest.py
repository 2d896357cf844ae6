"""Shared fixtures: compiled libraries are built once per test session and reused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tvm_mobilenet.compile.build import build_library
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.runtime import emulated_device as device
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.runtime.rpc import Endpoint, is_listening
from tvm_mobilenet.target.presets import load_target

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


SMALL_V2 = ("mobilenet_v2", "--alpha", "0.35", "--resolution", "96")
SMALL_V2_FLAGS = ("--model", *SMALL_V2)


def build_for(target: str, output: Path, *extra: str) -> None:
    """`tvm-mobilenet build` of a small MobileNetV2 for a target preset."""
    result = run_module("build", *SMALL_V2_FLAGS, "--target", target, "-o", str(output), *extra)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def rpi4_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MobileNetV2 built for the rpi4 preset (aarch64)."""
    path = tmp_path_factory.mktemp("rpi4") / "v2.so"
    build_for("rpi4", path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_tracker(port: int) -> subprocess.Popen:
    """A real TVM RPC tracker on 127.0.0.1:`port`, listening when this returns."""
    process = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host",
                                "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)],
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not is_listening(Endpoint("127.0.0.1", port)):
        assert time.monotonic() < deadline and process.poll() is None, "tracker did not start"
        time.sleep(0.2)
    return process


def stop_tracker(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def tracker() -> Iterator[Endpoint]:
    """A real TVM RPC tracker on 127.0.0.1 (key None: add one with `Endpoint(..., key=)`)."""
    port = free_port()
    process = start_tracker(port)
    yield Endpoint("127.0.0.1", port)
    stop_tracker(process)


@pytest.fixture(scope="session")
def emulated_rpi4(tracker: Endpoint, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Endpoint]:
    """The emulated aarch64 device (qemu), registered with `tracker` under key rpi4. Sets the
    device up first if needed (a failure here fails the tests: CI must have it)."""
    device.setup()
    endpoint = Endpoint(tracker.host, tracker.port, key="rpi4")
    log = tmp_path_factory.mktemp("device") / "server.log"
    process = device.start_server(endpoint, log=log)
    try:
        device.wait_until_serving(endpoint, process)
        yield endpoint
    finally:
        device.stop_server(process)
