r"""Switching probability of a pulse below the critical voltage: read disturb.

A read drives a small current through the junction. Its spin torque points in one write
direction, so a read is a short write pulse at the read voltage :math:`V_r` and pulse
:math:`\tau_r`, and the probability that it switches a cell in the state it destabilises is
:math:`P_{sw}(v_r, t_r) = 1 - \mathrm{WER}(v_r, t_r)` of the write-error model (PAPER §3; the
switching paper), with :math:`v_r = V_r/V_{c0} < 1` and :math:`t_r = \tau_r/\tau_D`.

That probability is tiny (1e-10 to 1e-20 per read) while the Legendre solution
(:func:`~xnorfault.mram.switching.wer_exact`) carries the whole unit mass and so resolves
:math:`1-\mathrm{WER}` only to ~1e-8. Here the same Fokker–Planck equation,

.. math::

    \frac{\partial\rho}{\partial t} = -\frac{\partial J}{\partial\mu},\qquad
    J = -D(\mu)\left[\frac{\partial\rho}{\partial\mu} + U'(\mu)\rho\right],\qquad
    D = \frac{1-\mu^2}{2\Delta},\quad U(\mu) = \Delta(2v\mu - \mu^2),

is discretised in finite volumes on :math:`\mu = -\cos\theta` with :math:`\theta` uniform
(cells crowd at :math:`\mu = \pm 1`, where the densities are narrow), and a cell face at
:math:`\mu = 0`. The flux through a face between cell centres :math:`\mu_i, \mu_{i+1}` at
distance :math:`h` is Scharfetter–Gummel's exponential fit,

.. math::

    J_{i+1/2} = -\frac{D_{i+1/2}}{h}\left[B(-\delta U)\rho_{i+1} - B(\delta U)\rho_i\right],
    \qquad B(x) = \frac{x}{e^x - 1},\quad \delta U = U_{i+1} - U_i,

exact for the equilibrium :math:`\rho \propto e^{-U}` and a monotone scheme: the generator is
an M-matrix, every cell's mass stays positive, and the probability that reaches
:math:`\mu < 0` is computed as the sum of the small masses there, never as a difference of
numbers near one — it is resolved relative to itself at any size. Time steps are backward
Euler (unconditionally stable and positive); the result is extrapolated twice by Richardson,
in the step (first order) and in the number of cells (second order):

.. math::

    P_N = 2P_{N,\,dt/2} - P_{N,\,dt},\qquad P = \tfrac{4}{3}P_{2N} - \tfrac{1}{3}P_{N}.

The start is the discrete equilibrium in the initial well, :math:`\rho_i \propto e^{\Delta\mu_i^2}`
on :math:`\mu_i > 0` (the switching paper's initial condition), so at :math:`v = 0` only the
thermal leak over the barrier moves probability. Against the Legendre solution, where that
resolves it (:math:`P_{sw} \gtrsim 10^{-6}`), the result agrees to ~1e-4 relative (the tests
check it across :math:`v < 1` and :math:`v > 1`). Imports numpy and scipy only.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.sparse import diags, identity
from scipy.sparse.linalg import splu

CELLS = 400  # and twice as many, for the extrapolation in space
TIME_STEP = 0.005  # in τ_D, at most; halved for the extrapolation in time
MIN_STEPS = 100


def _bernoulli(x: np.ndarray) -> np.ndarray:
    """:math:`B(x) = x/(e^x - 1)`, with :math:`B(0) = 1`."""
    out = np.ones_like(x)
    away = np.abs(x) > 1e-10
    out[away] = x[away] / np.expm1(x[away])
    out[~away] = 1 - x[~away] / 2
    return out


def _discretisation(v: float, delta: float, cells: int):
    """The generator :math:`L` of the cell masses (:math:`\\dot m = Lm`), the initial masses
    and the cells with :math:`\\mu < 0`."""
    faces = -np.cos(np.linspace(0.0, math.pi, cells + 1))
    faces[0], faces[-1], faces[cells // 2] = -1.0, 1.0, 0.0
    width = np.diff(faces)
    centre = 0.5 * (faces[:-1] + faces[1:])
    potential = delta * (2 * v * centre - centre**2)
    inner = faces[1:-1]
    conductance = (1 - inner**2) / (2 * delta) / np.diff(centre)
    step = np.diff(potential)
    towards_up = conductance * _bernoulli(-step)  # mass from cell i+1 into cell i
    towards_down = conductance * _bernoulli(step)  # mass from cell i into cell i+1
    diagonal = np.zeros(cells)
    diagonal[1:] -= towards_up
    diagonal[:-1] -= towards_down
    generator = diags(
        [diagonal / width, towards_up / width[1:], towards_down / width[:-1]],
        [0, 1, -1],
        format="csc",
    )
    initial = np.where(centre > 0, np.exp(delta * (centre**2 - 1)) * width, 0.0)
    return generator, initial / initial.sum(), centre < 0


def _backward_euler(generator, initial: np.ndarray, switched: np.ndarray, t: float, steps: int):
    dt = t / steps
    factor = splu((identity(generator.shape[0], format="csc") - dt * generator).tocsc())
    mass = initial
    for _ in range(steps):
        mass = factor.solve(mass)
    return float(mass[switched].sum())


@lru_cache(maxsize=512)
def _switch_probability(v: float, t: float, delta: float, cells: int) -> float:
    if t == 0.0:
        return 0.0
    steps = max(MIN_STEPS, math.ceil(t / TIME_STEP))
    levels = []
    for count in (cells, 2 * cells):
        generator, initial, switched = _discretisation(v, delta, count)
        coarse = _backward_euler(generator, initial, switched, t, steps)
        fine = _backward_euler(generator, initial, switched, t, 2 * steps)
        levels.append(2 * fine - coarse)
    extrapolated = (4 * levels[1] - levels[0]) / 3
    # the extrapolations are differences of positive numbers: keep them inside [0, 1], and
    # fall back to the finest unextrapolated value where they would cross zero
    if extrapolated <= 0:
        extrapolated = levels[1] if levels[1] > 0 else fine
    return float(min(1.0, extrapolated))


def switch_probability(v, t, delta: float, cells: int = CELLS) -> float | np.ndarray:
    r"""Probability :math:`P_{sw}(v, t) = 1 - \mathrm{WER}(v, t)` that a pulse of reduced
    voltage ``v`` and reduced length ``t`` switches a cell of thermal stability ``delta``,
    resolved relative to itself down to ~1e-300 (see the module docstring for the scheme).
    Broadcasts over ``v`` and ``t``; ``v`` may be 0 (no current: the thermal leak alone)."""
    v_arr, t_arr = np.broadcast_arrays(np.asarray(v, dtype=float), np.asarray(t, dtype=float))
    if np.any(v_arr < 0) or np.any(t_arr < 0) or not (delta > 0):
        raise ValueError("switch_probability needs v >= 0, t >= 0 and delta > 0")
    out = np.empty(v_arr.shape)
    for index in np.ndindex(v_arr.shape):
        out[index] = _switch_probability(
            float(v_arr[index]), float(t_arr[index]), float(delta), int(cells)
        )
    return float(out) if out.ndim == 0 else out


__all__ = ["switch_probability"]
