"""What onnxruntime makes of a model, beside what xnorfault sees in its graph
(:func:`xnorfault.graph.inspection.inspect_graph`): the image input it will feed (layout,
element type, fixed batch), the logits output it reads, the nodes it cannot run, and whether
it loads the model once injected. ``xnorfault inspect``, ``inject`` and ``evaluate`` report
these facts. Imports numpy, onnx, onnx_ir and onnxruntime only.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.graph.inspection import ModelReport, inspect_graph, planned_actions
from xnorfault.graph.rewrite import inject_flips, load_model
from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend, unsupported_nodes


def inspect_model(
    model: str | Path | onnx.ModelProto,
    output: str | None = None,
    layout: str | None = None,
) -> ModelReport:
    """What xnorfault and onnxruntime see in ``model`` (a path or a loaded model):
    :func:`~xnorfault.graph.inspection.inspect_graph`, then the model injected at zero rates
    loaded in onnxruntime. ``output`` and ``layout`` are ``evaluate``'s ``--output-name`` and
    ``--layout``. A model onnxruntime cannot load is reported (``onnxruntime_error``), not
    refused."""
    proto = model if isinstance(model, onnx.ModelProto) else load_model(Path(model))
    report = inspect_graph(model, proto)
    _check_with_onnxruntime(report, proto, output, layout)
    report.actions = planned_actions(report)
    return report


def _check_with_onnxruntime(report: ModelReport, proto, output, layout) -> None:
    """Inject at zero rates, load the result in onnxruntime: the image input, the logits
    output, the nodes it cannot run, or its one-line error."""
    if not report.sites:
        report.onnxruntime_error = "no binary site: nothing to inject"
        return
    try:
        injected = inject_flips(proto, FlipRates())
    except XnorfaultError as error:
        report.onnxruntime_error = str(error)
        return
    report.unsupported = [
        {
            "node": node.name or "",
            "op": node.op_type,
            "domain": node.domain,
            "action": "left in the graph: onnxruntime cannot run it",
        }
        for node in unsupported_nodes(injected)
    ]
    try:
        backend = OnnxRuntimeBackend(injected, threads=1, output=output, layout=layout)
    except XnorfaultError as error:
        report.onnxruntime_error = str(error)
        return
    report.data_input = backend.data_input.describe()
    report.logits_output = backend.output_name
    backend.close()
