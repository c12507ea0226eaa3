r"""Chips: cell-to-cell variation as a write error rate per address of each activation memory.

Real junctions differ cell to cell (PAPER §3; the device file's ``[variation]``): cell c of a
chip has thermal stability :math:`\Delta_c = f_{\Delta,c}\Delta` and critical voltages
:math:`V_{c0,c} = f_{V,c}V_{c0}` (both write directions scale together), the factors drawn from
correlated standard normal draws by :meth:`~xnorfault.mram.MTJ.cell_factors`. At write voltage
V and pulse :math:`\tau` the cell's write error rate in direction d is the exact

.. math:: \mathrm{WER}_{c,d} = \mathrm{WER}\big(V / (f_{V,c}V_{c0,d}),\ \tau/\tau_D,\
          f_{\Delta,c}\Delta\big)

(:func:`~xnorfault.mram.switching.wer_exact`). A chip gives every address of every site's
activation memory (one cell per element of one image's activation) its own cell, so every image
written there meets the same weak and strong cells: :func:`chip_rates` turns a chip and an
operating point into :class:`~xnorfault.faults.AddressRates`, which ``xnorfault.BitFlip`` takes
as rate maps. A +1 is stored as P: its flip rate is the AP→P WER, a −1's the P→AP WER.

One exact solve takes milliseconds and a chip holds :math:`10^4`–:math:`10^6` cells, so
:class:`CellWERTable` solves the exact WER once on a grid of reduced voltage
:math:`v = V/V_{c0}` (log-spaced) and :math:`\Delta` at the pulse's reduced length, and
interpolates :math:`\ln\mathrm{WER}` there with a bicubic spline (relative error below
:math:`10^{-4}` against the exact solution, tested). Draws are clipped at
:math:`\pm 6\sigma` so that every cell lies inside the table (a :math:`2\cdot10^{-9}` share of
cells moves to the edge). Chip k of chip seed S is the same whatever else is drawn: its cells
come from ``numpy.random.default_rng([S, k, site position])``. Imports numpy and scipy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RectBivariateSpline

from xnorfault.errors import XnorfaultError
from xnorfault.faults import AddressRates
from xnorfault.mram import switching
from xnorfault.mram.device import DIRECTIONS, MTJ, Direction
from xnorfault.mram.disturb import switch_probability

Z_LIMIT = 6.0  # cells are drawn within ±6 σ: the table's reach
LOG_VOLTAGE_STEP = 0.05  # grid spacing of ln v; 0.1 still interpolates to 1e-5
DELTA_STEP = 2.0  # grid spacing of Δ
MIN_NODES = 6  # per axis (a bicubic spline needs four)
WER_FLOOR = 1e-300  # ln 0 guarded: such a cell never fails in any run
SWITCH_STEPS = (0.1, 4.0)  # ln v and Δ spacing of a read-disturb table


class CellWERTable:
    r"""Exact WER of a device's cells at one pulse, tabulated over reduced voltage and Δ.

    The grid spans the reduced voltages :math:`V/(f_V V_{c0,d})` of ``voltages`` in both write
    directions and the Δ of every cell the variation can draw within ±:data:`Z_LIMIT` σ;
    :meth:`wer` interpolates :math:`\ln\mathrm{WER}` (bicubic, in :math:`\ln v` and Δ)."""

    def __init__(self, device: MTJ, pulse: float, voltages, quantity: str = "wer") -> None:
        if device.measured is not None:
            raise XnorfaultError(
                f"device '{device.name}' is a measured WER table: chips draw cells from the model "
                "parameters and their [variation]"
            )
        voltages = np.asarray(voltages, dtype=float)
        self.device = device
        self.pulse = float(pulse)
        edges = np.array([-Z_LIMIT, Z_LIMIT])
        delta_factors, vc0_factors = device.cell_factors(edges, edges)
        critical = [device.critical_voltage(d) for d in DIRECTIONS]
        v_low = voltages.min() / (vc0_factors.max() * max(critical))
        v_high = voltages.max() / (vc0_factors.min() * min(critical))
        d_low, d_high = device.delta * delta_factors.min(), device.delta * delta_factors.max()
        # a spread of zero (or a single voltage) still gets an axis a spline can span
        v_low, v_high = min(v_low, v_high / 1.02), max(v_high, v_low * 1.02)
        d_low, d_high = min(d_low, d_high - 0.5), max(d_high, d_low + 0.5)
        v_step, d_step = (LOG_VOLTAGE_STEP, DELTA_STEP) if quantity == "wer" else SWITCH_STEPS
        count_v = max(MIN_NODES, math.ceil(math.log(v_high / v_low) / v_step) + 1)
        count_d = max(MIN_NODES, math.ceil((d_high - d_low) / d_step) + 1)
        self.log_voltages = np.linspace(math.log(v_low), math.log(v_high), count_v)
        self.deltas = np.linspace(d_low, d_high, count_d)
        reduced_pulse = self.pulse / device.tau_d
        solve = switching.wer_exact if quantity == "wer" else switch_probability
        log_wer = np.empty((count_v, count_d))
        for i, log_v in enumerate(self.log_voltages):
            for j, delta in enumerate(self.deltas):
                wer = solve(math.exp(log_v), reduced_pulse, delta)
                log_wer[i, j] = math.log(max(float(wer), WER_FLOOR))
        self._spline = RectBivariateSpline(self.log_voltages, self.deltas, log_wer)

    @property
    def solves(self) -> int:
        """Exact solves the table took."""
        return self.log_voltages.size * self.deltas.size

    def wer(self, voltage: float, delta_factor, vc0_factor, direction: Direction) -> np.ndarray:
        """WER of cells with the given factors, writing in ``direction`` at ``voltage``."""
        volts = float(self.device.operating_voltage(voltage))
        reduced = volts / (np.asarray(vc0_factor) * self.device.critical_voltage(direction))
        log_v = np.log(reduced)
        delta = np.asarray(delta_factor) * self.device.delta
        inside = (
            (log_v >= self.log_voltages[0] - 1e-12)
            & (log_v <= self.log_voltages[-1] + 1e-12)
            & (delta >= self.deltas[0] - 1e-12)
            & (delta <= self.deltas[-1] + 1e-12)
        )
        if not np.all(inside):
            raise XnorfaultError(
                f"{voltage:g} V lies outside the voltages this WER table was built for: build it "
                "for every voltage of the sweep"
            )
        return np.clip(np.exp(self._spline.ev(log_v, delta)), 0.0, 1.0)


@functools.lru_cache(maxsize=8)
def cell_switch_table(device: MTJ, pulse: float, voltage: float) -> CellWERTable:
    r"""The table of a read's switching probability :math:`P_{sw} = 1 - \mathrm{WER}` (read
    disturb, :func:`~xnorfault.mram.disturb.switch_probability`) at the read ``pulse`` and
    ``voltage``; :meth:`CellWERTable.wer` then returns switching probabilities. Its grid is
    coarser (:data:`SWITCH_STEPS`): :math:`\ln P_{sw}` is nearly linear in Δ, and each node
    is a finite-volume solve."""
    return CellWERTable(device, pulse, (voltage,), quantity="switch")


@functools.lru_cache(maxsize=8)
def cell_wer_table(device: MTJ, pulse: float, voltages: tuple[float, ...]) -> CellWERTable:
    """The :class:`CellWERTable` of ``device`` at ``pulse`` for ``voltages``, built once per
    process."""
    return CellWERTable(device, pulse, voltages)


@dataclass(frozen=True, eq=False)
class Chip:
    """The cells of one chip: Δ and critical-voltage factors per address of each site."""

    seed: int
    index: int
    delta_factor: dict[str, np.ndarray]
    vc0_factor: dict[str, np.ndarray]


def require_variation(device: MTJ) -> None:
    """A one-line error unless ``device`` describes cell-to-cell variation."""
    if not device.varies:
        raise XnorfaultError(
            f"device '{device.name}' has no cell-to-cell variation: give --mram-device a file "
            "with a [variation] section (sigma_delta, sigma_vc0), e.g. the preset paper-varied, to draw chips"
        )


def draw_chip(device: MTJ, addresses: dict[str, int], seed: int, index: int) -> Chip:
    """Chip ``index`` of chip seed ``seed``: one cell per address of each site (``addresses``:
    elements per image, in the model's site order), drawn from the device's variation."""
    require_variation(device)
    delta_factor, vc0_factor = {}, {}
    for position, (site, count) in enumerate(addresses.items()):
        rng = np.random.default_rng([int(seed) & (2**63 - 1), int(index), position])
        delta_factor[site], vc0_factor[site] = device.sample_cells(count, rng, Z_LIMIT)
    return Chip(int(seed), int(index), delta_factor, vc0_factor)


def site_rates(chip: Chip, site: str, table: CellWERTable, voltage: float) -> AddressRates:
    """The flip rates of every address of ``site`` on ``chip`` written at ``voltage`` (and the
    table's pulse): +1→−1 is a failed AP→P write, −1→+1 a failed P→AP write (paper, eqs. 2–3)."""
    delta, vc0 = chip.delta_factor[site], chip.vc0_factor[site]
    return AddressRates(
        table.wer(voltage, delta, vc0, "ap_to_p"), table.wer(voltage, delta, vc0, "p_to_ap")
    )


def chip_rates(chip: Chip, table: CellWERTable, voltage: float) -> dict[str, AddressRates]:
    """Every site's per-address flip rates on ``chip``, all written at ``voltage``."""
    return {site: site_rates(chip, site, table, voltage) for site in chip.delta_factor}


@dataclass(frozen=True, eq=False)
class ChipPopulation:
    """``count`` chips of chip seed ``seed`` on ``device``, each with one cell per address of
    every site (``addresses``), and the WER table of the sweep's pulse and voltages. Chips are
    drawn again wherever they are needed (cheap, and memory stays one chip's)."""

    device: MTJ
    addresses: dict[str, int]
    count: int
    seed: int
    table: CellWERTable

    @classmethod
    def build(
        cls,
        device: MTJ,
        addresses: dict[str, int | None],
        count: int,
        seed: int,
        pulse: float,
        voltages,
    ) -> ChipPopulation:
        """Chips for a sweep of ``voltages`` at ``pulse``; a one-line error where a site's
        addresses are unknown (a dimension of its activation not fixed)."""
        if count < 1:
            raise XnorfaultError(f"--chips {count}: draw at least one chip")
        unknown = [site for site, n in addresses.items() if not n]
        if unknown:
            raise XnorfaultError(
                f"the number of cells of site(s) {', '.join(unknown)} is not fixed (a dynamic "
                "dimension besides the batch): export the model with fixed image dimensions to draw chips"
            )
        require_variation(device)  # before the table's solves
        table = cell_wer_table(device, float(pulse), tuple(float(v) for v in voltages))
        return cls(device, dict(addresses), int(count), int(seed), table)

    @property
    def cells(self) -> int:
        """Cells per chip (every address of every site)."""
        return int(sum(self.addresses.values()))

    def chips(self):
        """The chips, one at a time."""
        for index in range(self.count):
            yield draw_chip(self.device, self.addresses, self.seed, index)

    def describe(self) -> dict:
        return {
            "count": self.count,
            "seed": self.seed,
            "cells_per_chip": self.cells,
            "addresses": dict(self.addresses),
            "variation": {
                "sigma_delta": self.device.sigma_delta,
                "sigma_vc0": self.device.sigma_vc0,
                "distribution": self.device.variation,
                "correlation": self.device.variation_correlation,
            },
            "wer_table": {"exact_solves": self.table.solves, "z_limit": Z_LIMIT},
        }


__all__ = [
    "CellWERTable",
    "Chip",
    "ChipPopulation",
    "cell_switch_table",
    "cell_wer_table",
    "chip_rates",
    "draw_chip",
    "site_rates",
]
