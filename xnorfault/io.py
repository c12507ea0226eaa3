"""Atomic file output: a result is either absent or complete, never half written.

Each writer writes to a temporary file in the destination's folder, flushes it to disk and
renames it over the destination (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from xnorfault.errors import XnorfaultError

TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XnorfaultError(f"cannot create folder {path.parent}: {error.strerror}") from None
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def folder_lock(folder: str | Path, name: str = ".lock"):
    """An exclusive advisory lock (``flock``) on ``folder/name`` for the duration of the block:
    serialises read-merge-write sequences of processes sharing a folder on one machine or a
    filesystem with working ``flock`` (local disks; most cluster filesystems)."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: atomic replaces still protect each file
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporary files under ``folder`` left by writers on this host that were killed
    mid-write (their process is gone). Writers still alive, and other hosts', are left alone."""
    host = socket.gethostname()
    removed = 0
    for path in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}"):
        parts = path.name.rsplit(".", 4)  # .NAME.HOST.PID.RANDOM.tmp, NAME and HOST may hold dots
        try:
            pid = int(parts[-3])
        except (IndexError, ValueError):
            continue
        if f".{host}.{pid}." not in path.name or _alive(pid):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def figure_format(path: str | Path) -> str:
    """The image format a figure path asks for, checked before any work is done."""
    image_format = Path(path).suffix.lstrip(".").lower()
    if image_format not in FIGURE_FORMATS:
        raise XnorfaultError(
            f"cannot write a figure as {Path(path).name!r}: end the name with one of "
            + ", ".join(f".{ext}" for ext in FIGURE_FORMATS)
        )
    return image_format


def atomic_save_figure(figure, path: str | Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the file extension."""
    path = Path(path)
    image_format = figure_format(path)
    return atomic_write(
        path, lambda handle: figure.savefig(handle, format=image_format, **savefig_kwargs)
    )
