"""Native deploy bundles: a built library with TVM's runtime libraries for its target, the C
API (``tvm_mobilenet.h``, ``libtvm_mobilenet.so``) and the ``tvm-mobilenet-run`` runner, built
with CMake from ``native/``, so the device needs no Python.

The runtime libraries come from the TVM wheels of the target's platform, at the host's
versions: this machine's own for x86_64, ``pip download --platform manylinux... --no-deps``
for aarch64. Compiled runners are cached per platform and sources in
``~/.cache/tvm_mobilenet/native`` (``$TVM_MOBILENET_NATIVE_DIR``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import tvm_ffi

from tvm_mobilenet.errors import UserError, run_tool
from tvm_mobilenet.files import replaced
from tvm_mobilenet.runtime.emulated_device import AARCH64_PLATFORMS
from tvm_mobilenet.runtime.library import LibraryInfo
from tvm_mobilenet.target.linker import linker_for
from tvm_mobilenet.target.presets import load_target

logger = logging.getLogger(__name__)

SOURCES = Path(__file__).resolve().parent / "native"
#: What a native bundle adds to a bundle's files: the runner, the C API and TVM's runtime.
NATIVE_FILES = ("bin", "lib", "include")
#: Inside each TVM wheel: the runtime libraries a native bundle ships.
RUNTIME_LIBRARIES = {"apache-tvm": "tvm/lib/libtvm_runtime.so",
                     "apache-tvm-ffi": "tvm_ffi/lib/libtvm_ffi.so"}


@dataclass(frozen=True)
class NativePlatform:
    """Where a native bundle runs: a CPU architecture, and how to compile and get TVM for it."""

    architecture: str
    #: pip's platform tags of the target's TVM wheels; empty for this machine's own wheels.
    wheel_platforms: tuple[str, ...] = ()
    #: C++ cross compiler; None for this machine's.
    compiler: str | None = None


def native_platform(info: LibraryInfo) -> NativePlatform:
    """The platform a library runs on, or a `UserError` saying why it has no native bundle."""
    if info.target_dict.get("kind") != "llvm":
        raise UserError(f"{info.model} is built for {info.target}, not a CPU: native bundles "
                        "hold CPU libraries")
    triple = info.target_dict.get("mtriple", "")
    if not triple:
        if platform.machine() != "x86_64":
            raise UserError(f"native bundles for this machine ({platform.machine()}) are not "
                            "supported: x86_64 and aarch64 Linux are")
        return NativePlatform("x86_64")
    if "android" in triple:
        raise UserError(f"{info.target} runs on Android, whose TVM runtime must be built with "
                        "the NDK (bionic libc), which no wheel provides: bundle the model .so "
                        "without --native and see docs/native-deployment.md")
    if triple.startswith("aarch64") and "linux-gnu" in triple:
        compiler = linker_for(load_target(info.target))
        return NativePlatform("aarch64", AARCH64_PLATFORMS, compiler.command if compiler else None)
    raise UserError(f"no TVM runtime wheel exists for {triple} ({info.target}): native bundles "
                    "are for x86_64 and aarch64 Linux")


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "tvm_mobilenet" / "native"
    return Path(os.environ.get("TVM_MOBILENET_NATIVE_DIR", default))


def _versions() -> dict[str, str]:
    return {wheel: importlib.metadata.version(wheel) for wheel in RUNTIME_LIBRARIES}


def runtime_libraries(target: NativePlatform) -> Path:
    """A folder with libtvm_runtime.so and libtvm_ffi.so for `target`, at the host's TVM
    versions (downloaded once per platform and version)."""
    versions = _versions()
    folder = cache_dir() / f"runtime-{target.architecture}-{versions['apache-tvm']}"
    if all((folder / Path(path).name).is_file() for path in RUNTIME_LIBRARIES.values()):
        return folder
    with replaced(folder) as staging:
        staging.mkdir()
        if not target.wheel_platforms:  # this machine's: the installed wheels' own files
            for member in RUNTIME_LIBRARIES.values():
                package = importlib.import_module(member.split("/")[0])
                shutil.copy2(Path(package.__file__).parent.parent / member,
                             staging / Path(member).name)
            return folder
        with tempfile.TemporaryDirectory(prefix="tvm_mobilenet_wheels_") as wheels:
            platforms = [flag for tag in target.wheel_platforms for flag in ("--platform", tag)]
            logger.info(f"downloading TVM's {target.architecture} wheels")
            run_tool([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                      "--only-binary=:all:", "--python-version", "311", *platforms, "-d", wheels,
                      *(f"{wheel}=={version}" for wheel, version in versions.items())],
                     f"pip download (TVM's {target.architecture} wheels)", tail=8)
            for wheel, member in RUNTIME_LIBRARIES.items():
                (path,) = Path(wheels).glob(f"{wheel.replace('-', '_')}-*.whl")
                with zipfile.ZipFile(path) as archive:
                    (staging / Path(member).name).write_bytes(archive.read(member))
    return folder


def _sources_digest(target: NativePlatform) -> str:
    digest = hashlib.sha256(repr((target, _versions())).encode())
    for path in sorted(SOURCES.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(SOURCES).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build_native(target: NativePlatform) -> Path:
    """The C API and runner compiled for `target` with CMake, installed into a cached prefix
    (bin/, lib/ with TVM's runtime, include/, CMake and pkg-config files)."""
    prefix = cache_dir() / f"{target.architecture}-{_sources_digest(target)}"
    if (prefix / "bin" / "tvm-mobilenet-run").is_file():
        return prefix
    if shutil.which("cmake") is None:
        raise UserError("cmake not found: install it with `apt-get install cmake`")
    libraries = runtime_libraries(target)
    options = [f"-DTVM_FFI_INCLUDE_DIR={tvm_ffi.libinfo.find_include_path()}",
               f"-DTVM_LIBRARY_DIR={libraries}"]
    if target.compiler:
        options += ["-DCMAKE_SYSTEM_NAME=Linux", f"-DCMAKE_SYSTEM_PROCESSOR={target.architecture}",
                    f"-DCMAKE_CXX_COMPILER={target.compiler}"]
    logger.info(f"building the C API and runner for {target.architecture} with CMake")
    with tempfile.TemporaryDirectory(prefix="tvm_mobilenet_cmake_") as build, \
            replaced(prefix) as staging:
        for step, arguments in (("configure", ["-S", str(SOURCES), "-B", build, *options]),
                                ("build", ["--build", build, "-j", str(os.cpu_count() or 1)]),
                                ("install", ["--install", build, "--prefix", str(staging)])):
            run_tool(["cmake", *arguments], f"cmake ({step})", tail=8)
    return prefix


def add_native_files(target: NativePlatform, folder: Path) -> None:
    """Copy the runner, C API and runtime built for `target` into `folder`."""
    prefix = build_native(target)
    for name in NATIVE_FILES:
        shutil.copytree(prefix / name, folder / name, symlinks=True)
