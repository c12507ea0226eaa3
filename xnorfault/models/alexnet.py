"""Binarized AlexNet (XNOR-Net, Rastegari et al. 2016; top-1 ≈ 44 % on ImageNet).

conv 3→96 11×11/4 + BN + ReLU + maxpool 3/2 (full precision) → binary 96→256 5×5 pad 2 →
maxpool 3/2 → binary 256→384 3×3 → binary 384→384 3×3 → binary 384→256 3×3 → maxpool 3/2 →
binary FC →4096 (dropout 0.5) → binary FC 4096→4096 (dropout 0.5) → BN → FC →classes.
Six binary activation sites ``act1``–``act6``.
"""

from __future__ import annotations

from torch import nn

from xnorfault.models.base import BinarizedNet
from xnorfault.models.layers import binary_conv_block, binary_linear_block
from xnorfault.models.registry import ModelInfo, register_model


@register_model(
    ModelInfo(
        name="alexnet",
        description="binarized AlexNet (ImageNet)",
        nominal_input_size=224,
        nominal_channels=3,
        learning_rate=1e-3,
        weight_decay=5e-6,
        epochs=45,
        milestones=(20, 30, 40),
        binary_layers=6,
    )
)
class AlexNet(BinarizedNet):
    def build(self, in_channels: int, num_classes: int, weight_scaling: str) -> None:
        s = weight_scaling
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4),
            nn.BatchNorm2d(96, eps=1e-4, momentum=0.1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            binary_conv_block(1, 96, 256, 5, padding=2, weight_scaling=s),
            nn.MaxPool2d(3, stride=2),
            binary_conv_block(2, 256, 384, 3, padding=1, weight_scaling=s),
            binary_conv_block(3, 384, 384, 3, padding=1, weight_scaling=s),
            binary_conv_block(4, 384, 256, 3, padding=1, weight_scaling=s),
            nn.MaxPool2d(3, stride=2),
            nn.Flatten(),
        )
        flat = self.feature_size()
        self.classifier = nn.Sequential(
            binary_linear_block(5, flat, 4096, dropout=0.5, weight_scaling=s),
            binary_linear_block(6, 4096, 4096, dropout=0.5, weight_scaling=s),
            nn.BatchNorm1d(4096, eps=1e-4, momentum=0.1),
            nn.Linear(4096, num_classes),
        )
