"""Helpers shared by the test modules."""

import json

import numpy as np
import pytest

from xnorfault.mram import MTJ
from xnorfault.mram.measured import MeasuredWER

# The tiny LeNet-4 most modules test on (``tiny_model(*TINY_LENET4)``, trained once a session):
# 300 training and 150 test digits, BER 0.04, one epoch.
TINY_LENET4 = (
    *("--data", "digits", "--limit-train", "300", "--limit-test", "150"),
    *("--batch-size", "64", "--ber", "0.04", "--epochs", "1"),
)


def cli_ok(*args: str) -> None:
    """Run the CLI in-process and require success (for fixtures that build runs and models)."""
    from xnorfault.cli import main

    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 0, args


def job_records(folder) -> dict:
    """Every job record of a run directory, by path relative to it."""
    return {
        path.relative_to(folder).as_posix(): json.loads(path.read_text())
        for path in sorted((folder / "jobs").glob("*/repeat-*.json"))
    }


def without_timing(record: dict) -> list[dict]:
    """A job's per-epoch metrics without the wall-clock seconds."""
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in record["epochs"]]


def train_and_export(folder, *train_args: str) -> None:
    """Train ``folder/run`` with ``train_args``, export it to ``folder/model.onnx`` with its
    test set ``folder/test.npz``."""
    cli_ok("train", *train_args, "--out", str(folder / "run"))
    cli_ok(
        "export",
        str(folder / "run"),
        "-o",
        str(folder / "model.onnx"),
        "--testset",
        str(folder / "test.npz"),
    )


# A junction whose WER table the measured-device tests fit and read back.
TRUTH = MTJ(delta=45, tau_d=3e-9, vc0=0.32, vc0_ap_to_p=0.28)


def model_table(device=TRUTH, voltages=np.arange(0.5, 0.86, 0.07), pulses=(5e-9, 10e-9, 20e-9)):
    grid_v, grid_t = (a.ravel() for a in np.meshgrid(voltages, pulses, indexing="ij"))
    return MeasuredWER(
        tuple(grid_v),
        tuple(grid_t),
        tuple(device.wer(grid_v, grid_t, "p_to_ap")),
        tuple(device.wer(grid_v, grid_t, "ap_to_p")),
    )


def write_csv(path, table: MeasuredWER) -> None:
    lines = ["voltage,pulse,wer_p_to_ap,wer_ap_to_p"]
    lines += [
        f"{float(v)!r},{float(t) * 1e9!r}ns,{float(a)!r},{float(b)!r}"
        for v, t, a, b in zip(
            table.voltages, table.pulses, table.wer_p_to_ap, table.wer_ap_to_p, strict=True
        )
    ]
    path.write_text("\n".join(lines) + "\n")
