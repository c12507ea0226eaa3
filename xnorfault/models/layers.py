r"""Building blocks of binarized networks (Brevitas).

A binary block follows the paper's reference code (XNOR-Net): BatchNorm → sign → bit flips →
[Dropout] → binary convolution or linear layer (full-precision bias) → ReLU.

* Activations: :math:`\mathrm{sign}(x)` with :math:`\mathrm{sign}(0) = +1` (Brevitas'
  ``SignedBinaryActPerTensorConst``, as QONNX ``BipolarQuant`` and Larq; the reference code's
  ``torch.sign`` maps 0 to 0). Backward: the clipped straight-through estimator,
  :math:`\partial\,\mathrm{sign}(x)/\partial x = 1_{|x|\le 1}` (Courbariaux et al. 2016).
* Weights: XNOR-Net binarization (Rastegari et al. 2016), :math:`W_b = \alpha\,\mathrm{sign}(W)`
  with one :math:`\alpha = \mathrm{mean}|W|` per output channel (``weight_scaling="channel"``), or
  a constant per-tensor scale of 1 (``"tensor"``, cheaper).
"""

from __future__ import annotations

import torch
from brevitas.core.function_wrapper import TensorClamp
from brevitas.inject.enum import ScalingImplType, ScalingPerOutputType, StatsOp
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from torch import nn

from xnorfault.models.flips import BitFlip

WEIGHT_SCALINGS = ("channel", "tensor")


class XnorWeightPerChannelMeanAbs(SignedBinaryWeightPerTensorConst):
    """Binary weights :math:`\\alpha_c\\,\\mathrm{sign}(W)`, :math:`\\alpha_c` = mean |W| of
    output channel :math:`c` (XNOR-Net)."""

    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.AVE
    scaling_per_output_type = ScalingPerOutputType.CHANNEL
    tensor_clamp_impl = TensorClamp


class BinaryWeightUnitScale(SignedBinaryWeightPerTensorConst):
    """Binary weights :math:`\\pm 1` (constant per-tensor scale)."""

    scaling_const = 1.0
    tensor_clamp_impl = TensorClamp


def weight_quantizer(weight_scaling: str):
    if weight_scaling == "channel":
        return XnorWeightPerChannelMeanAbs
    if weight_scaling == "tensor":
        return BinaryWeightUnitScale
    raise ValueError(
        f"unknown weight scaling {weight_scaling!r}: use one of {', '.join(WEIGHT_SCALINGS)}"
    )


class BinaryActivation(nn.Module):
    """A binary activation site: Brevitas sign binarizer, then :class:`BitFlip` at ``site``."""

    def __init__(self, site: str):
        super().__init__()
        self.binarize = QuantIdentity(
            act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=False
        )
        # the binarizer's output is read by the flips alone: they overwrite it, no copy
        self.flip = BitFlip(site, in_place=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flip(self.binarize(x))


class _WeightFlipMixin:
    """Flips the binarized weights (not the stored real weights) when weight faults are on."""

    def inner_forward_impl(self, x, quant_weight, quant_bias):
        if self.weight_flip.active():
            value = quant_weight.value if hasattr(quant_weight, "value") else quant_weight
            quant_weight = self.weight_flip(value)
        return super().inner_forward_impl(x, quant_weight, quant_bias)


class BinaryConv2d(_WeightFlipMixin, QuantConv2d):
    """Convolution with binary weights and a full-precision bias; inputs are already binary."""

    def __init__(
        self,
        site: str,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        weight_scaling="channel",
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            bias=True,
            weight_quant=weight_quantizer(weight_scaling),
            return_quant_tensor=False,
        )
        self.weight_flip = BitFlip(site)


class BinaryLinear(_WeightFlipMixin, QuantLinear):
    """Linear layer with binary weights and a full-precision bias; inputs are already binary."""

    def __init__(self, site: str, in_features, out_features, weight_scaling="channel"):
        super().__init__(
            in_features,
            out_features,
            bias=True,
            weight_quant=weight_quantizer(weight_scaling),
            return_quant_tensor=False,
        )
        self.weight_flip = BitFlip(site)


def binary_conv_block(
    index: int,
    in_channels,
    out_channels,
    kernel_size,
    stride=1,
    padding=0,
    dropout=0.0,
    weight_scaling="channel",
) -> nn.Sequential:
    """BN → sign (site ``act{index}``) → flips → [Dropout] → binary conv (``weight{index}``) → ReLU."""
    layers = [
        nn.BatchNorm2d(in_channels, eps=1e-4, momentum=0.1),
        BinaryActivation(f"act{index}"),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [
        BinaryConv2d(
            f"weight{index}",
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            weight_scaling,
        ),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)


def binary_linear_block(
    index: int, in_features, out_features, dropout=0.0, weight_scaling="channel"
) -> nn.Sequential:
    """BN → sign (site ``act{index}``) → flips → [Dropout] → binary linear (``weight{index}``) → ReLU."""
    layers = [nn.BatchNorm1d(in_features, eps=1e-4, momentum=0.1), BinaryActivation(f"act{index}")]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [
        BinaryLinear(f"weight{index}", in_features, out_features, weight_scaling),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)
