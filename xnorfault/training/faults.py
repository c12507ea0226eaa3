"""Apply a :class:`~xnorfault.faults.FaultSpec` to a model's flip sites for one epoch."""

from __future__ import annotations

import torch

from xnorfault.faults import FaultSpec
from xnorfault.models.flips import GRADIENTS


def configure_faults(
    model,
    spec: FaultSpec,
    epoch: int | None,
    generator: torch.Generator | None,
    gradient: str = "straight_through",
    flip_in_eval: bool = False,
) -> None:
    """Set rates (for ``epoch``), generator, gradient convention and eval behaviour on every
    activation and weight site of ``model``; the activation sites also get the spec's write
    model (weights are written once, so their flips stay independent per draw)."""
    if gradient not in GRADIENTS:
        raise ValueError(
            f"unknown gradient convention {gradient!r}: use one of {', '.join(GRADIENTS)}"
        )
    spec.check_sites(list(model.activation_sites))
    for site, module in model.activation_sites.items():
        rates = spec.activation_rates(site, epoch)
        module.pos_to_neg, module.neg_to_pos = rates.pos_to_neg, rates.neg_to_pos
        module.generator, module.gradient, module.flip_in_eval = generator, gradient, flip_in_eval
        module.write_model, module.initial_state = spec.write.model, spec.write.initial_state
    weight = spec.weights
    for module in model.weight_sites.values():
        module.pos_to_neg = weight.pos_to_neg if weight else 0.0
        module.neg_to_pos = weight.neg_to_pos if weight else 0.0
        module.generator, module.gradient, module.flip_in_eval = generator, gradient, flip_in_eval
