"""Binarized LeNet-4 (paper §II.A; channel counts of XNOR-Net-PyTorch's MNIST LeNet).

conv 1→20 5×5 + BN + ReLU + maxpool 2 (full precision) → [BN, sign, binary conv 20→50 5×5,
ReLU] + maxpool 2 → [BN, sign, binary FC →500, ReLU] → FC 500→classes (full precision).
Two binary activation sites, ``act1`` and ``act2``.
"""

from __future__ import annotations

from torch import nn

from xnorfault.models.base import BinarizedNet
from xnorfault.models.layers import binary_conv_block, binary_linear_block
from xnorfault.models.registry import ModelInfo, register_model


@register_model(
    ModelInfo(
        name="lenet4",
        description="binarized LeNet-4 (MNIST-size inputs)",
        nominal_input_size=28,
        nominal_channels=1,
        learning_rate=0.01,
        weight_decay=1e-5,
        epochs=60,
        milestones=(15, 30, 45),
        binary_layers=2,
    )
)
class LeNet4(BinarizedNet):
    def build(self, in_channels: int, num_classes: int, weight_scaling: str) -> None:
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5),
            nn.BatchNorm2d(20, eps=1e-4, momentum=0.1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            binary_conv_block(1, 20, 50, 5, weight_scaling=weight_scaling),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = self.feature_size()
        self.classifier = nn.Sequential(
            binary_linear_block(2, flat, 500, weight_scaling=weight_scaling),
            nn.Linear(500, num_classes),
        )
