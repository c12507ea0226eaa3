"""``xnorfault train``: fault-aware training runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.table import Table

from xnorfault.cli import _options as options
from xnorfault.cli._common import console, emit_json
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSource
from xnorfault.units import parse_count, parse_list


def _layer_overrides(items: list[str]) -> dict[str, str]:
    layers = {}
    for item in items:
        site, sep, value = item.partition("=")
        if not sep or not site.strip():
            raise XnorfaultError(
                f"cannot read --layer-ber {item!r}: write SITE=RATE, e.g. act1=0.02"
            )
        layers[site.strip()] = value
    return layers


class Gradient(StrEnum):
    """How the flip passes gradients: ignore flips (the paper's code) or through them."""

    straight_through = "straight_through"
    flipped = "flipped"


class WeightScaling(StrEnum):
    channel = "channel"  # XNOR-Net: mean |W| per output filter
    tensor = "tensor"


@options.with_fault_options(training=True, default_ber="0")
def train_command(
    model: str = typer.Option("lenet4", "--model", "-m", help="lenet4, nin or alexnet."),
    data: str = typer.Option(
        "digits",
        "--data",
        help="digits, fashion-mnist[:DIR], mnist:DIR, cifar10:DIR, cifar100:DIR, svhn:DIR, imagefolder:DIR.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Run directory (created; an existing run is resumed; a folder of other files is refused).",
    ),
    fault: FaultSource | None = None,
    layer_ber: list[str] = typer.Option(
        [], "--layer-ber", help="Per-site BER override, SITE=RATE (repeatable), e.g. act1=0."
    ),
    weight_ber: float | None = typer.Option(
        None, "--weight-ber", help="BER of the binary weights during training."
    ),
    test_ber: float | None = typer.Option(
        None, "--test-ber", help="Also measure test accuracy with this BER in the activations."
    ),
    gradient: Gradient = typer.Option(
        Gradient.straight_through,
        "--gradient",
        help="straight_through (ignore flips; the paper's code) or flipped.",
    ),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Epochs per repeat."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Independent repeats per fault point."),
    seed: int = typer.Option(
        1, "--seed", help="Run seed; repeats and epochs derive theirs from it."
    ),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float | None = typer.Option(
        None, "--lr", help="Adam learning rate (default: the paper's for the model)."
    ),
    weight_decay: float | None = typer.Option(None, "--weight-decay"),
    milestones: str | None = typer.Option(
        None, "--milestones", help="Epochs at which the learning rate drops ×0.1, e.g. 40,80."
    ),
    weight_scaling: WeightScaling = typer.Option(
        WeightScaling.channel,
        "--weight-scaling",
        help="channel (XNOR-Net mean|W| per filter) or tensor.",
    ),
    input_size: int | None = typer.Option(
        None,
        "--input-size",
        help="Resize images to this size (default: the data's own; digits: the model's).",
    ),
    limit_train: int | None = typer.Option(
        None, "--limit-train", min=1, help="Use only this many training images."
    ),
    limit_test: int | None = typer.Option(
        None, "--limit-test", min=1, help="Use only this many test images."
    ),
    extra: bool = typer.Option(
        False, "--extra", help="svhn: add the 531k extra images (extended SVHN)."
    ),
    classes: int | None = typer.Option(
        None, "--classes", help="imagefolder: a random subset of this many classes."
    ),
    subset_seed: int = typer.Option(
        0, "--subset-seed", help="imagefolder: seed of the class subset."
    ),
    device: str = typer.Option(
        "auto", "--torch-device", help="Where to train: auto (CUDA when present), cpu or cuda[:N]."
    ),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="Run slice I of N of the sweep's jobs (array jobs), counted from 1, e.g. 1/4.",
    ),
    log: list[str] = typer.Option(
        [],
        "--log",
        help="Also log each epoch to tensorboard (RUN/tensorboard) and/or mlflow (RUN/mlflow.db "
        "or MLFLOW_TRACKING_URI); repeatable or comma-separated.",
    ),
    sync_bn: bool = typer.Option(
        False, "--sync-bn", help="Synchronise batch norm across torchrun processes (CUDA)."
    ),
    as_json: options.JsonOption = False,
):
    """Train binarized networks with random bit errors in their binary activations, and record
    error-free test accuracy after every epoch (the paper's experiments).

    Examples:

    ```
    xnorfault train --model lenet4 --data fashion-mnist --ber 0.04 --epochs 10 --repeats 10 --out runs/fm
    xnorfault train --data digits --ber 0,0.04,0.16 --out runs/sweep --json
    ```
    """
    from xnorfault.api import train

    record = train(
        out,
        model=model,
        data=data,
        fault=fault,
        layer_ber=_layer_overrides(layer_ber),
        weight_ber=weight_ber,
        test_ber=test_ber,
        gradient=gradient.value,
        epochs=epochs,
        repeats=repeats,
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        milestones=None
        if milestones is None
        else parse_list(milestones, lambda text: parse_count(text, "--milestones epoch")),
        weight_scaling=weight_scaling.value,
        input_size=input_size,
        limit_train=limit_train,
        limit_test=limit_test,
        extra=extra,
        classes=classes,
        subset_seed=subset_seed,
        device=device,
        shard=shard,
        sync_bn=sync_bn,
        log=log,
        progress=not as_json,
    )
    if record is None:  # a torchrun process other than the first
        return
    summary = summarise(record)
    if as_json:
        emit_json(summary, "train")
        return
    dataset_name = record.get("data", {}).get("name", data)
    table = Table(title=f"{model} on {dataset_name}: error-free test accuracy after epoch {epochs}")
    for header in ("fault point", "repeats", "mean", "std"):
        table.add_column(header, justify="right")
    for point in summary["points"]:
        table.add_row(
            point["point"],
            str(point["complete_repeats"]),
            f"{point['final_test_accuracy_mean']:.4f}",
            f"{point['final_test_accuracy_std']:.4f}",
        )
    console.print(table)
    console.print(f"run record: {Path(out) / 'record.json'}")


def summarise(record: dict) -> dict:
    """The ``--json`` object of ``xnorfault train``: final accuracy and per-point/repeat details."""
    points = []
    for point in record["points"]:
        points.append(
            {
                "point": point["point"],
                "ber": point["ber"],
                "complete_repeats": point["complete_repeats"],
                "final_test_accuracy_mean": point["final_test_accuracy_mean"],
                "final_test_accuracy_std": point["final_test_accuracy_std"],
                "repeats": [
                    {
                        "repeat": job["repeat"],
                        "seed": job["seed"],
                        "status": job["status"],
                        "test_accuracy": [e["test_accuracy"] for e in job["epochs"]],
                        # under --test-ber; null without it
                        "test_accuracy_faulty": [e["test_accuracy_faulty"] for e in job["epochs"]]
                        if job["epochs"] and "test_accuracy_faulty" in job["epochs"][0]
                        else None,
                    }
                    for job in point["repeats"]
                ],
            }
        )
    return {
        # by point label, for one point as for a sweep
        "final_test_accuracy": {p["point"]: p["final_test_accuracy_mean"] for p in points},
        "model": record["config"]["model"],
        "data": record["config"]["data"],
        "points": points,
    }
