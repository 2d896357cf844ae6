"""An emulated aarch64 device for people (and CI) without a Raspberry Pi or a phone.

Debian's arm64 CPython and the aarch64 wheels of TVM run under qemu-user and serve TVM's own
RPC server, so libraries cross-compiled for `rpi4` are uploaded, run and verified exactly as on
a real board. Numerics are the device's; **timings are qemu's, not a device's**: every number
measured on it is labelled `EMULATED_LABEL`.

    python -m tvm_mobilenet.device setup                                # once, ~20 s, ~1 GB
    python -m tvm_mobilenet.device emulate --key rpi4 --tracker 127.0.0.1:9190
    python -m tvm_mobilenet.device emulate --port 9090                  # direct connections

Setup needs `qemu-user-static` and Debian's arm64 package lists (`dpkg --add-architecture
arm64 && apt-get update`, as root, once); it unpacks packages with `dpkg -x` (no chroot, no
root) into `$TVM_MOBILENET_DEVICE_DIR` (default ~/.cache/tvm_mobilenet/aarch64-device).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tvm_mobilenet.errors import UserError, run_tool
from tvm_mobilenet.runtime.rpc import (
    EMULATED_FUNC,
    Endpoint,
    free_devices,
    is_listening,
)

logger = logging.getLogger(__name__)

QEMU = "qemu-aarch64-static"
PYTHON = "usr/bin/python3.11"
#: Debian 12 arm64 packages: CPython 3.11 and the shared libraries it and TVM load.
DEBIAN_PACKAGES = (
    "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6",
    "libstdc++6", "libgcc-s1", "libgomp1", "zlib1g", "libexpat1", "libffi8", "libssl3",
    "libbz2-1.0", "liblzma5", "libcrypt1", "libsqlite3-0", "libuuid1", "libncursesw6",
    "libtinfo6", "libreadline8", "libnsl2", "libtirpc3", "libdb5.3")
#: Python packages the device's RPC server needs, at the host's versions where installed.
DEVICE_WHEELS = ("apache-tvm", "apache-tvm-ffi", "numpy", "cloudpickle", "psutil")
AARCH64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")
#: Seconds to wait for a started server to listen or register (importing TVM under qemu
#: takes ~10 s, and the server starts two Python processes).
START_TIMEOUT_S = 120.0

_SITECUSTOMIZE = f'''"""Written by tvm_mobilenet.device setup: marks this Python as emulated."""
import tvm_ffi

tvm_ffi.register_global_func("{EMULATED_FUNC}", lambda: "qemu-user aarch64", override=True)
'''

#: Runs TVM's RPC server with sys.executable pointing at the qemu launcher, because the server
#: starts its worker with `sys.executable -m tvm.exec.popen_worker`.
_BOOTSTRAP = ("import runpy, sys; sys.executable = sys.argv[1]; "
              "sys.argv = ['rpc_server'] + sys.argv[2:]; "
              "runpy.run_module('tvm.exec.rpc_server', run_name='__main__', alter_sys=True)")


def device_dir() -> Path:
    default = Path.home() / ".cache" / "tvm_mobilenet" / "aarch64-device"
    return Path(os.environ.get("TVM_MOBILENET_DEVICE_DIR", default))


def launcher(directory: Path | None = None) -> Path:
    """The device's `python3`: a script running arm64 CPython under qemu."""
    return (directory or device_dir()) / "python3"


def is_set_up(directory: Path | None = None) -> bool:
    return launcher(directory).is_file()


def _require_tools() -> None:
    if shutil.which(QEMU) is None:
        raise UserError(f"{QEMU} not found: install it with `apt-get install qemu-user-static`")
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                             text=True, check=False).stdout.split()
    if "arm64" not in foreign:
        raise UserError("Debian's arm64 packages are not enabled: run (as root) `dpkg "
                        "--add-architecture arm64 && apt-get update`")


def _host_version(package: str) -> str:
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def _write_launcher(directory: Path) -> None:
    script = launcher(directory)
    script.write_text(
        "#!/bin/sh\n# arm64 CPython under qemu-user (written by tvm_mobilenet.device setup)\n"
        f"export QEMU_LD_PREFIX='{directory / 'root'}' PYTHONPATH='{directory / 'site'}' "
        "PYTHONNOUSERSITE=1\n"
        f"exec {QEMU} '{directory / 'root' / PYTHON}' \"$@\"\n")
    script.chmod(0o755)


def setup(directory: Path | None = None, force: bool = False) -> Path:
    """Unpack arm64 CPython and install TVM's aarch64 wheels into `directory` (cached)."""
    directory = directory or device_dir()
    if is_set_up(directory) and not force:
        return directory
    _require_tools()
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=directory.parent) as scratch:
        staging = Path(scratch) / "device"
        debs = Path(scratch) / "debs"
        debs.mkdir()
        (staging / "root").mkdir(parents=True)
        logger.info(f"downloading {len(DEBIAN_PACKAGES)} Debian arm64 packages")
        run_tool(["apt-get", "download", *(f"{name}:arm64" for name in DEBIAN_PACKAGES)],
             "apt-get download", cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            run_tool(["dpkg", "-x", str(deb), str(staging / "root")], f"unpacking {deb.name}")
        wheels = [_host_version(name) for name in DEVICE_WHEELS]
        logger.info(f"installing aarch64 wheels: {' '.join(wheels)}")
        platforms = [flag for name in AARCH64_PLATFORMS for flag in ("--platform", name)]
        run_tool([sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts",
              "--target", str(staging / "site"), *platforms, "--only-binary=:all:",
              "--python-version", "311", *wheels], "pip install (aarch64 wheels)")
        (staging / "site" / "sitecustomize.py").write_text(_SITECUSTOMIZE)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    # The launcher holds absolute paths, so it is written at the final location.
    _write_launcher(directory)
    check = subprocess.run([str(launcher(directory)), "-c",
                            "import platform, tvm; print(platform.machine(), tvm.__version__)"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0 or not check.stdout.startswith("aarch64"):
        launcher(directory).unlink()
        raise UserError(f"the emulated device in {directory} does not start:\n"
                        + (check.stderr.strip().splitlines() or ["(no output)"])[-1])
    logger.info(f"emulated aarch64 device ready in {directory}: {check.stdout.strip()}")
    return directory


def require_device(directory: Path | None = None) -> Path:
    directory = directory or device_dir()
    if not is_set_up(directory):
        raise UserError(f"no emulated device in {directory}: run `python -m "
                        "tvm_mobilenet.device setup` first")
    return directory


def start_server(endpoint: Endpoint, directory: Path | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    """Start TVM's RPC server on the emulated device, in its own process group.

    With a tracker, the server registers under `endpoint.key`; otherwise it listens on
    `endpoint.port`. Bound to 127.0.0.1 only. Stop it with `stop_server`.
    """
    python = launcher(require_device(directory))
    arguments = ["--host", "127.0.0.1"]
    if endpoint.key:
        arguments += ["--tracker", f"{endpoint.host}:{endpoint.port}", "--key", endpoint.key]
    else:
        arguments += ["--port", str(endpoint.port), "--port-end", str(endpoint.port + 1)]
    output = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (owned by Popen)
    try:
        return subprocess.Popen([str(python), "-c", _BOOTSTRAP, str(python), *arguments],
                                stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        if log:
            output.close()


def stop_server(process: subprocess.Popen) -> None:
    """Stop the server and its workers (killing only the server would orphan its worker,
    which keeps the port)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_serving(endpoint: Endpoint, process: subprocess.Popen,
                       timeout: float = START_TIMEOUT_S) -> None:
    """Block until the server is registered with the tracker (or listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the emulated device exited with code {process.returncode}")
        try:
            if (free_devices(endpoint) > 0) if endpoint.key else is_listening(endpoint):
                return
        except UserError:
            pass
        time.sleep(1.0)
    raise UserError(f"the emulated device did not come up within {timeout:.0f} s")
