r"""Binary sites of an ONNX graph, found by pattern, and the lowering of QONNX's ``BipolarQuant``.

Rules in onnxscript's rewriter style, working on onnx_ir's use-def objects (``value.producer()``,
``const_value``), each a declarative ``pattern`` and a ``check`` that says why a match fails:

- :class:`ComparisonWhere` — ``Where(x ⋛ 0, c, −c)``: ``GreaterOrEqual``/``Greater`` with a
  positive constant c first, ``Less``/``LessOrEqual`` with a negative one (the binarizer of
  xnorfault's and Brevitas' exports), and ``Where(x ⋛ 0, s, Neg(s))`` for any scale s (a lowered
  ``BipolarQuant`` with a computed scale);
- :class:`SignSite` — ``Sign(x)``;
- :class:`LowerBipolarQuantWeights` folds a weight ``BipolarQuant`` (constant input and scale)
  to the constant :math:`s\,\mathrm{sign}(w)` with sign(0) = +1, and
  :class:`LowerBipolarQuantActivations` turns an activation one into
  ``Where(GreaterOrEqual(x, 0), s, Neg(s))``, which onnxruntime runs and :class:`ComparisonWhere`
  recognises (QONNX, Pappalardo et al., "QONNX: Representing arbitrary-precision quantized
  neural networks", 2022: BipolarQuant(x) = s for x ≥ 0, −s otherwise).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter.pattern import (
    MatchResult,
    PatternBase,
    RewriteRuleClassBase,
    RewriteRuleSet,
)

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
POSITIVE_FIRST = {"GreaterOrEqual": True, "Greater": True, "Less": False, "LessOrEqual": False}


def constant(value: ir.Value | None) -> np.ndarray | None:
    """The value as a numpy array when it is an initializer or a ``Constant`` node's output."""
    if value is None:
        return None
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _is_zero(value: ir.Value) -> bool:
    zero = constant(value)
    return zero is not None and bool(np.all(zero == 0))


class ComparisonWhere(PatternBase):
    """``Where(comparison(x, 0), c, -c)`` that maps x to ±c, the sign decided at 0."""

    def __init__(self, comparison: str, negated: bool):
        super().__init__(name=f"Where({comparison}, {'s, Neg(s)' if negated else 'c, -c'})")
        self.comparison, self.negated = comparison, negated

    def pattern(self, op, x, zero, first, second):
        condition = getattr(op, self.comparison)(x, zero)
        if self.negated:
            return op.Where(condition, first, op.Neg(first))
        return op.Where(condition, first, second)

    def check(self, context, x, zero, first, second=None, **_) -> MatchResult:
        result = MatchResult()
        if not _is_zero(zero):
            return result.fail("the comparison is not with a constant 0", zero)
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


def find_pattern_sites(model: ir.Model) -> list[str]:
    """Names of the tensors of ``model``'s main graph that a site pattern matches, in graph
    order."""
    sites = []
    for node in model.graph:
        for site_pattern in SITE_PATTERNS:
            if site_pattern.match(model, model.graph, node, check_nodes_are_removable=False):
                sites.append(node.outputs[0].name)
                break
    return sites


class _BipolarQuantRule(RewriteRuleClassBase):
    """A rule on ``BipolarQuant(x, s)`` of one QONNX domain."""

    def __init__(self, domain: str):
        super().__init__(name=f"{type(self).__name__} ({domain})")
        self.domain = domain

    def pattern(self, op, x, scale):
        return op.BipolarQuant(x, scale, _domain=self.domain)


class LowerBipolarQuantWeights(_BipolarQuantRule):
    """``BipolarQuant(w, s)`` of constant w and s → the constant ``s * sign(w)``, sign(0) = +1."""

    def check(self, context, x, scale) -> MatchResult:
        result = MatchResult()
        if constant(x) is None:
            return result.fail("the input is not a constant (an activation)", x)
        if constant(scale) is None:
            return result.fail("a weight BipolarQuant needs a constant scale", scale)
        return result

    def rewrite(self, op, x, scale):
        folded = np.where(constant(x) >= 0, 1.0, -1.0) * constant(scale)
        return op.Constant(value=ir.tensor(folded.astype(np.float32)))


class LowerBipolarQuantActivations(_BipolarQuantRule):
    """``BipolarQuant(x, s)`` of an activation x → ``Where(GreaterOrEqual(x, 0), s, Neg(s))``."""

    def check(self, context, x, scale) -> MatchResult:
        result = MatchResult()
        if constant(x) is not None:
            return result.fail("the input is a constant (a weight)", x)
        return result

    def rewrite(self, op, x, scale):
        zero = op.Constant(value=ir.tensor(np.array(0.0, np.float32)))
        return op.Where(op.GreaterOrEqual(x, zero), scale, op.Neg(scale))


def lower_bipolar_quant(model: ir.Model) -> int:
    """Lower every QONNX ``BipolarQuant`` of ``model`` in place (weights folded first); drop
    the QONNX opsets once no node uses them. Returns how many nodes were lowered."""
    rules = RewriteRuleSet(
        [
            *(LowerBipolarQuantWeights.rule(domain) for domain in QONNX_DOMAINS),
            *(LowerBipolarQuantActivations.rule(domain) for domain in QONNX_DOMAINS),
        ]
    )
    lowered = rules.apply_to_model(model)
    remaining = {node.domain for node in model.graph.all_nodes()}
    for domain in QONNX_DOMAINS:
        if domain not in remaining:
            model.opset_imports.pop(domain, None)
    return lowered
