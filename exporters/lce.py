"""Export a trained binarized network to Larq Compute Engine (``.tflite`` with ``LceBconv2d``).

LCE's converter needs tensorflow 2.16, which cannot share an environment with current onnx
(protobuf and ml_dtypes pins). The export therefore runs in two halves:

1. here, with torch: the network is walked module by module into a *layer spec* — a list of
   plain dicts plus numpy arrays, written to one ``.npz`` (no torch, no pickle);
2. in the LCE environment (:func:`xnorfault.runtimes.lce.lce_python`):
   :mod:`xnorfault.exporters.lce_keras` rebuilds the network as a Larq Keras model from the
   spec, converts it with ``larq_compute_engine.convert_keras_model`` and audits the result.

Spec operations (NCHW weights are converted to Keras' NHWC/HWIO on the LCE side):

* ``binarize`` (site ``actK``): sign with 0 ↦ +1, then the bit flips of that site;
* ``binary_conv`` / ``binary_dense`` (``weightK``): kernel :math:`\\mathrm{sign}(W)` with the
  per-output-channel scale :math:`\\alpha_c` and the bias applied after the XNOR-popcount,
  :math:`y_c = \\alpha_c\\,(\\mathrm{sign}(W_c) \\ast x_b) + b_c` — exactly the ±α weights of
  training;
* ``conv``, ``dense``, ``batch_norm``, ``relu``, ``max_pool``, ``avg_pool``,
  ``global_avg_pool``, ``flatten`` (in torch's C, H, W order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPEC_FORMAT = "xnorfault-lce-spec/1"


class _Arrays:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, array, stem: str) -> str:
        key = f"{stem}#{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        return key


def _numpy(tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float32)


def _pair(value) -> list[int]:
    return [int(v) for v in value] if isinstance(value, tuple | list) else [int(value)] * 2


def _binary_weights(module) -> tuple[np.ndarray, np.ndarray]:
    """Split the binarized weights ±α_c of a binary layer into sign(W) and α_c."""
    values = _numpy(module.quant_weight().value)
    alpha = np.abs(values).reshape(values.shape[0], -1).max(axis=1)
    if np.any(alpha == 0):
        raise ValueError(f"{module.weight_flip.site}: an output channel has a zero weight scale")
    signs = np.where(values >= 0, 1.0, -1.0).astype(np.float32)
    return signs, alpha


def _float_layer(module, op: str, arrays: _Arrays, **attributes) -> dict:
    """A full-precision convolution or dense layer: weight and bias (zeros if none)."""
    weight = _numpy(module.weight)
    bias = _numpy(module.bias) if module.bias is not None else np.zeros(weight.shape[0])
    return {
        "op": op,
        "kernel": arrays.add(weight, f"{op}.weight"),
        "bias": arrays.add(bias, f"{op}.bias"),
        **attributes,
    }


def _pool_spec(module, op: str) -> dict:
    if getattr(module, "ceil_mode", False):
        raise ValueError(f"{type(module).__name__}(ceil_mode=True) has no LCE lowering")
    stride = module.stride if module.stride is not None else module.kernel_size
    spec = {
        "op": op,
        "kernel": _pair(module.kernel_size),
        "stride": _pair(stride),
        "padding": _pair(module.padding),
    }
    if op == "avg_pool":
        if module.divisor_override is not None or (
            any(spec["padding"]) and not module.count_include_pad
        ):
            raise ValueError("AvgPool2d without count_include_pad has no LCE lowering")
    return spec


def layer_spec(model) -> tuple[dict, dict[str, np.ndarray]]:
    """The layer spec of a :class:`~xnorfault.models.base.BinarizedNet` (eval mode).

    Returns ``(spec, arrays)``: ``spec`` is JSON-able (input shape, classes, sites, layers) and
    names its weights by keys of ``arrays``.
    """
    from torch import nn

    from xnorfault.exporters.onnx import flatten_modules
    from xnorfault.models.layers import BinaryActivation, BinaryConv2d, BinaryLinear

    model = model.eval()
    arrays = _Arrays()
    layers: list[dict] = []
    modules = flatten_modules(model.features) + flatten_modules(model.classifier)
    for module in modules:
        if isinstance(module, BinaryActivation):
            layers.append({"op": "binarize", "site": module.flip.site})
        elif isinstance(module, BinaryConv2d | BinaryLinear):
            signs, alpha = _binary_weights(module)
            bias = _numpy(module.bias) if module.bias is not None else np.zeros_like(alpha)
            entry = {
                "site": module.weight_flip.site,
                "kernel": arrays.add(signs, f"{module.weight_flip.site}.sign"),
                "scale": arrays.add(alpha, f"{module.weight_flip.site}.alpha"),
                "bias": arrays.add(bias, f"{module.weight_flip.site}.bias"),
            }
            if isinstance(module, BinaryConv2d):
                kernel, padding = _pair(module.kernel_size), _pair(module.padding)
                if _pair(module.stride) != [1, 1] or _pair(module.dilation) != [1, 1]:
                    raise ValueError(f"{entry['site']}: strided or dilated binary convolutions")
                if module.groups != 1:
                    raise ValueError(f"{entry['site']}: grouped binary convolutions")
                if padding == [0, 0]:
                    entry["padding"] = "valid"
                elif padding == [(k - 1) // 2 for k in kernel] and all(k % 2 for k in kernel):
                    entry["padding"] = "same"
                else:
                    raise ValueError(
                        f"{entry['site']}: padding {padding} is neither 'valid' nor 'same' for a {kernel} kernel"
                    )
                layers.append({"op": "binary_conv", **entry})
            else:
                layers.append({"op": "binary_dense", **entry})
        elif isinstance(module, nn.Conv2d):
            if module.groups != 1 or _pair(module.dilation) != [1, 1]:
                raise ValueError("grouped or dilated convolutions have no LCE lowering")
            layers.append(
                _float_layer(
                    module,
                    "conv",
                    arrays,
                    stride=_pair(module.stride),
                    padding=_pair(module.padding),
                )
            )
        elif isinstance(module, nn.Linear):
            layers.append(_float_layer(module, "dense", arrays))
        elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
            mean = _numpy(module.running_mean)
            layers.append(
                {
                    "op": "batch_norm",
                    "gamma": arrays.add(
                        _numpy(module.weight) if module.affine else np.ones_like(mean), "bn.gamma"
                    ),
                    "beta": arrays.add(
                        _numpy(module.bias) if module.affine else np.zeros_like(mean), "bn.beta"
                    ),
                    "mean": arrays.add(mean, "bn.mean"),
                    "variance": arrays.add(_numpy(module.running_var), "bn.variance"),
                    "epsilon": float(module.eps),
                }
            )
        elif isinstance(module, nn.ReLU):
            layers.append({"op": "relu"})
        elif isinstance(module, nn.MaxPool2d):
            layers.append(_pool_spec(module, "max_pool"))
        elif isinstance(module, nn.AvgPool2d):
            layers.append(_pool_spec(module, "avg_pool"))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            if module.output_size not in (1, (1, 1)):
                raise ValueError("only global adaptive average pooling has an LCE lowering")
            layers.append({"op": "global_avg_pool"})
        elif isinstance(module, nn.Flatten):
            layers.append({"op": "flatten"})
        elif isinstance(module, nn.Dropout | nn.Identity):
            continue
        else:
            raise ValueError(f"the LCE exporter has no lowering for {type(module).__name__}")
    spec = {
        "format": SPEC_FORMAT,
        "input_shape": [model.in_channels, model.input_size, model.input_size],
        "num_classes": model.num_classes,
        "sites": [layer["site"] for layer in layers if layer["op"] == "binarize"],
        "binary_layers": [
            layer["site"] for layer in layers if layer["op"] in ("binary_conv", "binary_dense")
        ],
        "layers": layers,
    }
    return spec, arrays.arrays


def write_spec(path, spec: dict, arrays: dict[str, np.ndarray]) -> None:
    """One ``.npz``: the spec as a JSON string under ``spec`` and every weight array."""
    np.savez(path, spec=np.array(json.dumps(spec)), **arrays)


def read_spec(path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        spec = json.loads(str(data["spec"]))
        if spec.get("format") != SPEC_FORMAT:
            raise ValueError(f"{path} is not an xnorfault LCE layer spec ({SPEC_FORMAT})")
        arrays = {key: data[key] for key in data.files if key != "spec"}
    return spec, arrays


def convert_spec(spec_path, output, flip_seed: int = 0, binary_dense: str = "conv1x1") -> dict:
    """Run the LCE half of the export in the LCE environment; returns its JSON summary."""
    from xnorfault.runtimes.lce import run_in_lce_environment

    return run_in_lce_environment(
        [
            "-m",
            "xnorfault.exporters.lce_keras",
            str(spec_path),
            str(output),
            "--flip-seed",
            str(flip_seed),
            "--binary-dense",
            binary_dense,
        ]
    )


def export_lce_run(
    run_dir,
    output,
    point: str | None = None,
    repeat: int = 0,
    testset=None,
    flip_seed: int = 0,
    parity_limit: int | None = None,
) -> dict:
    """Export one trained job to LCE and check it against the ONNX export at p = 0.

    The ``.tflite`` is written atomically only after the conversion audit passed. The parity
    check runs both runtimes on the test split (the first ``parity_limit`` images if given).
    """
    import tempfile

    from xnorfault.exporters.onnx import (
        export_onnx,
        load_trained_model,
        model_metadata,
        test_split,
        write_testset,
    )
    from xnorfault.io import atomic_write
    from xnorfault.runtimes.lce import LceBackend
    from xnorfault.runtimes.onnxruntime import OnnxRuntimeBackend

    output = Path(output)
    model, record, job = load_trained_model(run_dir, point, repeat)
    metadata = model_metadata(model, record, job, run_dir, repeat)
    spec, arrays = layer_spec(model)
    spec["metadata"] = metadata
    with tempfile.TemporaryDirectory(prefix="xnorfault-lce-") as scratch:
        spec_path = Path(scratch) / "spec.npz"
        converted = Path(scratch) / "model.tflite"
        write_spec(spec_path, spec, arrays)
        summary = convert_spec(spec_path, converted, flip_seed=flip_seed)
        payload = converted.read_bytes()
    atomic_write(output, lambda handle: handle.write(payload))
    images, labels, reference = test_split(run_dir, record, model)
    if parity_limit is not None:
        images, labels, reference = (
            images[:parity_limit],
            labels[:parity_limit],
            reference[:parity_limit],
        )
    onnx_backend = OnnxRuntimeBackend(export_onnx(model, metadata))
    onnx_logits = onnx_backend.run(images, {}, 0)
    with LceBackend(output) as lce_backend:
        lce_logits = lce_backend.run(images, {}, 0)
    summary.update(
        {
            "output": str(output),
            "test_images": int(len(labels)),
            "argmax_agreement_with_onnx": float(
                np.mean(lce_logits.argmax(1) == onnx_logits.argmax(1))
            ),
            "argmax_agreement_with_torch": float(
                np.mean(lce_logits.argmax(1) == reference.argmax(1))
            ),
            "max_abs_logit_difference_to_onnx": float(np.max(np.abs(lce_logits - onnx_logits))),
            "lce_test_accuracy": float(np.mean(lce_logits.argmax(1) == labels)),
            "onnx_test_accuracy": float(np.mean(onnx_logits.argmax(1) == labels)),
            "recorded_test_accuracy": job["epochs"][-1]["test_accuracy"],
        }
    )
    if testset is not None:
        write_testset(testset, images, labels, record["data"]["classes"])
        summary["testset"] = str(testset)
    return summary
