r"""``xnorfault.BitFlip``: the flip of one binary site as one ONNX node.

A model-local ONNX function (domain ``xnorfault``) written in onnxscript, so that its body reads
line by line like the numpy reference, :func:`xnorfault.graph.generator.flip_mask`::

    flipped = BitFlip<site_index>(x, p_pos, p_neg, flip_seed)

negates each element of ``x`` independently, with probability ``p_pos`` where it is ≥ 0 and
``p_neg`` where it is negative (write errors +1→−1 and −1→+1 of a binary activation).

- **Exact Bernoulli flips by geometric skipping.** The gaps between flipped elements of a
  Bernoulli(p) process are geometric: :math:`G_j = \lfloor \ln U_j / \ln(1-p) \rfloor`, flipped
  positions :math:`\sum_{i\le j}(G_i + 1) - 1`. Only
  :math:`K = \lceil Np + 10\sqrt{Np} + 16\rceil` gaps are drawn for N elements, so the cost
  follows the number of flips, not N, and
  a ``ScatterElements`` (reduction ``mul``) applies the −1 factors.
- **Unequal polarity rates** thin candidates drawn at :math:`p = \max(p_{+\to-}, p_{-\to+})`:
  one of sign s is kept with probability :math:`p_s/p`. The usual equal-rate case skips the
  thinning (an ``If``), and with it the gather of values and the second stream.
- **Per-address rates** (a chip whose cells differ, :mod:`xnorfault.mram.chips`): ``p_pos`` and
  ``p_neg`` may each be a vector of one rate per element of one image instead of a scalar.
  Candidates are drawn at the largest rate of either map and a candidate at address a of
  sign s is kept with probability :math:`p_s[a]/p`, so every write still fails exactly with its
  own cell's rate, at a cost that follows the flips.
- **Randomness** from SplitMix64 (:mod:`xnorfault.graph.generator`) in integer ONNX ops: stream keys
  :math:`\mathrm{mix64}(s \oplus c_{i,k})` of the ``flip_seed`` s and constants of site
  ``site_index`` i. onnxruntime's own random ops repeat their pattern after a few thousand
  large runs and give equal streams to sessions of one model, so ``RandomUniform`` is used only
  for a negative ``flip_seed`` (the default of injected models): each site then draws a seed of
  53 random bits at each run.

onnxruntime inlines model-local functions when it loads a model, so the function costs nothing
over the same nodes written into the graph; Netron shows one ``BitFlip`` node per site. The
helpers ``Mix64`` and ``Uniforms`` are inlined into ``BitFlip`` (:func:`bitflip_function`), so
the model holds one function. Import this module only to build the function: it needs
onnxscript.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx.inliner
from onnx import TensorProto, numpy_helper
from onnxscript import DOUBLE, FLOAT, INT64, UINT64, script
from onnxscript import opset18 as op
from onnxscript.values import Opset

from xnorfault.errors import XnorfaultError
from xnorfault.graph.contract import BITFLIP_DOMAIN, BITFLIP_OP, BITFLIP_PREVIOUS_OP
from xnorfault.graph.generator import GOLDEN, MIX_MULTIPLIERS, MIX_SHIFTS, STREAMS_PER_SITE

BITFLIP_OPSET = Opset(BITFLIP_DOMAIN, 1)
OPSET_VERSION = 18  # bitwise ops and ScatterElements' reduction "mul"


def _constant(value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype))


SHIFT_A, SHIFT_B, SHIFT_C = (_constant(shift, np.uint64) for shift in MIX_SHIFTS)
MULTIPLIER_A, MULTIPLIER_B = (_constant(m, np.uint64) for m in MIX_MULTIPLIERS)
PHI = _constant(GOLDEN, np.uint64)
TOP_53 = _constant(11, np.uint64)  # 64 - 53 bits
STREAMS = _constant(STREAMS_PER_SITE, np.uint64)
FIRST_STREAMS = _constant([1, 2], np.uint64)
HALF = _constant(0.5, np.float64)
TWO_TO_53, TWO_TO_MINUS_53 = _constant(2.0**53, np.float64), _constant(2.0**-53, np.float64)
ONE, TEN, MARGIN = (_constant(v, np.float64) for v in (1.0, 10.0, 16.0))
TINY_LOG, TINY_P = _constant(-1e-300, np.float64), _constant(1e-300, np.float64)
ZERO_INDEX, ONE_INDEX = _constant(0, np.int64), _constant(1, np.int64)
MINUS_ONE_INDEX = _constant(-1, np.int64)
ONE_SHAPE = _constant([1], np.int64)
FALSE_VECTOR = _constant([False], np.bool_)  # ConstantOfShape's value is a one-element vector
TRUE = _constant(True, np.bool_)
FLAT = _constant([-1], np.int64)
MINUS_ONE_F32, PLUS_ONE_F32, ZERO_F32 = (_constant(v, np.float32) for v in (-1.0, 1.0, 0.0))


@script(BITFLIP_OPSET, default_opset=op)
def Mix64(z: UINT64) -> UINT64:
    """SplitMix64 finaliser (:func:`xnorfault.graph.generator.mix64`)."""
    z = op.BitwiseXor(z, op.BitShift(z, op.Constant(value=SHIFT_A), direction="RIGHT"))
    z = op.Mul(z, op.Constant(value=MULTIPLIER_A))
    z = op.BitwiseXor(z, op.BitShift(z, op.Constant(value=SHIFT_B), direction="RIGHT"))
    z = op.Mul(z, op.Constant(value=MULTIPLIER_B))
    z = op.BitwiseXor(z, op.BitShift(z, op.Constant(value=SHIFT_C), direction="RIGHT"))
    return z


@script(BITFLIP_OPSET, default_opset=op)
def Uniforms(key: UINT64, weyl: UINT64) -> DOUBLE:
    """(mix64(key + j φ) >> 11 + 1/2) 2^-53 for the Weyl sequence j φ
    (:func:`xnorfault.graph.generator.uniforms`)."""
    hashed = Mix64(op.Add(key, weyl))
    top = op.Cast(
        op.BitShift(hashed, op.Constant(value=TOP_53), direction="RIGHT"), to=TensorProto.DOUBLE
    )
    return op.Mul(op.Add(top, op.Constant(value=HALF)), op.Constant(value=TWO_TO_MINUS_53))


@script(BITFLIP_OPSET, default_opset=op)
def StreamKeys(flip_seed: INT64, site: UINT64) -> UINT64:
    """The site's two stream keys mix64(seed ^ mix64((2 i + 1, 2 i + 2) φ)) (as
    :func:`xnorfault.graph.generator.stream_keys`); a negative ``flip_seed`` draws 53 random bits."""
    draw = op.RandomUniform(dtype=TensorProto.DOUBLE, shape=[])
    drawn_seed = op.Cast(op.Floor(op.Mul(draw, op.Constant(value=TWO_TO_53))), to=TensorProto.INT64)
    seed = op.Where(op.Less(flip_seed, op.Constant(value=ZERO_INDEX)), drawn_seed, flip_seed)
    numbers = op.Add(op.Mul(site, op.Constant(value=STREAMS)), op.Constant(value=FIRST_STREAMS))
    constants = Mix64(op.Mul(numbers, op.Constant(value=PHI)))
    return Mix64(op.BitwiseXor(constants, op.Cast(seed, to=TensorProto.UINT64)))


@script(BITFLIP_OPSET, default_opset=op)
def CandidateWeyl(size: DOUBLE, rate: DOUBLE) -> UINT64:
    """The Weyl sequence j φ for j < K = ceil(N p + 10 sqrt(N p) + 16) (as
    :func:`xnorfault.graph.generator.gap_count`): one term per candidate gap of N elements at rate p."""
    mean = op.Mul(size, rate)
    spread = op.Mul(op.Sqrt(mean), op.Constant(value=TEN))
    gap_count = op.Cast(
        op.Ceil(op.Add(op.Add(mean, spread), op.Constant(value=MARGIN))), to=TensorProto.INT64
    )
    counter = op.Range(op.Constant(value=ZERO_INDEX), gap_count, op.Constant(value=ONE_INDEX))
    return op.Mul(op.Cast(counter, to=TensorProto.UINT64), op.Constant(value=PHI))


@script(BITFLIP_OPSET, default_opset=op)
def WriteFailures(flat: FLOAT, rate_pos: DOUBLE, rate_neg: DOUBLE, keys: UINT64):
    """Positions (clipped into range) of the candidate failures, and which of them fail: each
    element with the rate of its sign at its address, by geometric skipping and thinning (as
    :func:`xnorfault.graph.generator.flip_mask`). ``rate_pos`` and ``rate_neg`` are vectors of one
    rate, or of one rate per address (element of one image: flat index mod the map's length)."""
    gap_key = op.Gather(keys, op.Constant(value=ZERO_INDEX), axis=0)
    thin_key = op.Gather(keys, op.Constant(value=ONE_INDEX), axis=0)
    size = op.Cast(op.Size(flat), to=TensorProto.DOUBLE)
    both = op.Concat(rate_pos, rate_neg, axis=0)
    rate = op.ReduceMax(both, keepdims=0)
    weyl = CandidateWeyl(size, rate)
    # gaps G = floor(ln U / ln(1 - p)); positions = cumsum(G + 1) - 1
    log_q = op.Min(op.Log(op.Sub(op.Constant(value=ONE), rate)), op.Constant(value=TINY_LOG))
    gaps = op.Min(op.Floor(op.Div(op.Log(Uniforms(gap_key, weyl)), log_q)), size)
    positions = op.Sub(
        op.CumSum(op.Add(gaps, op.Constant(value=ONE)), op.Constant(value=ZERO_INDEX)),
        op.Constant(value=ONE),
    )
    valid = op.Less(positions, size)
    clipped = op.Cast(op.Min(positions, op.Sub(size, op.Constant(value=ONE))), to=TensorProto.INT64)
    if op.Equal(rate, op.ReduceMin(both, keepdims=0)):
        failed = op.Identity(valid)
    else:
        # thinning: a candidate of sign s at address a is kept when its uniform is below
        # p_s[a] / p (a rate given once applies to every address)
        nonnegative = op.GreaterOrEqual(
            op.Gather(flat, clipped, axis=0), op.Constant(value=ZERO_F32)
        )
        safe_rate = op.Max(rate, op.Constant(value=TINY_P))
        pos_here = op.Gather(rate_pos, op.Mod(clipped, op.Size(rate_pos)), axis=0)
        neg_here = op.Gather(rate_neg, op.Mod(clipped, op.Size(rate_neg)), axis=0)
        keep = op.Where(nonnegative, op.Div(pos_here, safe_rate), op.Div(neg_here, safe_rate))
        failed = op.And(valid, op.Less(Uniforms(thin_key, weyl), keep))
    return clipped, failed


@script(BITFLIP_OPSET, default_opset=op)
def BitFlip(
    x: FLOAT,
    p_pos: FLOAT,
    p_neg: FLOAT,
    flip_seed: INT64,
    site_index: int,
    reset_state: int,
) -> FLOAT:
    """Negate each element of ``x`` with probability ``p_pos`` (x ≥ 0) or ``p_neg`` (x < 0),
    each a scalar or one rate per address of an image (a chip's cells); ``reset_state`` ±1
    (write model ``reset``) makes the rate of that value 0."""
    site = op.Cast(op.Constant(value_int=site_index), to=TensorProto.UINT64)
    keys = StreamKeys(flip_seed, site)
    # float32 inside (onnxruntime's ScatterElements multiplies no float16); exact for ±c values,
    # and onnxruntime removes the casts of a float32 site
    flat = op.Cast(op.Reshape(x, op.Constant(value=FLAT)), to=TensorProto.FLOAT)
    reset = op.Constant(value_int=reset_state)
    rate_pos = op.Mul(
        op.Cast(op.Reshape(p_pos, op.Constant(value=FLAT)), to=TensorProto.DOUBLE),
        op.Cast(op.Not(op.Equal(reset, op.Constant(value=ONE_INDEX))), to=TensorProto.DOUBLE),
    )
    rate_neg = op.Mul(
        op.Cast(op.Reshape(p_neg, op.Constant(value=FLAT)), to=TensorProto.DOUBLE),
        op.Cast(op.Not(op.Equal(reset, op.Constant(value=MINUS_ONE_INDEX))), to=TensorProto.DOUBLE),
    )
    clipped, failed = WriteFailures(flat, rate_pos, rate_neg, keys)
    factors = op.Where(failed, op.Constant(value=MINUS_ONE_F32), op.Constant(value=PLUS_ONE_F32))
    flipped = op.ScatterElements(flat, clipped, factors, axis=0, reduction="mul")
    return op.CastLike(op.Reshape(flipped, op.Shape(x)), x)


@script(BITFLIP_OPSET, default_opset=op)
def BitFlipPrevious(
    x: FLOAT,
    p_pos: FLOAT,
    p_neg: FLOAT,
    flip_seed: INT64,
    site_index: int,
    initial_state: int,
) -> FLOAT:
    """Write model ``previous``: image i of the batch writes over what image i − 1 left stored;
    a write fails (rate of the value written) only where the stored value differs, and then
    reads the stored value (:func:`xnorfault.graph.generator.write_mask`). The stored value before a
    failure at step j is the value written at the last step before j that did not fail at that
    address (a run of failures keeps the cell unchanged), or ``initial_state`` (−1, +1, or 0 for
    a random ±1 per address) before the first image."""
    site = op.Cast(op.Constant(value_int=site_index), to=TensorProto.UINT64)
    keys = StreamKeys(flip_seed, site)
    flat = op.Cast(op.Reshape(x, op.Constant(value=FLAT)), to=TensorProto.FLOAT)
    rate_pos = op.Cast(op.Reshape(p_pos, op.Constant(value=FLAT)), to=TensorProto.DOUBLE)
    rate_neg = op.Cast(op.Reshape(p_neg, op.Constant(value=FLAT)), to=TensorProto.DOUBLE)
    clipped, failed = WriteFailures(flat, rate_pos, rate_neg, keys)
    events = op.Compress(clipped, failed)
    size = op.Size(x)
    per_image = op.Div(size, op.Gather(op.Shape(x), op.Constant(value=ZERO_INDEX), axis=0))
    marked = op.ScatterElements(
        op.ConstantOfShape(op.Reshape(size, op.Constant(value=ONE_SHAPE)), value=FALSE_VECTOR),
        events,
        op.Expand(op.Constant(value=TRUE), op.Shape(events)),
        axis=0,
    )
    # walk back over runs of failures at the same address to the last write that held
    zero = op.Constant(value=ZERO_INDEX)
    plus, minus = op.Constant(value=PLUS_ONE_F32), op.Constant(value=MINUS_ONE_F32)
    before = op.Sub(events, per_image)
    earlier = op.And(
        op.GreaterOrEqual(before, zero), op.Gather(marked, op.Max(before, zero), axis=0)
    )
    # only failures preceded by a failure walk on (a share p of them, then p² …): the loop
    # carries that shrinking set, its positions in ``events`` and how far back each has come
    chained = op.Compress(op.Range(zero, op.Size(events), op.Constant(value=ONE_INDEX)), earlier)
    reach = op.Compress(before, earlier)
    walking = op.Greater(op.Size(chained), zero)
    while walking:
        reach = op.Sub(reach, per_image)
        before = op.ScatterElements(before, chained, reach, axis=0)
        onward = op.And(
            op.GreaterOrEqual(reach, zero), op.Gather(marked, op.Max(reach, zero), axis=0)
        )
        chained = op.Compress(chained, onward)
        reach = op.Compress(reach, onward)
        walking = op.Greater(op.Size(chained), zero)
    # the initial state: -1, +1, or (drawn only then) a random ±1 per address from a third stream
    state = op.Constant(value_int=initial_state)
    if op.Equal(state, zero):
        address = op.Cast(op.Mod(events, per_image), to=TensorProto.UINT64)
        initial_key = Mix64(
            op.BitwiseXor(
                op.Gather(keys, op.Constant(value=ONE_INDEX), axis=0), op.Constant(value=PHI)
            )
        )
        uniform = Uniforms(initial_key, op.Mul(address, op.Constant(value=PHI)))
        initial = op.Where(op.Less(uniform, op.Constant(value=HALF)), plus, minus)
    else:
        initial = op.Expand(op.Cast(state, to=TensorProto.FLOAT), op.Shape(events))
    held = op.Where(
        op.GreaterOrEqual(before, zero),
        op.Where(
            op.GreaterOrEqual(
                op.Gather(flat, op.Max(before, zero), axis=0), op.Constant(value=ZERO_F32)
            ),
            plus,
            minus,
        ),
        initial,
    )
    written = op.Where(
        op.GreaterOrEqual(op.Gather(flat, events, axis=0), op.Constant(value=ZERO_F32)), plus, minus
    )
    factors = op.Where(op.Equal(held, written), plus, minus)
    flipped = op.ScatterElements(flat, events, factors, axis=0, reduction="mul")
    return op.CastLike(op.Reshape(flipped, op.Shape(x)), x)


FUNCTIONS = {BITFLIP_OP: BitFlip, BITFLIP_PREVIOUS_OP: BitFlipPrevious}


@functools.cache
def _function_bytes(opset_version: int, name: str) -> bytes:
    helpers = [
        helper.to_function_proto()
        for helper in (Mix64, Uniforms, StreamKeys, CandidateWeyl, WriteFailures)
    ]
    bitflip = FUNCTIONS[name].to_function_proto()
    holder = onnx.helper.make_model(
        onnx.helper.make_graph([], "holder", [], []),
        opset_imports=[
            onnx.helper.make_opsetid("", OPSET_VERSION),
            onnx.helper.make_opsetid(BITFLIP_DOMAIN, 1),
        ],
        functions=[bitflip, *helpers],
    )
    helper_ids = [(f.domain, f.name) for f in helpers]
    inlined = onnx.inliner.inline_selected_functions(holder, helper_ids, exclude=False)
    (function,) = [f for f in inlined.functions if f.name == name]
    del function.opset_import[:]
    function.opset_import.append(onnx.helper.make_opsetid("", opset_version))
    # x and the result take any float type (cast to float32 inside): no declared type
    kept = [v for v in function.value_info if v.name not in (*function.input[:1], *function.output)]
    del function.value_info[:]
    function.value_info.extend(kept)
    return function.SerializeToString()


def bitflip_function(
    opset_version: int = OPSET_VERSION, name: str = BITFLIP_OP
) -> onnx.FunctionProto:
    """The ONNX function ``xnorfault.BitFlip`` (or ``xnorfault.BitFlipPrevious``, write model
    ``previous``; a fresh copy), its helpers inlined, importing the default domain at
    ``opset_version`` — the model's own, as ONNX requires of a model-local function. Every
    operator of the body has kept its semantics for the types used here since opset 18 (later
    versions of ``Cast``, ``Reshape``, ``Shape``, ``Size``, ``Equal``, ``Constant`` and ``If``
    add element types only), which the tests check up to the newest opset onnxruntime
    implements them at (21 for onnxruntime 1.32, which has no opset-22 ``RandomUniform``
    kernel: a model of opset 22 or later fails to load there, in one line)."""
    newest = onnx.defs.onnx_opset_version()
    if not OPSET_VERSION <= opset_version <= newest:
        raise XnorfaultError(
            f"the model's ONNX opset {opset_version} is outside {OPSET_VERSION}–{newest}, the "
            "opsets xnorfault's flips are built for: convert the model (onnx.version_converter)"
        )
    return onnx.FunctionProto.FromString(_function_bytes(opset_version, name))


__all__ = ["BitFlip", "BitFlipPrevious", "OPSET_VERSION", "bitflip_function"]
