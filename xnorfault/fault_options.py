"""The fault source a command's options give (``--ber``, ``--p-flip-pos/--p-flip-neg``,
``--voltage`` with ``--pulse`` and ``--mram-device``, ``--voltage-schedule``) and its write model
(``--write-model``, ``--initial-state``), checked, for the command line and the Python API
alike. The fault types are :mod:`xnorfault.faults`; the device comes from :mod:`xnorfault.mram`.
"""

from __future__ import annotations

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSource, FlipRates, WriteModel
from xnorfault.mram import load_device
from xnorfault.units import parse_duration, parse_list, parse_rate, parse_voltage


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
    write: WriteModel | None = None,
) -> FaultSource | None:
    """The fault source the options give, checked: at most one of them (``None`` when none
    and no ``default_ber``); ``--voltage`` and ``--voltage-schedule`` with ``--pulse``;
    ``single``: one value, not a sweep (inject); ``write``: the write model of its points."""
    write = write or WriteModel()
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
            ),
            write=write,
        )
    if voltage is not None or voltage_schedule is not None:
        device, seconds = load_device(mram_device), parse_duration(pulse)
        if voltage_schedule is not None:
            schedule = tuple(parse_list(voltage_schedule, parse_voltage))
            return FaultSource(voltage_schedule=schedule, pulse=seconds, device=device, write=write)
        voltages = _values(voltage, parse_voltage, "--voltage", single)
        return FaultSource(voltages=voltages, pulse=seconds, device=device, write=write)
    bers = _values(ber, lambda text: parse_rate(text, "--ber"), "--ber", single)
    return FaultSource(bers=bers, ramp=ramp, write=write)


# The fault options of a command that sweeps fault rates at inference (evaluate): the rate
# sources, the device and the write model; training adds a voltage schedule and a BER ramp.
SWEEP_FAULT_OPTIONS = (
    "ber",
    "p_flip_pos",
    "p_flip_neg",
    "voltage",
    "pulse",
    "mram_device",
    "write_model",
    "initial_state",
)


def write_model_of(model: str | None, state: str | None) -> WriteModel | None:
    """The write model of ``--write-model``/``--initial-state`` (``write_model`` and
    ``initial_state`` in the Python API; ``None`` when neither is given); an initial state
    without a write model that uses one is refused."""
    if model is None and state is None:
        return None
    if model in (None, "iid") and state is not None:
        raise XnorfaultError(
            "--initial-state goes with --write-model previous or reset (iid keeps no state)"
        )
    return WriteModel(model or "iid", state if state is not None else "neg")


def _values(text: str, parse_one, option: str, single: bool) -> tuple[float, ...]:
    values = tuple(parse_list(text, parse_one))
    if single and len(values) != 1:
        raise XnorfaultError(f"{option} takes one value here, not {len(values)}: {text!r}")
    return values


__all__ = ["fault_source", "write_model_of"]
