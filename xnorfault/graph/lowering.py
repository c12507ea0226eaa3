r"""QONNX and FINN quantizers lowered to standard ONNX that stock onnxruntime runs.

QONNX (Pappalardo et al., "QONNX: Representing arbitrary-precision quantized neural networks",
2022) writes quantization as custom operators of the domains ``qonnx.custom_op.general`` and
``finn.custom_op.general``. Each rule below rewrites one of them, with QONNX's own semantics
(its reference implementation is the ``qonnx`` package, which the tests compare against):

- ``BipolarQuant(x, s)`` = :math:`s` for :math:`x \ge 0`, :math:`-s` otherwise;
- ``Quant(x, s, z, b; signed, narrow, rounding_mode)`` =
  :math:`(\mathrm{round}(\mathrm{clip}(x/s + z,\ q_{min}, q_{max})) - z)\, s` with
  :math:`q_{min} = -2^{b-1} + \mathrm{narrow}` (signed) or 0, and :math:`q_{max} = 2^{b-1} - 1`
  (signed) or :math:`2^b - 1 - \mathrm{narrow}`; for :math:`b = 1` signed, QONNX defines
  :math:`q = \pm 1` by the sign of :math:`x/s + z` (a bipolar quantizer);
- ``Trunc`` v1 ``(x, s, z, b_in, b_out)``:
  :math:`(\mathrm{r}(\mathrm{round}(x/s + z) / 2^{b_{in} - b_{out}}) - z)\, s`; v2 ``(x, s, z,
  b_in, s_out, b_out; signed, narrow)``: with :math:`t = 2^{\mathrm{round}(\log_2(s_{out}/s))}`,
  :math:`(\mathrm{r}(\mathrm{clip}(\mathrm{round}(x/s + z) / t)) - z/t)\, s_{out}`, r the node's
  rounding mode;
- ``MultiThreshold(x, T; out_scale, out_bias, data_layout)`` =
  :math:`\alpha \sum_k [x_c \ge T_{c,k}] + \beta` per channel c.

Rounding modes as QONNX's ``resolve_rounding_mode``: ``ROUND``/``HALF_EVEN`` (half to even,
ONNX ``Round``), ``CEIL``, ``FLOOR``, ``UP`` (away from 0), ``DOWN`` (toward 0), ``HALF_UP`` and
``HALF_DOWN`` (halves away from / toward 0).

A quantizer of constant input (a weight) folds to a constant. An activation quantizer becomes
standard ops; a 1-bit bipolar one (``BipolarQuant``, 1-bit signed ``Quant``, a
``MultiThreshold`` with one threshold per channel and outputs ±c) becomes
``Where(x ≥ t, c, −c)``, the pattern :mod:`xnorfault.graph.sites` recognises as a binary site (a
1-bit ``Quant`` with a zero point z stores the ±1 code, which is the site, then maps it to
:math:`(\pm 1 - z)\,s`). Every
lowering is logged as a :class:`Lowered` record, which ``xnorfault inspect`` reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter.pattern import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from xnorfault.graph.sites import constant

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general")
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


@dataclass
class Lowered:
    """One QONNX node lowered: what it was and what it became."""

    node: str
    op: str
    output: str
    kind: str  # "weight" (folded to a constant) or "activation"
    bit_width: float | None
    binary: bool  # two values ±c: a binary weight, or an activation site
    result: str  # "constant", "binary site", "standard ONNX"
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def min_int(signed: bool, narrow: bool, bit_width: float) -> float:
    """Smallest integer of a ``bit_width``-bit code: :math:`-2^{b-1}` (+1 when narrow) if signed, else 0."""
    return -(2.0 ** (bit_width - 1)) + (1 if narrow else 0) if signed else 0.0


def max_int(signed: bool, narrow: bool, bit_width: float) -> float:
    """Largest integer of a ``bit_width``-bit code: :math:`2^{b-1}-1` if signed, else :math:`2^b - 1` (−1 when narrow)."""
    if signed:
        return 2.0 ** (bit_width - 1) - 1
    return 2.0**bit_width - 1 - (1 if narrow else 0)


def round_numpy(values: np.ndarray, mode: str) -> np.ndarray:
    """``values`` rounded to integers by a QONNX rounding mode."""
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(values)
    if mode == "CEIL":
        return np.ceil(values)
    if mode == "FLOOR":
        return np.floor(values)
    if mode == "UP":
        return np.sign(values) * np.ceil(np.abs(values))
    if mode == "DOWN":
        return np.fix(values)
    if mode == "HALF_UP":
        return np.sign(values) * np.floor(np.abs(values) + 0.5)
    if mode == "HALF_DOWN":
        return np.sign(values) * np.ceil(np.abs(values) - 0.5)
    raise ValueError(f"unknown rounding mode {mode!r}")


def int_quant_numpy(x, scale, zeropt, bit_width, signed, narrow, rounding_mode) -> np.ndarray:
    """QONNX ``Quant`` in numpy (used to fold weights): see the module docstring."""
    scaled = np.asarray(x) / scale + zeropt
    if bit_width == 1 and signed:
        code = np.where(scaled >= 0, 1.0, -1.0).astype(scaled.dtype)
    else:
        lowest, highest = min_int(signed, narrow, bit_width), max_int(signed, narrow, bit_width)
        code = round_numpy(np.clip(scaled, lowest, highest), rounding_mode)
    return ((code - zeropt) * scale).astype(np.float32)


def _round(op, values, mode: str):
    """``values`` rounded by a QONNX rounding mode, in ONNX ops."""
    if mode in ("ROUND", "HALF_EVEN"):
        return op.Round(values)
    if mode == "CEIL":
        return op.Ceil(values)
    if mode == "FLOOR":
        return op.Floor(values)
    # the sign-symmetric modes as Where(v ≥ 0, …, …): a Sign node here would look like a site
    nonnegative = op.GreaterOrEqual(values, _scalar(op, 0.0))
    if mode == "UP":
        return op.Where(nonnegative, op.Ceil(values), op.Floor(values))
    if mode == "DOWN":
        return op.Where(nonnegative, op.Floor(values), op.Ceil(values))
    up, down = op.Add(values, _scalar(op, 0.5)), op.Sub(values, _scalar(op, 0.5))
    if mode == "HALF_UP":
        return op.Where(nonnegative, op.Floor(up), op.Ceil(down))
    return op.Where(nonnegative, op.Ceil(down), op.Floor(up))  # HALF_DOWN


def _scalar(op, value: float):
    return op.Constant(value=ir.tensor(np.array(value, np.float32)))


def _bipolar(op, x, scale):
    """``Where(x ≥ 0, s, −s)``: a binary site for :mod:`xnorfault.graph.sites`."""
    return op.Where(op.GreaterOrEqual(x, _scalar(op, 0.0)), scale, op.Neg(scale))


def _attribute(node: ir.Node, name: str, default):
    attribute = node.attributes.get(name)
    return default if attribute is None else attribute.value


def _rounding_mode(node: ir.Node, default: str) -> str:
    return str(_attribute(node, "rounding_mode", default)).upper()


class _QonnxRule(RewriteRuleClassBase):
    """A rule on one QONNX operator of one domain; logs what it lowers into ``log``."""

    op_type = ""
    arity = 0

    def __init__(self, domain: str, log: list[Lowered]):
        super().__init__(name=f"{type(self).__name__} ({domain})")
        self.domain, self.log = domain, log

    def pattern(self, op, x, *operands):
        return getattr(op, self.op_type)(
            x, *operands, _domain=self.domain, _allow_other_attributes=True, _outputs=["out"]
        )

    def record(self, out: ir.Value, kind, bit_width, binary, result, detail="") -> None:
        node = out.producer()
        self.log.append(
            Lowered(
                node=node.name or "",
                op=self.op_type,
                output=out.name or "",
                kind=kind,
                bit_width=None if bit_width is None else float(bit_width),
                binary=binary,
                result=result,
                detail=detail,
            )
        )


class BipolarQuantWeights(_QonnxRule):
    """``BipolarQuant(w, s)`` of constant w and s → the constant ``s * sign(w)``, sign(0) = +1."""

    op_type = "BipolarQuant"

    def pattern(self, op, x, scale):
        return super().pattern(op, x, scale)

    def check(self, context, x, scale, out, **_) -> MatchResult:
        result = MatchResult()
        if constant(x) is None:
            return result.fail("the input is not a constant (an activation)", x)
        if constant(scale) is None:
            return result.fail("a weight BipolarQuant needs a constant scale", scale)
        return result

    def rewrite(self, op, x, scale, out, **_):
        self.record(out, "weight", 1, True, "constant")
        folded = np.where(constant(x) >= 0, 1.0, -1.0) * constant(scale)
        return op.Constant(value=ir.tensor(folded.astype(np.float32)))


class BipolarQuantActivations(_QonnxRule):
    """``BipolarQuant(x, s)`` of an activation x → ``Where(x ≥ 0, s, −s)``."""

    op_type = "BipolarQuant"

    def pattern(self, op, x, scale):
        return super().pattern(op, x, scale)

    def check(self, context, x, scale, out, **_) -> MatchResult:
        result = MatchResult()
        if constant(x) is not None:
            return result.fail("the input is a constant (a weight)", x)
        return result

    def rewrite(self, op, x, scale, out, **_):
        self.record(out, "activation", 1, True, "binary site")
        return _bipolar(op, x, scale)


class _QuantRule(_QonnxRule):
    op_type = "Quant"

    def pattern(self, op, x, scale, zeropt, bit_width):
        return super().pattern(op, x, scale, zeropt, bit_width)

    def settings(self, out: ir.Value) -> tuple[bool, bool, str]:
        node = out.producer()
        signed = bool(_attribute(node, "signed", 1))
        narrow = bool(_attribute(node, "narrow", 0))
        return signed, narrow, _rounding_mode(node, "ROUND")

    def common_check(self, bit_width, out) -> MatchResult:
        result = MatchResult()
        width = constant(bit_width)
        if width is None or width.size != 1:
            return result.fail("the bit width is not a constant scalar", bit_width)
        if _rounding_mode(out.producer(), "ROUND") not in ROUNDING_MODES:
            return result.fail("unknown rounding mode", out)
        return result


class QuantWeights(_QuantRule):
    """``Quant`` of constant input, scale and zero point → the quantized constant."""

    def check(self, context, x, scale, zeropt, bit_width, out, **_) -> MatchResult:
        result = self.common_check(bit_width, out)
        if not result:
            return result
        if any(constant(v) is None for v in (x, scale, zeropt)):
            return result.fail("not a weight: input, scale or zero point is not constant", x)
        return result

    def rewrite(self, op, x, scale, zeropt, bit_width, out, **_):
        signed, narrow, rounding = self.settings(out)
        width = float(constant(bit_width))
        values = int_quant_numpy(
            constant(x), constant(scale), constant(zeropt), width, signed, narrow, rounding
        )
        binary = width == 1 and signed and bool(np.all(constant(zeropt) == 0))
        self.record(out, "weight", width, binary, "constant")
        return op.Constant(value=ir.tensor(values))


class QuantActivations(_QuantRule):
    """``Quant`` of an activation → standard ops (a binary site when 1-bit signed)."""

    def check(self, context, x, scale, zeropt, bit_width, out, **_) -> MatchResult:
        result = self.common_check(bit_width, out)
        if result and constant(x) is not None and constant(scale) is not None:
            return result.fail("a weight (constant input)", x)
        return result

    def rewrite(self, op, x, scale, zeropt, bit_width, out, **_):
        signed, narrow, rounding = self.settings(out)
        width = float(constant(bit_width))
        zero = constant(zeropt)
        scaled = op.Div(x, scale)
        if width == 1 and signed and zero is not None and np.all(zero == 0):
            self.record(out, "activation", width, True, "binary site")
            return _bipolar(op, scaled, scale)
        scaled = op.Add(scaled, zeropt)
        if width == 1 and signed:
            # two levels (±1 − z)·s: the ±1 code is the bit the memory holds, and the site
            code = op.Where(
                op.GreaterOrEqual(scaled, _scalar(op, 0.0)), _scalar(op, 1.0), _scalar(op, -1.0)
            )
            self.record(out, "activation", width, True, "binary site", "with a zero point")
            return op.Mul(op.Sub(code, zeropt), scale)
        lowest = _scalar(op, min_int(signed, narrow, width))
        highest = _scalar(op, max_int(signed, narrow, width))
        code = _round(op, op.Min(op.Max(scaled, lowest), highest), rounding)
        self.record(
            out,
            "activation",
            width,
            False,
            "standard ONNX",
            f"{'signed' if signed else 'unsigned'}{', narrow' if narrow else ''}, {rounding}",
        )
        return op.Mul(op.Sub(code, zeropt), scale)


class TruncV1(_QonnxRule):
    """``Trunc(x, s, z, b_in, b_out)`` (QONNX v1) → standard ops; bit widths constant."""

    op_type = "Trunc"

    def pattern(self, op, x, scale, zeropt, in_width, out_width):
        return super().pattern(op, x, scale, zeropt, in_width, out_width)

    def check(self, context, x, scale, zeropt, in_width, out_width, out, **_) -> MatchResult:
        result = MatchResult()
        if constant(in_width) is None or constant(out_width) is None:
            return result.fail("the bit widths are not constants", [in_width, out_width])
        if _rounding_mode(out.producer(), "FLOOR") not in ROUNDING_MODES:
            return result.fail("unknown rounding mode", out)
        return result

    def rewrite(self, op, x, scale, zeropt, in_width, out_width, out, **_):
        rounding = _rounding_mode(out.producer(), "FLOOR")
        shift = float(constant(in_width) - constant(out_width))
        rounded = op.Round(op.Add(op.Div(x, scale), zeropt))
        code = _round(op, op.Div(rounded, _scalar(op, 2.0**shift)), rounding)
        self.record(out, "activation", float(constant(out_width)), False, "standard ONNX", rounding)
        return op.Mul(op.Sub(code, zeropt), scale)


class TruncV2(_QonnxRule):
    """``Trunc(x, s, z, b_in, s_out, b_out; signed, narrow)`` (QONNX v2) → standard ops;
    scales and bit widths constant."""

    op_type = "Trunc"

    def pattern(self, op, x, scale, zeropt, in_width, out_scale, out_width):
        return super().pattern(op, x, scale, zeropt, in_width, out_scale, out_width)

    def check(self, context, x, scale, zeropt, in_width, out_scale, out_width, out, **_):
        result = MatchResult()
        if any(constant(v) is None for v in (scale, zeropt, out_scale, out_width)):
            return result.fail("scales, zero point and output bit width must be constants", x)
        if _rounding_mode(out.producer(), "FLOOR") not in ROUNDING_MODES:
            return result.fail("unknown rounding mode", out)
        return result

    def rewrite(self, op, x, scale, zeropt, in_width, out_scale, out_width, out, **_):
        node = out.producer()
        rounding = _rounding_mode(node, "FLOOR")
        signed = bool(_attribute(node, "signed", 1))
        narrow = bool(_attribute(node, "narrow", 0))
        width = float(constant(out_width))
        step = 2.0 ** np.round(np.log2(constant(out_scale) / constant(scale)))
        step_value = op.Constant(value=ir.tensor(np.asarray(step, np.float32)))
        rounded = op.Round(op.Add(op.Div(x, scale), zeropt))
        lowest = _scalar(op, min_int(signed, narrow, width))
        highest = _scalar(op, max_int(signed, narrow, width))
        clipped = op.Min(op.Max(op.Div(rounded, step_value), lowest), highest)
        code = _round(op, clipped, rounding)
        shifted_zero = op.Constant(value=ir.tensor(np.asarray(constant(zeropt) / step, np.float32)))
        self.record(out, "activation", width, False, "standard ONNX", rounding)
        return op.Mul(op.Sub(code, shifted_zero), out_scale)


class MultiThreshold(_QonnxRule):
    """FINN's ``MultiThreshold(x, T)`` with constant thresholds → comparisons summed per
    channel; one threshold per channel with outputs ±c → ``Where(x ≥ t, c, −c)``, a site."""

    op_type = "MultiThreshold"

    def pattern(self, op, x, thresholds):
        return super().pattern(op, x, thresholds)

    def check(self, context, x, thresholds, out, **_) -> MatchResult:
        result = MatchResult()
        values = constant(thresholds)
        if values is None or values.ndim != 2:
            return result.fail("the thresholds are not a constant (channels, steps) matrix", x)
        if x.shape is None:
            return result.fail("the input's rank is unknown (run shape inference)", x)
        return result

    def rewrite(self, op, x, thresholds, out, **_):
        node = out.producer()
        values = constant(thresholds).astype(np.float32)
        rank = len(x.shape)
        layout = str(_attribute(node, "data_layout", "") or "")
        if not layout:
            layout = {2: "NC", 3: "NWC", 4: "NCHW"}.get(rank, "")
        channel_axis = layout.index("C") if "C" in layout else 1
        scale = float(_attribute(node, "out_scale", 1.0))
        bias = float(_attribute(node, "out_bias", 0.0))
        broadcast = [1] * rank
        broadcast[channel_axis] = values.shape[0]
        steps = values.shape[1]
        high, low = scale * steps + bias, bias
        if steps == 1 and high > 0 and np.isclose(high, -low):
            per_channel = op.Constant(value=ir.tensor(values.reshape(broadcast)))
            self.record(out, "activation", 1, True, "binary site")
            return op.Where(op.GreaterOrEqual(x, per_channel), _scalar(op, high), _scalar(op, low))
        stacked = op.Constant(value=ir.tensor(values.reshape([*broadcast, steps])))
        axis = op.Constant(value=ir.tensor(np.array([-1], np.int64)))
        above = op.Cast(op.GreaterOrEqual(op.Unsqueeze(x, axis), stacked), to=ir.DataType.FLOAT)
        count = op.ReduceSum(above, axis, keepdims=0)
        self.record(
            out,
            "activation",
            float(np.log2(steps + 1)),
            False,
            "standard ONNX",
            f"{steps} thresholds",
        )
        return op.Add(op.Mul(count, _scalar(op, scale)), _scalar(op, bias))


FIRST_PASS = (
    BipolarQuantWeights,
    BipolarQuantActivations,
    QuantWeights,
    QuantActivations,
    TruncV1,
    TruncV2,
)


def lower_qonnx(model: ir.Model) -> list[Lowered]:
    """Lower every QONNX/FINN quantizer of ``model`` (onnx_ir, in place) that the rules
    cover — ``MultiThreshold`` last, once shapes are inferred, as it needs its input's rank —
    and drop the weight inputs the folding left unused, and the QONNX opsets once no node uses
    them. Returns what was lowered, in rewrite order; nodes the rules cannot lower (see
    :func:`unlowered_nodes`) stay."""
    log: list[Lowered] = []
    first = RewriteRuleSet(
        [rule.rule(domain, log) for rule in FIRST_PASS for domain in QONNX_DOMAINS]
    )
    first.apply_to_model(model)
    if any(node.op_type == "MultiThreshold" for node in model.graph):
        _infer_shapes_in_place(model)
        second = RewriteRuleSet([MultiThreshold.rule(domain, log) for domain in QONNX_DOMAINS])
        second.apply_to_model(model)
    _drop_unused_weight_inputs(model)
    remaining = {node.domain for node in model.graph.all_nodes()}
    for domain in QONNX_DOMAINS:
        if domain not in remaining:
            model.opset_imports.pop(domain, None)
    return log


def unlowered_nodes(model: ir.Model) -> list[ir.Node]:
    """Nodes of a QONNX/FINN domain still in ``model`` (nothing lowers them)."""
    return [node for node in model.graph.all_nodes() if node.domain in QONNX_DOMAINS]


def _infer_shapes_in_place(model: ir.Model) -> None:
    """Shape inference's types and shapes copied onto ``model``'s values (custom ops are
    skipped by the inference, not refused)."""
    import onnx

    try:
        inferred = ir.from_proto(onnx.shape_inference.infer_shapes(ir.to_proto(model)))
    except Exception:  # noqa: BLE001 - a model inference cannot type keeps its shapes unknown
        return
    known = {value.name: value for node in inferred.graph for value in node.outputs if value.shape}
    for node in model.graph:
        for value in node.outputs:
            twin = known.get(value.name)
            if twin is not None and value.shape is None:
                value.shape, value.type = twin.shape, value.type or twin.type


def _drop_unused_weight_inputs(model: ir.Model) -> None:
    """Graph inputs backed by an initializer (weights of IR < 4 exports, as Brevitas' and
    torch's) that no node reads any more, with their initializers."""
    graph = model.graph
    unused = [
        value
        for value in graph.inputs
        if value.const_value is not None and not value.uses() and not value.is_graph_output()
    ]
    for value in unused:
        graph.inputs.remove(value)
        graph.initializers.pop(value.name, None)
