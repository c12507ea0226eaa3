r"""Graph rewrite: random bit flips at every binary activation of an ONNX model.

Each binary site (a tensor of ±c values) gets one node, ``xnorfault.BitFlip`` (a model-local ONNX
function, :mod:`xnorfault.bitflip`), that negates each element independently with probability
:math:`p_{+\to-}` where it is positive and :math:`p_{-\to+}` where it is negative; the site's
consumers read the flipped tensor ``SITE.flipped``. The rates are graph inputs
``p_flip_pos.SITE`` / ``p_flip_neg.SITE`` (float scalars, :func:`xnorfault.contract.rate_input_names`)
whose defaults are the rates given at injection, so one file serves a whole sweep; ``flip_seed``
(int64 scalar) makes the draw reproducible — feed :func:`xnorfault.generator.run_seed` of the
campaign's seed and the run index for independent masks; the default ``-1`` draws a seed from
onnxruntime's generator at each run.

Sites come from the ``xnorfault.binary_sites`` metadata of exported models, or from the patterns
of :mod:`xnorfault.sites` in foreign graphs, after QONNX ``BipolarQuant`` nodes are lowered.
Graph surgery uses onnx_ir (use-def rewiring, its topological sort and constant lookup);
the deployed side imports onnxscript only when it injects.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from xnorfault.contract import (
    BITFLIP_DOMAIN,
    BITFLIP_OP,
    INJECTED_KEY,
    SEED_INPUT,
    SITES_KEY,
    flipped_name,
    rate_input_names,
)
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSpec, FlipRates

GENERATOR = "SplitMix64 counter-based generator, geometric skipping (xnorfault.BitFlip)"
# Flips injected before BitFlip existed were loose nodes with these name prefixes; re-injection
# still removes them.
LEGACY_NODE_PREFIX = "xnorfault/flip/"
LEGACY_TENSOR_PREFIX = "xnorfault_flip."


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


def _produced(graph) -> dict:
    return {value.name: value for node in graph for value in node.outputs}


def _binary_sites(model) -> list[str]:
    """Site names of an onnx_ir model: its metadata's, else those the patterns find."""
    from xnorfault.sites import find_pattern_sites

    tagged = model.metadata_props.get(SITES_KEY)
    if tagged:
        sites = json.loads(tagged)
        produced = _produced(model.graph)
        missing = [s for s in sites if s not in produced]
        if missing:
            raise XnorfaultError(
                f"metadata names binary sites {', '.join(missing)} that no node produces"
            )
        return sites
    return find_pattern_sites(model)


def find_binary_sites(model: onnx.ModelProto) -> list[str]:
    """Tensor names of the binary activations, in graph order (metadata first, else patterns;
    QONNX ``BipolarQuant`` activations count once lowered)."""
    import onnx_ir as ir

    from xnorfault.sites import lower_bipolar_quant

    graph = ir.from_proto(model)
    lower_bipolar_quant(graph)
    return _binary_sites(graph)


def _strip_flips(model) -> None:
    """Remove the flips of an earlier injection from an onnx_ir model, restoring the wiring."""
    import onnx_ir as ir

    graph = model.graph
    info = model.metadata_props.pop(INJECTED_KEY, None)
    if info is None:
        return
    sites = json.loads(info)["sites"]
    produced = _produced(graph)
    site_of = {flipped_name(site): site for site in sites}
    for node in list(graph):
        if node.domain == BITFLIP_DOMAIN and node.op_type == BITFLIP_OP:
            clean, flipped = node.inputs[0], node.outputs[0]
        elif (node.name or "").startswith(LEGACY_NODE_PREFIX) and node.outputs[0].name in site_of:
            clean, flipped = produced[site_of[node.outputs[0].name]], node.outputs[0]
        else:
            continue
        was_output = clean.is_graph_output()
        ir.convenience.replace_all_uses_with(flipped, clean, replace_graph_outputs=True)
        if was_output:  # exposed: the clean tensor was an output already
            _drop_repeated_outputs(graph)
    legacy = [n for n in graph if (n.name or "").startswith(LEGACY_NODE_PREFIX)]
    flips = [n for n in graph if n.domain == BITFLIP_DOMAIN and n.op_type == BITFLIP_OP]
    graph.remove(flips, safe=True)
    graph.remove(legacy, safe=False)  # their If branches read each other's values
    controls = {SEED_INPUT} | {name for site in sites for name in rate_input_names(site)}
    graph.inputs[:] = [value for value in graph.inputs if value.name not in controls]
    for name in list(graph.initializers):
        if name in controls or name.startswith(LEGACY_TENSOR_PREFIX):
            del graph.initializers[name]
    model.functions.pop((BITFLIP_DOMAIN, BITFLIP_OP, ""), None)
    model.opset_imports.pop(BITFLIP_DOMAIN, None)


def _drop_repeated_outputs(graph) -> None:
    kept = []
    for value in graph.outputs:
        if all(value is not other for other in kept):
            kept.append(value)
    graph.outputs[:] = kept


def inject_flips(
    model: onnx.ModelProto,
    rates: FaultSpec | FlipRates | dict[str, FlipRates],
    sites: list[str] | None = None,
    source: dict | None = None,
    expose: bool = False,
) -> onnx.ModelProto:
    """A copy of ``model`` with one ``xnorfault.BitFlip`` node at each binary site (``sites``
    restricts them).

    ``rates``: one :class:`FlipRates` for every site, a mapping per site, or a
    :class:`FaultSpec` (its activation rates, per-layer overrides included). Flips already
    injected are replaced, not stacked. ``expose`` adds each site's clean and flipped tensors as
    graph outputs (for tests). ``source`` is recorded in the metadata (e.g. the MRAM operating
    point).
    """
    import onnx_ir as ir

    from xnorfault.bitflip import OPSET_VERSION, bitflip_function
    from xnorfault.sites import lower_bipolar_quant

    model = _ensure_opset(model, OPSET_VERSION)
    graph_model = ir.from_proto(model)
    _strip_flips(graph_model)
    lower_bipolar_quant(graph_model)
    found = _binary_sites(graph_model)
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
    graph_model = _with_inferred_shapes(graph_model)
    graph = graph_model.graph
    produced = _produced(graph)
    _check_site_types(produced, chosen)
    site_rates = {site: _rates_for(rates, site) for site in chosen}

    function = ir.serde.deserialize_function(bitflip_function())
    graph_model.functions[function.identifier()] = function
    graph_model.opset_imports[BITFLIP_DOMAIN] = 1
    seed = _control_input(graph, SEED_INPUT, np.array(-1, np.int64))
    for site in chosen:
        clean = produced[site]
        rate_inputs = [
            _control_input(graph, name, np.array(value, np.float32))
            for name, value in zip(
                rate_input_names(site),
                (site_rates[site].pos_to_neg, site_rates[site].neg_to_pos),
                strict=True,
            )
        ]
        flip = ir.node(
            BITFLIP_OP,
            [clean, *rate_inputs, seed],
            attributes={"site_index": found.index(site)},
            domain=BITFLIP_DOMAIN,
            name=f"{BITFLIP_OP}/{site}",
        )
        flipped = flip.outputs[0]
        flipped.name = flipped_name(site)
        flipped.type, flipped.shape = ir.TensorType(ir.DataType.FLOAT), clean.shape
        ir.convenience.replace_all_uses_with(clean, flipped, replace_graph_outputs=True)
        flip.replace_input_with(0, clean)
        graph.insert_after(clean.producer(), flip)
        if expose:
            clean.type = clean.type or ir.TensorType(ir.DataType.FLOAT)
            graph.outputs.extend([clean, flipped])
    graph.sort()
    info = {
        "sites": chosen,
        "rates": {site: r.to_dict() for site, r in site_rates.items()},
        "seed_input": SEED_INPUT,
        "generator": GENERATOR,
        "source": source or (rates.source if isinstance(rates, FaultSpec) else {}),
    }
    graph_model.metadata_props[INJECTED_KEY] = json.dumps(info)
    graph_model.metadata_props.setdefault(SITES_KEY, json.dumps(found))
    injected = ir.to_proto(graph_model)
    onnx.checker.check_model(injected)
    return injected


def _control_input(graph, name: str, default: np.ndarray):
    """A scalar graph input ``name`` with initializer ``default`` (an input a run may feed)."""
    import onnx_ir as ir

    value = ir.Value(
        name=name,
        type=ir.TensorType(ir.DataType.from_numpy(default.dtype)),
        shape=ir.Shape([]),
        const_value=ir.tensor(default),
    )
    graph.inputs.append(value)
    graph.register_initializer(value)
    return value


def _with_inferred_shapes(model):
    """``model`` (onnx_ir) again, its values typed and shaped by ONNX shape inference."""
    import onnx_ir as ir

    try:
        return ir.from_proto(onnx.shape_inference.infer_shapes(ir.to_proto(model)))
    except Exception as error:  # onnx raises InferenceError and plain RuntimeErrors
        raise XnorfaultError(
            f"the model does not pass ONNX shape inference ({type(error).__name__}): check it with onnx.checker"
        ) from None


def _check_site_types(produced: dict, sites: list[str]) -> None:
    """BitFlip multiplies float32 tensors: refuse sites of any other element type (a float64
    model would otherwise yield a file onnxruntime cannot load)."""
    import onnx_ir as ir

    wrong = {
        site: produced[site].dtype.name
        for site in sites
        if produced[site].dtype not in (None, ir.DataType.UNDEFINED, ir.DataType.FLOAT)
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
