"""Export a trained binarized network to standard ONNX that stock onnxruntime runs.

Brevitas' own exporters do not fit: ``export_onnx_qcdq`` refuses binary quantizers and
``export_qonnx`` emits ``BipolarQuant`` (qonnx domain), which onnxruntime cannot run. This
exporter walks the network's modules and emits standard opset-18 nodes with ``onnx.helper``:

* binary activation site ``actK``: ``Where(GreaterOrEqual(x, 0), 1, -1)`` — 0 maps to +1 exactly
  as in training (``Sign`` would map it to 0); the output tensor is named after the site;
* binary weights: folded to constants :math:`\\pm\\alpha_c` (their binarized values);
* a convolution followed by batch norm: the batch norm folded into the convolution by
  onnxscript's rewrite rule, :math:`W' = W\\gamma/\\sigma`,
  :math:`b' = (b-\\mu)\\gamma/\\sigma + \\beta`; other batch norms stay ``BatchNormalization`` nodes;
* dropout disappears (inference).

The graph takes ``input`` (batch, C, H, W) with a dynamic batch and returns ``logits``. Binary
sites are listed in ``metadata_props`` (``xnorfault.binary_sites``) with the preprocessing, class
names, training fault spec and source run a deployment needs; the node names carry the site
(``xnorfault/act1/binarize``).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xnorfault.errors import XnorfaultError
from xnorfault.graph.contract import INPUT_NAME, PARITY_KEY, SITES_KEY, metadata_key

OPSET = 18
OUTPUT_NAME = "logits"


class _GraphBuilder:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.counter = 0

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, array: np.ndarray, stem: str) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(
        self, op: str, inputs: list[str], stem: str, output: str | None = None, **attributes
    ) -> str:
        output = output or self.name(stem)
        self.nodes.append(
            helper.make_node(
                op, inputs, [output], name=f"xnorfault/{stem}/{op}_{self.counter}", **attributes
            )
        )
        return output


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _emit_batch_norm(builder: _GraphBuilder, bn, x: str, stem: str) -> str:
    mean = _numpy(bn.running_mean)
    variance = _numpy(bn.running_var)
    gamma = _numpy(bn.weight) if bn.affine else np.ones_like(mean)
    beta = _numpy(bn.bias) if bn.affine else np.zeros_like(mean)
    inputs = [x] + [
        builder.constant(a, f"{stem}.{n}")
        for a, n in ((gamma, "scale"), (beta, "bias"), (mean, "mean"), (variance, "var"))
    ]
    return builder.node("BatchNormalization", inputs, stem, epsilon=float(bn.eps))


def _conv_attributes(conv) -> dict:
    def pair(value):
        return list(value) if isinstance(value, tuple | list) else [value, value]

    padding = pair(conv.padding)
    if isinstance(conv.padding, str):
        raise ValueError(f"convolution padding {conv.padding!r} is not supported by the exporter")
    return {
        "kernel_shape": pair(conv.kernel_size),
        "strides": pair(conv.stride),
        "pads": padding + padding,
        "dilations": pair(conv.dilation),
        "group": conv.groups,
    }


def _weight_and_bias(
    module, builder: _GraphBuilder, stem: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Weights (binarized values ±α for binary layers), bias (zeros if none) and a node stem."""
    from xnorfault.models.layers import BinaryConv2d, BinaryLinear

    if isinstance(module, BinaryConv2d | BinaryLinear):
        weight, stem = _numpy(module.quant_weight().value), module.weight_flip.site
    else:
        weight, stem = _numpy(module.weight), builder.name(stem)
    bias = _numpy(module.bias) if module.bias is not None else np.zeros(weight.shape[0], np.float32)
    return weight, bias, stem


def _emit_sequence(builder: _GraphBuilder, modules: list, x: str, sites: list[str]) -> str:
    """Emit nodes for a flat list of modules (nested Sequentials flattened by the caller)."""
    from torch import nn

    from xnorfault.models.layers import BinaryActivation

    for module in modules:
        if isinstance(module, BinaryActivation):
            site = module.flip.site
            greater = builder.node(
                "GreaterOrEqual",
                [x, builder.constant(np.array(0.0, np.float32), f"{site}.zero")],
                f"{site}/binarize",
            )
            x = builder.node(
                "Where",
                [
                    greater,
                    builder.constant(np.array(1.0, np.float32), f"{site}.plus"),
                    builder.constant(np.array(-1.0, np.float32), f"{site}.minus"),
                ],
                f"{site}/binarize",
                output=site,
            )
            sites.append(site)
        elif isinstance(module, nn.Conv2d):
            weight, bias, stem = _weight_and_bias(module, builder, "conv")
            x = builder.node(
                "Conv",
                [
                    x,
                    builder.constant(weight, f"{stem}.weight"),
                    builder.constant(bias, f"{stem}.bias"),
                ],
                stem,
                **_conv_attributes(module),
            )
        elif isinstance(module, nn.Linear):
            weight, bias, stem = _weight_and_bias(module, builder, "linear")
            x = builder.node(
                "Gemm",
                [
                    x,
                    builder.constant(weight, f"{stem}.weight"),
                    builder.constant(bias, f"{stem}.bias"),
                ],
                stem,
                transB=1,
            )
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            x = _emit_batch_norm(builder, module, x, builder.name("batchnorm"))
        elif isinstance(module, nn.ReLU):
            x = builder.node("Relu", [x], "relu")
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            kernel = (
                module.kernel_size
                if isinstance(module.kernel_size, tuple)
                else (module.kernel_size,) * 2
            )
            stride = module.stride if isinstance(module.stride, tuple) else (module.stride,) * 2
            padding = module.padding if isinstance(module.padding, tuple) else (module.padding,) * 2
            attributes = {
                "kernel_shape": list(kernel),
                "strides": list(stride),
                "pads": list(padding) * 2,
                "ceil_mode": int(module.ceil_mode),
            }
            if isinstance(module, nn.MaxPool2d):
                x = builder.node("MaxPool", [x], "maxpool", **attributes)
            else:
                if module.divisor_override is not None:
                    raise ValueError("AvgPool2d with divisor_override cannot be exported")
                x = builder.node(
                    "AveragePool",
                    [x],
                    "avgpool",
                    count_include_pad=int(module.count_include_pad),
                    **attributes,
                )
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            size = module.output_size
            if size not in (1, (1, 1)):
                raise ValueError(
                    f"AdaptiveAvgPool2d({size}) is not supported by the exporter (only global pooling)"
                )
            x = builder.node("GlobalAveragePool", [x], "globalpool")
        elif isinstance(module, nn.Flatten):
            x = builder.node("Flatten", [x], "flatten", axis=1)
        elif isinstance(module, nn.Dropout | nn.Identity):
            pass
        else:
            raise ValueError(f"the ONNX exporter has no lowering for {type(module).__name__}")
    return x


def flatten_modules(module) -> list:
    from torch import nn

    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in flatten_modules(child)]
    return [module]


def export_onnx(
    model, metadata: dict | None = None, model_name: str = "xnorfault"
) -> onnx.ModelProto:
    """Lower a :class:`~xnorfault.models.base.BinarizedNet` (eval mode) to an ONNX model.

    ``metadata`` entries are stored as JSON strings in ``metadata_props`` under
    ``xnorfault.<key>``. The model passes ``onnx.checker`` (full check) and shape inference.
    """
    model = model.eval()
    builder = _GraphBuilder()
    sites: list[str] = []
    modules = flatten_modules(model.features) + flatten_modules(model.classifier)
    output = _emit_sequence(builder, modules, INPUT_NAME, sites)
    builder.nodes.append(
        helper.make_node("Identity", [output], [OUTPUT_NAME], name="xnorfault/output")
    )
    graph = helper.make_graph(
        builder.nodes,
        model_name,
        [
            helper.make_tensor_value_info(
                INPUT_NAME,
                TensorProto.FLOAT,
                ["batch", model.in_channels, model.input_size, model.input_size],
            )
        ],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, ["batch", model.num_classes]
            )
        ],
        builder.initializers,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xnorfault"
    )
    onnx_model.ir_version = 9
    onnx_model = _fuse_batch_norms(onnx_model)
    props = {SITES_KEY: json.dumps(sites)}
    for key, value in (metadata or {}).items():
        props[metadata_key(key)] = value if isinstance(value, str) else json.dumps(value)
    helper.set_model_props(onnx_model, props)
    onnx_model = onnx.shape_inference.infer_shapes(onnx_model, check_type=True, strict_mode=True)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _fuse_batch_norms(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold each batch norm that follows a convolution into it with onnxscript's rule
    (:math:`W' = W\\gamma/\\sigma`, :math:`b' = (b-\\mu)\\gamma/\\sigma + \\beta`); the others
    stay ``BatchNormalization`` nodes."""
    import onnx_ir as ir
    from onnx_ir.passes.common import RemoveUnusedNodesPass
    from onnxscript.rewriter.rules.common import fuse_batchnorm_into_conv_rule

    graph = ir.from_proto(model)
    fuse_batchnorm_into_conv_rule.apply_to_model(graph)
    RemoveUnusedNodesPass()(graph)  # the folded batch norms' parameters
    return ir.to_proto(graph)


def select_job(run_dir, point: str | None, repeat: int) -> tuple[dict, dict]:
    """The (run record, job record) to export; ``point`` may be omitted when the run has one."""
    from xnorfault.errors import XnorfaultError
    from xnorfault.training.records import load_record

    record = load_record(run_dir)
    labels = [p["point"] for p in record["points"]]
    if point is None:
        if len(labels) > 1:
            raise XnorfaultError(
                f"{run_dir} holds several fault points ({', '.join(labels)}): choose one with --point"
            )
        point = labels[0]
    chosen = next((p for p in record["points"] if p["point"] == point), None)
    if chosen is None:
        raise XnorfaultError(f"{run_dir} has no fault point {point!r}: it has {', '.join(labels)}")
    job = next((j for j in chosen["repeats"] if j["repeat"] == repeat), None)
    if job is None or not job["epochs"]:
        done = [str(j["repeat"]) for j in chosen["repeats"] if j["epochs"]]
        raise XnorfaultError(
            f"{run_dir}: point {point!r} has no trained repeat {repeat} (trained: {', '.join(done) or 'none'})"
        )
    return record, job


def load_trained_model(run_dir, point: str | None = None, repeat: int = 0):
    """The trained network of one job of a run directory, in eval mode, with its records.

    Returns ``(model, record, job)``; ``record`` is the run's full ``record.json``.
    """
    from pathlib import Path

    from xnorfault.errors import XnorfaultError
    from xnorfault.models import create_model
    from xnorfault.training.checkpoint import load_checkpoint
    from xnorfault.training.records import read_json_object
    from xnorfault.training.runner import point_folder_name

    run_dir = Path(run_dir)
    _, job = select_job(run_dir, point, repeat)
    record = read_json_object(
        run_dir / "record.json",
        "the merged record of a training run",
        "run the same xnorfault train command again to rewrite it",
    )
    if not isinstance(record.get("data"), dict) or not isinstance(record.get("config"), dict):
        raise XnorfaultError(
            f"{run_dir / 'record.json'} lacks the run's data or settings: run the same "
            "xnorfault train command again to rewrite it"
        )
    checkpoint = run_dir / "jobs" / point_folder_name(job["point"]) / f"repeat-{repeat}.pt"
    state = load_checkpoint(checkpoint)
    model_config = dict(state["model_config"])
    name = model_config.pop("name")
    try:
        model = create_model(name, **model_config)
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError, KeyError) as error:
        raise XnorfaultError(
            f"checkpoint {checkpoint} does not fit its model description "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    model.eval()
    return model, record, job


def model_metadata(model, record: dict, job: dict, run_dir, repeat: int) -> dict:
    """What a deployment needs to know about an exported network: model, preprocessing,
    classes, training fault spec and source run."""
    config = model.config()
    name = config.pop("name")
    return {
        "model": {"name": name, **config},
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", model.in_channels, model.input_size, model.input_size],
            "dtype": "float32",
        },
        "preprocessing": {
            "scale": "pixels / 255",
            "resize": f"bilinear (antialiased) to {model.input_size}x{model.input_size}",
            "mean": record["data"]["mean"],
            "std": record["data"]["std"],
            "normalise": "(x - mean) / std per channel",
        },
        "classes": record["data"]["classes"],
        "training_fault_spec": job["fault_spec"],
        "source_run": {
            "run": str(run_dir),
            "point": job["point"],
            "repeat": repeat,
            "seed": job["seed"],
            "epochs": len(job["epochs"]),
            "final_test_accuracy": job["epochs"][-1]["test_accuracy"],
        },
    }


def test_split(run_dir, record: dict, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run's test split, preprocessed as in training: images (N, C, H, W) float32, labels,
    and the torch model's logits on them (the reference every exporter is checked against)."""
    from pathlib import Path

    import torch

    from xnorfault.data import load_dataset
    from xnorfault.training.runner import BatchMaker, Run, TrainConfig

    config = TrainConfig(**record["config"])
    dataset = load_dataset(config.data, image_size=model.input_size, **_data_options(config))
    run = Run(Path(run_dir), config, dataset, [], 1, torch.device("cpu"))
    maker = BatchMaker(dataset, model.input_size, torch.device("cpu"))
    images, labels, logits = [], [], []
    with torch.no_grad():
        for x, y in maker.batches(run.test_split, 512):
            images.append(x.numpy())
            labels.append(y.numpy())
            logits.append(model(x).numpy())
    return (
        np.concatenate(images).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(logits),
    )


def write_testset(path, images: np.ndarray, labels: np.ndarray, classes) -> None:
    """The preprocessed test set as the .npz that ``xnorfault evaluate --data`` reads."""
    from xnorfault.io import atomic_write

    def write(handle):
        np.savez_compressed(handle, x=images, y=labels, classes=np.array(classes))

    atomic_write(path, write)


PARITY_TOLERANCE = 1e-3  # |Δ logit| beyond which an image counts as differing
# the share of test images whose class an export must give as the trained network does: binary
# networks may round a pre-activation on the sign threshold apart in two runtimes, a few images
MIN_ARGMAX_AGREEMENT = 0.99


def check_min_agreement(min_agreement: float) -> None:
    """``--min-agreement``: a share of test images in (0, 1]."""
    if not 0 < min_agreement <= 1:
        raise XnorfaultError(
            f"--min-agreement {min_agreement:g}: give a share of test images in (0, 1], e.g. 0.99"
        )


def parity_verdict(agreement: float, images: int, min_agreement: float, accept: bool) -> dict:
    """The export's parity, checked before anything is written: an argmax ``agreement`` below
    ``min_agreement`` on the ``images`` test images is a one-line error, unless ``accept`` (then
    recorded, as :data:`~xnorfault.graph.contract.PARITY_KEY` in the model's metadata)."""
    check_min_agreement(min_agreement)
    below = agreement < min_agreement
    if below and not accept:
        raise XnorfaultError(
            f"the export gives {agreement:.4f} of {images} test images the trained network's class, "
            f"below --min-agreement {min_agreement:g}: nothing was written ('xnorfault export "
            "--accept-low-parity' writes it anyway, recorded in its metadata)"
        )
    return {
        "argmax_agreement": agreement,
        "test_images": images,
        "min_agreement": min_agreement,
        "accepted_below_minimum": bool(below),
    }


def export_run(
    run_dir,
    output,
    point: str | None = None,
    repeat: int = 0,
    testset=None,
    min_agreement: float = MIN_ARGMAX_AGREEMENT,
    accept_low_parity: bool = False,
) -> dict:
    """Export one trained job of a run directory to ONNX (and optionally its test set as .npz).

    The parity between the torch model and onnxruntime on the test set is measured first; the
    model is written only when its argmax agreement reaches ``min_agreement`` (or
    ``accept_low_parity``: written, and the shortfall recorded in its metadata). Returns a
    summary with the parity.
    """
    import onnxruntime as ort

    from xnorfault.io import atomic_write

    model, full, job = load_trained_model(run_dir, point, repeat)
    metadata = model_metadata(model, full, job, run_dir, repeat)
    onnx_model = export_onnx(model, metadata, model_name=f"xnorfault_{metadata['model']['name']}")
    x_all, y_all, reference = test_split(run_dir, full, model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    exported = np.concatenate(
        [session.run(None, {INPUT_NAME: x_all[i : i + 512]})[0] for i in range(0, len(x_all), 512)]
    )
    summary = {
        "output": str(output),
        "binary_sites": json.loads(
            next(p.value for p in onnx_model.metadata_props if p.key == SITES_KEY)
        ),
        "test_images": int(len(y_all)),
        "argmax_agreement": float(np.mean(exported.argmax(1) == reference.argmax(1))),
        "max_abs_logit_difference": float(np.max(np.abs(exported - reference))),
        # a binary network's logits jump where a pre-activation sits on the sign threshold and
        # the two runtimes round it apart: how many images that touches says more than the max
        "images_differing": int(
            np.sum(np.abs(exported - reference).max(axis=1) > PARITY_TOLERANCE)
        ),
        "parity_tolerance": PARITY_TOLERANCE,
        "onnx_test_accuracy": float(np.mean(exported.argmax(1) == y_all)),
        "recorded_test_accuracy": job["epochs"][-1]["test_accuracy"],
    }
    summary["parity"] = parity_verdict(
        summary["argmax_agreement"], summary["test_images"], min_agreement, accept_low_parity
    )
    helper.set_model_props(
        onnx_model,
        {p.key: p.value for p in onnx_model.metadata_props}
        | {PARITY_KEY: json.dumps(summary["parity"])},
    )
    atomic_write(output, lambda handle: handle.write(onnx_model.SerializeToString()))
    if testset is not None:
        write_testset(testset, x_all, y_all, full["data"]["classes"])
        summary["testset"] = str(testset)
    return summary


def _data_options(config) -> dict:
    options = config.data_options or {}
    return {
        "extra": bool(options.get("extra")),
        "classes": options.get("classes"),
        "subset_seed": options.get("subset_seed", 0),
    }
