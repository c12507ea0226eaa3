r"""Measured write error rates: a device described by a table of (voltage, pulse, WER P→AP, WER
AP→P) measured on a chip (the fit of the macrospin model to such a table is
:mod:`xnorfault.mram.fit`).

Interpolation is linear in :math:`\log_{10}\mathrm{WER}` over voltage and
:math:`\log_{10}\tau` (WER curves are close to straight lines there, PAPER §3): on a
Delaunay triangulation of the measured points when they span both axes, along the one axis
when they share a pulse or a voltage. Nothing is extrapolated: an operating point outside the
measured region is a one-line error that names the region.
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.units import check_probability, parse_duration, parse_voltage

COLUMNS = ("voltage", "pulse", "wer_p_to_ap", "wer_ap_to_p")


@dataclass(frozen=True)
class MeasuredWER:
    """WER per write direction measured at (voltage, pulse) points, interpolated in log WER."""

    voltages: tuple[float, ...]
    pulses: tuple[float, ...]
    wer_p_to_ap: tuple[float, ...]
    wer_ap_to_p: tuple[float, ...]
    source: str = "table"

    def __post_init__(self):
        count = len(self.voltages)
        if count < 2:
            raise XnorfaultError(f"{self.source}: a measured WER table needs at least two rows")
        if not all(
            len(column) == count for column in (self.pulses, self.wer_p_to_ap, self.wer_ap_to_p)
        ):
            raise XnorfaultError(f"{self.source}: every row needs all of {', '.join(COLUMNS)}")
        for name in ("wer_p_to_ap", "wer_ap_to_p"):
            check_probability(
                np.asarray(getattr(self, name)), f"{self.source}: {name}", exclusive=True
            )
        points = set(zip(self.voltages, self.pulses, strict=True))
        if len(points) != count:
            raise XnorfaultError(f"{self.source}: a (voltage, pulse) point appears twice")

    @classmethod
    def from_csv(cls, path: str | Path) -> MeasuredWER:
        """Read a CSV with the header ``voltage,pulse,wer_p_to_ap,wer_ap_to_p`` (voltages and
        pulses may carry units: ``550mV``, ``10ns``)."""
        path = Path(path)
        if not path.is_file():
            raise XnorfaultError(f"measured WER table {path} not found")
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise XnorfaultError(
                f"{path} is not a readable CSV file ({type(error).__name__})"
            ) from None
        if not rows or any(column not in rows[0] for column in COLUMNS):
            raise XnorfaultError(f"{path}: expected the columns {', '.join(COLUMNS)}")
        columns: dict[str, list[float]] = {column: [] for column in COLUMNS}
        for line, row in enumerate(rows, start=2):
            try:
                columns["voltage"].append(parse_voltage(row["voltage"]))
                columns["pulse"].append(parse_duration(row["pulse"]))
                columns["wer_p_to_ap"].append(float(row["wer_p_to_ap"]))
                columns["wer_ap_to_p"].append(float(row["wer_ap_to_p"]))
            except (XnorfaultError, ValueError, TypeError) as error:
                raise XnorfaultError(f"{path}, line {line}: {error}") from None
        return cls(
            tuple(columns["voltage"]),
            tuple(columns["pulse"]),
            tuple(columns["wer_p_to_ap"]),
            tuple(columns["wer_ap_to_p"]),
            source=str(path),
        )

    # --- interpolation -------------------------------------------------------------------

    def log_values(self, direction: str) -> np.ndarray:
        r""":math:`\log_{10}` of the measured WERs of ``direction``, one per table row."""
        values = self.wer_p_to_ap if direction == "p_to_ap" else self.wer_ap_to_p
        return np.log10(np.asarray(values, dtype=float))

    def region(self) -> str:
        """The measured region, for error messages."""
        volts, pulses = np.asarray(self.voltages), np.asarray(self.pulses)
        return (
            f"{volts.min():.3g}–{volts.max():.3g} V, "
            f"{pulses.min() * 1e9:.3g}–{pulses.max() * 1e9:.3g} ns"
        )

    def wer(self, voltage, pulse, direction: str = "p_to_ap"):
        """The interpolated WER at (``voltage``, ``pulse``); a point outside the measured
        region raises :class:`XnorfaultError` (no extrapolation)."""
        volts, seconds = np.broadcast_arrays(
            np.asarray(voltage, dtype=float), np.asarray(pulse, dtype=float)
        )
        logs = self._interpolate(volts.ravel(), np.log10(seconds.ravel()), direction)
        outside = ~np.isfinite(logs)
        if outside.any():
            index = int(np.flatnonzero(outside)[0])
            raise XnorfaultError(
                f"{volts.ravel()[index]:.4g} V, {seconds.ravel()[index] * 1e9:.4g} ns lies outside "
                f"the measured WER table {self.source} ({self.region()}): it is not extrapolated"
            )
        value = (10.0**logs).reshape(volts.shape)
        return float(value) if value.ndim == 0 else value

    def _interpolate(self, volts: np.ndarray, log_pulses: np.ndarray, direction: str):
        table_v = np.asarray(self.voltages, dtype=float)
        table_t = np.log10(np.asarray(self.pulses, dtype=float))
        values = self.log_values(direction)
        if np.ptp(table_t) == 0:  # one pulse: interpolate along the voltage
            return _along(table_v, values, volts, np.isclose(log_pulses, table_t[0]))
        if np.ptp(table_v) == 0:  # one voltage: along the pulse
            return _along(table_t, values, log_pulses, np.isclose(volts, table_v[0]))
        scale, interpolator = self._triangulated[direction]
        return interpolator(volts * scale, log_pulses)

    @functools.cached_property
    def _triangulated(self) -> dict:
        """Per direction, the voltage scale and the linear interpolator on one Delaunay
        triangulation of the measured points (built once: solving calls it many times)."""
        from scipy.interpolate import LinearNDInterpolator

        table_v = np.asarray(self.voltages, dtype=float)
        table_t = np.log10(np.asarray(self.pulses, dtype=float))
        # voltage and log pulse scaled to comparable ranges for the triangulation
        scale = np.ptp(table_t) / np.ptp(table_v)
        points = np.column_stack([table_v * scale, table_t])
        first = LinearNDInterpolator(points, self.log_values("p_to_ap"))
        second = LinearNDInterpolator(first.tri, self.log_values("ap_to_p"))
        return {"p_to_ap": (scale, first), "ap_to_p": (scale, second)}

    def voltage_for_wer(self, wer, pulse, direction: str = "p_to_ap") -> float:
        """The voltage at which the interpolated WER at ``pulse`` equals ``wer``, within the
        measured region (bisection: WER falls with voltage)."""
        return self._solve(
            wer, lambda v: self.wer(v, pulse, direction), self.voltages, "voltage", pulse
        )

    def pulse_for_wer(self, wer, voltage, direction: str = "p_to_ap") -> float:
        """The pulse at which the interpolated WER at ``voltage`` equals ``wer``."""
        return self._solve(
            wer, lambda t: self.wer(voltage, t, direction), self.pulses, "pulse", voltage
        )

    def _solve(self, wer, curve, axis, name: str, fixed) -> float:
        from scipy.optimize import brentq

        target = math.log10(float(check_probability(wer, "WER", exclusive=True)))
        low, high = min(axis), max(axis)
        try:
            ends = [math.log10(curve(low)) - target, math.log10(curve(high)) - target]
        except XnorfaultError:
            raise XnorfaultError(
                f"the measured WER table {self.source} does not cover {fixed:g} across its "
                f"{name} range ({self.region()})"
            ) from None
        if ends[0] * ends[1] > 0:
            raise XnorfaultError(
                f"WER {10**target:g} is not reached within the measured {name}s of "
                f"{self.source} ({self.region()}): it is not extrapolated"
            )
        return float(brentq(lambda x: math.log10(curve(x)) - target, low, high, xtol=1e-12))

    def to_dict(self) -> dict:
        return {"source": self.source, "rows": len(self.voltages), "region": self.region()}


def _along(axis: np.ndarray, values: np.ndarray, points: np.ndarray, on_line: np.ndarray):
    order = np.argsort(axis)
    inside = on_line & (points >= axis.min()) & (points <= axis.max())
    result = np.full(points.shape, np.nan)
    result[inside] = np.interp(points[inside], axis[order], values[order])
    return result
