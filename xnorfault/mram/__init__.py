"""MRAM write-error physics: the MTJ model of the paper (arXiv:1905.10927, §III).

``MTJ`` gives write error rates (exact Fokker–Planck solution), the voltage or pulse for a
target WER, endurance, write energy and retention; ``load_device`` reads device descriptions;
``table_one`` reproduces the paper's Table I. Imports numpy and scipy only.
"""

from xnorfault.mram.device import DIRECTIONS, MTJ, Direction
from xnorfault.mram.device_file import available_devices, load_device
from xnorfault.mram.switching import (
    default_terms,
    legendre_generator,
    pulse_for_wer_closed_form,
    stationary_unswitched_probability,
    voltage_for_wer_closed_form,
    wer_closed_form,
    wer_exact,
)
from xnorfault.mram.table import OperatingPoint, table_one

__all__ = [
    "DIRECTIONS",
    "MTJ",
    "Direction",
    "OperatingPoint",
    "available_devices",
    "default_terms",
    "legendre_generator",
    "load_device",
    "pulse_for_wer_closed_form",
    "stationary_unswitched_probability",
    "table_one",
    "voltage_for_wer_closed_form",
    "wer_closed_form",
    "wer_exact",
]
