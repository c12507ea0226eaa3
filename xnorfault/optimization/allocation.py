"""The allocation step of ``xnorfault optimize``: drop curves against WER (isotonic fits) and the
greedy walk that moves one site at a time to the cheaper point saving the most energy per unit
of predicted drop; a budget picks the last allocation of the walk within it. Imports numpy and
scipy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression


@dataclass
class DropCurve:
    """Accuracy drop against WER of one site (or of all sites sharing a point), measured on the
    search half at ``wers``; ``drops`` the isotonic fit of ``measured``."""

    wers: np.ndarray
    measured: np.ndarray
    drops: np.ndarray

    @classmethod
    def fit(cls, wers, measured) -> DropCurve:
        wers, measured = np.asarray(wers, float), np.asarray(measured, float)
        drops = np.clip(isotonic_regression(measured, increasing=True).x, 0.0, None)
        return cls(wers, measured, drops)

    def at(self, wer: float) -> float:
        """The predicted drop at ``wer``; infinite beyond the measured WERs."""
        if wer > self.wers[-1] * (1 + 1e-9):
            return math.inf
        if wer <= self.wers[0]:
            return float(self.drops[0] * wer / self.wers[0])
        return float(np.interp(math.log(wer), np.log(self.wers), self.drops))

    def to_dict(self) -> dict:
        return {
            "wers": self.wers.tolist(),
            "measured_drops": self.measured.tolist(),
            "fitted_drops": self.drops.tolist(),
        }


@dataclass(frozen=True)
class Allocation:
    """A chain index per site, its energy per inference and predicted drop."""

    levels: tuple[int, ...]
    energy: float
    predicted_drop: float


def allocation_path(
    drop_tables: list[np.ndarray], bits: list[int], energy_per_bit: np.ndarray
) -> list[Allocation]:
    """The greedy walk from every site at the safest point (index 0): each step moves the site,
    to the cheaper point, that saves the most energy per unit of added predicted drop (moves
    adding none first, the largest saving among those; among equal ratios the smallest step). ``drop_tables[s][k]``: site s's
    predicted drop at chain point k (infinite where not measured)."""
    levels = [0] * len(bits)

    def snapshot() -> Allocation:
        energy = sum(n * energy_per_bit[k] for n, k in zip(bits, levels, strict=True))
        drop = sum(table[k] for table, k in zip(drop_tables, levels, strict=True))
        return Allocation(tuple(levels), float(energy), float(drop))

    path = [snapshot()]
    while True:
        best = None
        for site, (table, n) in enumerate(zip(drop_tables, bits, strict=True)):
            here = levels[site]
            saved = n * (energy_per_bit[here] - energy_per_bit[here + 1 :])
            added = np.maximum(table[here + 1 :] - table[here], 0.0)
            usable = np.isfinite(added) & (saved > 0)
            for offset in np.flatnonzero(usable):
                free = added[offset] <= 1e-12
                # nine significant digits: rounding noise must not split equal ratios
                ratio = math.inf if free else float(f"{saved[offset] / added[offset]:.9g}")
                # equal ratios: a free move goes as far as it can, a costly one the least far
                # (the walk then passes through every allocation a budget may pick)
                key = (ratio, saved[offset] if free else -added[offset])
                if best is None or key > best[0]:
                    best = (key, site, here + 1 + int(offset))
        if best is None:
            return path
        _, site, level = best
        levels[site] = level
        path.append(snapshot())


def choose(path: list[Allocation], budget: float) -> int:
    """Index of the last allocation of ``path`` predicted within ``budget`` (0 if none)."""
    chosen = 0
    for index, allocation in enumerate(path):
        if allocation.predicted_drop <= budget:
            chosen = index
        else:
            break
    return chosen


__all__ = ["Allocation", "DropCurve", "allocation_path", "choose"]
