"""Binarized networks of the paper, built with Brevitas (needs the ``train`` extra).

``create_model("nin", num_classes=100)`` builds one by name; see :mod:`xnorfault.models.registry`.
"""

from xnorfault.models.registry import (
    ModelInfo,
    create_model,
    model_info,
    register_model,
    registered_models,
)

# each architecture registers itself on import (timm's registry); importing the package
# registers them all, in this order
from xnorfault.models import lenet4, nin, alexnet  # noqa: E402, F401  isort: skip

__all__ = ["ModelInfo", "create_model", "model_info", "register_model", "registered_models"]
