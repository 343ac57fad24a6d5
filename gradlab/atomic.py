"""Writing files so that a reader never sees half of one: the one atomic-write helper.

Every output gradlab writes (group files, caches, tables, the report and its figures) goes
through :func:`atomic_write`: a temporary file next to the target, flushed to disk, then
``os.replace``. The temporary file is opened like any new file, so it gets the process's
default mode (0666 less the umask) without reading or changing the umask.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import GradlabError

__all__ = ["atomic_write", "atomic_write_bytes", "ensure_writable"]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` and ``os.replace``; never leave it half-written.

    Args:
        path: the file to write (its directory is created if needed).
        write: writes the whole content to the temporary path it is given.

    Returns:
        ``path``.

    Raises:
        GradlabError: ``cannot write PATH: reason`` (the directory cannot be created or
            written, or the target cannot be replaced).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise GradlabError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``.

    Raises:
        GradlabError: as :func:`atomic_write`.
    """
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def ensure_writable(directory: str | Path, target: str | Path | None = None) -> Path:
    """Create ``directory`` if needed and prove a file can be created in it (then remove it).

    Called before long work, so an unwritable output fails at once and writes nothing.

    Raises:
        GradlabError: ``cannot write TARGET: reason`` (``target`` defaults to the directory).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise GradlabError(f"cannot write {target or directory}: {directory} is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".gradlab-probe", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GradlabError(f"cannot write {target or directory}: {exc.strerror or exc}") \
            from None
    return directory
