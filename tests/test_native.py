"""Deploy without Python: native bundles for x86_64 and the emulated rpi4 verify themselves
with the C API and runner alone; a tampered library or self-check file fails; the C API's
error paths return a status and a message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
from conftest import PROJECT_ROOT

from tvm_mobilenet.deploy.bundle import write_bundle
from tvm_mobilenet.errors import UserError
from tvm_mobilenet.frontend.importer import ModelSource
from tvm_mobilenet.runtime import emulated_device as device

SMALL = ModelSource("mobilenet_v1", 0.25, 64)
RUNNER = "bin/tvm-mobilenet-run"


def run(*command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def x86_bundle(built_library, tmp_path_factory):
    library, _ = built_library(SMALL)
    return write_bundle(library, tmp_path_factory.mktemp("native") / "x86", native_code=True)


def test_the_x86_runner_verifies_its_bundle_without_python(x86_bundle):
    result = run(str(x86_bundle / RUNNER), "--runs", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "latency: median" in result.stdout
    needed = run("readelf", "--dynamic", str(x86_bundle / RUNNER)).stdout
    assert "python" not in needed.lower() and "libtvm_mobilenet.so" in needed
    spec = json.loads((x86_bundle / "model.json").read_text())
    assert len(spec["library_sha256"]) == 64


def tamper_with_expected(bundle) -> None:
    """Move one expected logit by 1% of the largest: far beyond the fp32 tolerance."""
    expected = np.load(bundle / "expected.npy")
    expected[0, 7] += 0.01 * np.abs(expected).max()
    np.save(bundle / "expected.npy", expected)


def copy_of(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "copy", symlinks=True)


def test_a_tampered_library_is_refused_before_it_loads(x86_bundle, tmp_path):
    bundle = copy_of(x86_bundle, tmp_path)
    library = bytearray((bundle / "model.so").read_bytes())
    library[len(library) // 2] ^= 0xFF
    (bundle / "model.so").write_bytes(bytes(library))
    result = run(str(bundle / RUNNER))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "is not the library" in result.stderr


def test_tampered_self_check_data_fails_the_check(x86_bundle, tmp_path):
    bundle = copy_of(x86_bundle, tmp_path)
    tamper_with_expected(bundle)
    result = run(str(bundle / RUNNER), "--runs", "1")
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout + result.stderr


def test_the_runner_refuses_bad_input_in_one_line(x86_bundle, tmp_path):
    wrong = tmp_path / "wrong.raw"
    wrong.write_bytes(b"\0" * 12)
    for arguments, message in (((str(tmp_path),), "cannot read"),
                               (("--runs", "0"), "--runs takes a whole number"),
                               (("--image", str(wrong)), "has 12 bytes")):
        result = run(str(x86_bundle / RUNNER), *arguments)
        assert result.returncode == 2, (arguments, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_the_c_api_returns_a_status_and_a_message_on_every_error(x86_bundle, rpi4_library,
                                                                 built_library, tmp_path):
    """Compiled against the bundle through its pkg-config file, as an app would be."""
    environment = {**os.environ, "PKG_CONFIG_PATH": str(x86_bundle / "lib" / "pkgconfig")}
    flags = run("pkg-config", "--cflags", "--libs", "tvm_mobilenet", env=environment)
    assert flags.returncode == 0, flags.stderr
    program = tmp_path / "api_errors"
    compiled = run("cc", str(PROJECT_ROOT / "tests" / "native" / "api_errors.c"), "-o",
                   str(program), *flags.stdout.split())
    assert compiled.returncode == 0, compiled.stderr
    foreign = tmp_path / "aarch64.so"
    shutil.copyfile(rpi4_library, foreign)
    spec = json.loads((x86_bundle / "model.json").read_text())
    del spec["library_sha256"]
    (tmp_path / "aarch64.json").write_text(json.dumps(spec))
    library, _ = built_library(SMALL)
    result = run(str(program), str(x86_bundle), str(foreign), str(library))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["missing"].startswith("1 cannot read") and "missing.json" in lines["missing"]
    assert lines["foreign"] == f"1 {foreign} is a library for aarch64, not for this x86_64 CPU"
    assert lines["plain"] == (f"1 {library.with_suffix('.json')} has no output_shape: give the "
                              "model.json of a bundle (`tvm-mobilenet bundle --native`)")
    assert lines["null"].startswith("2 library and model must not be NULL")
    assert lines["open"] == "0 "
    assert lines["short-input"].startswith("2 the model takes")
    assert lines["long-input"].startswith("2 the model takes")
    assert lines["threads"] == "2 threads must be at least 1"
    assert lines["run"] == "0 " and lines["after-errors"] == "0 "


def test_the_rpi4_runner_verifies_its_bundle_under_qemu_without_python(rpi4_library, tmp_path):
    """Cross-compiled with Debian's aarch64 toolchain against the aarch64 wheels' runtime, run
    by qemu-user with the emulated device's arm64 libc and libstdc++: no Python anywhere."""
    bundle = write_bundle(rpi4_library, tmp_path / "rpi4", native_code=True)
    root = device.require_device() / "root"
    result = run(device.QEMU, "-L", str(root), str(bundle / RUNNER), "--runs", "2",
                 "--warmup", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "[emulated (qemu-user): not device speed]" in result.stdout
    tamper_with_expected(bundle)
    result = run(device.QEMU, "-L", str(root), str(bundle / RUNNER), "--runs", "1")
    assert result.returncode == 1 and "FAIL" in result.stdout


def test_platforms_without_a_native_runtime_are_refused_before_any_work(tmp_path,
                                                                        built_library):
    library, info = built_library(SMALL)
    for target, triple, message in (("android-arm64", "aarch64-linux-android", "Android"),
                                    ("rpi3", "armv7l-linux-gnueabihf", "no TVM runtime wheel")):
        copy = tmp_path / f"{target}.so"
        shutil.copyfile(library, copy)
        replace(info, target=target,
                target_dict={**info.target_dict, "mtriple": triple}).save(copy)
        with pytest.raises(UserError, match=message):
            write_bundle(copy, tmp_path / f"{target}-bundle", native_code=True)
        assert not (tmp_path / f"{target}-bundle").exists()
