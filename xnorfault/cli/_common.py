"""Helpers shared by the command modules: options, JSON output, number formatting."""

from __future__ import annotations

import math
import sys

from rich.console import Console

from xnorfault.io import json_text
from xnorfault.schemas import document

# Tables stay readable when piped (rich falls back to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 120)


def emit_json(data: dict, schema: str) -> None:
    """Print ``data`` as strict JSON on stdout (non-finite floats become null), after the
    header of its schema (:mod:`xnorfault.schemas`: ``schema`` and ``xnorfault_version``) and
    with every field the schema declares (null where it does not apply)."""
    sys.stdout.write(json_text(document(schema, data)))


def sci(value: float, digits: int = 3) -> str:
    """Compact scientific notation: 1.23e-06."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def percent(fraction: float) -> str:
    """Signed percentage: -0.366 -> '-36.6 %'; zero prints as '0'."""
    if abs(fraction) < 5e-5:
        return "0"
    return f"{fraction * 100:+.1f} %"


def run_points(record: dict) -> list[dict]:
    """The run's fault points as ``plot --json`` and ``report --json`` list them: label and
    the number of repeats with a complete record."""
    return [
        {"point": point["point"], "complete_repeats": int(point.get("complete_repeats", 0))}
        for point in record.get("points", [])
    ]
