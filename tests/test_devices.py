"""ARM devices: cross-compiled libraries for each preset, and the rpi4 ones verified, timed and
tuned on the emulated aarch64 device through a real RPC tracker; clear, bounded failures."""

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SMALL_V2_FLAGS, build_for, free_port, run_module

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import ModelSource, import_model
from tvm_mobilenet.runtime import emulated_device as device
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.runtime.rpc import (
    EMULATED_LABEL,
    Endpoint,
    free_devices,
    parse_address,
    registered_devices,
)
from tvm_mobilenet.runtime.runner import RemoteLibrary
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import load_target
from tvm_mobilenet.tuning import log as tuning_log
from tvm_mobilenet.tuning.tasks import extract_tasks
from tvm_mobilenet.tuning.tuner import tune_tasks

ELF_MACHINE = {"aarch64": 183, "arm": 40}
def elf_header(path) -> tuple[int, int]:
    """(ELF class: 1 = 32-bit, 2 = 64-bit; machine)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return header[4], int.from_bytes(header[18:20], "little")


def needed_libraries(path) -> list[str]:
    """DT_NEEDED entries, read by binutils' readelf (installed with the cross compilers)."""
    dynamic = subprocess.run(["readelf", "--dynamic", str(path)], capture_output=True,
                             text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)


def test_rpi4_build_is_an_aarch64_elf(rpi4_library):
    assert elf_header(rpi4_library) == (2, ELF_MACHINE["aarch64"])


def test_rpi3_build_is_a_32_bit_arm_elf(tmp_path):
    build_for("rpi3", tmp_path / "v2.so")
    assert elf_header(tmp_path / "v2.so") == (1, ELF_MACHINE["arm"])


def test_missing_cross_compiler_names_the_package(tmp_path):
    target = tmp_path / "board.json"
    target.write_text(json.dumps({
        "target": {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "num-cores": 4},
        "device": "rpc", "rpc_key": "board",
        "cross_compiler": {"command": "no-such-g++", "package": "g++-no-such"}}))
    result = run_module("build", "--model", "mobilenet_v1", "--alpha", "0.25", "--resolution", "64",
                        "--target", str(target), "-o", str(tmp_path / "x.so"))
    assert result.returncode == 2
    assert "apt-get install g++-no-such" in result.stderr


def test_rpi4_library_verifies_on_the_emulated_device(rpi4_library, emulated_rpi4):
    result = run_module("verify", str(rpi4_library), "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and EMULATED_LABEL in result.stdout
    # The same library against weights of another seed: the comparison can fail.
    result = run_module("verify", str(rpi4_library), *SMALL_V2_FLAGS, "--seed", "1",
                        "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}")
    assert result.returncode == 1 and "FAIL" in result.stdout


def test_bench_on_the_emulated_device_is_labelled(rpi4_library, emulated_rpi4):
    result = run_module("bench", str(rpi4_library), "--runs", "3", "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}")
    assert result.returncode == 0, result.stderr
    assert EMULATED_LABEL in result.stdout
    assert re.search(r"^tvm\s+4\s", result.stdout, re.MULTILINE)  # the preset's 4 cores
    result = run_module("bench", str(rpi4_library), "--compare", "onnxruntime",
                        "--rpc-tracker", f"{emulated_rpi4.host}:{emulated_rpi4.port}")
    assert result.returncode == 2 and "cannot be compared" in result.stderr


def test_android_library_without_ndk(tmp_path, monkeypatch, emulated_rpi4):
    """Linked without the NDK, the Android library needs no shared library at all, so it
    also loads and verifies on aarch64 Linux (this checks the code, not Android's loader)."""
    monkeypatch.delenv("TVM_NDK_CC", raising=False)
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    result = run_module("build", *SMALL_V2_FLAGS, "--target", "android-arm64", "-o",
                        str(tmp_path / "v2.so"))
    assert result.returncode == 0, result.stderr
    assert "without the Android NDK" in result.stdout
    assert elf_header(tmp_path / "v2.so") == (2, ELF_MACHINE["aarch64"])
    assert needed_libraries(tmp_path / "v2.so") == []
    result = run_module("verify", str(tmp_path / "v2.so"), "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}", "--rpc-key", "rpi4")
    assert result.returncode == 0, result.stdout + result.stderr


BUNDLE_FILES = ["expected.npy", "input.npy", "model.json", "model.so", "run.py"]


def run_bundle(python: str, bundle) -> subprocess.CompletedProcess:
    return subprocess.run([python, "run.py", "--repeat", "2"], cwd=bundle,
                          capture_output=True, text=True, timeout=300)


def test_bundle_verifies_itself_on_the_device(rpi4_library, tmp_path, emulated_rpi4):
    bundle = tmp_path / "bundle"
    result = run_module("bundle", str(rpi4_library), "-o", str(bundle))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in bundle.iterdir()) == BUNDLE_FILES
    result = run_bundle(str(device.launcher()), bundle)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and EMULATED_LABEL in result.stdout


def test_a_bundle_fails_its_self_check_on_tampered_data(tmp_path):
    """The same run.py on this machine, from `build --bundle`: PASS, then FAIL once the
    expected logits are changed."""
    bundle = tmp_path / "bundle"
    build_for("x86", tmp_path / "v2.so", "--bundle", str(bundle))
    assert sorted(p.name for p in bundle.iterdir()) == BUNDLE_FILES
    result = run_bundle(sys.executable, bundle)
    assert result.returncode == 0 and "PASS" in result.stdout, result.stdout + result.stderr
    assert EMULATED_LABEL not in result.stdout
    np.save(bundle / "expected.npy", 2 * np.load(bundle / "expected.npy"))
    result = run_bundle(sys.executable, bundle)
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout + result.stderr


def test_tune_arm_cpu_on_the_emulated_device(tmp_path, emulated_rpi4):
    logs, library = tmp_path / "logs", tmp_path / "tuned.so"
    result = run_module("tune", "--target", "arm_cpu", *SMALL_V2_FLAGS, "--trials", "4",
                        "--log-dir", str(logs),
                        "--runs", "2", "-o", str(library), "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = logs / "rpi4" / "mobilenet_v2-0.35-96"
    assert tuning_log.record_count(log) >= 4
    assert f"from {log}" in LibraryInfo.load(library).tuning_log
    assert result.stdout.count("top-5 agrees  ok") == 2  # verified on the device
    assert EMULATED_LABEL in result.stdout
    summary = tuning_log.read_summary(log)
    assert EMULATED_LABEL in summary["measured_on"]


def test_unknown_key_fails_fast_listing_the_keys(rpi4_library, emulated_rpi4):
    start = time.monotonic()
    result = run_module("verify", str(rpi4_library), "--rpc-tracker",
                        f"{emulated_rpi4.host}:{emulated_rpi4.port}", "--rpc-key", "pixel9")
    assert result.returncode == 2
    assert "has no device with key 'pixel9' (keys: rpi4)" in result.stderr
    assert time.monotonic() - start < 60


def test_unreachable_tracker_fails_fast(rpi4_library):
    start = time.monotonic()
    result = run_module("verify", str(rpi4_library), "--rpc-tracker", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "cannot reach an RPC tracker" in result.stderr
    assert "tvm.exec.rpc_tracker" in result.stderr and "--key rpi4" in result.stderr
    assert time.monotonic() - start < 60


def test_tune_arm_cpu_without_tracker_fails_fast():
    start = time.monotonic()
    result = run_module("tune", "--target", "arm_cpu", "--rpc-tracker", f"127.0.0.1:{free_port()}",
                        timeout=60)
    assert result.returncode == 2
    assert "cannot reach an RPC tracker" in result.stderr and "--key rpi4" in result.stderr
    assert time.monotonic() - start < 30


def test_device_killed_mid_run_is_a_clear_error(rpi4_library, tmp_path):
    """A direct-connection emulated device, killed between two runs of a library."""
    endpoint = Endpoint("127.0.0.1", free_port())
    process = device.start_server(endpoint, log=tmp_path / "server.log")
    try:
        device.wait_until_serving(endpoint, process)
        library = RemoteLibrary(rpi4_library, LibraryInfo.load(rpi4_library), endpoint)
        x = np.zeros(library.info.input_shape, np.float32)
        assert library.run(x).shape == (1, 1000)
    finally:
        device.stop_server(process)
    start = time.monotonic()
    with pytest.raises(UserError, match="the device .* failed"):
        library.run(x)
    assert time.monotonic() - start < 60


def test_tracker_without_the_key_lists_what_it_has(tracker):
    with pytest.raises(UserError, match="has no device with key 'rpi5' \\(keys: "):
        free_devices(Endpoint(tracker.host, tracker.port, key="rpi5"))


def test_parse_address():
    assert parse_address("10.0.0.2:9191") == ("10.0.0.2", 9191)
    with pytest.raises(UserError, match="HOST:PORT"):
        parse_address("nonsense")


#: Trials timed per farm size: one round, measured on as many devices as are free.
FARM_TRIALS = 6


@pytest.mark.alone
def test_a_farm_of_three_emulated_devices_measures_candidates_in_parallel(tracker, tmp_path,
                                                                          monkeypatch):
    """Devices registered under one key are measured at once (RPCRunner workers = the free
    devices the tracker reports): trials per second with one emulated device, then three.

    A real board computes on cores of its own. Here every emulated board runs on the same two
    host cores, each with one thread: three boards measure three candidates at once, but on
    two cores, so the speed-up is bounded by 2, not 3."""
    monkeypatch.setenv("TVM_NUM_THREADS", "1")  # inherited by the emulated servers
    farm = Endpoint(tracker.host, tracker.port, key="farm")
    preset = load_target("rpi4")
    target = preset.tvm_tuning_target
    # A kernel large enough that measuring it on a device, not searching or building here,
    # takes most of a trial (MobileNetV1's 14x14x512 pointwise conv), as on real boards.
    task = next(t for t in extract_tasks(import_model(ModelSource("mobilenet_v1")).mod, target)
                if t.kind == "pointwise")
    servers = []

    def trials_per_second(devices: int) -> float:
        while len(servers) < devices:  # one at a time: each server scans for a free port
            servers.append(device.start_server(farm, log=tmp_path / f"device{len(servers)}.log"))
            deadline = time.monotonic() + device.START_TIMEOUT_S
            while registered_devices(farm) < len(servers):
                assert time.monotonic() < deadline, "the emulated devices did not register"
                time.sleep(1)
        log = tmp_path / f"farm-of-{devices}"
        start = time.perf_counter()
        tune_tasks([task], target, log, FARM_TRIALS, device=farm, linker=linker_for(preset))
        assert tuning_log.record_count(log) == FARM_TRIALS
        return FARM_TRIALS / (time.perf_counter() - start)

    try:
        one, three = trials_per_second(1), trials_per_second(3)
    finally:
        for server in servers:
            device.stop_server(server)
    print(f"emulated farm: {one:.2f} trials/s on 1 device, {three:.2f} on 3 "
          f"({three / one:.2f}x; one thread per device, 2 host cores for all)")
    assert three > 1.3 * one
