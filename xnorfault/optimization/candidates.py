"""The candidate operating points of ``xnorfault optimize``: every (V, τ) of the voltage grid
and the pulses, reduced to the chain no other point beats in both energy per bit and WER; the
chain points its sensitivity curves sample; the conventional point (WER 1e-6 both ways).
Imports numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.mram.device import CONVENTIONAL_WER
from xnorfault.units import format_voltage, parse_duration, parse_list, parse_voltage

SENSITIVITY_LEVELS = 10  # chain points measured per site

LOWEST_WER, HIGHEST_WER = 1e-5, 0.5  # the WERs the sensitivity curves span

VOLTAGE_STEP = 0.01  # V, of a range given without a step

PULSE_COUNT = 5  # log-spaced pulses of a range given without a step


@dataclass(frozen=True)
class WritePoint:
    """One write voltage and pulse, its WER per direction and energy per bit."""

    voltage: float
    pulse: float
    wer_p_to_ap: float  # writing −1: the rate of −1 → +1
    wer_ap_to_p: float  # writing +1: the rate of +1 → −1
    energy_per_bit: float

    @property
    def rates(self) -> FlipRates:
        return FlipRates(self.wer_ap_to_p, self.wer_p_to_ap)

    @property
    def wer(self) -> float:
        return max(self.wer_p_to_ap, self.wer_ap_to_p)

    def to_dict(self) -> dict:
        return {
            "voltage": self.voltage,
            "pulse": self.pulse,
            "wer_p_to_ap": self.wer_p_to_ap,
            "wer_ap_to_p": self.wer_ap_to_p,
        }


def candidate_chain(device, voltages, pulses) -> list[WritePoint]:
    """Every (voltage, pulse) pair, less those another pair beats in both energy per bit and
    WER; from the most energy to the least (WER rising)."""
    points = []
    volts = np.asarray(voltages, dtype=float)
    for pulse in pulses:
        p_to_ap = np.atleast_1d(device.wer(volts, pulse, "p_to_ap"))
        ap_to_p = (
            p_to_ap if device.symmetric else np.atleast_1d(device.wer(volts, pulse, "ap_to_p"))
        )
        energy = np.atleast_1d(device.write_energy(volts, pulse))
        points += [
            WritePoint(float(v), float(pulse), float(a), float(b), float(e))
            for v, a, b, e in zip(volts, p_to_ap, ap_to_p, energy, strict=True)
        ]
    # by rising energy, a point survives only if its WER is below that of every cheaper point
    points.sort(key=lambda p: (p.energy_per_bit, p.wer))
    chain: list[WritePoint] = []
    for point in points:
        if not chain or point.wer < chain[-1].wer:
            chain.append(point)
    return chain[::-1]


def sample_levels(chain: list[WritePoint]) -> list[int]:
    """Chain indices whose WERs are closest to log-spaced targets in [1e-5, 0.5]."""
    wers = np.array([p.wer for p in chain])
    positive = wers > 0
    low = max(LOWEST_WER, float(wers[positive].min())) if positive.any() else LOWEST_WER
    high = min(HIGHEST_WER, float(wers.max()))
    targets = [high] if high <= low else np.geomspace(low, high, SENSITIVITY_LEVELS)
    safe = np.log(np.maximum(wers, 1e-300))
    return sorted({int(np.argmin(np.abs(safe - math.log(t)))) for t in targets})


def parse_voltage_range(text: str | None, device, pulses) -> np.ndarray:
    """``--voltage``: ``LOW:HIGH`` (steps of 10 mV), ``LOW:HIGH:STEP`` or a list; by default
    from the larger critical voltage to the conventional point's voltage at the longest pulse
    (or the breakdown voltage)."""
    if text is None:
        low = max(device.critical_voltage(d) for d in ("p_to_ap", "ap_to_p"))
        try:
            high = float(device.conventional_voltage(max(pulses)))
        except XnorfaultError:
            high = device.vbd
        values = np.arange(math.floor(low * 100) / 100, high + 1e-9, VOLTAGE_STEP)
    elif text.count(":") == 1:
        low, high = (parse_voltage(part) for part in text.split(":"))
        if not 0 < low < high:
            raise XnorfaultError(f"--voltage {text}: give LOW:HIGH with 0 < LOW < HIGH")
        values = np.arange(low, high + 1e-9, VOLTAGE_STEP)
    else:
        values = np.asarray(parse_list(text, parse_voltage), dtype=float)
    if np.any(values <= 0) or np.any(values > device.vbd):
        raise XnorfaultError(
            f"--voltage {text}: voltages must lie in (0, {format_voltage(device.vbd)}], the "
            f"breakdown voltage of device '{device.name}'"
        )
    return np.unique(np.round(values, 6))


def parse_pulse_range(text: str) -> list[float]:
    """``--pulse``: one pulse, a list, ``LOW:HIGH`` (five log-spaced pulses) or
    ``LOW:HIGH:STEP``."""
    if text.count(":") == 1:
        low, high = (parse_duration(part) for part in text.split(":"))
        if not 0 < low < high:
            raise XnorfaultError(f"--pulse {text}: give LOW:HIGH with 0 < LOW < HIGH")
        return [float(p) for p in np.geomspace(low, high, PULSE_COUNT)]
    pulses = [float(p) for p in parse_list(text, parse_duration)]
    if any(p <= 0 for p in pulses):
        raise XnorfaultError(f"--pulse {text}: pulses must be positive")
    return sorted(set(pulses))


def conventional_point(device, pulses, bits: int) -> dict | None:
    """The conventional point: WER 1e-6 in both directions at the candidate pulse where its
    energy per inference is least (``None`` where no pulse reaches it below breakdown)."""
    best = None
    for pulse in pulses:
        try:
            voltage = float(device.conventional_voltage(pulse))
        except XnorfaultError:
            continue
        energy = bits * float(device.write_energy(voltage, pulse))
        if best is None or energy < best["energy_per_inference"]:
            best = {
                "voltage": voltage,
                "pulse": pulse,
                "wer": CONVENTIONAL_WER,
                "energy_per_inference": energy,
            }
    return best


__all__ = [
    "SENSITIVITY_LEVELS",
    "WritePoint",
    "candidate_chain",
    "conventional_point",
    "parse_pulse_range",
    "parse_voltage_range",
    "sample_levels",
]
