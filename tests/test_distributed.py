"""Scale-out: torchrun data parallelism (gloo on CPU), sweep shards, resume under torchrun."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import job_records, without_timing

import xnorfault
from xnorfault.errors import XnorfaultError

TINY = ["--data", "digits", "--limit-train", "512", "--limit-test", "200", "--batch-size", "64"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def train(args, launcher=(), **kwargs):
    return subprocess.run(
        [*launcher, *([] if launcher else [sys.executable]), "-m", "xnorfault", "train", *args],
        capture_output=True,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    args = [*TINY, "--ber", "0", "--epochs", "2", "--seed", "3"]
    single = train([*args, "--out", str(tmp_path / "single")])
    assert single.returncode == 0, single.stderr[-1500:]
    parallel = train([*args, "--out", str(tmp_path / "ddp")], launcher=TORCHRUN)
    assert parallel.returncode == 0, parallel.stderr[-1500:]
    one = json.loads((tmp_path / "single" / "record.json").read_text())
    two = json.loads((tmp_path / "ddp" / "record.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert (
        len(list((tmp_path / "ddp" / "jobs").glob("*/repeat-*.json"))) == 1
    )  # one record, from rank 0
    epochs_one = one["points"][0]["repeats"][0]["epochs"]
    epochs_two = two["points"][0]["repeats"][0]["epochs"]
    # same global batch (64 = 2 x 32): same number of images seen, close losses and accuracy
    # (batch-norm statistics are per process on CPU, so not bit-identical)
    for a, b in zip(epochs_one, epochs_two, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.25)
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.08
    assert epochs_two[-1]["test_accuracy"] > 0.7


@pytest.mark.slow
def test_two_shards_write_one_run_directory_concurrently(tmp_path):
    out = tmp_path / "sweep"
    args = [*TINY, "--ber", "0,0.1", "--repeats", "2", "--epochs", "1", "--out", str(out)]
    shards = [
        subprocess.Popen(
            [sys.executable, "-m", "xnorfault", "train", *args, "--shard", f"{i + 1}/2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    for shard in shards:
        _, err = shard.communicate(timeout=300)
        assert shard.returncode == 0, err.decode()[-1500:]
    records = job_records(out)
    assert sorted(records) == sorted(
        f"jobs/ber={b}/repeat-{r}.json" for b in ("0", "0.1") for r in (0, 1)
    )
    assert all(r["status"] == "complete" for r in records.values())
    merged = json.loads((out / "record.json").read_text())
    assert [p["complete_repeats"] for p in merged["points"]] == [2, 2]
    assert not list(out.rglob("*.tmp"))
    # the unsharded command finds every job complete and reports the same accuracies
    again = subprocess.run(
        [sys.executable, "-m", "xnorfault", "train", *args, "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(again.stdout)["final_test_accuracy"] == {
        p["point"]: p["final_test_accuracy_mean"] for p in merged["points"]
    }


@pytest.mark.slow
def test_kill_and_resume_under_torchrun(tmp_path):
    args = [*TINY, "--ber", "0.05", "--epochs", "3", "--seed", "8"]
    reference = train([*args, "--out", str(tmp_path / "reference")], launcher=TORCHRUN)
    assert reference.returncode == 0, reference.stderr[-1500:]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*TORCHRUN, "-m", "xnorfault", "train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = killed / "jobs" / "ber=0.05" / "repeat-0.json"
    deadline = time.time() + 180
    while time.time() < deadline and not (
        first.exists() and json.loads(first.read_text())["epochs"]
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = json.loads(first.read_text())
    assert partial["status"] == "incomplete", "killed too late"
    resumed = train([*args, "--out", str(killed)], launcher=TORCHRUN)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    got, expected = job_records(killed), job_records(tmp_path / "reference")
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name]["status"] == "complete"
        assert without_timing(got[name]) == without_timing(expected[name])


@pytest.mark.parametrize(
    "shard, message",
    [
        ("0/2", "shards count from 1"),
        ("3/2", "shards count from 1"),
        ("a/b", "cannot read --shard"),
        ("1", "cannot read --shard"),
    ],
)
def test_bad_shard(run_cli, tmp_path, shard, message):
    """One numbering (from 1) and one message for train's and evaluate's --shard and the API."""
    code, _, err = run_cli("train", *TINY, "--shard", shard, "--out", str(tmp_path / "r"))
    assert code == 2 and message in err and err.count("\n") == 1, err
    model, data = tmp_path / "m.onnx", tmp_path / "t.npz"
    model.write_bytes(b""), data.write_bytes(b"")
    code, _, err = run_cli(
        "evaluate", str(model), "--data", str(data), "--out", str(tmp_path / "c"), "--shard", shard
    )
    assert code == 2 and message in err and err.count("\n") == 1, err
    # the API names its parameter where the command line names its flag
    with pytest.raises(XnorfaultError, match=message.replace("--shard", "shard")):
        xnorfault.train(tmp_path / "r", shard=tuple(shard.split("/")) if "/" in shard else shard)


def test_sync_bn_needs_torchrun_and_cuda(run_cli, tmp_path):
    code, _, err = run_cli("train", *TINY, "--sync-bn", "--out", str(tmp_path / "r"))
    assert code == 2 and "torchrun" in err
