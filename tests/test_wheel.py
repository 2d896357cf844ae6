"""A wheel installed away from the checkout finds its presets and committed logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT


def test_installed_wheel_lists_presets_and_builds_with_committed_logs(tmp_path):
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(PROJECT_ROOT)], check=True, timeout=300)
    (wheel,) = wheels.glob("tvm_mobilenet-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    environment = {**os.environ, "PYTHONPATH": str(site)}

    def run(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "tvm_mobilenet", *args], cwd=work,
                                env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    # `bundle --native` builds the C API from sources the wheel carries.
    native = site / "tvm_mobilenet" / "deploy" / "native"
    for source in ("CMakeLists.txt", "tvm_mobilenet.pc.in", "tvm_mobilenet.cmake",
                   "include/tvm_mobilenet.h", "src/model.cc", "src/run.cc", "src/sha256.cc"):
        assert (native / source).is_file(), source
    where = subprocess.run([sys.executable, "-c", "import tvm_mobilenet as t; print(t.__file__)"],
                           cwd=work, env=environment, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(site)
    listed = run("targets")
    assert "rpi4" in listed and "x86 " in listed
    run("build", "--model", "mobilenet_v2", "--alpha", "0.35", "--resolution", "96",
        "--target", "rpi4", "-o", str(work / "rpi4.so"))
    assert (work / "rpi4.so").stat().st_size > 0
    built = run("build", "--model", "mobilenet_v2", "--target", "x86", "-o", str(work / "x86.so"))
    shipped = site / "tvm_mobilenet" / "data" / "tuning_logs"
    assert "schedules: " in built and f"{shipped}/" in built, built
