"""Option types shared by the commands (typer ``Annotated`` aliases, ``Enum`` choices) and the
one path from fault options to a :class:`~xnorfault.faults.FaultSource`.

Every command that takes fault rates spells them alike: ``--ber``, ``--p-flip-pos`` /
``--p-flip-neg``, ``--voltage`` with ``--pulse``, and ``--mram-device`` (``--device``/``-d``
stay its aliases in the commands where ``--device`` names nothing else). The checks that only
one source is given and that ``--voltage`` has a ``--pulse`` live in :func:`fault_source`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSource, FlipRates
from xnorfault.units import parse_duration, parse_list, parse_rate, parse_voltage

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
MramDeviceOption = Annotated[
    str, typer.Option("--mram-device", "--device", "-d", help=MRAM_DEVICE_HELP)
]
# train's --device is the torch device it trains on
MramDeviceNoAliasOption = Annotated[str, typer.Option("--mram-device", help=MRAM_DEVICE_HELP)]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")
]


class BerSchedule(StrEnum):
    """How the BER of ``train --ber`` runs over the epochs."""

    constant = "constant"
    ramp = "ramp"


class BackendChoice(StrEnum):
    """``evaluate --backend``: ``auto`` picks by extension (.onnx, .tflite)."""

    auto = "auto"
    onnxruntime = "onnxruntime"
    lce = "lce"
    lce_benchmark = "lce-benchmark"


class ExportFormat(StrEnum):
    onnx = "onnx"
    lce = "lce"


def fault_source(
    ber: str | None = None,
    p_flip_pos: str | None = None,
    p_flip_neg: str | None = None,
    voltage: str | None = None,
    pulse: str | None = None,
    mram_device: str = "paper",
    *,
    voltage_schedule: str | None = None,
    ramp: bool = False,
    single: bool = False,
    default_ber: str | None = None,
) -> FaultSource | None:
    """The fault source the options give, checked: at most one of them (``None`` when none
    and no ``default_ber``); ``--voltage`` and ``--voltage-schedule`` with ``--pulse``;
    ``single``: one value, not a sweep (inject)."""
    given = [
        name
        for name, value in (
            ("--ber", ber),
            ("--p-flip-pos/--p-flip-neg", p_flip_pos if p_flip_pos is not None else p_flip_neg),
            ("--voltage", voltage),
            ("--voltage-schedule", voltage_schedule),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise XnorfaultError(f"give one source of fault rates, not {' and '.join(given)}")
    if not given:
        if default_ber is None:
            return None
        ber = default_ber
    if (voltage is not None or voltage_schedule is not None) and pulse is None:
        option = "--voltage" if voltage is not None else "--voltage-schedule"
        raise XnorfaultError(f"{option} needs --pulse, e.g. --pulse 10ns")
    if p_flip_pos is not None or p_flip_neg is not None:
        return FaultSource(
            rates=FlipRates(
                parse_rate(p_flip_pos or 0.0, "--p-flip-pos"),
                parse_rate(p_flip_neg or 0.0, "--p-flip-neg"),
            )
        )
    if voltage is not None or voltage_schedule is not None:
        from xnorfault.mram import load_device

        device, seconds = load_device(mram_device), parse_duration(pulse)
        if voltage_schedule is not None:
            schedule = tuple(parse_list(voltage_schedule, parse_voltage))
            return FaultSource(voltage_schedule=schedule, pulse=seconds, device=device)
        voltages = _values(voltage, parse_voltage, "--voltage", single)
        return FaultSource(voltages=voltages, pulse=seconds, device=device)
    bers = _values(ber, lambda text: parse_rate(text, "--ber"), "--ber", single)
    return FaultSource(bers=bers, ramp=ramp)


def _values(text: str, parse_one, option: str, single: bool) -> tuple[float, ...]:
    values = tuple(parse_list(text, parse_one))
    if single and len(values) != 1:
        raise XnorfaultError(f"{option} takes one value here, not {len(values)}: {text!r}")
    return values
