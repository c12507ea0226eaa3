"""Model registry: ``create_model(name, num_classes=…, in_channels=…, input_size=…)``.

Each entry carries the paper's training defaults for that network (shared/PAPER.md §2): Adam,
learning rate, weight decay, step decay of the learning rate ×0.1 at the milestones, batch 128.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xnorfault.errors import XnorfaultError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    nominal_input_size: int
    nominal_channels: int
    learning_rate: float
    weight_decay: float
    epochs: int
    milestones: tuple[int, ...] = field(default_factory=tuple)
    binary_layers: int = 0
    batch_size: int = 128

    @property
    def activation_sites(self) -> list[str]:
        """Names of the binary activation sites, in network order."""
        return [f"act{i}" for i in range(1, self.binary_layers + 1)]


MODELS: dict[str, ModelInfo] = {
    "lenet4": ModelInfo(
        name="lenet4",
        description="binarized LeNet-4 (MNIST-size inputs)",
        nominal_input_size=28,
        nominal_channels=1,
        learning_rate=0.01,
        weight_decay=1e-5,
        epochs=60,
        milestones=(15, 30, 45),
        binary_layers=2,
    ),
    "nin": ModelInfo(
        name="nin",
        description="binarized Network-in-Network (CIFAR/SVHN)",
        nominal_input_size=32,
        nominal_channels=3,
        learning_rate=0.01,
        weight_decay=1e-5,
        epochs=200,
        milestones=(40, 80, 120, 160),
        binary_layers=7,
    ),
    "alexnet": ModelInfo(
        name="alexnet",
        description="binarized AlexNet (ImageNet)",
        nominal_input_size=224,
        nominal_channels=3,
        learning_rate=1e-3,
        weight_decay=5e-6,
        epochs=45,
        milestones=(20, 30, 40),
        binary_layers=6,
    ),
}


def model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise XnorfaultError(f"unknown model {name!r}: use one of {', '.join(MODELS)}") from None


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | None = None,
    weight_scaling: str = "channel",
):
    """Build a binarized network by registry name (imports torch and brevitas)."""
    model_info(name)
    if name == "lenet4":
        from xnorfault.models.lenet4 import LeNet4 as cls
    elif name == "nin":
        from xnorfault.models.nin import NiN as cls
    else:
        from xnorfault.models.alexnet import AlexNet as cls
    model = cls(
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        weight_scaling=weight_scaling,
    )
    model.registry_name = name
    return model
