"""Binarized networks of the paper, built with Brevitas (needs the ``train`` extra).

``create_model("nin", num_classes=100)`` builds one by name; see :mod:`xnorfault.models.registry`.
"""

from xnorfault.models.registry import MODELS, ModelInfo, create_model, model_info

__all__ = ["MODELS", "ModelInfo", "create_model", "model_info"]
