"""Outputs written whole or not at all: an interrupted build never leaves half a library.

Each output is written under a temporary name beside its final one, then renamed into place,
which a POSIX file system does at once. Until then the previous output, if any, is intact; on
an error the temporary one is removed. A `kill -9` can leave a temporary name behind (a dot
file with ``.partial-`` in it), never a half-written output under the real name.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def partial_name(path: Path) -> Path:
    """The temporary name `path` is written under (the suffix kept: tools read it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A temporary path to write a file or folder to, which then replaces `path` whole.

    A folder replaces an existing folder by two renames (the old one is moved aside first,
    then deleted), so a reader sees the old folder, briefly none, then the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_name(path)
    _remove(temporary)
    try:
        yield temporary
        if temporary.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(temporary, path)
            shutil.rmtree(old)
        else:
            os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text`, whole."""
    with replaced(path) as temporary:
        temporary.write_text(text)
