"""Binarized Network-in-Network (the paper's reference code for CIFAR-10/100 and SVHN).

conv 3→192 5×5 pad 2 + BN + ReLU (full precision); binary 192→160 1×1; binary 160→96 1×1;
maxpool 3/2 pad 1; binary 96→192 5×5 pad 2 (dropout 0.5); binary 192→192 1×1 ×2; avgpool 3/2
pad 1; binary 192→192 3×3 pad 1 (dropout 0.5); binary 192→192 1×1; BN → conv 192→classes 1×1
(full precision) → ReLU → global average pool. Seven binary activation sites ``act1``–``act7``.
"""

from __future__ import annotations

from torch import nn

from xnorfault.models.base import BinarizedNet
from xnorfault.models.layers import binary_conv_block
from xnorfault.models.registry import ModelInfo, register_model


@register_model(
    ModelInfo(
        name="nin",
        description="binarized Network-in-Network (CIFAR/SVHN)",
        nominal_input_size=32,
        nominal_channels=3,
        learning_rate=0.01,
        weight_decay=1e-5,
        epochs=200,
        milestones=(40, 80, 120, 160),
        binary_layers=7,
    )
)
class NiN(BinarizedNet):
    def build(self, in_channels: int, num_classes: int, weight_scaling: str) -> None:
        s = weight_scaling
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 192, 5, padding=2),
            nn.BatchNorm2d(192, eps=1e-4, momentum=0.1, affine=False),
            nn.ReLU(inplace=True),
            binary_conv_block(1, 192, 160, 1, weight_scaling=s),
            binary_conv_block(2, 160, 96, 1, weight_scaling=s),
            nn.MaxPool2d(3, stride=2, padding=1),
            binary_conv_block(3, 96, 192, 5, padding=2, dropout=0.5, weight_scaling=s),
            binary_conv_block(4, 192, 192, 1, weight_scaling=s),
            binary_conv_block(5, 192, 192, 1, weight_scaling=s),
            nn.AvgPool2d(3, stride=2, padding=1),
            binary_conv_block(6, 192, 192, 3, padding=1, dropout=0.5, weight_scaling=s),
            binary_conv_block(7, 192, 192, 1, weight_scaling=s),
            nn.BatchNorm2d(192, eps=1e-4, momentum=0.1, affine=False),
        )
        self.feature_size()  # checks that the input is large enough
        self.classifier = nn.Sequential(
            nn.Conv2d(192, num_classes, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
