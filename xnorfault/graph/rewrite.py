r"""Graph rewrite: random bit flips at every binary activation of an ONNX model.

Each binary site (a tensor of ±c values) gets one node, ``xnorfault.BitFlip`` (a model-local ONNX
function, :mod:`xnorfault.graph.bitflip`), that negates each element independently with probability
:math:`p_{+\to-}` where it is positive and :math:`p_{-\to+}` where it is negative; the site's
consumers read the flipped tensor ``SITE.flipped``. The rates are graph inputs
``p_flip_pos.SITE`` / ``p_flip_neg.SITE`` (float scalars, :func:`xnorfault.graph.contract.rate_input_names`;
with ``rate_maps`` vectors of one rate, or of one rate per element of an image for a chip whose
cells differ) whose defaults are the rates given at injection, so one file serves a whole sweep; ``flip_seed``
(int64 scalar) makes the draw reproducible — feed :func:`xnorfault.graph.generator.run_seed` of the
campaign's seed and the run index for independent masks; the default ``-1`` draws a seed from
onnxruntime's generator at each run.

Sites come from the ``xnorfault.binary_sites`` metadata of exported models, or from the patterns
of :mod:`xnorfault.graph.sites` in foreign graphs, after QONNX ``BipolarQuant`` nodes are lowered.
Graph surgery uses onnx_ir (use-def rewiring, its topological sort and constant lookup);
the deployed side imports onnxscript only when it injects.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FaultSpec, FlipRates, WriteModel
from xnorfault.graph.contract import (
    BITFLIP_DOMAIN,
    BITFLIP_OP,
    BITFLIP_OPS,
    BITFLIP_PREVIOUS_OP,
    INJECTED_KEY,
    OUTPUT_KEY,
    SEED_INPUT,
    SITES_KEY,
    flipped_name,
    rate_input_names,
    rate_map_dim,
)

GENERATOR = "SplitMix64 counter-based generator, geometric skipping (xnorfault.BitFlip)"
# Flips injected before BitFlip existed were loose nodes with these name prefixes; re-injection
# still removes them.
LEGACY_NODE_PREFIX = "xnorfault/flip/"
LEGACY_TENSOR_PREFIX = "xnorfault_flip."


# Protobuf cannot serialise a message of 2 GiB or more: larger models keep their tensors in a
# data file beside the model, as ONNX's external data format says.
PROTOBUF_LIMIT = 2**31 - 2**20


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file, its external data included (the files it names beside it), with a
    clear error for a missing, malformed or incomplete one."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"model file {path} not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf raises its own DecodeError types
        raise XnorfaultError(f"{path} is not a valid ONNX model ({type(error).__name__})") from None
    if not model.graph.node:
        raise XnorfaultError(f"{path} is not a valid ONNX model (its graph has no nodes)")
    external = external_data_files(model)
    if external:
        folder = path.resolve().parent
        for name in external:
            location = (folder / name).resolve()
            if not location.is_relative_to(folder):
                raise XnorfaultError(
                    f"{path} names external data {name!r} outside its own folder: refusing to read it"
                )
            if not location.is_file():
                raise XnorfaultError(
                    f"{path} keeps its weights in {name}, which is missing: copy it beside the model"
                )
        try:
            _load_external_data(model, folder)
        except Exception as error:  # truncated data files raise plain OSErrors and others
            raise XnorfaultError(
                f"the external data of {path} could not be read ({type(error).__name__}): "
                "it is truncated or belongs to another model"
            ) from None
    return model


def all_tensors(model: onnx.ModelProto):
    """Every tensor a model holds, wherever it is: the initializers and sparse initializers
    (values and indices) of the main graph, of every subgraph (``If``/``Loop``/``Scan`` bodies,
    nested to any depth) and of every function's nodes, and every tensor-valued node attribute
    there. External data may be named by any of them, so each is checked and loaded."""

    def graph_tensors(graph: onnx.GraphProto):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from node_tensors(graph.node)

    def node_tensors(nodes):
        for node in nodes:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                for sparse in (
                    *([attribute.sparse_tensor] if attribute.HasField("sparse_tensor") else []),
                    *attribute.sparse_tensors,
                ):
                    yield sparse.values
                    yield sparse.indices
                if attribute.HasField("g"):
                    yield from graph_tensors(attribute.g)
                for graph in attribute.graphs:
                    yield from graph_tensors(graph)

    yield from graph_tensors(model.graph)
    for function in model.functions:
        yield from node_tensors(function.node)


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """The external data files a model (loaded without them) names, in order of first use,
    from every tensor of :func:`all_tensors`."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    names = []
    for tensor in all_tensors(model):
        if uses_external_data(tensor):
            location = ExternalDataInfo(tensor).location
            if location and location not in names:
                names.append(location)
    return names


def model_files(path: str | Path) -> dict:
    """A model file and the external data files it names beside it (``{path: what}``), for
    :func:`xnorfault.io.refuse_inputs_as_outputs`; a file that is not a readable model names
    itself only (its own checks come later)."""
    path = Path(path)
    files = {path: f"the model {path.name}"}
    if path.suffix.lower() != ".onnx" or not path.is_file():
        return files
    try:
        names = external_data_files(onnx.load(str(path), load_external_data=False))
    except Exception:  # not a model: load_model says so in its own words
        return files
    for name in names:
        files[path.parent / name] = f"the external data of {path.name}"
    return files


def _load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Read every external tensor's bytes from ``folder`` into the model (locations checked by
    the caller), so that no tensor is left for a runtime to resolve against its own working
    directory."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    for tensor in all_tensors(model):
        if uses_external_data(tensor):
            load_external_data_for_tensor(tensor, str(folder))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


def save_model(model: onnx.ModelProto, path: str | Path, limit: int = PROTOBUF_LIMIT) -> list[Path]:
    """Write ``model`` to ``path`` atomically: one file, or — from ``limit`` bytes on, which
    protobuf cannot serialise — the graph in ``path`` and its tensors in ``PATH.data`` beside it,
    written by onnx's own external-data writer into a staging folder and moved into place data
    first (a reader never finds the model without its data). Returns the files written."""
    import shutil
    import tempfile

    from xnorfault.io import atomic_write, ensure_folder, temporary_prefix

    path = Path(path)
    try:
        size = model.ByteSize()
    except Exception:  # noqa: BLE001 - protobuf refuses to size messages past its limit
        size = limit
    if size < limit:
        atomic_write(path, lambda handle: handle.write(model.SerializeToString()))
        return [path]
    ensure_folder(path.parent)
    holder = onnx.ModelProto()
    holder.CopyFrom(model)  # onnx's writer moves the tensors out of the message it is given
    data = path.with_name(f"{path.name}.data")
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(path.name), dir=path.parent))
    try:
        onnx.save_model(
            holder,
            str(staging / path.name),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=0,
        )
        os.replace(staging / data.name, data)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [data, path]


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def _produced(graph) -> dict:
    return {value.name: value for node in graph for value in node.outputs}


METADATA_PATTERN = "xnorfault.binary_sites metadata"


def _binary_sites(model) -> dict[str, str]:
    """Sites of an onnx_ir model, each with how it was found: its metadata's, else those the
    patterns of :mod:`xnorfault.graph.sites` find."""
    from xnorfault.graph.sites import match_sites

    tagged = model.metadata_props.get(SITES_KEY)
    if tagged:
        sites = json.loads(tagged)
        produced = _produced(model.graph)
        missing = [s for s in sites if s not in produced]
        if missing:
            raise XnorfaultError(
                f"metadata names binary sites {', '.join(missing)} that no node produces"
            )
        return dict.fromkeys(sites, METADATA_PATTERN)
    return match_sites(model)


@dataclass
class PreparedModel:
    """A model made ready for injection (onnx_ir, shapes inferred): flips of an earlier
    injection stripped, opset raised to what the flips need, QONNX lowered; its binary sites
    (name → how found, graph order) and what was lowered."""

    model: object  # onnx_ir.Model
    sites: dict[str, str]
    lowered: list = field(default_factory=list)
    opset_converted_from: int | None = None
    previously_injected: bool = False


def prepare_model(model: onnx.ModelProto) -> PreparedModel:
    """The steps every injection and ``xnorfault inspect`` take, in one place."""
    import onnx_ir as ir

    from xnorfault.graph.bitflip import OPSET_VERSION
    from xnorfault.graph.lowering import lower_qonnx

    original = _default_opset(model)
    model = _ensure_opset(model, OPSET_VERSION)
    graph_model = ir.from_proto(model)
    previously_injected = INJECTED_KEY in graph_model.metadata_props
    _strip_flips(graph_model)
    lowered = lower_qonnx(graph_model)
    sites = _binary_sites(graph_model)
    return PreparedModel(
        model=_with_inferred_shapes(graph_model),
        sites=sites,
        lowered=lowered,
        opset_converted_from=original if original < OPSET_VERSION else None,
        previously_injected=previously_injected,
    )


def find_binary_sites(model: onnx.ModelProto) -> list[str]:
    """Tensor names of the binary activations, in graph order (metadata first, else patterns;
    QONNX quantizers count once lowered)."""
    return list(prepare_model(model).sites)


def strip_flips(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of an injected ``model`` without its flips: every ``BitFlip`` node, the rate and
    seed inputs and the flip functions removed, each site's consumers reading the clean
    tensor again — the model as the memory deploys it (its latency is the model's own, not
    the simulation's). A model without flips comes back unchanged (a copy)."""
    import onnx_ir as ir

    if INJECTED_KEY not in metadata(model):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    graph_model = ir.from_proto(model)
    _strip_flips(graph_model)
    return ir.to_proto(graph_model)


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
        if node.domain == BITFLIP_DOMAIN and node.op_type in BITFLIP_OPS:
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
    flips = [n for n in graph if n.domain == BITFLIP_DOMAIN and n.op_type in BITFLIP_OPS]
    graph.remove(flips, safe=True)
    graph.remove(legacy, safe=False)  # their If branches read each other's values
    controls = {SEED_INPUT} | {name for site in sites for name in rate_input_names(site)}
    graph.inputs[:] = [value for value in graph.inputs if value.name not in controls]
    for name in list(graph.initializers):
        if name in controls or name.startswith(LEGACY_TENSOR_PREFIX):
            del graph.initializers[name]
    for op_type in BITFLIP_OPS:
        model.functions.pop((BITFLIP_DOMAIN, op_type, ""), None)
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
    write: WriteModel | None = None,
    rate_maps: bool = False,
) -> onnx.ModelProto:
    """A copy of ``model`` with one ``xnorfault.BitFlip`` node at each binary site (``sites``
    restricts them).

    ``rates``: one :class:`FlipRates` for every site, a mapping per site, or a
    :class:`FaultSpec` (its activation rates, per-layer overrides included). Flips already
    injected are replaced, not stacked. ``expose`` adds each site's clean and flipped tensors as
    graph outputs (for tests). ``source`` is recorded in the metadata (e.g. the MRAM operating
    point). ``rate_maps`` declares the rate inputs as vectors (length 1, or one rate per element
    of an image: per-address rates of a chip, :mod:`xnorfault.mram.chips`) instead of scalars.
    """
    import onnx_ir as ir

    from xnorfault.graph.bitflip import OPSET_VERSION, bitflip_function

    prepared = prepare_model(model)
    found = list(prepared.sites)
    if not found:
        raise XnorfaultError(
            "no binary activation found: expected xnorfault.binary_sites metadata, "
            "Where(x >= t, c, -c) or Sign nodes, or 1-bit QONNX quantizers (BipolarQuant, Quant, "
            "MultiThreshold); 'xnorfault inspect' lists what the model holds"
        )
    if sites is not None:
        multibit = {q.output: q for q in prepared.lowered if not q.binary and q.output in sites}
        if multibit:
            name, quantizer = next(iter(multibit.items()))
            width = "" if quantizer.bit_width is None else f"{quantizer.bit_width:g}-bit "
            raise XnorfaultError(
                f"--layers {name}: a {width}{quantizer.op} activation, not binary; xnorfault "
                f"flips 1-bit activations only (the binary sites are {', '.join(found)})"
            )
        unknown = [s for s in sites if s not in found]
        if unknown:
            raise XnorfaultError(
                f"unknown site(s) {', '.join(unknown)}: the model's binary sites are {', '.join(found)}"
            )
        chosen = [s for s in found if s in sites]
    else:
        chosen = found
    graph_model = prepared.model
    graph = graph_model.graph
    produced = _produced(graph)
    _check_site_types(produced, chosen)
    site_rates = {site: _rates_for(rates, site) for site in chosen}

    if write is None:
        write = rates.write if isinstance(rates, FaultSpec) else WriteModel()
    state_code = {"neg": -1, "pos": 1, "random": 0}[write.initial_state]
    if write.model == "previous":
        op_type, attributes = BITFLIP_PREVIOUS_OP, {"initial_state": state_code}
    else:
        op_type = BITFLIP_OP
        attributes = {"reset_state": state_code if write.model == "reset" else 0}
    opset_version = graph_model.opset_imports.get("", OPSET_VERSION)
    function = ir.serde.deserialize_function(bitflip_function(opset_version, op_type))
    graph_model.functions[function.identifier()] = function
    graph_model.opset_imports[BITFLIP_DOMAIN] = 1
    if len(graph.outputs) == 1:  # the logits, named for runtimes once tests expose more outputs
        graph_model.metadata_props.setdefault(OUTPUT_KEY, graph.outputs[0].name)
    seed = _control_input(graph, SEED_INPUT, np.array(-1, np.int64))
    for site in chosen:
        clean = produced[site]
        rate_inputs = [
            _control_input(
                graph,
                name,
                np.array([value] if rate_maps else value, np.float32),
                [rate_map_dim(site)] if rate_maps else [],
            )
            for name, value in zip(
                rate_input_names(site),
                (site_rates[site].pos_to_neg, site_rates[site].neg_to_pos),
                strict=True,
            )
        ]
        flip = ir.node(
            op_type,
            [clean, *rate_inputs, seed],
            attributes={"site_index": found.index(site), **attributes},
            domain=BITFLIP_DOMAIN,
            name=f"{op_type}/{site}",
        )
        flipped = flip.outputs[0]
        flipped.name = flipped_name(site)
        flipped.type, flipped.shape = clean.type or ir.TensorType(ir.DataType.FLOAT), clean.shape
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
        "write": write.to_dict(),
        "rate_maps": rate_maps,
        "source": source or (rates.source if isinstance(rates, FaultSpec) else {}),
    }
    graph_model.metadata_props[INJECTED_KEY] = json.dumps(info)
    graph_model.metadata_props.setdefault(SITES_KEY, json.dumps(found))
    injected = ir.to_proto(graph_model)
    onnx.checker.check_model(injected)
    return injected


def _control_input(graph, name: str, default: np.ndarray, shape=()):
    """A graph input ``name`` with initializer ``default`` (an input a run may feed), declared
    with ``shape`` (a scalar unless given)."""
    import onnx_ir as ir

    value = ir.Value(
        name=name,
        type=ir.TensorType(ir.DataType.from_numpy(default.dtype)),
        shape=ir.Shape(list(shape)),
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
    """BitFlip negates floating-point tensors: refuse sites of any other element type (an
    integer site would otherwise yield a file onnxruntime cannot load)."""
    import onnx_ir as ir

    floating = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE)
    wrong = {
        site: produced[site].dtype.name
        for site in sites
        if produced[site].dtype not in (None, ir.DataType.UNDEFINED, *floating)
    }
    if wrong:
        listed = ", ".join(f"{site} ({kind.lower()})" for site, kind in wrong.items())
        raise XnorfaultError(
            f"binary site(s) {listed} are not floating point: xnorfault injects flips into "
            "float32, float16, bfloat16 or float64 activations; export the model with float activations"
        )


def _rates_for(rates, site: str) -> FlipRates:
    if isinstance(rates, FaultSpec):
        return rates.activation_rates(site)
    if isinstance(rates, FlipRates):
        return rates
    if site in rates:
        return rates[site]
    return FlipRates()


def _default_opset(model: onnx.ModelProto) -> int:
    from xnorfault.graph.bitflip import OPSET_VERSION

    return next(
        (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET_VERSION
    )


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> onnx.ModelProto:
    """The model at ONNX opset ``minimum`` or later (the flip subgraph needs opset 18's bitwise
    ops and ScatterElements reduction), converted with onnx's version converter if older."""
    version = _default_opset(model)
    if version >= minimum:
        return model
    try:
        return onnx.version_converter.convert_version(model, minimum)
    except Exception as error:  # the converter raises plain RuntimeErrors with long messages
        raise XnorfaultError(
            f"the model uses ONNX opset {version} and could not be converted to opset {minimum}, "
            f"which flip injection needs ({type(error).__name__})"
        ) from None
