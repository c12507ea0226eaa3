r"""Table I of the paper: operating points of an MRAM that tolerates a given write error rate.

The reference is the conventional operating point, WER 1e-6 at a pulse of :math:`5\tau_D`
(which needs 2–3 bits of ECC to reach 1e-15). Against it, the paper (arXiv:1905.10927, §III,
Table I) lists how much the write voltage drops at WER 0.01 and 0.1 with the same pulse, and how
much the pulse shortens at those WERs with the voltage lowered by 20 %. Write energy at each
point is :math:`V^2\tau/R` relative to the reference; endurance gain is the ratio of cycles to
dielectric breakdown, :math:`e^{\gamma(V_{ref}-V)}\tau_{ref}/\tau` (E-model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from xnorfault.mram.device import MTJ, Direction

REFERENCE_WER = 1e-6
REFERENCE_PULSE_TAU = 5.0
RELAXED_WERS = (0.01, 0.1)
REDUCED_VOLTAGE_FRACTION = 0.8


@dataclass(frozen=True)
class OperatingPoint:
    """One row of Table I. Changes are fractions relative to the reference row."""

    label: str
    wer: float
    voltage: float
    pulse: float
    v_over_vc0: float
    pulse_over_tau_d: float
    voltage_change: float
    pulse_change: float
    energy_ratio: float
    endurance_gain: float
    endurance_cycles: float
    write_energy: float

    def to_dict(self) -> dict:
        return asdict(self)


def table_one(device: MTJ | None = None, direction: Direction = "p_to_ap") -> list[OperatingPoint]:
    """Rows of Table I for ``device`` (the paper's by default), solved with the exact model."""
    device = device or MTJ(name="paper")
    vc0 = device.critical_voltage(direction)
    reference_pulse = REFERENCE_PULSE_TAU * device.tau_d
    reference_voltage = device.voltage_for_wer(REFERENCE_WER, reference_pulse, direction)

    def point(label: str, wer: float, voltage: float, pulse: float) -> OperatingPoint:
        return OperatingPoint(
            label=label,
            wer=wer,
            voltage=voltage,
            pulse=pulse,
            v_over_vc0=voltage / vc0,
            pulse_over_tau_d=pulse / device.tau_d,
            voltage_change=voltage / reference_voltage - 1,
            pulse_change=pulse / reference_pulse - 1,
            energy_ratio=(voltage**2 * pulse) / (reference_voltage**2 * reference_pulse),
            endurance_gain=device.endurance(voltage, pulse)
            / device.endurance(reference_voltage, reference_pulse),
            endurance_cycles=device.endurance(voltage, pulse),
            write_energy=device.write_energy(voltage, pulse),
        )

    rows = [point("WER 1e-6 (ECC to 1e-15)", REFERENCE_WER, reference_voltage, reference_pulse)]
    for wer in RELAXED_WERS:
        voltage = device.voltage_for_wer(wer, reference_pulse, direction)
        rows.append(point(f"WER {wer:g}, same pulse", wer, voltage, reference_pulse))
    reduced_voltage = REDUCED_VOLTAGE_FRACTION * reference_voltage
    for wer in RELAXED_WERS:
        pulse = device.pulse_for_wer(wer, reduced_voltage, direction)
        rows.append(point(f"WER {wer:g}, 80 % voltage", wer, reduced_voltage, pulse))
    return rows
