"""What xnorfault writes: modes that follow the umask, temporaries a later run can clean, bundles
replaced atomically even when the process is killed, errors instead of tracebacks for folders
it cannot write."""

import json
import multiprocessing
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.io import (
    atomic_create_text,
    atomic_write_json,
    atomic_write_text,
    check_output_file,
    folder_lock,
    remove_stale_temporaries,
    temporary_prefix,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    written = atomic_write_text(tmp_path / "result.txt", "x\n")
    assert mode(written) == 0o666 & ~mask
    opened = tmp_path / "plain.txt"
    opened.write_text("x\n")
    assert mode(written) == mode(opened)


def test_overwriting_keeps_the_existing_mode(tmp_path, umask):
    umask(0o077)
    target = tmp_path / "shared.json"
    target.write_text("{}\n")
    target.chmod(0o644)
    atomic_write_json(target, {"a": 1})
    assert mode(target) == 0o644 and json.loads(target.read_text()) == {"a": 1}


def test_records_never_hold_nan(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"loss": float("nan"), "x": [float("inf"), 1.0]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"loss": None, "x": [None, 1.0]}


def _die(path: str) -> None:
    prefix = temporary_prefix(Path(path).name)
    descriptor, _ = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=str(Path(path).parent))
    os.write(descriptor, b"half a record")
    os._exit(9)  # like kill -9: no cleanup runs


def test_temporaries_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_die, args=(str(tmp_path / "record.json"),))
    child.start()
    child.join()
    (dead,) = tmp_path.glob(".record.json.*.tmp")
    assert f".{socket.gethostname()}.{child.pid}." in dead.name
    live = tmp_path / f"{temporary_prefix('other.json')}abc.tmp"
    live.write_text("being written")
    foreign = tmp_path / ".notes.tmp"  # not named by xnorfault: never touched
    foreign.write_text("a user's file")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not dead.exists() and live.exists() and foreign.exists()


def _create_after(start, path: str, text: str, created) -> None:
    start.wait()
    created.put((text, atomic_create_text(path, text)))


def test_of_processes_creating_one_file_at_once_exactly_one_wins(tmp_path):
    context = multiprocessing.get_context("fork")
    path = tmp_path / "campaign.json"
    start, created = context.Event(), context.Queue()
    writers = [
        context.Process(target=_create_after, args=(start, str(path), f"writer {i}\n", created))
        for i in range(8)
    ]
    for writer in writers:
        writer.start()
    start.set()
    outcomes = [created.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join()
    winners = [text for text, won in outcomes if won]
    assert len(winners) == 1
    assert path.read_text() == winners[0]
    assert os.listdir(tmp_path) == ["campaign.json"]  # no temporary left behind
    assert not atomic_create_text(path, "late\n") and path.read_text() == winners[0]


def test_unwritable_folders_are_one_line_errors(tmp_path, monkeypatch):
    """Root ignores permission bits, so the refusal of the file system is simulated."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(XnorfaultError, match="cannot write .*Permission denied"):
        atomic_write_text(tmp_path / "out.txt", "x")
    with pytest.raises(XnorfaultError, match="cannot write .*Permission denied"):
        check_output_file(tmp_path / "out.csv", "--csv")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    lock_folder = tmp_path / "run"
    lock_folder.mkdir()
    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(XnorfaultError, match="Permission denied"), folder_lock(lock_folder):
        pass


def test_check_output_file_creates_nothing(tmp_path):
    target = tmp_path / "new" / "deeper" / "points.csv"
    assert check_output_file(target) == target
    assert list(tmp_path.iterdir()) == []


# --- bundles replaced under a kill -----------------------------------------------------------


def _bundle(folder: Path, tag: str) -> Path:
    from xnorfault.deploy import BUNDLE_FORMAT

    folder.mkdir(exist_ok=True)
    (folder / "model.onnx").write_text(tag)
    manifest = {"format": BUNDLE_FORMAT, "files": {"model.onnx": {"tag": tag}}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _tag(folder: Path) -> str:
    return (folder / "model.onnx").read_text()


def _replace_and_die(staging: str, output: str, exchange: bool, die_after: int) -> None:
    """Replace ``output`` by ``staging`` and die (os._exit, as kill -9) after ``die_after``
    folder moves."""
    import xnorfault.deploy as deploy

    moves = {"count": 0}
    real_rename, real_exchange = Path.rename, deploy.exchange_folders

    def counted(step):
        def wrapper(*args):
            if moves["count"] == die_after:
                os._exit(9)
            result = step(*args)
            moves["count"] += 1
            if moves["count"] == die_after:
                os._exit(9)
            return result

        return wrapper

    Path.rename = counted(real_rename)
    deploy.exchange_folders = counted(real_exchange) if exchange else (lambda a, b: False)
    deploy.move_into_place(Path(staging), Path(output))
    os._exit(0)


@pytest.mark.parametrize(
    "exchange, die_after",
    [(True, 0), (True, 1), (False, 0), (False, 1), (False, 2)],
    ids=["exchange-before", "exchange-after", "renames-before", "renames-between", "renames-after"],
)
def test_a_kill_during_force_leaves_one_whole_bundle(tmp_path, exchange, die_after):
    """Killed at any point of the replacement, the output holds the old bundle or the new one
    (after the next deploy's clean-up where a fallback was cut between its renames), and that
    clean-up leaves nothing of the staging folders behind."""
    from xnorfault.deploy import _staging_prefix, remove_stale_staging

    output = _bundle(tmp_path / "bundle", "old")
    prefix = _staging_prefix(output)
    staging = _bundle(Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_path)), "new")
    context = multiprocessing.get_context("fork")
    child = context.Process(
        target=_replace_and_die, args=(str(staging), str(output), exchange, die_after)
    )
    child.start()
    child.join()
    assert child.exitcode in (0, 9)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]
    for leftover in leftovers:  # give the leftovers the dead child's pid, as a real deploy would
        leftover.rename(
            leftover.with_name(leftover.name.replace(f".{os.getpid()}.", f".{child.pid}."))
        )
    if output.exists():
        assert _tag(output) in ("old", "new")
    else:
        assert not exchange and die_after == 1  # cut between the fallback's two renames
    remove_stale_staging(output)
    assert _tag(output) in ("old", "new")
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_stale_staging_of_a_live_deploy_is_kept(tmp_path):
    from xnorfault.deploy import _staging_prefix, remove_stale_staging

    output = tmp_path / "bundle"
    live = Path(tempfile.mkdtemp(prefix=_staging_prefix(output), dir=tmp_path))
    other = tmp_path / ".bundle.deploy-staging.otherhost.1.x"
    other.mkdir()
    assert remove_stale_staging(output) == []
    assert live.exists() and other.exists()


def test_a_file_added_while_the_bundle_was_built_blocks_the_replacement(tmp_path):
    from xnorfault.deploy import _staging_prefix, move_into_place

    output = _bundle(tmp_path / "bundle", "old")
    staging = _bundle(Path(tempfile.mkdtemp(prefix=_staging_prefix(output), dir=tmp_path)), "new")
    (output / "notes.txt").write_text("written during the build")
    with pytest.raises(XnorfaultError, match="no longer a pristine bundle"):
        move_into_place(staging, output)
    assert _tag(output) == "old" and (output / "notes.txt").exists()
