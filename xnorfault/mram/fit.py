r"""Fitting the exact write-error model to a measured WER table: :math:`\Delta`, :math:`\tau_D`
and the critical voltage of each write direction by least squares on :math:`\log_{10}\mathrm{WER}`
(:func:`fit_device`; ``xnorfault mram fit``). Imports numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from xnorfault.mram.device import MTJ
from xnorfault.mram.measured import MeasuredWER


@dataclass(frozen=True)
class DeviceFit:
    """Fitted switching parameters and the residuals of :math:`\\log_{10}\\mathrm{WER}`."""

    delta: float
    tau_d: float
    vc0: float
    vc0_ap_to_p: float
    rms_log10: float
    max_abs_log10: float
    rows: int

    def to_dict(self) -> dict:
        return {
            "delta": self.delta,
            "tau_d": self.tau_d,
            "vc0_p_to_ap": self.vc0,
            "vc0_ap_to_p": self.vc0_ap_to_p,
            "rms_residual_log10": self.rms_log10,
            "max_abs_residual_log10": self.max_abs_log10,
            "rows": self.rows,
        }


def fit_device(table: MeasuredWER, start=None) -> DeviceFit:
    r"""Least-squares fit of :math:`\Delta`, :math:`\tau_D`, :math:`V_{c0}^{P\to AP}` and
    :math:`V_{c0}^{AP\to P}` of the exact model to ``table``: residuals
    :math:`\log_{10}\mathrm{WER}_{model} - \log_{10}\mathrm{WER}_{measured}` of both directions,
    parameters in log space, starting from ``start`` (an :class:`~xnorfault.mram.MTJ`, default
    the paper's device)."""
    start = start or MTJ(name="paper")
    volts = np.asarray(table.voltages, dtype=float)
    pulses = np.asarray(table.pulses, dtype=float)
    measured = np.concatenate([table.log_values("p_to_ap"), table.log_values("ap_to_p")])

    def device(parameters) -> MTJ:
        delta, tau_d, vc0, vc0_ap_to_p = np.exp(parameters)
        return MTJ(
            delta=float(delta),
            tau_d=float(tau_d),
            vc0=float(vc0),
            vc0_ap_to_p=float(vc0_ap_to_p),
            vbd=max(start.vbd, float(volts.max()) * 1.01),
        )

    def residuals(parameters) -> np.ndarray:
        mtj = device(parameters)
        model = np.concatenate(
            [
                np.log10(np.maximum(mtj.wer(volts, pulses, direction), 1e-300))
                for direction in ("p_to_ap", "ap_to_p")
            ]
        )
        return model - measured

    initial = np.log([start.delta, start.tau_d, start.vc0, start.vc0_ap_to_p or start.vc0])
    solution = least_squares(residuals, initial, x_scale=1.0, xtol=1e-10, ftol=1e-10)
    fitted = device(solution.x)
    final = residuals(solution.x)
    return DeviceFit(
        delta=fitted.delta,
        tau_d=fitted.tau_d,
        vc0=fitted.vc0,
        vc0_ap_to_p=float(fitted.vc0_ap_to_p),
        rms_log10=float(np.sqrt(np.mean(final**2))),
        max_abs_log10=float(np.max(np.abs(final))),
        rows=len(volts),
    )


__all__ = ["DeviceFit", "fit_device"]
