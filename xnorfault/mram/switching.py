r"""Write-error rate of a perpendicular MTJ from Brown's Fokker–Planck equation.

Everything here is in reduced units: time :math:`t` in units of the characteristic time
:math:`\tau_D = (1+\alpha^2)/(\alpha\gamma\mu_0 H_K)`, voltage :math:`v = V/V_{c0}`, and the
thermal stability factor :math:`\Delta`. :mod:`xnorfault.mram.device` converts to volts and
seconds.

The model (Tzoufras, AIP Advances 8, 056002 (2018), "the switching paper"; used for Table I and
Fig. 5 of Tzoufras, Gajek & Walker, arXiv:1905.10927, "the paper", §III) is a macrospin whose
free-layer orientation :math:`\mu = \cos\theta` has the axisymmetric probability density
:math:`\rho(\mu, t)` obeying

.. math::

    \frac{\partial\rho}{\partial t} = \frac{\partial}{\partial\mu}\left\{(1-\mu^2)
        \left[(v-\mu)\rho + \frac{1}{2\Delta}\frac{\partial\rho}{\partial\mu}\right]\right\},

starting from thermal equilibrium in the initial well,
:math:`\rho(\mu, 0) \propto e^{\Delta\mu^2}` on :math:`\mu > 0`. The write error rate after a
pulse of length :math:`t` is the probability that the layer has not switched,
:math:`\mathrm{WER}(v, t) = \int_0^1 \rho(\mu, t)\,d\mu`.

Exact solution. Expanding :math:`\rho = \sum_n a_n(t) P_n(\mu)` in Legendre polynomials and
projecting the equation on :math:`P_m` turns it into :math:`\dot a = M a` with a five-diagonal
matrix :math:`M` (:func:`legendre_generator`), solved by the matrix exponential. About
:math:`3.5\Delta` terms converge the WER to better than 1e-6 relative (the tests check it).

Precision down to very small WER. A plain :math:`c^\top e^{Mt} a_0` loses every WER below
~1e-13 to rounding, because the vector carries the whole unit mass while the WER is the
remnant of it. The solver therefore splits off the stationary solution :math:`s` of the
truncated system (:math:`Ms = 0`, unit mass) and propagates only the zero-mass difference
:math:`a_0 - s`, which decays with the WER itself:

.. math::

    \mathrm{WER}(t) = P_s + c^\top e^{Mt}(a_0 - s),\qquad
    P_s = \frac{\int_0^1 e^{\Delta\mu^2 - 2\Delta v\mu}d\mu}{\int_{-1}^1 e^{\Delta\mu^2-2\Delta v\mu}d\mu}

where :math:`P_s` is the stationary probability of the unswitched well (astronomically small
for :math:`v > 0`), computed in log space. The WER is then accurate relative to itself well
below 1e-12.

Closed form (the switching paper, eq. 19; same form as Butler et al., IEEE Trans. Magn. 48,
4684 (2012), which has :math:`K = \pi^2/8`), valid for :math:`v > 1`:

.. math::

    \mathrm{WER} \approx 1 - \exp\left[-\frac{2\Delta (v-1) K}{v e^{2(v-1)t} - 1}\right],\qquad
    K = \left(\frac{v-1}{v}\right)^{2/(v+1)} 2^{(v-1)/(v+1)}.

It agrees with the exact solution to ~1 % in voltage for Table I of the paper; it is offered as
a documented fast approximation (:func:`wer_closed_form`) and never substituted for the exact
solution silently.
"""

from __future__ import annotations

import math
from functools import lru_cache, wraps

import numpy as np
from numpy.polynomial.legendre import leggauss, legvander
from scipy.linalg import expm
from scipy.optimize import brentq
from scipy.special import logsumexp
from threadpoolctl import ThreadpoolController


class UnreachableWER(ValueError):
    """The requested WER cannot be reached within the allowed range of the free variable."""


@lru_cache(maxsize=1)
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _single_threaded_blas(function):
    """Run ``function`` with one BLAS thread: the matrices here are ~150 x 150, where a second
    thread costs more in synchronisation than it gains (3 ms vs 8 ms per exponential, measured)."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        with _threadpools().limit(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper


def default_terms(delta: float, v: float = 3.0) -> int:
    r"""Legendre terms that converge the WER at thermal stability ``delta`` and reduced voltage ``v``.

    The narrowest features are the initial density :math:`e^{\Delta\mu^2}` at :math:`\mu = 1`
    (width :math:`1/2\Delta`) and the switched density at :math:`\mu = -1` (width
    :math:`1/2\Delta(1+v)`); Legendre series resolve a width :math:`w` at an end point with
    :math:`\sim 1/\sqrt{w}` terms. :math:`10\sqrt{\Delta(1+v)} + 16` terms converge the WER to
    better than 1e-8 relative (144 at the paper's :math:`\Delta = 40`, :math:`v = 2.78`; the
    paper quotes 100–200); the tests check convergence against 1.5 times as many.
    """
    terms = 10.0 * math.sqrt(delta * (1.0 + max(v, 0.0))) + 16
    return 8 * math.ceil(terms / 8)  # few distinct sizes, so caches are shared across voltages


def legendre_generator(v: float, delta: float, n_terms: int) -> np.ndarray:
    r"""Matrix :math:`M` of the Fokker–Planck equation in the Legendre basis, :math:`\dot a = Ma`.

    Galerkin projection with :math:`(1-\mu^2)P_m' = \tfrac{m(m+1)}{2m+1}(P_{m-1}-P_{m+1})`,
    :math:`\mu P_n = \tfrac{(n+1)P_{n+1} + nP_{n-1}}{2n+1}` and
    :math:`\tfrac{d}{d\mu}(1-\mu^2)P_n' = -n(n+1)P_n` gives, with :math:`h_m = m(m+1)/2`,

    .. math::

        M_{m,m-1} &= -\tfrac{2h_m v}{2m-1},\qquad M_{m,m+1} = \tfrac{2h_m v}{2m+3},\\
        M_{m,m-2} &= \tfrac{2h_m(m-1)}{(2m-3)(2m-1)},\qquad
        M_{m,m+2} = -\tfrac{2h_m(m+2)}{(2m+3)(2m+5)},\\
        M_{m,m} &= h_m\left[\tfrac{2m}{(2m-1)(2m+1)} - \tfrac{2(m+1)}{(2m+1)(2m+3)}\right]
            - \tfrac{m(m+1)}{2\Delta}.

    Row 0 vanishes: the total probability :math:`2a_0` is conserved exactly.
    """
    m = np.arange(n_terms, dtype=float)
    h = m * (m + 1) / 2
    generator = np.zeros((n_terms, n_terms))
    rows = np.arange(n_terms)
    generator[rows, rows] = h * (
        2 * m / ((2 * m - 1) * (2 * m + 1)) - 2 * (m + 1) / ((2 * m + 1) * (2 * m + 3))
    ) - m * (m + 1) / (2 * delta)
    lower1 = rows[1:]
    generator[lower1, lower1 - 1] = -2 * h[1:] * v / (2 * m[1:] - 1)
    upper1 = rows[:-1]
    generator[upper1, upper1 + 1] = 2 * h[:-1] * v / (2 * m[:-1] + 3)
    lower2 = rows[2:]
    generator[lower2, lower2 - 2] = 2 * h[2:] * (m[2:] - 1) / ((2 * m[2:] - 3) * (2 * m[2:] - 1))
    upper2 = rows[:-2]
    generator[upper2, upper2 + 2] = (
        -2 * h[:-2] * (m[:-2] + 2) / ((2 * m[:-2] + 3) * (2 * m[:-2] + 5))
    )
    return generator


def _initial_state(delta: float, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Legendre coefficients of :math:`\rho_0 \propto e^{\Delta\mu^2}` on :math:`\mu>0`, and the
    functional :math:`c_n = \int_0^1 P_n\,d\mu` that integrates a series over the unswitched well.

    Both are projections, independent of the truncation, so they are computed once for a
    power-of-two number of terms and sliced.
    """
    capacity = max(256, 1 << (n_terms - 1).bit_length())
    initial, integral = _initial_state_capacity(float(delta), capacity)
    return initial[:n_terms], integral[:n_terms]


@lru_cache(maxsize=8)
def _initial_state_capacity(delta: float, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = _gauss_nodes(n_terms + 256)
    mu = 0.5 * (nodes + 1.0)
    w = 0.5 * weights
    density = np.exp(delta * (mu**2 - 1.0))  # scaled by e^{-Δ} to stay finite
    density /= np.sum(w * density)
    basis = legvander(mu, n_terms - 1)  # (nodes, n_terms)
    n = np.arange(n_terms)
    initial = (2 * n + 1) / 2 * (basis.T @ (w * density))
    at_zero = legvander(np.array([0.0]), n_terms)[0]  # P_0(0) … P_N(0)
    integral = np.empty(n_terms)
    integral[0] = 1.0
    integral[1:] = (at_zero[:-2] - at_zero[2:]) / (2 * n[1:] + 1)
    initial.setflags(write=False)
    integral.setflags(write=False)
    return initial, integral


@lru_cache(maxsize=4)
def _gauss_nodes(count: int) -> tuple[np.ndarray, np.ndarray]:
    return leggauss(count)


def stationary_unswitched_probability(v: float, delta: float) -> float:
    r""":math:`P_s = \int_0^1 e^{\Delta\mu^2-2\Delta v\mu}d\mu \big/ \int_{-1}^1 e^{\Delta\mu^2-2\Delta v\mu}d\mu`,
    the WER after an infinitely long pulse (zero-flux stationary density of the equation)."""
    nodes, weights = _gauss_nodes(512)
    half = 0.5 * (nodes + 1.0)

    def log_integral(lo: float, hi: float) -> float:
        mu = lo + (hi - lo) * half
        return logsumexp(delta * mu**2 - 2 * delta * v * mu, b=0.5 * (hi - lo) * weights)

    log_upper = log_integral(0.0, 1.0)
    log_total = np.logaddexp(log_upper, log_integral(-1.0, 0.0))
    return float(np.exp(log_upper - log_total))


class _Propagator:
    """WER(t) at one reduced voltage; caches the generator and its stationary solution."""

    def __init__(self, v: float, delta: float, n_terms: int):
        self.generator = legendre_generator(v, delta, n_terms)
        initial, self.integral = _initial_state(delta, n_terms)
        stationary = np.zeros(n_terms)
        stationary[0] = 0.5  # unit mass: ∫ρ = 2 a_0
        stationary[1:] = np.linalg.solve(self.generator[1:, 1:], -0.5 * self.generator[1:, 0])
        self.deviation = initial - stationary
        self.floor = stationary_unswitched_probability(v, delta)

    def wer(self, t: float) -> float:
        if t == 0.0:
            return 1.0
        remnant = self.integral @ (expm(self.generator * t) @ self.deviation)
        return float(min(1.0, max(0.0, self.floor + remnant)))


@lru_cache(maxsize=64)
def _propagator(v: float, delta: float, n_terms: int) -> _Propagator:
    return _Propagator(v, delta, n_terms)


@_single_threaded_blas
def wer_exact(v, t, delta: float, n_terms: int | None = None) -> np.ndarray:
    """Exact WER (Legendre solution of the Fokker–Planck equation) at reduced voltage ``v`` and
    reduced pulse ``t``; broadcasts over arrays. See the module docstring for the equations."""
    v_arr, t_arr = np.broadcast_arrays(np.asarray(v, dtype=float), np.asarray(t, dtype=float))
    out = np.empty(v_arr.shape)
    for index in np.ndindex(v_arr.shape):
        v_here = float(v_arr[index])
        terms = n_terms or default_terms(delta, v_here)
        out[index] = _propagator(v_here, float(delta), terms).wer(float(t_arr[index]))
    return out


def _closed_form_k(v):
    return ((v - 1) / v) ** (2 / (v + 1)) * 2 ** ((v - 1) / (v + 1))


def wer_closed_form(v, t, delta: float) -> np.ndarray:
    r"""Closed-form WER of the switching paper (module docstring), for :math:`v > 1`:
    :math:`1-\exp[-2\Delta(v-1)K/(v e^{2(v-1)t}-1)]`. ``nan`` where :math:`v \le 1`, where the
    approximation does not apply."""
    v = np.asarray(v, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        exponent = 2 * delta * (v - 1) * _closed_form_k(v) / (v * np.exp(2 * (v - 1) * t) - 1)
        result = -np.expm1(-exponent)
    return np.where(v > 1, result, np.nan)


def pulse_for_wer_closed_form(wer, v, delta: float) -> np.ndarray:
    r"""Closed form solved for the pulse:
    :math:`t = \ln\{[1 + 2\Delta(v-1)K/X]/v\}/[2(v-1)]`, :math:`X = -\ln(1-\mathrm{WER})`."""
    wer = np.asarray(wer, dtype=float)
    v = np.asarray(v, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = -np.log1p(-wer)
        t = np.log((1 + 2 * delta * (v - 1) * _closed_form_k(v) / x) / v) / (2 * (v - 1))
    return np.where(v > 1, t, np.nan)


def voltage_for_wer_closed_form(wer: float, t: float, delta: float, v_max: float = 50.0) -> float:
    """Closed form solved for the reduced voltage at reduced pulse ``t`` (Brent's method).

    Near :math:`v = 1` the closed form turns over and falls to 0 (outside its range of
    validity), so the root taken is the highest crossing, found on a grid before refining.
    """
    grid = 1.0 + np.geomspace(1e-4, v_max - 1.0, 400)
    gaps = np.log(wer_closed_form(grid, t, delta)) - math.log(wer)
    above = np.nonzero(gaps > 0)[0]
    if above.size == 0:
        return float(grid[0])
    last = above[-1]
    if last == grid.size - 1:
        raise UnreachableWER(f"WER {wer:g} needs v > {v_max:g} at t = {t:g}")

    def gap(v):
        return math.log(float(wer_closed_form(v, t, delta))) - math.log(wer)

    return brentq(gap, grid[last], grid[last + 1], xtol=1e-12, rtol=1e-12)


def _bracket(function, guess: float, lo_limit: float, hi_limit: float, step: float):
    """Bracket the root of a decreasing ``function`` around ``guess``, widening by doubling steps.

    Returns ``(lo, hi)`` with ``function(lo) >= 0 >= function(hi)``, or ``None`` when the function
    is already negative at ``lo_limit``; raises :class:`UnreachableWER` when it is still positive
    at ``hi_limit``.
    """
    lo, hi = max(guess - step, lo_limit), min(guess + step, hi_limit)
    f_lo = function(lo)
    while f_lo < 0:
        if lo <= lo_limit:
            return None
        hi = lo
        step *= 2
        lo = max(lo - step, lo_limit)
        f_lo = function(lo)
    f_hi = function(hi)
    while f_hi > 0:
        if hi >= hi_limit:
            raise UnreachableWER("target not reached at the upper limit")
        lo = hi
        step *= 2
        hi = min(hi + step, hi_limit)
        f_hi = function(hi)
    return lo, hi


@_single_threaded_blas
def pulse_for_wer_exact(
    wer: float, v: float, delta: float, t_max: float, n_terms: int | None = None, rtol: float = 1e-8
) -> float:
    r"""Reduced pulse at which the exact WER at reduced voltage ``v`` equals ``wer``.

    Brent's method on :math:`\ln\mathrm{WER}(t) - \ln\mathrm{WER}^*` in :math:`\ln t`, bracketed
    around the closed-form pulse where it applies. Raises :class:`UnreachableWER` when the target
    lies at or below the stationary WER or needs a pulse longer than ``t_max``.
    """
    propagator = _propagator(float(v), float(delta), n_terms or default_terms(delta, v))
    if wer <= propagator.floor * (1 + 1e-9):
        raise UnreachableWER(f"WER {wer:g} lies below the stationary WER {propagator.floor:.3g}")
    target = math.log(wer)
    log_t_min, log_t_max = math.log(1e-12), math.log(t_max)

    def gap(log_t):
        return math.log(max(propagator.wer(math.exp(log_t)), 1e-300)) - target

    guess = float(pulse_for_wer_closed_form(wer, v, delta)) if v > 1 else 1.0
    if not (math.isfinite(guess) and guess > 0):
        guess = 1.0
    log_guess = min(max(math.log(guess), log_t_min), log_t_max)
    try:
        bracket = _bracket(gap, log_guess, log_t_min, log_t_max, 0.05)
    except UnreachableWER:
        raise UnreachableWER(f"WER {wer:g} needs a pulse longer than t_max = {t_max:g}") from None
    if bracket is None:
        return math.exp(log_t_min)
    if bracket[0] == bracket[1]:
        return math.exp(bracket[0])
    return math.exp(brentq(gap, *bracket, xtol=rtol, rtol=rtol))


@_single_threaded_blas
def voltage_for_wer_exact(
    wer: float, t: float, delta: float, v_max: float, n_terms: int | None = None, rtol: float = 1e-8
) -> float:
    r"""Reduced voltage at which the exact WER after reduced pulse ``t`` equals ``wer``.

    Brent's method on :math:`\ln\mathrm{WER}(v) - \ln\mathrm{WER}^*`, bracketed around the
    closed-form voltage (within a few per cent of the exact one where it applies). The number of
    Legendre terms is fixed for the whole solve, so that the function is smooth in :math:`v`.
    Raises :class:`UnreachableWER` when ``v_max`` does not reach the target.
    """
    target = math.log(wer)
    try:
        guess = voltage_for_wer_closed_form(wer, t, delta, v_max=max(4 * v_max, 8.0))
    except UnreachableWER:
        guess = v_max
    guess = min(max(guess, 0.05), v_max)
    terms = n_terms or default_terms(delta, min(1.1 * guess, v_max))

    def gap(v):
        value = _propagator(float(v), float(delta), terms).wer(t)
        return math.log(max(value, 1e-300)) - target

    try:
        bracket = _bracket(gap, guess, 1e-3, v_max, 0.01 * guess)
    except UnreachableWER:
        raise UnreachableWER(f"WER {wer:g} needs v > {v_max:g} at t = {t:g}") from None
    if bracket is None:
        return 1e-3
    if bracket[0] == bracket[1]:
        return bracket[0]
    return brentq(gap, *bracket, xtol=rtol * guess, rtol=rtol)
