"""Parsing and formatting of physical quantities given on the command line.

Durations accept ``s``, ``ms``, ``us``/``µs``, ``ns`` and ``ps`` suffixes, voltages ``V`` and
``mV``; a bare number is taken in SI units (seconds, volts). Examples: ``"10ns"``,
``"1.5e-8"``, ``"550mV"``, ``"0.55 V"``.
"""

from __future__ import annotations

import math
import re

import numpy as np

from xnorfault.errors import XnorfaultError

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Zµμ]*)\s*$")

# a duration written as text needs its unit: a bare "10" would be ten seconds, never a pulse
_DURATION_SCALE = {
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
    "ps": 1e-12,
}
_VOLTAGE_SCALE = {"": 1.0, "v": 1.0, "mv": 1e-3}

# Long durations for retention: a year is the Julian year (365.25 days).
LONG_DURATION_SCALE = {
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "y": 365.25 * 86400.0,
    "yr": 365.25 * 86400.0,
    "year": 365.25 * 86400.0,
    "years": 365.25 * 86400.0,
}


def _parse(text: str, scales: dict[str, float], what: str, example: str) -> float:
    match = _QUANTITY.match(str(text))
    if match is None:
        raise XnorfaultError(
            f"cannot read {what} {text!r}: write a number with a unit, e.g. {example}"
        )
    number, unit = match.groups()
    key = unit if unit in scales else unit.lower()
    if key not in scales:
        units = ", ".join(sorted(u for u in scales if u))
        raise XnorfaultError(f"unknown unit {unit!r} in {what} {text!r}: use one of {units}")
    value = float(number) * scales[key]
    if not math.isfinite(value):
        raise XnorfaultError(f"{what} {text!r} is not a finite number")
    return value


def parse_duration(text: str | float) -> float:
    """Duration in seconds from ``"10ns"``, ``"1.5e-8s"``, ``"2 us"``, ``"10y"``; a number (not
    text) is in seconds. Text needs its unit but for ``"0"`` (zero in any unit): a bare
    ``"10"`` is a one-line error that names the units, not ten seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _QUANTITY.match(str(text))
    if match is not None and not match.group(2):
        if float(match.group(1)) == 0:
            return 0.0
        value, bare = float(match.group(1)), text.strip()
        # a value below a millisecond was most likely written in seconds (1.5e-8)
        example = (
            f"{bare}s if it is in seconds ({value * 1e9:g}ns)"
            if value < 1e-3
            else f"{bare}ns or {bare}us"
        )
        raise XnorfaultError(
            f"duration {text!r} has no unit: write it with one, e.g. {example} "
            "(units: ps, ns, us, ms, s, min, h, d, y)"
        )
    return _parse(text, _DURATION_SCALE | LONG_DURATION_SCALE, "duration", '"10ns" or "1.5e-8s"')


ZERO_CELSIUS = 273.15  # K


def parse_temperature(text: str | float) -> float:
    """Temperature in kelvin from ``"85C"``, ``"85 °C"``, ``"358.15K"``; a number is in kelvin.
    A unit is required on the command line's text, where a bare ``85`` would be ambiguous."""
    if isinstance(text, int | float):
        kelvin = float(text)
    else:
        match = _QUANTITY.match(str(text).replace("°", ""))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in ("c", "k"):
            raise XnorfaultError(
                f"cannot read temperature {text!r}: write degrees Celsius or kelvin with the "
                'unit, e.g. "85C" or "358K"'
            )
        kelvin = float(match.group(1)) + (ZERO_CELSIUS if unit == "c" else 0.0)
    if not (math.isfinite(kelvin) and kelvin > 0):
        raise XnorfaultError(f"temperature {text!r} is not above absolute zero")
    return kelvin


def format_temperature(kelvin: float) -> str:
    """``358.15`` → ``"85 °C"``."""
    return f"{kelvin - ZERO_CELSIUS:.4g} °C"


def parse_voltage(text: str | float) -> float:
    """Voltage in volts from ``"550mV"``, ``"0.55V"`` or ``"0.55"``."""
    if isinstance(text, int | float):
        return float(text)
    return _parse(text, _VOLTAGE_SCALE, "voltage", '"550mV" or "0.55"')


def check_probability(value, what: str = "probability", *, exclusive: bool = False):
    """``value`` (a number or an array of them) checked to be finite and in :math:`[0, 1]` —
    in :math:`(0, 1)` with ``exclusive`` (a WER target: 0 and 1 cannot be solved for). The one
    validator of probabilities: flip rates, BERs, accuracy budgets, WER targets."""
    array = np.asarray(value, dtype=float)
    if exclusive:
        valid = (array > 0) & (array < 1)
    else:
        valid = (array >= 0) & (array <= 1)
    valid &= np.isfinite(array)
    if not np.all(valid):
        bad = float(array[~valid].ravel()[0])
        interval = "strictly between 0 and 1" if exclusive else "between 0 and 1"
        raise XnorfaultError(f"{what} must lie {interval}, got {bad:g}")
    return float(array) if array.ndim == 0 else array


def parse_probability(text: str | float, what: str = "WER", *, exclusive: bool = True) -> float:
    """A probability from ``"1e-6"``, ``"0.01"`` or ``"1%"``, checked by
    :func:`check_probability` (strictly between 0 and 1 unless ``exclusive`` is False)."""
    raw = str(text).strip()
    scale = 1.0
    if raw.endswith("%"):
        raw, scale = raw[:-1], 0.01
    try:
        value = float(raw) * scale
    except ValueError:
        raise XnorfaultError(
            f"cannot read {what} {text!r}: write a number between 0 and 1, such as 1e-6 or 1%"
        ) from None
    return check_probability(value, what, exclusive=exclusive)


def parse_rate(text: str | float, option: str) -> float:
    """A flip or error rate in :math:`[0, 1]` from an option value (0 and 1 allowed)."""
    return parse_probability(text, option, exclusive=False)


_POINT_SUFFIXES = ("points", "point", "pts", "pt")


def parse_drop(text: str | float, option: str = "--max-drop") -> float:
    """An accuracy drop as a fraction of the accuracy, from ``"1pt"`` (one percentage point),
    ``"1%"`` or ``"0.01"``: one meaning everywhere, strictly between 0 and 1. A bare number of 1
    or more (``--max-drop 1``: all of the accuracy, or one point?) is a one-line error.

    >>> parse_drop("1pt"), parse_drop("0.5%"), parse_drop(0.02)
    (0.01, 0.005, 0.02)
    """
    raw = str(text).strip().lower()
    scale = 1.0
    for suffix in ("%", *_POINT_SUFFIXES):
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)].strip(), 0.01
            break
    try:
        value = float(raw) * scale
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # NaN too
        raise XnorfaultError(
            f"{option} {text!r}: a drop lies between 0 and 1 of the accuracy; write it as "
            "points, a percentage or a fraction: 1pt, 1% or 0.01"
        )
    return value


def parse_count(text: str | int, what: str = "count", minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (batch sizes, epochs) from ``"256"``."""
    raw = str(text).strip()
    try:
        value = int(raw)
    except ValueError:
        raise XnorfaultError(
            f"cannot read {what} {text!r}: write a whole number, e.g. 256"
        ) from None
    if value < minimum:
        raise XnorfaultError(f"{what} must be at least {minimum}, got {value}")
    return value


MAX_LIST_LENGTH = 10_000  # a sweep longer than this is a typo (a step in the wrong unit)


def parse_list(text: str, parse_one) -> list[float]:
    """A comma-separated list, or a range ``start:stop:step`` with ``stop`` included; at most
    :data:`MAX_LIST_LENGTH` values."""
    text = str(text).strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise XnorfaultError(
                f"cannot read range {text!r}: write start:stop:step, e.g. 0.45:0.85:0.05"
            )
        start, stop, step = (parse_one(p) for p in parts)
        if step <= 0 or stop < start:
            raise XnorfaultError(f"range {text!r} needs start <= stop and a positive step")
        ratio = (stop - start) / step
        if not math.isfinite(ratio) or ratio >= MAX_LIST_LENGTH:
            raise XnorfaultError(
                f"range {text!r} has more than {MAX_LIST_LENGTH} values: use a larger step"
            )
        count = int(math.floor(ratio + 1e-9)) + 1
        return [start + i * step for i in range(count)]
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise XnorfaultError("empty list: give at least one value, e.g. 0.5,0.6")
    if len(items) > MAX_LIST_LENGTH:
        raise XnorfaultError(f"list of {len(items)} values: give at most {MAX_LIST_LENGTH}")
    return [parse_one(item) for item in items]


def format_duration(seconds: float) -> str:
    """Human-readable duration with an SI prefix: ``1e-8`` → ``"10 ns"``."""
    return _format_si(seconds, "s")


def format_voltage(volts: float) -> str:
    """Voltage in volts with three decimals: ``0.5503`` → ``"0.550 V"``."""
    return f"{volts:.3f} V"


def format_energy(joules: float) -> str:
    """Energy with an SI prefix: ``1.2e-13`` → ``"120 fJ"``."""
    return _format_si(joules, "J")


def _format_si(value: float, unit: str) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    prefixes = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, "")]
    scale, prefix = prefixes[0]
    for candidate_scale, candidate_prefix in prefixes:
        if abs(value) >= candidate_scale * 0.9995:
            scale, prefix = candidate_scale, candidate_prefix
    return f"{value / scale:.3g} {prefix}{unit}"


def endurance_text(gain: float | None, outlasts_service_life: bool) -> str:
    """Endurance against the conventional point, as the E-model gives it: a ratio, or beyond
    any service life when writing back to back would outlast 100 years."""
    if outlasts_service_life:
        return "> 100 y of writes"
    return "—" if gain is None else f"{gain:.2g}×"


def endurance_phrase(drop: dict) -> str:
    """The max-drop answer's endurance, in words."""
    if drop.get("outlasts_service_life"):
        return "endurance beyond 100 years of back-to-back writes (E-model)"
    return f"endurance {drop['endurance_gain']:.2g}× that point's (E-model)"


def parse_shard(shard: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """A shard of a sweep or campaign, ``"I/N"`` or ``(I, N)``: the I-th of N slices, counted
    from 1 (``1 <= I <= N``) in every command and in the Python API, checked.

    >>> parse_shard("1/4"), parse_shard((4, 4))
    ((1, 4), (4, 4))
    """
    if isinstance(shard, tuple | list):
        parts = list(shard)
    else:
        parts = str(shard).split("/")
    try:
        index, count = (int(part) for part in parts)
    except (TypeError, ValueError):
        raise XnorfaultError(
            f"cannot read --shard {shard!r}: write I/N, e.g. 1/4 for the first of four slices"
        ) from None
    if count < 1 or not 1 <= index <= count:
        raise XnorfaultError(
            f"--shard {shard!r}: shards count from 1, I/N needs 1 <= I <= N (the first of four is 1/4)"
        )
    return index, count
