"""Model registry: ``create_model(name, num_classes=…, in_channels=…, input_size=…)``.

Each architecture registers itself beside its class (:func:`register_model`), so a name is
built by exactly the class that registered it; an unknown name is a one-line error. Each
entry carries the paper's training defaults for that network (shared/PAPER.md §2): Adam,
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


_REGISTERED: dict[str, tuple[ModelInfo, type]] = {}


def register_model(info: ModelInfo):
    """Class decorator (timm's ``@register_model``): the architecture below is built by
    :func:`create_model` under ``info.name``, with ``info``'s nominal input size and channels;
    a name registered twice is a programming error."""

    def register(cls: type) -> type:
        if info.name in _REGISTERED:
            raise ValueError(f"model {info.name!r} is registered twice")
        cls.nominal_input_size = info.nominal_input_size
        cls.nominal_channels = info.nominal_channels
        _REGISTERED[info.name] = (info, cls)
        return cls

    return register


def registered_models() -> dict[str, ModelInfo]:
    """Every registered architecture's info, by name, in registration order."""
    return {name: info for name, (info, _) in _REGISTERED.items()}


def _registered(name: str) -> tuple[ModelInfo, type]:
    try:
        return _REGISTERED[name]
    except KeyError:
        raise XnorfaultError(
            f"unknown model {name!r}: use one of {', '.join(_REGISTERED)}"
        ) from None


def model_info(name: str) -> ModelInfo:
    """The registered info of architecture ``name`` (a one-line error for an unknown name)."""
    return _registered(name)[0]


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int | None = None,
    input_size: int | None = None,
    weight_scaling: str = "channel",
):
    """Build a binarized network by registry name."""
    _, cls = _registered(name)
    model = cls(
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=input_size,
        weight_scaling=weight_scaling,
    )
    model.registry_name = name
    return model
