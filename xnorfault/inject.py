r"""Graph rewrite: random bit flips at every binary activation of an ONNX model.

For each binary site (a tensor of ±c values) the pass inserts a subgraph that negates each
element independently with probability :math:`p_{+\to-}` where it is positive and
:math:`p_{-\to+}` where it is negative, and rewires the site's consumers to the flipped tensor.
The rates are graph inputs ``p_flip_pos.<site>`` / ``p_flip_neg.<site>`` (float scalars) whose
defaults are the rates given at injection, so one file serves a whole sweep; ``flip_seed``
(int64 scalar) makes the draw reproducible.

Exact Bernoulli flips by geometric skipping. The gaps between flipped elements of a Bernoulli(p)
process are geometric: with :math:`U_j` uniform on (0, 1),
:math:`G_j = \lfloor \ln U_j / \ln(1-p) \rfloor` and the flipped positions are
:math:`\sum_{i\le j}(G_i + 1) - 1`. Only :math:`K = \lceil Np + 10\sqrt{Np} + 16\rceil` gaps are
drawn for a tensor of N elements (the chance that they do not reach the end is below
:math:`10^{-20}`), so the cost scales with the number of flips, not with N; a
``ScatterElements`` (reduction ``mul``) applies the −1 factors. Unequal polarity rates thin the
candidates drawn at :math:`p = \max(p_{+\to-}, p_{-\to+})`: a candidate holding value of sign s
is kept with probability :math:`p_s/p` (independent thinning of a Bernoulli process is again
Bernoulli, with rate :math:`p_s`).

Randomness that survives long campaigns. onnxruntime's ``RandomUniformLike`` repeats its pattern
after a few thousand large runs and gives equal streams to sessions of one model. The uniforms
here come from a counter-based generator built of integer ONNX ops — SplitMix64: the j-th
draw of a stream with key k is :math:`\mathrm{mix64}(k + j\varphi)`, :math:`\varphi` =
0x9E3779B97F4A7C15, mix64 the SplitMix64 finaliser (z ^= z>>30; z *= 0xbf58476d1ce4e5b9;
z ^= z>>27; z *= 0x94d049bb133111eb; z ^= z>>31), its top 53 bits giving a double — and each
stream's 64-bit key is mix64(``flip_seed`` XOR a constant per site and stream). Feeding
a new seed each run (``xnorfault.runtimes`` does: the user's seed and the run index) gives
independent masks that never repeat and are reproducible. With the default ``flip_seed = -1``
the seed is drawn from onnxruntime's own generator at each run (convenient, but subject to its
limits above).

Sites are found from the ``xnorfault.binary_sites`` metadata of exported models, or by pattern in
foreign graphs: ``Where(GreaterOrEqual(x, 0), c, -c)`` (and its ``Greater``/``Less`` variants),
``Sign``, and QONNX ``BipolarQuant`` (lowered to the ``Where`` form so onnxruntime can run it;
weight ``BipolarQuant`` nodes are folded to constants). Imports numpy and onnx only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xnorfault.contract import INJECTED_KEY, SEED_INPUT, SITES_KEY, rate_input_names
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSpec, FlipRates

FLIP_PREFIX = "xnorfault/flip/"
TENSOR_PREFIX = "xnorfault_flip."
GOLDEN = 0x9E3779B97F4A7C15
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
MIX_SHIFTS = (30, 27, 31)


def flipped_name(site: str) -> str:
    return f"{site}.flipped"


# --- the counter-based generator, in numpy (the reference the graph is tested against) --------


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic); a bijection of 64-bit words."""
    x = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(MIX_SHIFTS[0])
        x *= np.uint64(MIX_MULTIPLIERS[0])
        x ^= x >> np.uint64(MIX_SHIFTS[1])
        x *= np.uint64(MIX_MULTIPLIERS[1])
        x ^= x >> np.uint64(MIX_SHIFTS[2])
    return x


def stream_constants(site_index: int) -> np.ndarray:
    """Two distinct constants per site (streams: gaps, thinning)."""
    with np.errstate(over="ignore"):
        return mix64(
            np.array([2 * site_index + 1, 2 * site_index + 2], dtype=np.uint64) * np.uint64(GOLDEN)
        )


def stream_keys(seed: int, site_index: int) -> np.ndarray:
    r"""Keys of a site's two streams for a non-negative ``seed``:
    :math:`\mathrm{mix64}(s \oplus c)`. mix64 is a bijection, so distinct seeds give distinct
    keys (64-bit keys: no birthday collisions among the seeds of a long campaign)."""
    return mix64(stream_constants(site_index) ^ np.uint64(seed))


def uniforms(key: np.uint64, count: int) -> np.ndarray:
    r"""The first ``count`` uniforms (float64 in (0, 1)) of the stream with ``key``:
    :math:`(\lfloor h/2^{11}\rfloor + 1/2)\,2^{-53}` with :math:`h = \mathrm{mix64}(k + j\varphi)`."""
    j = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(key) + j * np.uint64(GOLDEN))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def run_seed(base_seed: int, run_index: int) -> int:
    """A distinct non-negative 62-bit ``flip_seed`` for run ``run_index`` of a campaign started
    with ``base_seed`` (SplitMix64 of the pair): feed one per ``run()`` for independent,
    reproducible masks."""
    value = (int(base_seed) * 0x9E3779B97F4A7C15 + int(run_index) + 1) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (value ^ (value >> 31)) >> 2


# --- loading and site discovery ----------------------------------------------------------------


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file with a clear error for a missing or malformed one."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"model file {path} not found")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # protobuf raises its own DecodeError types
        raise XnorfaultError(f"{path} is not a valid ONNX model ({type(error).__name__})") from None
    if not model.graph.node:
        raise XnorfaultError(f"{path} is not a valid ONNX model (its graph has no nodes)")
    return model


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def _initializers(model) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _constant_value(model, name: str, initializers: dict) -> np.ndarray | None:
    if name in initializers:
        return initializers[name]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
    return None


def _producers(model) -> dict[str, onnx.NodeProto]:
    return {output: node for node in model.graph.node for output in node.output}


def find_binary_sites(model: onnx.ModelProto) -> list[str]:
    """Tensor names of the binary activations, in graph order (metadata first, else patterns)."""
    tagged = metadata(model).get(SITES_KEY)
    if tagged:
        sites = json.loads(tagged)
        produced = set(_producers(model))
        missing = [s for s in sites if s not in produced]
        if missing:
            raise XnorfaultError(
                f"metadata names binary sites {', '.join(missing)} that no node produces"
            )
        return sites
    initializers = _initializers(model)
    producers = _producers(model)
    sites = []
    for node in model.graph.node:
        if node.name.startswith(FLIP_PREFIX):
            continue
        if node.op_type == "Sign":
            sites.append(node.output[0])
        elif node.op_type == "BipolarQuant" and node.input[0] not in initializers:
            sites.append(node.output[0])
        elif node.op_type == "Where" and _is_binarizing_where(model, node, producers, initializers):
            sites.append(node.output[0])
    return sites


def _is_binarizing_where(model, node, producers, initializers) -> bool:
    condition = producers.get(node.input[0])
    if condition is None or condition.op_type not in (
        "GreaterOrEqual",
        "Greater",
        "Less",
        "LessOrEqual",
    ):
        return False
    zero = _constant_value(model, condition.input[1], initializers)
    if zero is None or np.any(zero != 0):
        return False
    first = _constant_value(model, node.input[1], initializers)
    second = _constant_value(model, node.input[2], initializers)
    if first is None or second is None or not np.allclose(first, -second):
        return False
    positive_first = condition.op_type in ("GreaterOrEqual", "Greater")
    return bool(np.all(first > 0) if positive_first else np.all(first < 0))


def lower_bipolar_quant(model: onnx.ModelProto) -> int:
    """Replace QONNX ``BipolarQuant`` nodes in place: weight ones (constant input) by folded
    constants :math:`s\\,\\mathrm{sign}(w)` with sign(0)=+1, activation ones by
    ``Where(GreaterOrEqual(x, 0), s, -s)``. Returns the number of nodes lowered."""
    initializers = _initializers(model)
    lowered = 0
    new_nodes = []
    for node in model.graph.node:
        if node.op_type != "BipolarQuant":
            new_nodes.append(node)
            continue
        lowered += 1
        source, scale_name = node.input[0], node.input[1]
        scale = _constant_value(model, scale_name, initializers)
        if source in initializers:
            if scale is None:
                raise XnorfaultError(
                    f"BipolarQuant {node.name!r} has a weight input but no constant scale"
                )
            folded = np.where(initializers[source] >= 0, 1.0, -1.0).astype(
                np.float32
            ) * scale.astype(np.float32)
            model.graph.initializer.append(
                numpy_helper.from_array(folded.astype(np.float32), node.output[0])
            )
            continue
        stem = node.name or node.output[0]
        zero = f"{stem}.zero"
        negative = f"{stem}.negative_scale"
        condition = f"{stem}.nonnegative"
        model.graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), zero))
        new_nodes.append(
            helper.make_node("GreaterOrEqual", [source, zero], [condition], name=f"{stem}/ge")
        )
        if scale is not None:  # a constant scale keeps the Where recognisable as a binary site
            model.graph.initializer.append(
                numpy_helper.from_array(-scale.astype(np.float32), negative)
            )
        else:
            new_nodes.append(helper.make_node("Neg", [scale_name], [negative], name=f"{stem}/neg"))
        new_nodes.append(
            helper.make_node(
                "Where", [condition, scale_name, negative], [node.output[0]], name=f"{stem}/where"
            )
        )
    if lowered:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        remaining = {n.domain for n in model.graph.node}
        kept = [
            o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in remaining
        ]
        del model.opset_import[:]
        model.opset_import.extend(kept)
        if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("", 18))
    return lowered


def strip_flips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove flip subgraphs of an earlier injection (in place), restoring the clean wiring."""
    info = metadata(model).get(INJECTED_KEY)
    if info is None:
        return model
    sites = json.loads(info)["sites"]
    rename = {flipped_name(site): site for site in sites}
    removed_inputs = {SEED_INPUT} | {name for site in sites for name in rate_input_names(site)}
    kept = [n for n in model.graph.node if not n.name.startswith(FLIP_PREFIX)]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    for collection in (model.graph.initializer,):
        keep = [
            t
            for t in collection
            if t.name not in removed_inputs and not t.name.startswith(TENSOR_PREFIX)
        ]
        del collection[:]
        collection.extend(keep)
    inputs = [i for i in model.graph.input if i.name not in removed_inputs]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    outputs = []
    for output in model.graph.output:
        if output.name in rename:
            output.name = rename[output.name]
        if not any(o.name == output.name for o in outputs):
            outputs.append(output)
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    del model.graph.value_info[:]
    props = [p for p in model.metadata_props if p.key != INJECTED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    return model


# --- the rewrite ---------------------------------------------------------------------------------


@dataclass
class _Nodes:
    nodes: list
    initializers: list
    value_info: list = field(default_factory=list)

    def const(self, name: str, value, dtype) -> str:
        full = TENSOR_PREFIX + name
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype), full))
        return full

    def add(self, op: str, inputs: list[str], output: str, stem: str, **attributes) -> str:
        full = output if output.endswith(".flipped") else TENSOR_PREFIX + output
        self.nodes.append(
            helper.make_node(
                op, inputs, [full], name=f"{FLIP_PREFIX}{stem}/{op}/{output}", **attributes
            )
        )
        return full


def _mix64(g: _Nodes, x: str, stem: str, constants: dict) -> str:
    for step, (shift, multiplier) in enumerate(
        zip(MIX_SHIFTS, (*MIX_MULTIPLIERS, None), strict=True)
    ):
        shifted = g.add(
            "BitShift", [x, constants[shift]], f"{stem}.shr{step}", stem, direction="RIGHT"
        )
        x = g.add("BitwiseXor", [x, shifted], f"{stem}.xor{step}", stem)
        if multiplier is not None:
            x = g.add("Mul", [x, constants[multiplier]], f"{stem}.mul{step}", stem)
    return x


def inject_flips(
    model: onnx.ModelProto,
    rates: FaultSpec | FlipRates | dict[str, FlipRates],
    sites: list[str] | None = None,
    source: dict | None = None,
    expose: bool = False,
) -> onnx.ModelProto:
    """A copy of ``model`` with bit flips at its binary sites (``sites`` restricts them).

    ``rates``: one :class:`FlipRates` for every site, a mapping per site, or a
    :class:`FaultSpec` (its activation rates, per-layer overrides included). Flips already
    injected are replaced, not stacked. ``expose`` adds each site's clean and flipped tensors as
    graph outputs (for tests). ``source`` is recorded in the metadata (e.g. the MRAM operating
    point).
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    strip_flips(model)
    lower_bipolar_quant(model)
    model = _ensure_opset(model, 18)
    found = find_binary_sites(model)
    if not found:
        raise XnorfaultError(
            "no binary activation found: expected xnorfault.binary_sites metadata, "
            "Where(GreaterOrEqual(x, 0), c, -c), Sign or BipolarQuant nodes"
        )
    if sites is not None:
        unknown = [s for s in sites if s not in found]
        if unknown:
            raise XnorfaultError(
                f"unknown site(s) {', '.join(unknown)}: the model's binary sites are {', '.join(found)}"
            )
        chosen = [s for s in found if s in sites]
    else:
        chosen = found
    _check_site_types(model, chosen)
    site_rates = {site: _rates_for(rates, site) for site in chosen}

    g = _Nodes([], [])
    constants = {
        MIX_SHIFTS[0]: g.const("u64_shift_a", MIX_SHIFTS[0], np.uint64),
        MIX_SHIFTS[1]: g.const("u64_shift_b", MIX_SHIFTS[1], np.uint64),
        MIX_SHIFTS[2]: g.const("u64_shift_c", MIX_SHIFTS[2], np.uint64),
        MIX_MULTIPLIERS[0]: g.const("u64_mul_a", MIX_MULTIPLIERS[0], np.uint64),
        MIX_MULTIPLIERS[1]: g.const("u64_mul_b", MIX_MULTIPLIERS[1], np.uint64),
    }
    golden = g.const("u64_golden", GOLDEN, np.uint64)
    # seed: the input, or (when negative) 53 random bits from onnxruntime's generator
    negative_seed = g.add(
        "Less", [SEED_INPUT, g.const("i64_zero", 0, np.int64)], "seed_negative", "seed"
    )
    one_shape = g.const("shape_one", [1], np.int64)
    zeros = helper.make_tensor("v", TensorProto.DOUBLE, [1], [0.0])
    draw_shape = g.add("ConstantOfShape", [one_shape], "seed_draw_shape", "seed", value=zeros)
    draw = g.add("RandomUniformLike", [draw_shape], "seed_draw", "seed", dtype=TensorProto.DOUBLE)
    scaled = g.add(
        "Floor",
        [g.add("Mul", [draw, g.const("f64_2p53", 2.0**53, np.float64)], "seed_scaled", "seed")],
        "seed_floor",
        "seed",
    )
    random_seed = g.add(
        "Cast",
        [g.add("ReduceSum", [scaled], "seed_sum", "seed", keepdims=0)],
        "seed_random",
        "seed",
        to=TensorProto.INT64,
    )
    seed = g.add("Where", [negative_seed, random_seed, SEED_INPUT], "seed_effective", "seed")
    seed_u64 = g.add("Cast", [seed], "seed_u64", "seed", to=TensorProto.UINT64)
    # keys of every (site, stream) at once: mix64(seed ^ constant)
    site_index = {site: found.index(site) for site in chosen}
    table = np.concatenate([stream_constants(site_index[s]) for s in chosen])
    keys = g.add(
        "BitwiseXor",
        [g.const("stream_constants", table, np.uint64), seed_u64],
        "keys_seeded",
        "keys",
    )
    keys = _mix64(g, keys, "keys", constants)

    clean_inputs = {i.name for i in model.graph.input}
    new_inputs = [helper.make_tensor_value_info(SEED_INPUT, TensorProto.INT64, [])]
    new_initializers = [numpy_helper.from_array(np.array(-1, np.int64), SEED_INPUT)]
    one_f64 = g.const("f64_one", 1.0, np.float64)
    for position, site in enumerate(chosen):
        pos_name, neg_name = rate_input_names(site)
        for name, value in (
            (pos_name, site_rates[site].pos_to_neg),
            (neg_name, site_rates[site].neg_to_pos),
        ):
            new_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, []))
            new_initializers.append(numpy_helper.from_array(np.array(value, np.float32), name))
        _site_subgraph(g, site, position, keys, constants, golden, one_f64, pos_name, neg_name)

    # rewire consumers of each site to its flipped tensor
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in site_rates:
                node.input[i] = flipped_name(name)
    for output in model.graph.output:
        if output.name in site_rates:
            output.name = flipped_name(output.name)
    model.graph.node.extend(g.nodes)
    model.graph.value_info.extend(g.value_info)
    model.graph.initializer.extend(g.initializers + new_initializers)
    model.graph.input.extend([i for i in new_inputs if i.name not in clean_inputs])
    _topological_sort(model)  # shape inference below needs the nodes in order
    if expose:
        known = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
        for site in chosen:
            for name in (site, flipped_name(site)):
                typed = onnx.ValueInfoProto()
                typed.CopyFrom(
                    known.get(site) or helper.make_tensor_value_info(site, TensorProto.FLOAT, None)
                )
                typed.name = name
                model.graph.output.append(typed)
    info = {
        "sites": chosen,
        "rates": {site: r.to_dict() for site, r in site_rates.items()},
        "seed_input": SEED_INPUT,
        "generator": "SplitMix64 counter-based generator, geometric skipping",
        "source": source or (rates.source if isinstance(rates, FaultSpec) else {}),
    }
    props = {p.key: p.value for p in model.metadata_props}
    props[INJECTED_KEY] = json.dumps(info)
    props.setdefault(SITES_KEY, json.dumps(found))
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def _check_site_types(model: onnx.ModelProto, sites: list[str]) -> None:
    """The flip subgraph multiplies float32 tensors: refuse sites of any other element type
    (a float64 model would otherwise yield a file onnxruntime cannot load)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as error:  # onnx raises InferenceError and plain RuntimeErrors
        raise XnorfaultError(
            f"the model does not pass ONNX shape inference ({type(error).__name__}): check it with onnx.checker"
        ) from None
    graph = inferred.graph
    types = {
        value.name: value.type.tensor_type.elem_type
        for value in [*graph.value_info, *graph.output, *graph.input]
    }
    wrong = {
        site: TensorProto.DataType.Name(types[site])
        for site in sites
        if types.get(site, TensorProto.UNDEFINED) not in (TensorProto.UNDEFINED, TensorProto.FLOAT)
    }
    if wrong:
        listed = ", ".join(f"{site} ({kind.lower()})" for site, kind in wrong.items())
        raise XnorfaultError(
            f"binary site(s) {listed} are not float32: xnorfault injects flips into float32 "
            "activations; export the model in float32"
        )


def _rates_for(rates, site: str) -> FlipRates:
    if isinstance(rates, FaultSpec):
        return rates.activation_rates(site)
    if isinstance(rates, FlipRates):
        return rates
    if site in rates:
        return rates[site]
    return FlipRates()


def _uniform(
    g: _Nodes, weyl: str, key: str, constants: dict, s: str, tag: str, consts: _Nodes
) -> str:
    """Uniforms in (0, 1) of one stream: (mix64(key + j φ) >> 11 + 1/2) 2^-53 in float64."""
    counter = g.add("Add", [weyl, key], f"{s}.{tag}.counter", s)
    hashed = _mix64(g, counter, f"{s}.{tag}", constants)
    top = g.add(
        "BitShift",
        [hashed, consts.const(f"{s}.{tag}.eleven", 11, np.uint64)],
        f"{s}.{tag}.top53",
        s,
        direction="RIGHT",
    )
    as_f64 = g.add("Cast", [top], f"{s}.{tag}.f64", s, to=TensorProto.DOUBLE)
    half = consts.const(f"{s}.{tag}.half", 0.5, np.float64)
    scale = consts.const(f"{s}.{tag}.scale", 2.0**-53, np.float64)
    shifted = g.add("Add", [as_f64, half], f"{s}.{tag}.half_added", s)
    return g.add("Mul", [shifted, scale], f"{s}.{tag}.uniform", s)


def _site_subgraph(
    g: _Nodes, site, position, keys, constants, golden, one_f64, pos_name, neg_name
) -> None:
    s = site
    c = g.const
    key_a = g.add(
        "Gather", [keys, c(f"{s}.key_a_index", 2 * position, np.int64)], f"{s}.key_a", s, axis=0
    )
    key_b = g.add(
        "Gather", [keys, c(f"{s}.key_b_index", 2 * position + 1, np.int64)], f"{s}.key_b", s, axis=0
    )
    flat = g.add("Reshape", [site, c(f"{s}.flat_shape", [-1], np.int64)], f"{s}.flat", s)
    count = g.add("Size", [site], f"{s}.count", s)
    count_f = g.add("Cast", [count], f"{s}.count_f64", s, to=TensorProto.DOUBLE)
    p_pos = g.add("Cast", [pos_name], f"{s}.p_pos", s, to=TensorProto.DOUBLE)
    p_neg = g.add("Cast", [neg_name], f"{s}.p_neg", s, to=TensorProto.DOUBLE)
    p_max = g.add("Max", [p_pos, p_neg], f"{s}.p_max", s)
    # number of gaps K = ceil(N p + 10 sqrt(N p) + 16)
    mean = g.add("Mul", [count_f, p_max], f"{s}.mean", s)
    root = g.add("Sqrt", [mean], f"{s}.sqrt", s)
    spread = g.add("Mul", [root, c(f"{s}.ten", 10.0, np.float64)], f"{s}.spread", s)
    mean_spread = g.add("Add", [mean, spread], f"{s}.mean_spread", s)
    total = g.add("Add", [mean_spread, c(f"{s}.margin", 16.0, np.float64)], f"{s}.k_f64", s)
    k = g.add("Cast", [g.add("Ceil", [total], f"{s}.k_ceil", s)], f"{s}.k", s, to=TensorProto.INT64)
    zero, one = c(f"{s}.zero", 0, np.int64), c(f"{s}.one", 1, np.int64)
    counter = g.add(
        "Cast", [g.add("Range", [zero, k, one], f"{s}.j", s)], f"{s}.j64", s, to=TensorProto.UINT64
    )
    weyl = g.add("Mul", [counter, golden], f"{s}.weyl", s)
    # gaps G = floor(ln U / ln(1 - p)); positions = cumsum(G + 1) - 1
    u_gap = _uniform(g, weyl, key_a, constants, s, "gap", g)
    log_q = g.add("Log", [g.add("Sub", [one_f64, p_max], f"{s}.q", s)], f"{s}.log_q", s)
    log_q = g.add("Min", [log_q, c(f"{s}.tiny", -1e-300, np.float64)], f"{s}.log_q_safe", s)
    ratio = g.add("Div", [g.add("Log", [u_gap], f"{s}.log_u", s), log_q], f"{s}.ratio", s)
    gaps = g.add("Min", [g.add("Floor", [ratio], f"{s}.gaps", s), count_f], f"{s}.gaps_clipped", s)
    steps = g.add("Add", [gaps, one_f64], f"{s}.steps", s)
    ends = g.add("CumSum", [steps, c(f"{s}.axis", 0, np.int64)], f"{s}.ends", s)
    positions = g.add("Sub", [ends, one_f64], f"{s}.positions_f64", s)
    valid = g.add("Less", [positions, count_f], f"{s}.valid", s)
    last = g.add("Sub", [count_f, one_f64], f"{s}.last", s)
    clipped = g.add("Min", [positions, last], f"{s}.positions_clipped", s)
    clipped = g.add("Cast", [clipped], f"{s}.positions", s, to=TensorProto.INT64)
    minus_one = c(f"{s}.minus_one", -1.0, np.float32)
    plus_one = c(f"{s}.plus_one", 1.0, np.float32)
    # Equal rates (the usual case) need no thinning: an If skips the gather of the values and
    # the second random stream.
    factor = f"{TENSOR_PREFIX}{s}.factor"
    symmetric = _Nodes([], [])
    symmetric.add("Where", [valid, minus_one, plus_one], f"{s}.factor_symmetric", s)
    asymmetric = _Nodes([], [])
    values = asymmetric.add("Gather", [flat, clipped], f"{s}.values", s, axis=0)
    zero_f32 = c(f"{s}.zero_f32", 0.0, np.float32)
    nonnegative = asymmetric.add("GreaterOrEqual", [values, zero_f32], f"{s}.nonnegative", s)
    safe_max = asymmetric.add(
        "Max", [p_max, c(f"{s}.tiny_p", 1e-300, np.float64)], f"{s}.p_max_safe", s
    )
    keep_pos = asymmetric.add("Div", [p_pos, safe_max], f"{s}.keep_pos", s)
    keep_neg = asymmetric.add("Div", [p_neg, safe_max], f"{s}.keep_neg", s)
    keep_probability = asymmetric.add(
        "Where", [nonnegative, keep_pos, keep_neg], f"{s}.keep_probability", s
    )
    thin = _uniform(asymmetric, weyl, key_b, constants, s, "thin", g)
    kept = asymmetric.add("Less", [thin, keep_probability], f"{s}.kept", s)
    flip = asymmetric.add("And", [valid, kept], f"{s}.flip", s)
    asymmetric.add("Where", [flip, minus_one, plus_one], f"{s}.factor_asymmetric", s)
    symmetric.nodes[-1].output[0] = factor
    asymmetric.nodes[-1].output[0] = factor
    branch_output = [helper.make_tensor_value_info(factor, TensorProto.FLOAT, [f"{s}_draws"])]
    equal = g.add("Equal", [p_pos, p_neg], f"{s}.equal_rates", s)
    chosen = f"{factor}.chosen"
    g.nodes.append(
        helper.make_node(
            "If",
            [equal],
            [chosen],
            name=f"{FLIP_PREFIX}{s}/If/factor",
            then_branch=helper.make_graph(symmetric.nodes, f"{s}_symmetric", [], branch_output),
            else_branch=helper.make_graph(asymmetric.nodes, f"{s}_asymmetric", [], branch_output),
        )
    )
    scattered = g.add(
        "ScatterElements", [flat, clipped, chosen], f"{s}.scattered", s, axis=0, reduction="mul"
    )
    # one symbolic size for the flat tensor and the scatter's output lets onnxruntime scatter
    # in place instead of copying the whole activation
    numel = [f"{s}_numel"]
    g.value_info += [
        helper.make_tensor_value_info(flat, TensorProto.FLOAT, numel),
        helper.make_tensor_value_info(scattered, TensorProto.FLOAT, numel),
    ]
    shape = g.add("Shape", [site], f"{s}.shape", s)
    g.add("Reshape", [scattered, shape], flipped_name(site), s)


def _topological_sort(model: onnx.ModelProto) -> None:
    """Order nodes so that every input is produced before use (flip subgraphs were appended)."""
    available = (
        {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    )
    pending = list(model.graph.node)
    needs = {id(node): _dependencies(node) for node in pending}
    ordered = []
    while pending:
        progressed = []
        for node in pending:
            if all(name in available for name in needs[id(node)]):
                ordered.append(node)
                available.update(node.output)
            else:
                progressed.append(node)
        if len(progressed) == len(pending):
            missing = sorted({n for node in pending for n in needs[id(node)] if n not in available})
            raise XnorfaultError(
                f"the graph cannot be ordered: tensors {', '.join(missing[:5])} are never produced"
            )
        pending = progressed
    del model.graph.node[:]
    model.graph.node.extend(ordered)


def _dependencies(node: onnx.NodeProto) -> set[str]:
    """Inputs of a node, including outer-scope names its subgraphs (If, Loop, Scan) read."""
    names = set(node.input)
    for attribute in node.attribute:
        graphs = (
            [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)
        )
        for graph in graphs:
            inner = {t.name for t in graph.initializer} | {i.name for i in graph.input}
            for inner_node in graph.node:
                names |= _dependencies(inner_node) - inner
                inner |= set(inner_node.output)
    names.discard("")
    return names


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> onnx.ModelProto:
    """The model at ONNX opset ``minimum`` or later (the flip subgraph needs opset 18's bitwise
    ops and ScatterElements reduction), converted with onnx's version converter if older."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), minimum)
    if version >= minimum:
        return model
    try:
        return onnx.version_converter.convert_version(model, minimum)
    except Exception as error:  # the converter raises plain RuntimeErrors with long messages
        raise XnorfaultError(
            f"the model uses ONNX opset {version} and could not be converted to opset {minimum}, "
            f"which flip injection needs ({type(error).__name__})"
        ) from None
