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
:math:`1 - e^{-\lambda} = p` exactly. Unequal polarity rates thin the hits: a hit element flips
with probability :math:`p_{s}/p_{\max}` for its sign :math:`s`, which keeps independence and
gives :math:`p_s` overall. Above ``DENSE_THRESHOLD`` the dense comparison is cheaper and is used.

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


def flip_indices(
    values: torch.Tensor, pos_to_neg: float, neg_to_pos: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Flat indices of the elements of ``values`` to flip (each independently, by its sign).

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
    rate = torch.tensor([count * -math.log1p(-p_max)], dtype=torch.float64, device=device)
    hits = int(torch.poisson(rate, generator=generator).item())
    positions = torch.randint(0, count, (hits,), generator=generator, device=device)
    indices = torch.unique(positions)
    if pos_to_neg != neg_to_pos and indices.numel():
        positive = flat.detach()[indices] >= 0
        keep_probability = torch.where(
            positive,
            torch.tensor(pos_to_neg / p_max, device=device),
            torch.tensor(neg_to_pos / p_max, device=device),
        )
        keep = torch.rand(indices.numel(), generator=generator, device=device) < keep_probability
        indices = indices[keep]
    return indices


def previous_flips(
    values: torch.Tensor,
    failures: torch.Tensor,
    initial_state: str = "neg",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Of the write ``failures`` (sorted flat indices) of ``values`` (batch first), those that
    show under write model ``previous``: where the stored value before the write differs from
    the value written (:func:`xnorfault.generator.write_mask` is the sequential reference)."""
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


class _Flip(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, indices, through_flip: bool):
        flipped = values.clone()
        view = flipped.view(-1)
        view[indices] = -view[indices]
        ctx.through_flip = through_flip
        if through_flip:
            ctx.save_for_backward(indices)
        return flipped

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.through_flip:
            return grad_output, None, None
        (indices,) = ctx.saved_tensors
        grad = grad_output.clone()
        view = grad.view(-1)
        view[indices] = -view[indices]
        return grad, None, None


def apply_flips(
    values: torch.Tensor, indices: torch.Tensor, gradient: str = "straight_through"
) -> torch.Tensor:
    """Negate ``values`` at flat ``indices`` with the chosen gradient convention."""
    if gradient not in GRADIENTS:
        raise ValueError(
            f"unknown gradient convention {gradient!r}: use one of {', '.join(GRADIENTS)}"
        )
    return _Flip.apply(values.contiguous(), indices, gradient == "flipped")


class BitFlip(nn.Module):
    """Flips elements of a binary tensor at a named site.

    Off in eval mode unless ``flip_in_eval`` is set; rates, generator and gradient convention
    are set by :func:`xnorfault.training.faults.configure_faults`.
    """

    def __init__(self, site: str):
        super().__init__()
        self.site = site
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
        indices = flip_indices(values, pos_to_neg, neg_to_pos, self.generator)
        if self.write_model == "previous":
            indices = previous_flips(values, indices, self.initial_state, self.generator)
        return apply_flips(values, indices, self.gradient)

    def extra_repr(self) -> str:
        write = (
            "" if self.write_model == "iid" else f", write={self.write_model}({self.initial_state})"
        )
        return f"site={self.site!r}, p+-={self.pos_to_neg:g}, p-+={self.neg_to_pos:g}{write}"
