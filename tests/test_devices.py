"""Device presets: cross-compiled aarch64 libraries, and fast clear errors about trackers."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import run_module
from tvm_mobilenet.cli import UserError
from tvm_mobilenet.rpc import Tracker, free_devices, parse_tracker

ELF_MACHINE_AARCH64 = 183


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None and not os.environ.get("CI"),
                    reason="needs g++-aarch64-linux-gnu (installed by .ci/run)")
def test_rpi4_build_is_an_aarch64_elf(tmp_path):
    library = tmp_path / "v2.so"
    result = run_module("build", "mobilenet_v2", "--alpha", "0.35", "--resolution", "96",
                        "--target", "rpi4", "-o", str(library))
    assert result.returncode == 0, result.stderr
    header = library.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[4] == 2  # 64-bit ELF
    assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64


def test_missing_cross_compiler_names_the_package(tmp_path):
    target = tmp_path / "board.json"
    target.write_text(json.dumps({
        "target": {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "num-cores": 4},
        "device": "rpc", "rpc_key": "board",
        "cross_compiler": {"command": "no-such-g++", "package": "g++-no-such"}}))
    result = run_module("build", "mobilenet_v1", "--alpha", "0.25", "--resolution", "64",
                        "--target", str(target), "-o", str(tmp_path / "x.so"))
    assert result.returncode == 2
    assert "apt-get install g++-no-such" in result.stderr


def test_tune_arm_cpu_without_tracker_fails_fast():
    start = time.monotonic()
    result = run_module("tune", "--target", "arm_cpu", "--rpc-tracker", f"127.0.0.1:{free_port()}",
                        timeout=60)
    assert result.returncode == 2
    assert "cannot reach an RPC tracker" in result.stderr
    assert "tvm.exec.rpc_tracker" in result.stderr and "--key rpi4" in result.stderr
    assert time.monotonic() - start < 30


def test_tracker_without_the_key_lists_what_it_has():
    port = free_port()
    tracker = subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host",
                                "127.0.0.1", "--port", str(port), "--port-end", str(port + 1)],
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with pytest.raises(UserError, match="has no device with key 'rpi4' \\(keys: none\\)"):
            free_devices(Tracker("127.0.0.1", port), "rpi4")
    finally:
        os.killpg(tracker.pid, signal.SIGTERM)
        tracker.wait(timeout=10)


def test_parse_tracker():
    assert parse_tracker("10.0.0.2:9191") == Tracker("10.0.0.2", 9191)
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_tracker("nonsense")
