"""``xnorfault inspect``: what xnorfault sees in a model, before any long work.

For a model brought from elsewhere — a Brevitas QONNX export, a ``torch.sign`` graph, a FINN
graph — the report lists its inputs and outputs, the image input xnorfault will feed (layout,
element type, fixed batch) and the output it reads, every binary activation site (tensor,
the pattern that found it, shape, elements per image — the bits one inference writes to that
activation memory), the binary weights, the QONNX quantizers lowered to standard ONNX (and the
multi-bit ones, which are never flipped), nodes onnxruntime cannot run, and whether onnxruntime
loads the model once injected. ``inject`` and ``evaluate`` report the same facts from
:func:`inspect_graph` and, with the runtime's part, :func:`xnorfault.runtimes.inspection.inspect_model`.
Imports numpy, onnx and onnx_ir/onnxscript only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from xnorfault.graph.lowering import unlowered_nodes
from xnorfault.graph.rewrite import external_data_files, load_model, prepare_model
from xnorfault.graph.weights import WeightReport, binary_weight_values


@dataclass
class SiteReport:
    name: str
    pattern: str
    shape: list
    elements_per_image: int | None


@dataclass
class ModelReport:
    """Everything :func:`inspect_graph` (and the runtime check) found; :meth:`to_dict` is the ``--json`` output."""

    model: str
    opset: int
    opset_converted_from: int | None
    producer: str
    external_data: bool
    inputs: list[dict]
    outputs: list[dict]
    sites: list[SiteReport]
    binary_weights: list[WeightReport]
    quantizers: list[dict]
    unsupported: list[dict]
    previously_injected: bool
    data_input: dict | None = None
    logits_output: str | None = None
    onnxruntime_error: str | None = None
    actions: list[str] = field(default_factory=list)

    @property
    def activation_bits_per_image(self) -> int | None:
        counts = [site.elements_per_image for site in self.sites]
        return None if any(c is None for c in counts) else sum(counts)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["activation_bits_per_image"] = self.activation_bits_per_image
        data["runs_on_onnxruntime"] = self.onnxruntime_error is None
        data["summary"] = self.summary()
        return data

    def summary(self) -> str:
        """One line for ``inject`` and ``evaluate``: sites, bits, batch, what was lowered."""
        bits = self.activation_bits_per_image
        parts = [
            f"{len(self.sites)} binary site(s)"
            + ("" if bits is None else f", {bits:,} activation bits per image")
        ]
        if self.data_input and self.data_input.get("fixed_batch"):
            parts.append(f"fixed batch {self.data_input['fixed_batch']} (fed in slices of it)")
        if self.data_input and self.data_input.get("layout") == "NHWC":
            parts.append("NHWC input (test images transposed)")
        lowered = [q for q in self.quantizers if q["result"] != "left in the graph"]
        if lowered:
            parts.append(f"{len(lowered)} QONNX quantizer(s) lowered to standard ONNX")
        multibit = [q for q in self.quantizers if q["kind"] == "activation" and not q["binary"]]
        if multibit:
            parts.append(f"{len(multibit)} multi-bit activation(s) left unflipped")
        if self.opset_converted_from is not None:
            parts.append(f"opset {self.opset_converted_from} converted to {self.opset}")
        return "; ".join(parts)


def _dims(value_info) -> list:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _type_name(value_info) -> str:
    elem = value_info.type.tensor_type.elem_type
    return onnx.TensorProto.DataType.Name(elem).lower() if elem else "unknown"


def _tensor_list(values, initializers: set[str]) -> list[dict]:
    return [
        {"name": v.name, "shape": _dims(v), "dtype": _type_name(v)}
        for v in values
        if v.name not in initializers
    ]


def _names_external_data(path: Path) -> bool:
    return bool(external_data_files(onnx.load(str(path), load_external_data=False)))


def _binary_weights(graph_model) -> list[WeightReport]:
    """Constant weights of Conv/Gemm/MatMul nodes whose magnitudes take one value per tensor
    or per output channel (±c, or ±α_c as XNOR-Net scales): the binary weights."""
    return [report for report, _ in binary_weight_values(graph_model)]


def _site_reports(prepared) -> list[SiteReport]:
    produced = {v.name: v for node in prepared.model.graph for v in node.outputs}
    reports = []
    for name, pattern in prepared.sites.items():
        shape = produced[name].shape
        dims = [] if shape is None else [d if isinstance(d, int) else str(d) for d in shape]
        per_image = dims[1:] if dims else []
        elements = (
            math.prod(per_image) if dims and all(isinstance(d, int) for d in per_image) else None
        )
        reports.append(SiteReport(name, pattern, dims, elements))
    return reports


def inspect_graph(
    model: str | Path | onnx.ModelProto, loaded: onnx.ModelProto | None = None
) -> ModelReport:
    """What xnorfault sees in the graph of ``model`` (a path or a loaded model; ``loaded``: the
    model at that path, already loaded), without loading it in a runtime: see the module
    docstring. The runtime's part (the image input it feeds, the output it reads, the nodes it
    cannot run) is :func:`xnorfault.runtimes.inspection.inspect_model`'s."""
    path = None if isinstance(model, onnx.ModelProto) else Path(model)
    proto = model if path is None else loaded if loaded is not None else load_model(path)
    initializers = {t.name for t in proto.graph.initializer}
    prepared = prepare_model(proto)
    graph_model = prepared.model
    quantizers = [q.to_dict() for q in prepared.lowered]
    for node in unlowered_nodes(graph_model):
        quantizers.append(
            {
                "node": node.name or "",
                "op": node.op_type,
                "output": node.outputs[0].name if node.outputs else "",
                "kind": "unknown",
                "bit_width": None,
                "binary": False,
                "result": "left in the graph",
                "detail": "its bit width, scales or thresholds are not constants",
            }
        )
    report = ModelReport(
        model=str(path) if path is not None else "(in memory)",
        opset=graph_model.opset_imports.get("", 0),
        opset_converted_from=prepared.opset_converted_from,
        producer=" ".join(p for p in (proto.producer_name, proto.producer_version) if p),
        external_data=path is not None and _names_external_data(path),
        inputs=_tensor_list(proto.graph.input, initializers),
        outputs=_tensor_list(proto.graph.output, set()),
        sites=_site_reports(prepared),
        binary_weights=_binary_weights(graph_model),
        quantizers=quantizers,
        unsupported=[],
        previously_injected=prepared.previously_injected,
    )
    report.actions = planned_actions(report)
    return report


def planned_actions(report: ModelReport) -> list[str]:
    """What xnorfault does about what it found, one sentence each."""
    actions = []
    if report.opset_converted_from is not None:
        actions.append(
            f"converts opset {report.opset_converted_from} to {report.opset} (the flips need opset 18)"
        )
    lowered = [q for q in report.quantizers if q["result"] != "left in the graph"]
    if lowered:
        folded = sum(q["result"] == "constant" for q in lowered)
        actions.append(
            f"lowers {len(lowered)} QONNX quantizer(s) to standard ONNX ({folded} weight(s) folded to constants)"
        )
    for q in report.quantizers:
        if q["kind"] == "activation" and not q["binary"]:
            width = "" if q["bit_width"] is None else f"{q['bit_width']:g}-bit "
            actions.append(
                f"leaves {q['output']} unflipped: a {width}{q['op']} activation, not binary"
            )
    if report.previously_injected:
        actions.append("replaces the flips of an earlier injection")
    data = report.data_input or {}
    if data.get("fixed_batch"):
        actions.append(
            f"feeds batches of {data['fixed_batch']} (the model's fixed batch; the last one padded, padding never counted)"
        )
    if data.get("layout") == "NHWC":
        actions.append("transposes (C, H, W) test images to the model's NHWC input")
    if data.get("dtype") not in (None, "float32"):
        actions.append(f"feeds test images as {data['dtype']}")
    if report.external_data:
        actions.append(
            "reads the weights from external data; writes injected models as one file (external data above 2 GB)"
        )
    if report.sites:
        actions.append(f"flips {len(report.sites)} binary site(s)")
    return actions
