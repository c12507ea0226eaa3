"""Option types shared by the commands (typer ``Annotated`` aliases, ``Enum`` choices) and the
one path from fault options to a :class:`~xnorfault.faults.FaultSource`.

Every command that takes fault rates declares a parameter ``fault: FaultSource | None`` and is
decorated with :func:`with_fault_options`, which puts ``--ber``, ``--p-flip-pos`` /
``--p-flip-neg``, ``--voltage`` with ``--pulse`` and ``--mram-device`` on its command line in that parameter's
place, and hands the command their :class:`FaultSource`. The checks that only one source is
given and that ``--voltage`` has a ``--pulse`` live in :func:`xnorfault.fault_options.fault_source`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from enum import StrEnum
from typing import Annotated

import typer

from xnorfault.fault_options import fault_source, write_model_of
from xnorfault.faults import WriteModel

MRAM_DEVICE_HELP = (
    "MRAM device for --voltage: a preset (see 'xnorfault mram devices') or a device TOML file."
)

BerOption = Annotated[
    str | None,
    typer.Option(
        "--ber",
        help="Bit-error rate of the binary activations, both polarities: 0.04, a list "
        "0,0.01,0.05 or a range 0:0.1:0.02 (where the command sweeps).",
    ),
]
PFlipPosOption = Annotated[
    str | None, typer.Option("--p-flip-pos", help="P(+1→−1) of every binary activation.")
]
PFlipNegOption = Annotated[
    str | None, typer.Option("--p-flip-neg", help="P(−1→+1) of every binary activation.")
]
VoltageOption = Annotated[
    str | None,
    typer.Option(
        "--voltage",
        help="MRAM write voltage: 0.5, a list or a range 0.45:0.85:0.05 (where the command "
        "sweeps); flip rates from the device model, with --pulse.",
    ),
]
PulseOption = Annotated[
    str | None, typer.Option("--pulse", help="MRAM write pulse for --voltage, e.g. 10ns.")
]
MramDeviceOption = Annotated[str, typer.Option("--mram-device", help=MRAM_DEVICE_HELP)]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")
]


class BerSchedule(StrEnum):
    """How the BER of ``train --ber`` runs over the epochs."""

    constant = "constant"
    ramp = "ramp"


class Layout(StrEnum):
    """The axis order of a model's 4-D image input (``--layout``)."""

    nchw = "nchw"
    nhwc = "nhwc"


LayoutOption = Annotated[
    Layout | None,
    typer.Option(
        "--layout",
        help="The model input's axis order, nchw or nhwc (default: detected from its shape); "
        "test images in (C, H, W) order are transposed to it.",
    ),
]
OutputNameOption = Annotated[
    str | None,
    typer.Option(
        "--output-name",
        help="The model output that holds the logits (default: the one its metadata names, "
        "or its only float output).",
    ),
]


class BackendChoice(StrEnum):
    """``evaluate --backend``: ``auto`` picks by extension (.onnx, .tflite)."""

    auto = "auto"
    onnxruntime = "onnxruntime"
    lce = "lce"
    lce_benchmark = "lce-benchmark"


class WriteModelChoice(StrEnum):
    """``--write-model``: when an activation write can fail."""

    iid = "iid"
    previous = "previous"
    reset = "reset"


class InitialState(StrEnum):
    """``--initial-state``: the stored value before a stream's first write (``previous``), or
    the value cells are reset to (``reset``)."""

    neg = "neg"
    pos = "pos"
    random = "random"


WriteModelOption = Annotated[
    WriteModelChoice | None,
    typer.Option(
        "--write-model",
        help="When a write fails: iid (every write switches the cell: the upper bound), previous "
        "(only where the value stored by the previous image differs; a failed write keeps the "
        "old value) or reset (cells reset to --initial-state before each write). Default iid; "
        "evaluate: the model's own; deploy: the one the run was trained with.",
    ),
]
InitialStateOption = Annotated[
    InitialState | None,
    typer.Option(
        "--initial-state",
        help="The value stored before a stream's first image (previous), or the reset value "
        "(reset): neg, pos or random (default neg).",
    ),
]


class ExportFormat(StrEnum):
    onnx = "onnx"
    lce = "lce"


def write_model(model: WriteModelChoice | None, state: InitialState | None) -> WriteModel | None:
    """The write model of ``--write-model``/``--initial-state`` (:func:`xnorfault.faults.write_model_of`)."""
    return write_model_of(
        None if model is None else model.value, None if state is None else state.value
    )


VoltageScheduleOption = Annotated[
    str | None,
    typer.Option(
        "--voltage-schedule", help="One write voltage per epoch, e.g. 0.8,0.7,0.6 (with --pulse)."
    ),
]
BerScheduleOption = Annotated[
    BerSchedule,
    typer.Option(
        "--schedule",
        help="How --ber runs over the epochs: constant, or ramp (rising linearly from 0).",
    ),
]


class ErasedChoice(StrEnum):
    """The state of the weight memory before the deployment write."""

    none = "none"
    pos = "pos"
    neg = "neg"
    random = "random"


class ExecutorChoice(StrEnum):
    """Where a campaign's jobs run."""

    local = "local"
    ray = "ray"


WorkersOption = Annotated[
    int,
    typer.Option(
        "--workers",
        min=1,
        help="Run the jobs in K processes (each with threads/K threads); same result.",
    ),
]
ExecutorOption = Annotated[
    ExecutorChoice,
    typer.Option(
        "--executor",
        help="local, or ray: the jobs as Ray tasks (a local Ray instance, or --address).",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address (with --executor ray), e.g. head-node:6379 (export RAY_AUTH_MODE=token for a cluster started by ray start).",
    ),
]


class DirectionChoice(StrEnum):
    """A write direction (of a read current)."""

    p_to_ap = "p_to_ap"
    ap_to_p = "ap_to_p"


def with_fault_options(
    *, training: bool = False, single: bool = False, default_ber: str | None = None
):
    """Give a command the fault options in place of its ``fault`` parameter, and call it with
    the :class:`FaultSource` they describe (:func:`fault_source`; ``None`` when none is given
    and there is no ``default_ber``), and with ``--write-model``/``--initial-state`` as its
    ``write`` parameter when it has one. ``training``: also ``--voltage-schedule`` and
    ``--schedule``; ``single``: one value, not a sweep."""

    def parameter(name: str, annotation, default) -> inspect.Parameter:
        return inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
        )

    added = [
        parameter("ber", BerOption, None),
        parameter("p_flip_pos", PFlipPosOption, None),
        parameter("p_flip_neg", PFlipNegOption, None),
        parameter("voltage", VoltageOption, None),
        parameter("pulse", PulseOption, None),
        parameter("mram_device", MramDeviceOption, "paper"),
    ]
    if training:
        added += [
            parameter("voltage_schedule", VoltageScheduleOption, None),
            parameter("schedule", BerScheduleOption, BerSchedule.constant),
        ]
    added += [
        parameter("write_model", WriteModelOption, None),
        parameter("initial_state", InitialStateOption, None),
    ]
    names = [p.name for p in added]

    def decorate(command):
        hints = typing.get_type_hints(command, include_extras=True)
        own = [
            p.replace(
                annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY
            )
            for p in inspect.signature(command).parameters.values()
        ]
        place = [p.name for p in own].index("fault")
        parameters = own[:place] + added + own[place + 1 :]

        takes_write = "write" in [p.name for p in own]
        if takes_write:
            parameters = [p for p in parameters if p.name != "write"]
        # a command that also needs the device itself (evaluate's weight memory) names it
        takes_device = "mram_device_name" in [p.name for p in own]
        if takes_device:
            parameters = [p for p in parameters if p.name != "mram_device_name"]

        @functools.wraps(command)
        def with_source(**arguments):
            given = {name: arguments.pop(name) for name in names}
            schedule = given.pop("schedule", BerSchedule.constant)
            write = write_model(given.pop("write_model"), given.pop("initial_state"))
            source = fault_source(
                **given,
                ramp=schedule is BerSchedule.ramp,
                single=single,
                default_ber=default_ber,
                write=write,
            )
            if takes_write:  # the write model holds also without a fault source; None: not given
                arguments["write"] = write
            if takes_device:
                arguments["mram_device_name"] = given["mram_device"]
            return command(fault=source, **arguments)

        with_source.__signature__ = inspect.Signature(parameters)
        with_source.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_source

    return decorate


def passed_through(context: typer.Context, function, exclude: tuple[str, ...] = ()) -> dict:
    """The options of the running command (``context``) that ``function`` takes by the same
    name (bar ``exclude``), as the command line parsed them, choices as their values: a command
    hands its options to the API this way, so that an option added to both needs no line here."""
    takes = set(inspect.signature(function).parameters) - set(exclude)
    return {
        name: value.value if isinstance(value, StrEnum) else value
        for name, value in context.params.items()
        if name in takes
    }
