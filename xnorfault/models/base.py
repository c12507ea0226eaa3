"""Common base of the binarized networks: configuration, binary sites, input checks."""

from __future__ import annotations

import torch
from torch import nn

from xnorfault.errors import XnorfaultError
from xnorfault.models.flips import BitFlip


class BinarizedNet(nn.Module):
    """``features`` then ``classifier``; each architecture defines
    ``build(in_channels, num_classes, weight_scaling)``, which creates both, and its nominal input.

    Binary activation sites are the :class:`BitFlip` modules named ``act1``, ``act2``…; binary
    weight sites ``weight1``, ``weight2``… in network order.
    """

    nominal_input_size = 32
    nominal_channels = 3

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int | None = None,
        input_size: int | None = None,
        weight_scaling: str = "channel",
    ):
        super().__init__()
        if num_classes < 2:
            raise XnorfaultError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.in_channels = in_channels or self.nominal_channels
        self.input_size = input_size or self.nominal_input_size
        self.num_classes = num_classes
        self.weight_scaling = weight_scaling
        self.build(self.in_channels, num_classes, weight_scaling)

    def feature_size(self) -> int:
        """Flattened size of ``features`` for this input size (checks the input is large enough)."""
        probe = torch.zeros(1, self.in_channels, self.input_size, self.input_size)
        was_training = self.features.training
        self.features.eval()
        try:
            with torch.no_grad():
                out = self.features(probe)
        except RuntimeError:
            raise XnorfaultError(
                f"{type(self).__name__} cannot take {self.input_size}×{self.input_size} inputs: "
                f"they shrink to nothing; use inputs of at least its nominal size {self.nominal_input_size}"
            ) from None
        finally:
            self.features.train(was_training)
        return int(out[0].numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def activation_sites(self) -> dict[str, BitFlip]:
        """Binary activation flip modules by site name, in network order."""
        return {
            m.site: m for m in self.modules() if isinstance(m, BitFlip) and m.site.startswith("act")
        }

    @property
    def weight_sites(self) -> dict[str, BitFlip]:
        """Binary weight flip modules by site name, in network order."""
        return {
            m.site: m
            for m in self.modules()
            if isinstance(m, BitFlip) and m.site.startswith("weight")
        }

    def config(self) -> dict:
        """Arguments that rebuild this architecture with :func:`create_model`."""
        return {
            "name": self.registry_name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": self.input_size,
            "weight_scaling": self.weight_scaling,
        }

    registry_name = ""
