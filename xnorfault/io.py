"""Atomic file output: a result is either absent or complete, never half written.

Each writer writes to a temporary file in the destination's folder, flushes it to disk and
renames it over the destination (``os.replace`` is atomic on POSIX and Windows). The file gets
the mode a plain ``open()`` would give it (``0o666`` less the umask), or keeps the mode of the
file it replaces. Temporaries are named ``.NAME.HOST.PID.RANDOM.tmp`` so that a later run can
tell the leftovers of a killed writer (its process is gone) from a writer still at work.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import stat
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from xnorfault.errors import XnorfaultError

TEMPORARY_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask (read from ``/proc`` where possible: setting it to read it back is
    not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode(existing: Path | None = None) -> int:
    """The mode a new file gets from ``open()`` (``0o666 & ~umask``), or that of ``existing``."""
    if existing is not None:
        try:
            return stat.S_IMODE(existing.stat().st_mode)
        except OSError:
            pass
    return 0o666 & ~current_umask()


def temporary_prefix(name: str) -> str:
    """Prefix of this process's temporaries for ``name``: ``.NAME.HOST.PID.``."""
    return f".{name}.{socket.gethostname()}.{os.getpid()}."


def _output_error(path: Path, error: OSError) -> XnorfaultError:
    reason = error.strerror or type(error).__name__
    return XnorfaultError(
        f"cannot write {path}: {reason} (choose a writable folder, or mend its permissions)"
    )


def ensure_folder(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents), with a one-line error when that is impossible."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise XnorfaultError(
            f"cannot create folder {folder}: {error.strerror or type(error).__name__}"
        ) from None
    return folder


def check_output_file(path: str | Path, option: str = "output") -> Path:
    """Check, before any long work, that ``path`` can be written as a file: it is not a folder,
    and its folder (or the nearest existing ancestor, which the write would create folders in)
    accepts new files. The check writes and removes a temporary file of its own, so it holds for
    root and read-only file systems alike; nothing at ``path`` is created or changed."""
    path = Path(path)
    if path.is_dir():
        raise XnorfaultError(f"{option} {path} is a folder: give a file name")
    folder = path.parent
    while not folder.exists():
        if folder.parent == folder:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise XnorfaultError(f"{option} {path}: {folder} is not a folder")
    try:
        descriptor, probe = tempfile.mkstemp(
            prefix=temporary_prefix(path.name), suffix=TEMPORARY_SUFFIX, dir=folder
        )
    except OSError as error:
        raise _output_error(path, error) from None
    os.close(descriptor)
    os.unlink(probe)
    return path


def _through_temporary(path: Path, write: Callable[[IO[bytes]], None], mode: int, place):
    """Call ``write(file)`` on a temporary beside ``path`` (flushed, given ``mode``, synced to
    disk), then return ``place(temporary)``, which moves or links it to ``path``. The temporary
    never outlives the call, whatever fails."""
    ensure_folder(path.parent)
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=temporary_prefix(path.name), suffix=TEMPORARY_SUFFIX, dir=path.parent
        )
    except OSError as error:
        raise _output_error(path, error) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        return place(temporary)
    except OSError as error:
        raise _output_error(path, error) from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary binary file, then move it to ``path`` atomically."""
    path = Path(path)
    mode = default_file_mode(path if path.is_file() else None)
    _through_temporary(path, write, mode, lambda temporary: os.replace(temporary, path))
    return path


def atomic_create_text(path: str | Path, text: str) -> bool:
    """Create ``path`` holding ``text`` (UTF-8) only if nothing is there, atomically: the text
    is written to a temporary and hard-linked into place, which fails when the name exists, so
    of several processes creating the same file at once exactly one succeeds and none replaces
    what another wrote. Returns whether this call created it. On a filesystem without hard
    links the temporary is moved into place only if the name is still free (a narrow race
    remains there)."""
    path = Path(path)

    def link_if_free(temporary: str) -> bool:
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError:
            if path.exists():
                return False
            os.replace(temporary, path)
        return True

    return _through_temporary(
        path, lambda handle: handle.write(text.encode("utf-8")), default_file_mode(), link_if_free
    )


def is_temporary_of(name: str, target: str) -> bool:
    """Whether ``name`` is a temporary that any process's :func:`atomic_write` of ``target``
    makes (``.TARGET.HOST.PID.….tmp``), this process's or another's."""
    return name.startswith(f".{target}.") and name.endswith(TEMPORARY_SUFFIX)


def strangers_in(folder: Path, claim_file: str, own: tuple[str, ...] = ()) -> list[str]:
    """Names in ``folder`` that a folder claimed by ``claim_file`` would not hold: anything but
    ``claim_file``, the temporaries of any process creating it (processes may start together
    on one new folder) and the ``own`` entries its writer makes after it."""
    return sorted(
        entry.name
        for entry in folder.iterdir()
        if entry.name != claim_file
        and entry.name not in own
        and not is_temporary_of(entry.name, claim_file)
    )


def named_few(names: list[str], shown: int = 3) -> str:
    """The first ``shown`` names, comma-separated, with ``…`` when there are more."""
    return ", ".join(names[:shown]) + (", …" if len(names) > shown else "")


@contextmanager
def folder_lock(folder: str | Path, name: str = ".lock"):
    """An exclusive advisory lock (``flock``) on ``folder/name`` for the duration of the block:
    serialises read-merge-write sequences of processes sharing a folder on one machine or a
    filesystem with working ``flock`` (local disks; most cluster filesystems)."""
    path = ensure_folder(folder) / name
    try:
        handle = open(path, "a+")
    except OSError as error:
        raise _output_error(path, error) from None
    with handle:
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
    removed = 0
    for path in Path(folder).rglob(f".*{TEMPORARY_SUFFIX}"):
        if path.is_file() and left_by_dead_writer(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def left_by_dead_writer(name: str) -> bool:
    """Whether ``name`` (begun with :func:`temporary_prefix`) was made by a process of this host
    that is gone: ``.NAME.HOST.PID.…`` with PID no longer running. Names of other hosts, of
    live processes, and any other name are not."""
    _, marker, rest = name.rpartition(f".{socket.gethostname()}.")
    pid = rest.split(".", 1)[0]
    return bool(marker) and pid.isdigit() and not process_alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts as alive)."""
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


def finite_json(data):
    """``data`` with every non-finite float (NaN, ±inf) replaced by ``None``: strict JSON, which
    ``json.dumps`` would otherwise break with bare ``NaN`` tokens."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_json(value) for value in data]
    return data


def json_text(data) -> str:
    """Indented, strict JSON (no ``NaN``) of ``data``."""
    return json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented strict JSON to ``path`` atomically (non-finite floats as null)."""
    return atomic_write_text(path, json_text(data))


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


def check_figure_output(path: str | Path, option: str = "--output") -> Path:
    """Before any work: ``path`` names a figure format and can be written."""
    figure_format(path)
    return check_output_file(path, option)


def atomic_save_figure(figure, path: str | Path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the file extension."""
    path = Path(path)
    image_format = figure_format(path)
    return atomic_write(
        path, lambda handle: figure.savefig(handle, format=image_format, **savefig_kwargs)
    )


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def refuse_inputs_as_outputs(outputs: dict, inputs: dict) -> None:
    """Before any work: no output (``{option: path}``, ``None`` skipped) is one of the
    command's inputs (``{path: what it is}``, ``None`` skipped) or a file an input depends on —
    compared after resolving symlinks, and as the same file where both exist (a hard link).
    Raises one line naming both."""
    known = [(Path(path), what) for path, what in inputs.items() if path is not None]
    for option, output in outputs.items():
        if output is None:
            continue
        output = Path(output)
        for path, what in known:
            same = output.resolve() == path.resolve()
            if not same and output.exists() and path.exists():
                try:
                    same = os.path.samefile(output, path)
                except OSError:
                    same = False
            if same:
                raise XnorfaultError(
                    f"{option} {output} is {what}, which this command reads: write it elsewhere"
                )


def run_files(run: str | Path) -> dict:
    """The files of a training run that its readers depend on (config, record, job records and
    checkpoints), for :func:`refuse_inputs_as_outputs`."""
    run = Path(run)
    if not run.is_dir():
        return {}
    files = [run / "config.json", run / "record.json", *sorted((run / "jobs").glob("*/*"))]
    return {path: f"a file of the run {run}" for path in files if path.is_file()}


def check_regular_file(path: str | Path, what: str) -> None:
    """Before reading: ``path``, where it exists, is a regular file — a FIFO, a device or a
    socket would block the read or never end it."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the read says so in its own words
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"
        raise XnorfaultError(f"{what} {path} is {kind}: give a file")
