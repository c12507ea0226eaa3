r"""Random bit flips of binary tensors in PyTorch.

Each element of a binary tensor flips independently — with probability :math:`p_{+\to-}` where
it holds a positive value and :math:`p_{-\to+}` where it holds a negative one — as in the paper
(Tzoufras, Gajek & Walker, arXiv:1905.10927, §II: Bernoulli errors per element of the binary
activations during training).

Sparse exact draw. Drawing a uniform per element and comparing (``rand < p``) costs 6–10 % of a
training epoch; for small :math:`p` only the :math:`\approx pN` flipped positions are needed. The
Poissonised construction draws :math:`K \sim \mathrm{Poisson}(N\lambda)` positions uniformly
with replacement, :math:`\lambda = -\ln(1-p)`, and flips every position hit at least once. The
hit counts of the :math:`N` elements are then independent :math:`\mathrm{Poisson}(\lambda)`
variables, so each element flips independently with probability
:math:`1 - e^{-\lambda} = p` exactly. Unequal polarity rates thin the *hits*: a hit on an element
of sign s is kept with probability :math:`\lambda_s/\lambda_{\max}`,
:math:`\lambda_s = -\ln(1-p_s)`; the kept hits of an element are
:math:`\mathrm{Poisson}(\lambda_s)` (thinning a Poisson count keeps it Poisson), so it flips
with probability :math:`1 - e^{-\lambda_s} = p_s`, independently of every other element.

The positions may repeat, and no sort or ``unique`` is needed (:func:`apply_flips`): where they
are few (at most ``SPARSE_SHARE`` of the elements of a large tensor) the values at the positions
are read, negated and written back (``index_select``/``index_copy_``: a repeated position writes
the same negated value again); otherwise a ±1 factor per element is set to −1 at every position
hit (``index_fill``, idempotent) and multiplies the tensor, one pass over it, which beats
scattered writes once they are many. Above ``DENSE_THRESHOLD`` a uniform per element is cheaper than the
positions and is used.

Write models (:class:`xnorfault.faults.WriteModel`, the same as the injected ONNX models'):
``iid`` flips as above; ``reset`` zeroes the rate of the reset value; ``previous`` treats the
batch as the write stream of the site's memory — the draws above are write *failures*, and a
failure shows only where the cell held the other value: the value stored before a failure at
image i is the one written at the last image before i whose write did not fail at that address
(a run of failures leaves the cell unchanged), or the initial state (:func:`previous_flips`).

Gradient conventions: ``"straight_through"`` (default; the paper's code) passes the gradient as
if nothing had flipped, :math:`\partial y/\partial x = 1`; ``"flipped"`` differentiates the
flipped value, :math:`\partial y_i/\partial x_i = -1` at flipped elements.
"""

from __future__ import annotations

import math

import torch
from torch import nn

GRADIENTS = ("straight_through", "flipped")
DENSE_THRESHOLD = 0.2
# Scattered reads and writes of the flipped elements beat two passes over a tensor of NiN's
# 12.6 million elements up to ~3 % of them (benchmarks/flip_apply.py); a NiN training step at
# BER 0.01 took 1.00x the time without flips against 1.03x with the factors. On tensors that
# stay in cache (LeNet-4's 0.4 million) the gain is a tenth of a millisecond, and training steps
# did not show it, so they keep the factors.
SPARSE_SHARE = 1 / 40
SPARSE_MIN_ELEMENTS = 1 << 22


def flip_positions(
    values: torch.Tensor, pos_to_neg: float, neg_to_pos: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Flat positions of ``values`` to flip, possibly repeated: every element hit at least once
    flips, each independently with the rate of its sign (the module docstring's construction).

    Elements ``>= 0`` count as +1 (the binarizer maps 0 to +1).
    """
    flat = values.reshape(-1)
    count = flat.numel()
    p_max = max(pos_to_neg, neg_to_pos)
    device = values.device
    if p_max <= 0.0 or count == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if p_max > DENSE_THRESHOLD:
        uniform = torch.rand(count, generator=generator, device=device)
        if pos_to_neg == neg_to_pos:
            threshold = pos_to_neg
        else:
            positive = flat.detach() >= 0
            threshold = torch.where(
                positive,
                torch.tensor(pos_to_neg, device=device),
                torch.tensor(neg_to_pos, device=device),
            )
        return torch.nonzero(uniform < threshold).reshape(-1)
    lambda_max = -math.log1p(-p_max)
    rate = torch.tensor([count * lambda_max], dtype=torch.float64, device=device)
    hits = int(torch.poisson(rate, generator=generator).item())
    positions = torch.randint(0, count, (hits,), generator=generator, device=device)
    if pos_to_neg != neg_to_pos and hits:
        positive = flat.detach()[positions] >= 0
        keep_probability = torch.where(
            positive,
            torch.tensor(-math.log1p(-pos_to_neg) / lambda_max, device=device),
            torch.tensor(-math.log1p(-neg_to_pos) / lambda_max, device=device),
        )
        keep = torch.rand(hits, generator=generator, device=device) < keep_probability
        positions = positions[keep]
    return positions


def flip_indices(
    values: torch.Tensor, pos_to_neg: float, neg_to_pos: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Sorted flat indices of the elements of ``values`` that flip (each once): the distinct
    :func:`flip_positions`."""
    return torch.unique(flip_positions(values, pos_to_neg, neg_to_pos, generator))


def previous_flips(
    values: torch.Tensor,
    failures: torch.Tensor,
    initial_state: str = "neg",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Of the write ``failures`` (sorted flat indices) of ``values`` (batch first), those that
    show under write model ``previous``: where the stored value before the write differs from
    the value written (:func:`xnorfault.graph.generator.write_mask` is the sequential reference)."""
    if failures.numel() == 0:
        return failures
    flat = values.detach().reshape(-1)
    per_image = flat.numel() // values.shape[0]
    marked = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    marked[failures] = True
    before = failures - per_image
    earlier = (before >= 0) & marked[before.clamp(min=0)]
    while bool(earlier.any()):
        before = torch.where(earlier, before - per_image, before)
        earlier &= (before >= 0) & marked[before.clamp(min=0)]
    if initial_state == "random":
        initial = torch.randint(0, 2, (per_image,), generator=generator, device=flat.device) * 2 - 1
        initial = initial.to(flat.dtype)[failures % per_image]
    else:
        initial = torch.full_like(failures, 1 if initial_state == "pos" else -1, dtype=flat.dtype)
    held = torch.where(before >= 0, torch.where(flat[before.clamp(min=0)] >= 0, 1.0, -1.0), initial)
    written = torch.where(flat[failures] >= 0, 1.0, -1.0)
    return failures[held != written]


def _negate_at(flat: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Negate the 1-D ``flat`` in place at ``positions`` (a repeated position negates once: all
    its copies write the value read before any was written)."""
    return flat.index_copy_(0, positions, flat.index_select(0, positions).neg_())


class _SparseFlip(torch.autograd.Function):
    """``values`` negated at flat ``positions``, into a new tensor or in place; for few
    positions (no pass over the whole tensor when in place)."""

    @staticmethod
    def forward(ctx, values, positions, through_flip: bool, in_place: bool):
        ctx.through_flip = through_flip
        if through_flip:
            ctx.save_for_backward(positions)
        if in_place:
            ctx.mark_dirty(values)
            flipped = values
        else:
            flipped = values.clone(memory_format=torch.contiguous_format)
        _negate_at(flipped.view(-1), positions)
        return flipped

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.through_flip:
            return grad_output, None, None, None
        (positions,) = ctx.saved_tensors
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        _negate_at(grad.view(-1), positions)
        return grad, None, None, None


class _Flip(torch.autograd.Function):
    """``values`` times ``factors`` (±1 per element, −1 at every flipped position), into a new
    tensor or in place."""

    @staticmethod
    def forward(ctx, values, factors, through_flip: bool, in_place: bool):
        ctx.through_flip = through_flip
        if through_flip:  # scratch factors are refilled at the next call: keep a copy
            ctx.save_for_backward(factors.clone())
        if in_place:
            ctx.mark_dirty(values)
            return values.mul_(factors)
        return values * factors

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.through_flip:
            return grad_output, None, None, None
        (factors,) = ctx.saved_tensors
        return grad_output * factors, None, None, None


def apply_flips(
    values: torch.Tensor,
    positions: torch.Tensor,
    gradient: str = "straight_through",
    scratch: torch.Tensor | None = None,
    in_place: bool = False,
) -> torch.Tensor:
    """Negate ``values`` at flat ``positions`` (a repeated position flips once) with the chosen
    gradient convention. Up to ``SPARSE_SHARE`` of the elements of a tensor of at least
    ``SPARSE_MIN_ELEMENTS``, the values at the positions are negated where they lie; otherwise
    a ±1 factor per element, −1 wherever a position hits (``index_fill``, idempotent),
    multiplies the tensor in one pass. ``scratch`` (a 1-D tensor of at least as many elements,
    same dtype and device) holds the factors; ``in_place`` changes ``values`` itself (as
    ``nn.ReLU(inplace=True)`` does; never a leaf that requires grad or a non-contiguous
    tensor), so a training step copies no activation for its flips — on activations of tens of
    megabytes the copy would cost more than the flips. Both ways give the same values and
    gradients, bit for bit."""
    if gradient not in GRADIENTS:
        raise ValueError(
            f"unknown gradient convention {gradient!r}: use one of {', '.join(GRADIENTS)}"
        )
    count = values.numel()
    in_place = in_place and values.is_contiguous() and not (values.is_leaf and values.requires_grad)
    if count >= SPARSE_MIN_ELEMENTS and positions.numel() <= count * SPARSE_SHARE:
        return _SparseFlip.apply(values, positions, gradient == "flipped", in_place)
    if scratch is None:
        factors = torch.ones(count, dtype=values.dtype, device=values.device)
    else:
        factors = scratch[:count].fill_(1.0)
    factors = factors.index_fill_(0, positions, -1.0).view(values.shape)
    return _Flip.apply(values, factors, gradient == "flipped", in_place)


class BitFlip(nn.Module):
    """Flips elements of a binary tensor at a named site; with ``in_place`` it overwrites the
    tensor it is given (a forward hook then sees the flipped values as its input too).

    Off in eval mode unless ``flip_in_eval`` is set; rates, generator and gradient convention
    are set by :func:`xnorfault.training.faults.configure_faults`.
    """

    def __init__(self, site: str, in_place: bool = False):
        super().__init__()
        self.site = site
        self.in_place = in_place  # flip the tensor given (a binarizer's output), not a copy
        self._scratch: torch.Tensor | None = None  # the factors of apply_flips, reused
        self.pos_to_neg = 0.0
        self.neg_to_pos = 0.0
        self.gradient = "straight_through"
        self.flip_in_eval = False
        self.generator: torch.Generator | None = None
        self.write_model = "iid"
        self.initial_state = "neg"

    def active(self) -> bool:
        return (self.training or self.flip_in_eval) and (self.pos_to_neg > 0 or self.neg_to_pos > 0)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if not self.active():
            return values
        pos_to_neg, neg_to_pos = self.pos_to_neg, self.neg_to_pos
        if self.write_model == "reset":  # writing the reset value never switches the cell
            if self.initial_state == "pos":
                pos_to_neg = 0.0
            else:
                neg_to_pos = 0.0
        if self.write_model == "previous":  # the walk back needs each failure once, in order
            failures = flip_indices(values, pos_to_neg, neg_to_pos, self.generator)
            positions = previous_flips(values, failures, self.initial_state, self.generator)
        else:
            positions = flip_positions(values, pos_to_neg, neg_to_pos, self.generator)
        return apply_flips(
            values, positions, self.gradient, self._scratch_for(values), self.in_place
        )

    def _scratch_for(self, values: torch.Tensor) -> torch.Tensor:
        scratch = self._scratch
        if (
            scratch is None
            or scratch.numel() < values.numel()
            or scratch.dtype != values.dtype
            or scratch.device != values.device
        ):
            scratch = self._scratch = torch.empty(
                values.numel(), dtype=values.dtype, device=values.device
            )
        return scratch

    def extra_repr(self) -> str:
        write = (
            "" if self.write_model == "iid" else f", write={self.write_model}({self.initial_state})"
        )
        return f"site={self.site!r}, p+-={self.pos_to_neg:g}, p-+={self.neg_to_pos:g}{write}"
