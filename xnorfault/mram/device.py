r"""An MTJ device in SI units: write errors, inverse solves, endurance, energy and retention.

:class:`MTJ` wraps the reduced-unit physics of :mod:`xnorfault.mram.switching` (voltage
:math:`v = V/V_{c0}`, time :math:`t = \tau/\tau_D`) and adds the device-level models of the
paper (Tzoufras, Gajek & Walker, arXiv:1905.10927, §III):

* write error rate per write direction: writing −1 switches the cell P→AP, writing +1 switches
  it AP→P (paper, eqs. 2–3); each direction has its own :math:`V_{c0}`;
* endurance from time-dependent dielectric breakdown (E-model),
  :math:`t_{BD}(V) = t_{BD}(V_{bd})\,e^{\gamma (V_{bd} - V)}`, :math:`N_c = t_{BD}(V)/\tau`;
* write energy per bit :math:`E = V^2\tau/R`;
* retention error over a time :math:`T`: :math:`1 - \exp[-(T/\tau_0)e^{-\Delta}]`, and the
  probability that an idle cell holds the wrong value after :math:`T`,
  :math:`\tfrac12(1 - e^{-2rT})` with :math:`r = e^{-\Delta}/\tau_0`;
* temperature: :math:`\Delta(T) = \Delta\,T_{ref}/T` (the barrier :math:`E_b` held fixed,
  :math:`\Delta = E_b/k_BT`);
* read disturb: the switching probability of one read pulse below the critical voltage
  (:mod:`xnorfault.mram.disturb`).

Device descriptions are TOML files; :func:`load_device` reads one by preset name (``paper``,
``asymmetric``) or path.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.mram import switching
from xnorfault.units import (
    check_probability,
    format_duration,
    format_temperature,
    format_voltage,
    parse_duration,
    parse_voltage,
)

Direction = Literal["p_to_ap", "ap_to_p"]
CONVENTIONAL_WER = 1e-6  # the ECC-backed operating point of the paper's Table I
SERVICE_LIFE = 100 * 365.25 * 86400.0  # s: longer than any product writes back to back
VARIATIONS = ("normal", "lognormal")
MAX_NORMAL_SIGMA = 0.15  # 6.7 σ from zero: no quadrature node or drawn cell goes negative
QUADRATURE_NODES = 12  # Gauss–Hermite nodes per dimension (8 already agree to 1e-11)


DIRECTIONS: tuple[Direction, ...] = ("p_to_ap", "ap_to_p")


def _scalar_or_array(value: np.ndarray, *inputs) -> float | np.ndarray:
    return float(value) if all(np.ndim(x) == 0 for x in inputs) else value


_QUANTITY_PARSERS = {"V": parse_voltage, "s": parse_duration}


def _positive(values, what: str, unit: str) -> np.ndarray:
    """``values`` (numbers in ``unit``, or one quantity with its unit such as ``"10ns"``) as a
    float array, each positive and finite (one-line errors)."""
    if isinstance(values, str):
        values = _QUANTITY_PARSERS[unit](values)
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise XnorfaultError(
            f"{what} {values!r}: give numbers in {unit} or one quantity with its unit"
        ) from None
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        bad = array[~(np.isfinite(array) & (array > 0))].ravel()[0]
        raise XnorfaultError(f"{what} must be positive and finite, got {bad:g} {unit}")
    return array


@dataclass(frozen=True)
class MTJ:
    """A perpendicular magnetic tunnel junction, all quantities in SI units.

    Defaults are the paper's device (Table I): :math:`\\Delta = 40`, :math:`\\tau_D = 2` ns,
    :math:`V_{c0} = 0.3` V, :math:`V_{bd} = 1.2` V. ``vc0`` is the critical voltage for writing
    −1 (P→AP); ``vc0_ap_to_p`` the one for writing +1 (AP→P), equal to ``vc0`` when ``None``.

    >>> mtj = MTJ()
    >>> round(float(mtj.wer(0.55, 10e-9)), 5)  # exact WER writing −1 at 0.55 V, 10 ns
    0.00555
    >>> float(MTJ(delta=45.0).wer(0.55, 10e-9)) > float(mtj.wer(0.55, 10e-9))
    True
    """

    delta: float = 40.0
    tau_d: float = 2e-9
    vc0: float = 0.3
    vc0_ap_to_p: float | None = None
    vbd: float = 1.2
    breakdown_gamma: float = 83.0
    breakdown_time_at_vbd: float = 1e-9
    r_p: float = 3000.0
    r_ap: float = 6000.0
    attempt_time: float = 1e-9
    reference_temperature: float = 298.15  # K: the temperature at which delta holds
    max_pulse: float = 1.0
    name: str = "custom"
    description: str = ""
    # keys a device file left out, filled with the paper's values (said, never silent)
    defaulted: tuple[str, ...] = field(default=(), compare=False)
    # a measured WER table (xnorfault.mram.measured.MeasuredWER): when given, the WERs and
    # the voltages and pulses solved for them come from it, never extrapolated
    measured: object = field(default=None, compare=False)
    # cell-to-cell variation: relative standard deviations of Δ and of the critical voltages
    # (both directions move together), their distribution and the correlation of the two draws
    sigma_delta: float = 0.0
    sigma_vc0: float = 0.0
    variation: str = "normal"
    variation_correlation: float = 0.0
    # the device file's [weight_memory] table, as (key, value) pairs: how the binary weights
    # are written, kept and read (xnorfault.mram.weights.WeightMemory reads it)
    weight_memory: tuple = field(default=(), compare=False)

    def __post_init__(self):
        for name in (
            "delta",
            "tau_d",
            "vc0",
            "vbd",
            "breakdown_gamma",
            "breakdown_time_at_vbd",
            "r_p",
            "r_ap",
            "attempt_time",
            "reference_temperature",
            "max_pulse",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise XnorfaultError(
                    f"device parameter {name} must be a positive number, got {value!r}"
                )
        if self.vc0_ap_to_p is not None and not (
            math.isfinite(self.vc0_ap_to_p) and self.vc0_ap_to_p > 0
        ):
            raise XnorfaultError(
                f"device parameter vc0_ap_to_p must be positive, got {self.vc0_ap_to_p!r}"
            )
        for name in ("sigma_delta", "sigma_vc0"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise XnorfaultError(
                    f"variation.{name} must be a non-negative number, got {value!r}"
                )
            if self.variation == "normal" and value > MAX_NORMAL_SIGMA:
                raise XnorfaultError(
                    f"variation.{name} = {value:g}: a normal spread above {MAX_NORMAL_SIGMA:g} gives "
                    'negative parameters in its tails; use distribution = "lognormal"'
                )
        if self.variation not in VARIATIONS:
            raise XnorfaultError(
                f"variation.distribution {self.variation!r}: use one of {', '.join(VARIATIONS)}"
            )
        if self.measured is not None and self.varies:
            raise XnorfaultError(
                "a measured WER table describes one chip as measured; [variation] varies the model's "
                "parameters: give either [measured] or [variation], not both"
            )
        if not -1 < self.variation_correlation < 1:
            raise XnorfaultError(
                f"variation.correlation must lie strictly between -1 and 1, got {self.variation_correlation!r}"
            )

    # --- reduced units -------------------------------------------------------------------

    @property
    def symmetric(self) -> bool:
        """Whether both write directions share one critical voltage (and so one WER)."""
        return self.critical_voltage("p_to_ap") == self.critical_voltage("ap_to_p")

    def critical_voltage(self, direction: Direction = "p_to_ap") -> float:
        """:math:`V_{c0}` of a write direction, in volts."""
        if direction == "p_to_ap":
            return self.vc0
        if direction == "ap_to_p":
            return self.vc0 if self.vc0_ap_to_p is None else self.vc0_ap_to_p
        raise XnorfaultError(f"unknown write direction {direction!r}: use 'p_to_ap' or 'ap_to_p'")

    def operating_voltage(self, voltage) -> np.ndarray:
        """``voltage`` as an array, checked to be positive and not above the breakdown voltage
        :math:`V_{bd}`: above it the junction breaks down on the first write, so a WER or an
        endurance there would be a number without meaning."""
        volts = _positive(voltage, "voltage", "V")
        if np.any(volts > self.vbd):
            worst = float(np.max(volts))
            raise XnorfaultError(
                f"write voltage {format_voltage(worst)} exceeds the breakdown voltage "
                f"{format_voltage(self.vbd)} of device '{self.name}': keep voltages at or below it"
            )
        return volts

    # --- write errors --------------------------------------------------------------------

    def wer(self, voltage, pulse, direction: Direction = "p_to_ap"):
        """Write error rate at ``voltage`` (V) and ``pulse`` (s): exact Fokker–Planck solution,
        :math:`\\mathrm{WER}(V/V_{c0}, \\tau/\\tau_D)` (:func:`switching.wer_exact`)."""
        volts = self.operating_voltage(voltage)
        seconds = _positive(pulse, "pulse", "s")
        if self.measured is not None:
            return _scalar_or_array(
                np.asarray(self.measured.wer(volts, seconds, direction)), voltage, pulse
            )
        reduced = switching.wer_exact(
            volts / self.critical_voltage(direction), seconds / self.tau_d, self.delta
        )
        return _scalar_or_array(reduced, voltage, pulse)

    def wer_closed_form(self, voltage, pulse, direction: Direction = "p_to_ap"):
        """Closed-form approximation of :meth:`wer` (:func:`switching.wer_closed_form`); ``nan``
        below the critical voltage, where it does not apply."""
        volts = self.operating_voltage(voltage)
        seconds = _positive(pulse, "pulse", "s")
        reduced = switching.wer_closed_form(
            volts / self.critical_voltage(direction), seconds / self.tau_d, self.delta
        )
        return _scalar_or_array(reduced, voltage, pulse)

    def flip_rates(self, voltage, pulse) -> tuple:
        """Flip probabilities of a stored binary activation, ``(p_pos_to_neg, p_neg_to_pos)``.

        +1 is stored as the parallel state and −1 as the antiparallel one (paper, eqs. 2–3): a
        +1 that is read as −1 is a failed AP→P write, a −1 read as +1 a failed P→AP write. Each
        write is taken to switch the cell (the worst case, as in the paper: a write that finds the
        cell already in the target state cannot fail).
        """
        return self.wer(voltage, pulse, "ap_to_p"), self.wer(voltage, pulse, "p_to_ap")

    # --- cell-to-cell variation ----------------------------------------------------------

    @property
    def varies(self) -> bool:
        return self.sigma_delta > 0 or self.sigma_vc0 > 0

    def cell_factors(self, z_delta, z_vc0) -> tuple[np.ndarray, np.ndarray]:
        """The factors that multiply Δ and the critical voltages of a cell whose standard
        normal draws are ``z_delta`` and ``z_vc0`` (already correlated): :math:`1 + \\sigma z`
        (normal) or :math:`e^{\\sigma z - \\sigma^2/2}` (lognormal, mean 1)."""
        z_delta, z_vc0 = np.asarray(z_delta, dtype=float), np.asarray(z_vc0, dtype=float)
        if self.variation == "lognormal":
            return (
                np.exp(self.sigma_delta * z_delta - self.sigma_delta**2 / 2),
                np.exp(self.sigma_vc0 * z_vc0 - self.sigma_vc0**2 / 2),
            )
        return 1 + self.sigma_delta * z_delta, 1 + self.sigma_vc0 * z_vc0

    def sample_cells(
        self, count: int, rng: np.random.Generator, limit: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Δ and critical-voltage factors of ``count`` cells drawn from the device's variation,
        the two draws correlated by :math:`\\rho`:
        :math:`z_V = \\rho z_\\Delta + \\sqrt{1-\\rho^2}\\,z'`; with ``limit`` each draw is
        clipped to
        :math:`[-\\text{limit}, \\text{limit}]`."""
        z_delta = rng.standard_normal(count)
        rho = self.variation_correlation
        z_vc0 = rho * z_delta + math.sqrt(1 - rho**2) * rng.standard_normal(count)
        if limit is not None:
            z_delta, z_vc0 = np.clip(z_delta, -limit, limit), np.clip(z_vc0, -limit, limit)
        return self.cell_factors(z_delta, z_vc0)

    def cell_wer(self, voltage, pulse, delta_factor, vc0_factor, direction: Direction = "p_to_ap"):
        """Exact WER of cells whose Δ and critical voltage are scaled by the given factors."""
        seconds = float(_positive(pulse, "pulse", "s"))
        volts = float(self.operating_voltage(voltage))
        deltas = np.asarray(delta_factor, dtype=float) * self.delta
        reduced = volts / (np.asarray(vc0_factor, dtype=float) * self.critical_voltage(direction))
        deltas, reduced = np.broadcast_arrays(deltas, reduced)
        out = np.empty(deltas.shape)
        for index in np.ndindex(deltas.shape):
            out[index] = switching.wer_exact(reduced[index], seconds / self.tau_d, deltas[index])
        return out

    def population_wer(
        self, voltage, pulse, direction: Direction = "p_to_ap", nodes: int = QUADRATURE_NODES
    ):
        r"""Mean WER over the device's cell population at one operating point: the expectation
        of the exact WER over the two correlated normal draws, by Gauss–Hermite quadrature,

        .. math:: \frac{1}{\pi}\sum_{i,j} w_i w_j\,\mathrm{WER}\big(z_\Delta = \sqrt2 x_i,\
                  z_V = \rho\sqrt2 x_i + \sqrt{1-\rho^2}\sqrt2 x_j\big).

        Equal to :meth:`wer` without variation. The mean exceeds the nominal WER: weak cells
        fail far more often than strong ones succeed more."""
        if not self.varies:
            return self.wer(voltage, pulse, direction)
        points, weights = np.polynomial.hermite.hermgauss(nodes)
        first, second = np.meshgrid(points * math.sqrt(2), points * math.sqrt(2), indexing="ij")
        rho = self.variation_correlation
        delta_factor, vc0_factor = self.cell_factors(
            first, rho * first + math.sqrt(1 - rho**2) * second
        )
        values = self.cell_wer(voltage, pulse, delta_factor, vc0_factor, direction)
        return float(np.einsum("i,j,ij->", weights, weights, values) / math.pi)

    def voltage_for_wer(self, wer, pulse, direction: Direction = "p_to_ap"):
        """Write voltage (V) that reaches ``wer`` with a pulse of ``pulse`` (s).

        Raises :class:`XnorfaultError` when the voltage would exceed the breakdown voltage.
        """
        targets = np.asarray(check_probability(wer, "WER", exclusive=True))
        seconds = _positive(pulse, "pulse", "s")
        vc0 = self.critical_voltage(direction)
        targets_b, seconds_b = np.broadcast_arrays(targets, seconds)
        out = np.empty(targets_b.shape)
        for index in np.ndindex(targets_b.shape):
            target, duration = float(targets_b[index]), float(seconds_b[index])
            if self.measured is not None:
                out[index] = self.measured.voltage_for_wer(target, duration, direction)
                continue
            try:
                reduced = switching.voltage_for_wer_exact(
                    target, duration / self.tau_d, self.delta, v_max=self.vbd / vc0
                )
            except switching.UnreachableWER:
                raise XnorfaultError(
                    f"WER {target:g} with a {format_duration(duration)} pulse needs more than the "
                    f"breakdown voltage {format_voltage(self.vbd)} of device '{self.name}': "
                    "use a longer pulse or accept a higher WER"
                ) from None
            out[index] = reduced * vc0
        return _scalar_or_array(out, wer, pulse)

    def pulse_for_wer(self, wer, voltage, direction: Direction = "p_to_ap"):
        """Pulse length (s) that reaches ``wer`` at ``voltage`` (V).

        Raises :class:`XnorfaultError` when no pulse up to ``max_pulse`` reaches the target.
        """
        targets = np.asarray(check_probability(wer, "WER", exclusive=True))
        volts = _positive(voltage, "voltage", "V")
        vc0 = self.critical_voltage(direction)
        targets_b, volts_b = np.broadcast_arrays(targets, volts)
        out = np.empty(targets_b.shape)
        for index in np.ndindex(targets_b.shape):
            target, volt = float(targets_b[index]), float(volts_b[index])
            if self.measured is not None:
                out[index] = self.measured.pulse_for_wer(target, volt, direction)
                continue
            try:
                reduced = switching.pulse_for_wer_exact(
                    target, volt / vc0, self.delta, t_max=self.max_pulse / self.tau_d
                )
            except switching.UnreachableWER:
                raise XnorfaultError(
                    f"no pulse up to {format_duration(self.max_pulse)} reaches WER {target:g} at "
                    f"{format_voltage(volt)} on device '{self.name}': raise the voltage "
                    f"(critical voltage {format_voltage(vc0)})"
                ) from None
            out[index] = reduced * self.tau_d
        return _scalar_or_array(out, wer, voltage)

    # --- endurance, energy, retention ----------------------------------------------------

    def time_to_breakdown(self, voltage):
        """E-model time to dielectric breakdown (s): :math:`t_{BD}(V_{bd})e^{\\gamma(V_{bd}-V)}`."""
        volts = self.operating_voltage(voltage)
        value = self.breakdown_time_at_vbd * np.exp(self.breakdown_gamma * (self.vbd - volts))
        return _scalar_or_array(value, voltage)

    def endurance(self, voltage, pulse):
        """Write cycles before breakdown, :math:`N_c = t_{BD}(V)/\\tau` (paper, §III.A(b)).

        An E-model extrapolation of time-dependent dielectric breakdown: trust it as a ratio
        between operating points (as the paper reports it, :meth:`endurance_gain`), not as an
        absolute count."""
        seconds = _positive(pulse, "pulse", "s")
        value = np.asarray(self.time_to_breakdown(voltage)) / seconds
        return _scalar_or_array(value, voltage, pulse)

    def conventional_voltage(self, pulse, wer: float = CONVENTIONAL_WER):
        """The conventional operating point's write voltage at ``pulse``: the lowest voltage at
        which **both** write directions reach ``wer`` (1e-6, the ECC-backed point of Table I),
        :math:`\\max(V_{P\\to AP}(\\mathrm{WER}, \\tau), V_{AP\\to P}(\\mathrm{WER}, \\tau))` — for an
        asymmetric device the harder direction decides."""
        return np.maximum(
            self.voltage_for_wer(wer, pulse, "p_to_ap"), self.voltage_for_wer(wer, pulse, "ap_to_p")
        )

    def endurance_gain(self, voltage, pulse, reference_voltage=None):
        """Endurance at (``voltage``, ``pulse``) relative to ``reference_voltage`` at the same
        pulse (default: :meth:`conventional_voltage`): :math:`e^{\\gamma(V_{ref} - V)}` (E-model)."""
        if reference_voltage is None:
            reference_voltage = self.conventional_voltage(pulse)
        return np.asarray(self.endurance(voltage, pulse)) / np.asarray(
            self.endurance(reference_voltage, pulse)
        )

    def outlasts_service_life(self, voltage, pulse, service_life: float = SERVICE_LIFE):
        """Whether a cell written back to back at (``voltage``, ``pulse``) would reach breakdown
        only after ``service_life`` (100 years) of writing, :math:`N_c\\,\\tau > T_{life}`:
        endurance beyond that limits nothing, and its ratio is not worth quoting."""
        cycles = np.asarray(self.endurance(voltage, pulse))
        return cycles * np.asarray(pulse, dtype=float) > service_life

    def write_energy(self, voltage, pulse, direction: Direction | None = None):
        """Energy of one write (J), :math:`E = V^2\\tau/R`.

        The resistance during the pulse is that of the state the write starts from (:math:`R_P`
        for P→AP, :math:`R_{AP}` for AP→P); without a direction, the mean of the two (writes of
        +1 and −1 equally likely).
        """
        volts = _positive(voltage, "voltage", "V")
        seconds = _positive(pulse, "pulse", "s")
        if direction is None:
            conductance = 0.5 * (1 / self.r_p + 1 / self.r_ap)
        elif direction == "p_to_ap":
            conductance = 1 / self.r_p
        elif direction == "ap_to_p":
            conductance = 1 / self.r_ap
        else:
            raise XnorfaultError(
                f"unknown write direction {direction!r}: use 'p_to_ap' or 'ap_to_p'"
            )
        return _scalar_or_array(volts**2 * seconds * conductance, voltage, pulse)

    # --- temperature, retention and read disturb ------------------------------------------

    def delta_at(self, temperature: float) -> float:
        """Thermal stability at ``temperature`` (K), :math:`\\Delta(T) = \\Delta\\,T_{ref}/T`:
        :math:`\\Delta = E_b/k_BT` with the energy barrier taken independent of temperature (a
        measured :math:`E_b(T)`, falling with the magnetisation, lowers Δ faster)."""
        kelvin = float(temperature)
        if not (math.isfinite(kelvin) and kelvin > 0):
            raise XnorfaultError(f"temperature {temperature!r} K is not above absolute zero")
        return self.delta * self.reference_temperature / kelvin

    def at_temperature(self, temperature: float) -> MTJ:
        """The device at ``temperature`` (K): Δ scaled by :meth:`delta_at`; the critical
        voltages, τ_D and τ₀ kept. A measured WER table holds at its own temperature only."""
        kelvin = float(temperature)
        if math.isclose(kelvin, self.reference_temperature, rel_tol=1e-12):
            return self
        if self.measured is not None:
            raise XnorfaultError(
                f"device '{self.name}' is a measured WER table at "
                f"{format_temperature(self.reference_temperature)}: it gives no WER at "
                f"{format_temperature(kelvin)}; use its fitted parameters ('xnorfault mram fit')"
            )
        return replace(self, delta=self.delta_at(kelvin), reference_temperature=kelvin)

    def retention_rate(self) -> float:
        """Thermal flip rate of an idle cell (1/s), Néel–Arrhenius :math:`r = e^{-\\Delta}/\\tau_0`."""
        return math.exp(-self.delta) / self.attempt_time

    def retention_flip(self, time):
        """Probability that an idle cell reads the other value after ``time`` (s).

        Thermal flips are a two-state Markov process at rate :math:`r` each way
        (:meth:`retention_rate`), so the cell is wrong after an odd number of them:

        .. math:: P_{ret}(T) = \\tfrac12\\left(1 - e^{-2rT}\\right).

        It equals :meth:`retention_error` (the paper's :math:`1-e^{-rT}`, the probability of at
        least one flip) to first order in :math:`rT` and tends to ½ — a thermalised bit is a
        coin toss — where the paper's tends to 1.

        >>> year = 365.25 * 86400
        >>> round(float(MTJ().retention_flip(year)), 4), round(float(MTJ().retention_error(year)), 4)
        (0.1176, 0.1255)
        >>> round(float(MTJ().at_temperature(358.15).retention_flip(86400)), 3)  # a day at 85 °C
        0.225
        """
        seconds = np.asarray(time, dtype=float)
        if not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
            raise XnorfaultError("retention time must be a non-negative number of seconds")
        value = -0.5 * np.expm1(-2 * self.retention_rate() * seconds)
        return _scalar_or_array(value, time)

    def read_disturb(self, voltage, pulse, direction: Direction = "p_to_ap"):
        """Probability that one read at ``voltage`` (V) and ``pulse`` (s) switches a cell it
        destabilises, :math:`P_{sw} = 1 - \\mathrm{WER}(V/V_{c0,d}, \\tau/\\tau_D)` for a read
        current in write direction ``direction`` (a ``p_to_ap`` read disturbs cells in P, +1).
        Solved by :func:`xnorfault.mram.disturb.switch_probability`, resolved down to the
        1e-20 a read below the critical voltage reaches (PAPER §3: the write-error model at the
        read operating point).

        >>> f"{float(MTJ().read_disturb(0.1, 5e-9)):.2e}"  # a 0.1 V, 5 ns read of the paper's MTJ
        '8.38e-11'
        """
        from xnorfault.mram.disturb import switch_probability

        volts = self.operating_voltage(voltage)
        seconds = _positive(pulse, "read pulse", "s")
        reduced = switch_probability(
            volts / self.critical_voltage(direction), seconds / self.tau_d, self.delta
        )
        return _scalar_or_array(np.asarray(reduced), voltage, pulse)

    def retention_error(self, time):
        """Probability that a stored bit flips thermally within ``time`` (s):
        :math:`1-\\exp[-(T/\\tau_0)e^{-\\Delta}]` (Néel–Brown). At Δ = 40 and τ₀ = 1 ns this is
        0.125 per year; the paper's "≈ 6e-6 per year" does not follow from the formula (it
        corresponds to Δ ≈ 50)."""
        seconds = np.asarray(time, dtype=float)
        if not np.all(np.isfinite(seconds)) or np.any(seconds < 0):
            raise XnorfaultError("retention time must be a non-negative number of seconds")
        value = -np.expm1(-(seconds / self.attempt_time) * math.exp(-self.delta))
        return _scalar_or_array(value, time)

    # --- descriptions --------------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain-JSON description (SI units), for run records and ONNX metadata (a measured
        table by its file, size and region)."""
        data = asdict(replace(self, measured=None))
        data["measured"] = None if self.measured is None else self.measured.to_dict()
        data["weight_memory"] = dict(self.weight_memory)
        return data
