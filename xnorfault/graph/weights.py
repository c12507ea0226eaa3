r"""The binary weights of an ONNX model: which Conv/Gemm/MatMul weights are binary, their
values, and the same model with some of them negated (a chip's persistent weight faults,
:math:`\pm\alpha \to \mp\alpha`, placed by :mod:`xnorfault.evaluation.weight_ages`).

A weight is binary when its magnitudes take one value per tensor or per output channel
(:math:`\pm c`, or :math:`\pm\alpha_c` as XNOR-Net scales). Imports numpy, onnx and onnx_ir.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from xnorfault.errors import XnorfaultError
from xnorfault.graph.sites import constant

WEIGHT_CONSUMERS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


@dataclass
class WeightReport:
    node: str
    op: str
    shape: list
    elements: int
    scaling: str  # "per tensor" or "per channel"
    tensor: str = ""  # the weight's value (an initializer, or a Constant node's output)


def binary_weight_values(graph_model) -> list[tuple[WeightReport, object]]:
    """The binary weights of an onnx_ir model (see :func:`_binary_weights`), each with its
    ``onnx_ir.Value``; a tensor that several nodes consume is listed once."""
    found, seen = [], set()
    for node in graph_model.graph.all_nodes():
        index = WEIGHT_CONSUMERS.get(node.op_type)
        if index is None or len(node.inputs) <= index:
            continue
        value = node.inputs[index]
        weight = constant(value)
        if weight is None or weight.ndim < 2 or not np.issubdtype(weight.dtype, np.floating):
            continue
        if id(value) in seen:
            continue
        magnitude = np.abs(weight)
        if np.any(magnitude == 0):
            continue
        if np.allclose(magnitude, magnitude.flat[0]):
            scaling = "per tensor"
        else:
            channels = magnitude.shape[-1] if node.op_type == "MatMul" else magnitude.shape[0]
            rows = (
                np.moveaxis(magnitude, -1, 0) if node.op_type == "MatMul" else magnitude
            ).reshape(channels, -1)
            if not np.allclose(rows, rows[:, :1]):
                continue
            scaling = "per channel"
        seen.add(id(value))
        report = WeightReport(
            node=node.name or "",
            op=node.op_type,
            shape=list(weight.shape),
            elements=int(weight.size),
            scaling=scaling,
            tensor=value.name or "",
        )
        found.append((report, value))
    return found


def binary_weight_tensors(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model's binary weights (:func:`binary_weight_values`) by
    initializer name, and the model to run them in: the same one, or — where a weight is a
    ``Constant`` node (a lowered QONNX quantizer) — a copy with those constants lifted to
    initializers, which a runtime can replace."""
    import onnx_ir as ir
    from onnx_ir.passes.common import LiftConstantsToInitializersPass

    model = ir.serde.deserialize_model(proto)
    values = binary_weight_values(model)
    if any(not value.is_initializer() for _, value in values):
        LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=1)(model)
        values = binary_weight_values(model)
        proto = ir.serde.serialize_model(model)
    tensors = {}
    for _, value in values:
        if not value.is_initializer():
            raise XnorfaultError(
                f"binary weight {value.name!r} is neither an initializer nor a Constant node's "
                "value: xnorfault cannot place its faults"
            )
        tensors[value.name] = constant(value)
    return proto, tensors


def flipped(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``weights`` with the masked elements negated (only the tensors with a flip)."""
    out = {}
    for name, mask in masks.items():
        if mask.any():
            values = weights[name].copy()
            values.reshape(-1)[mask] *= -1
            out[name] = values
    return out


def weight_signs(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each binary weight's stored value, flattened: ``True`` for +1."""
    return {name: values.reshape(-1) >= 0 for name, values in weights.items()}


__all__ = [
    "WEIGHT_CONSUMERS",
    "WeightReport",
    "binary_weight_tensors",
    "binary_weight_values",
    "flipped",
    "weight_signs",
]
