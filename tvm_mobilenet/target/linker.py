"""How libraries for a target preset are linked: the host's compiler, a Debian cross compiler,
or, for Android, the NDK when it is installed and clang + lld otherwise.

A preset's ``cross_compiler`` entry holds ``command``, optional ``options``, the Debian
``package`` that provides the command, and ``"android": true`` for presets where the NDK
(``TVM_NDK_CC``, TVM's convention, or ``ANDROID_NDK_HOME``) takes precedence.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import tvm.support.cc

from tvm_mobilenet.errors import UserError
from tvm_mobilenet.target.presets import TargetPreset

#: The NDK's clang for arm64 at API level 21 (Android 5.0), relative to ANDROID_NDK_HOME.
NDK_CLANG = "toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android21-clang++"
#: What a library linked without the NDK lacks, said once per build.
NO_NDK_NOTE = ("linked with clang + lld without the Android NDK (set TVM_NDK_CC or "
               "ANDROID_NDK_HOME to use it): the library has no DT_NEEDED entries for libc "
               "or libm, so math and memory functions resolve from the app process that "
               "loads it (an app with TVM's runtime has both)")


@dataclass(frozen=True)
class Linker:
    command: str
    options: tuple[str, ...] = ()
    #: A limitation of libraries linked this way, printed at build time.
    note: str | None = None

    def fcompile(self):
        """An `export_library` fcompile. (`cross_compiler` extends the options list it is
        given, so it gets a fresh one every time.)"""
        return tvm.support.cc.cross_compiler(self.command, options=list(self.options))


def _ndk_linker() -> Linker | None:
    if os.environ.get("TVM_NDK_CC"):
        return Linker(os.environ["TVM_NDK_CC"])
    home = os.environ.get("ANDROID_NDK_HOME")
    if not home:
        return None
    clang = Path(home) / NDK_CLANG
    if not clang.is_file():
        raise UserError(f"ANDROID_NDK_HOME={home} has no {NDK_CLANG}; point it at an NDK "
                        "(r19 or later) or set TVM_NDK_CC to its aarch64 clang++")
    return Linker(str(clang))


def linker_for(preset: TargetPreset) -> Linker | None:
    """The linker of `preset`'s libraries: None for the host's default compiler."""
    spec = preset.cross_compiler
    if not spec:
        return None
    if spec.get("android"):
        ndk = _ndk_linker()
        if ndk is not None:
            return ndk
    command = spec["command"]
    if shutil.which(command) is None:
        raise UserError(f"cross compiler {command} for target {preset.name} not found; install "
                        f"it with `apt-get install {spec['package']}`")
    options = tuple(spec.get("options", ()))
    if spec.get("android"):
        if shutil.which("ld.lld") is None:
            raise UserError(f"target {preset.name} links with lld, which is not installed: "
                            f"`apt-get install {spec['package']}`")
        return Linker(command, options, NO_NDK_NOTE)
    return Linker(command, options)
