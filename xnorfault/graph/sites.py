r"""Binary sites of an ONNX graph, found by pattern.

Patterns in onnxscript's rewriter style, working on onnx_ir's use-def objects
(``value.producer()``, ``const_value``), each a declarative ``pattern`` and a ``check`` that says
why a match fails:

- :class:`ComparisonWhere` — ``Where(x ⋛ t, c, −c)`` for a constant threshold t (0 in
  xnorfault's and Brevitas' binarizers, a per-channel one in a lowered FINN ``MultiThreshold``):
  ``GreaterOrEqual``/``Greater`` with a positive constant c first, ``Less``/``LessOrEqual`` with
  a negative one, and ``Where(x ⋛ t, s, Neg(s))`` for any scale s (a lowered ``BipolarQuant``
  or 1-bit ``Quant`` with a computed scale);
- :class:`SignSite` — ``Sign(x)`` (``torch.sign`` exported by ``torch.onnx.export``).

QONNX quantizers become these patterns in :mod:`xnorfault.graph.lowering`.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter.pattern import MatchResult, PatternBase

POSITIVE_FIRST = {"GreaterOrEqual": True, "Greater": True, "Less": False, "LessOrEqual": False}


def constant(value: ir.Value | None) -> np.ndarray | None:
    """The value as a numpy array when it is an initializer or a ``Constant`` node's output."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


class ComparisonWhere(PatternBase):
    """``Where(comparison(x, t), c, -c)`` that maps x to ±c, decided at a constant t."""

    def __init__(self, comparison: str, negated: bool):
        super().__init__(name=f"Where({comparison}, {'s, Neg(s)' if negated else 'c, -c'})")
        self.comparison, self.negated = comparison, negated

    def pattern(self, op, x, threshold, first, second):
        condition = getattr(op, self.comparison)(x, threshold)
        if self.negated:
            return op.Where(condition, first, op.Neg(first))
        return op.Where(condition, first, second)

    def check(self, context, x, threshold, first, second=None, **_) -> MatchResult:
        result = MatchResult()
        if constant(threshold) is None:
            return result.fail("the comparison is not with a constant threshold", threshold)
        if self.negated:
            return result
        plus, minus = constant(first), constant(second)
        if plus is None or minus is None:
            return result.fail("the branches are not constants", [first, second])
        if plus.shape != minus.shape or not np.allclose(plus, -minus):
            return result.fail("the branches are not c and -c", [first, second])
        positive = plus > 0 if POSITIVE_FIRST[self.comparison] else plus < 0
        if not np.all(positive):
            return result.fail("the branch for x ≥ 0 is not the positive one", first)
        return result


class SignSite(PatternBase):
    def __init__(self):
        super().__init__(name="Sign")

    def pattern(self, op, x):
        return op.Sign(x)


SITE_PATTERNS = (
    *(
        ComparisonWhere(comparison, negated)
        for comparison in POSITIVE_FIRST
        for negated in (False, True)
    ),
    SignSite(),
)


def match_sites(model: ir.Model) -> dict[str, str]:
    """The tensors of ``model``'s main graph that a site pattern matches, in graph order, each
    with the name of its pattern."""
    sites = {}
    for node in model.graph:
        for site_pattern in SITE_PATTERNS:
            if site_pattern.match(model, model.graph, node, check_nodes_are_removable=False):
                sites[node.outputs[0].name] = site_pattern.name
                break
    return sites


def find_pattern_sites(model: ir.Model) -> list[str]:
    """Names of the tensors of ``model``'s main graph that a site pattern matches, in graph
    order."""
    return list(match_sites(model))
