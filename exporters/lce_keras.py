"""The LCE half of the export: layer spec → Larq Keras model → ``.tflite`` → conversion audit.

Runs only in the LCE environment (tensorflow-cpu 2.16, tf-keras, larq 0.14,
larq-compute-engine 0.16, numpy < 2); :mod:`xnorfault.exporters.lce` starts it as
``python -m xnorfault.exporters.lce_keras SPEC OUT`` and reads the JSON summary it prints.

Sign convention: larq's ``ste_sign`` and LCE's ``LceQuantize`` both map 0 to +1, as the
Brevitas binarizer of training does.

Bit flips (per site ``actK``, before the binary quantizer, as the ONNX pass places them after
the binarizer):

.. math::

    b = \\begin{cases}+1 & x \\ge 0\\\\ -1 & x < 0\\end{cases},\\qquad
    y = \\begin{cases}-b & U < p_b\\\\ b & \\text{otherwise}\\end{cases},\\qquad
    U \\sim \\mathcal{U}[0, 1)

with :math:`p_{+1} = ` ``p_flip_pos_actK`` (P(+1→−1)) and :math:`p_{-1} = ` ``p_flip_neg_actK``
fed as model inputs, so one file serves a whole sweep. :math:`U` comes from TFLite's
``RandomUniform``, seeded at export (``--flip-seed``): every invoke draws fresh values from a
stream that restarts only when the interpreter is created again. At :math:`p = 0` no value flips.

Binary dense layers are lowered as 1×1 binary convolutions over a 1×1 map (LCE 0.16 has a
binary convolution kernel but no binary dense kernel); ``--binary-dense dense`` keeps larq's
``QuantDense`` instead, which LCE would run in float — the audit rejects that.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from xnorfault.graph.contract import INPUT_NAME, rate_input_names  # noqa: E402
from xnorfault.runtimes.lce_tflite import read_tflite  # noqa: E402

BINARY_KERNELS = ("LceBconv2d",)
FLOAT_FALLBACK_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def binary_layer_name(site: str) -> str:
    return f"binary_{site}"


def _layers():
    import larq as lq
    import tensorflow as tf

    class BitFlip(tf.keras.layers.Layer):
        """Sign (0 ↦ +1), then flip each value with the rate of its sign (see the module)."""

        def __init__(self, seed: int, **kwargs):
            super().__init__(**kwargs)
            self.seed = seed

        def call(self, inputs):
            x, p_pos, p_neg = inputs
            broadcast = tf.concat([[-1], tf.ones([tf.rank(x) - 1], tf.int32)], 0)
            p_pos, p_neg = tf.reshape(p_pos, broadcast), tf.reshape(p_neg, broadcast)
            sign = tf.where(x >= 0.0, 1.0, -1.0)
            uniform = tf.random.uniform(tf.shape(x), seed=self.seed)
            rate = tf.where(sign > 0.0, p_pos, p_neg)
            return tf.where(uniform < rate, -sign, sign)

    class ChannelAffine(tf.keras.layers.Layer):
        """:math:`y = \\alpha x + b` per channel (scale and bias of a binary layer)."""

        def __init__(self, scale, bias, **kwargs):
            super().__init__(**kwargs)
            self.scale = tf.constant(scale, tf.float32)
            self.bias = tf.constant(bias, tf.float32)

        def call(self, x):
            return x * self.scale + self.bias

    class PadConstant(tf.keras.layers.Layer):
        """Spatial padding with a constant (the lowest float32 before a max pool, like torch)."""

        def __init__(self, padding, value, **kwargs):
            super().__init__(**kwargs)
            self.padding, self.value = padding, float(value)

        def call(self, x):
            (top, left) = self.padding
            paddings = [[0, 0], [top, top], [left, left], [0, 0]]
            return tf.pad(x, paddings, constant_values=self.value)

    return tf, lq, BitFlip, ChannelAffine, PadConstant


def build_keras_model(
    spec: dict, arrays: dict[str, np.ndarray], flip_seed: int = 0, binary_dense: str = "conv1x1"
):
    """The Larq Keras model of a layer spec (inputs: image NHWC, then two rates per site)."""
    tf, lq, BitFlip, ChannelAffine, PadConstant = _layers()
    layers = tf.keras.layers
    tf.random.set_seed(flip_seed)
    channels, height, width = spec["input_shape"]
    image = tf.keras.Input((height, width, channels), name=INPUT_NAME)
    rate_inputs = {}
    for site in spec["sites"]:
        positive, negative = rate_input_names(site, "tflite")
        rate_inputs[site] = (
            tf.keras.Input((), name=positive),
            tf.keras.Input((), name=negative),
        )
    x = image
    for index, layer in enumerate(spec["layers"]):
        op = layer["op"]
        if op == "binarize":
            x = BitFlip(seed=index + 1, name=f"flip_{layer['site']}")(
                [x, *rate_inputs[layer["site"]]]
            )
        elif op in ("binary_conv", "binary_dense"):
            signs = arrays[layer["kernel"]]
            name = binary_layer_name(layer["site"])
            if op == "binary_dense" and binary_dense == "dense":
                quantized = lq.layers.QuantDense(
                    signs.shape[0],
                    input_quantizer="ste_sign",
                    kernel_quantizer="ste_sign",
                    use_bias=False,
                    name=name,
                )
                x = quantized(x)
                quantized.set_weights([signs.T])
            else:
                if op == "binary_dense":
                    x = layers.Reshape((1, 1, signs.shape[1]))(x)
                    kernel = signs.T[None, None]
                    padding = "valid"
                else:
                    kernel = signs.transpose(2, 3, 1, 0)
                    padding = layer["padding"]
                quantized = lq.layers.QuantConv2D(
                    kernel.shape[-1],
                    kernel.shape[:2],
                    padding=padding,
                    pad_values=0.0,
                    input_quantizer="ste_sign",
                    kernel_quantizer="ste_sign",
                    use_bias=False,
                    name=name,
                )
                x = quantized(x)
                quantized.set_weights([kernel])
                if op == "binary_dense":
                    x = layers.Reshape((signs.shape[0],))(x)
            x = ChannelAffine(arrays[layer["scale"]], arrays[layer["bias"]])(x)
        elif op == "conv":
            weight = arrays[layer["kernel"]]
            top, left = layer["padding"]
            if top or left:
                x = layers.ZeroPadding2D(((top, top), (left, left)))(x)
            conv = layers.Conv2D(weight.shape[0], weight.shape[2:], strides=layer["stride"])
            x = conv(x)
            conv.set_weights([weight.transpose(2, 3, 1, 0), arrays[layer["bias"]]])
        elif op == "dense":
            weight = arrays[layer["kernel"]]
            dense = layers.Dense(weight.shape[0])
            x = dense(x)
            dense.set_weights([weight.T, arrays[layer["bias"]]])
        elif op == "batch_norm":
            variance = arrays[layer["variance"]]
            norm = layers.BatchNormalization(epsilon=layer["epsilon"])
            x = norm(x)
            norm.set_weights(
                [arrays[layer["gamma"]], arrays[layer["beta"]], arrays[layer["mean"]], variance]
            )
        elif op == "relu":
            x = layers.ReLU()(x)
        elif op in ("max_pool", "avg_pool"):
            top, left = layer["padding"]
            if top or left:
                if op == "max_pool":
                    x = PadConstant((top, left), np.finfo(np.float32).min)(x)
                else:
                    x = layers.ZeroPadding2D(((top, top), (left, left)))(x)
            pool = layers.MaxPooling2D if op == "max_pool" else layers.AveragePooling2D
            x = pool(layer["kernel"], strides=layer["stride"], padding="valid")(x)
        elif op == "global_avg_pool":
            x = layers.GlobalAveragePooling2D(keepdims=True)(x)
        elif op == "flatten":
            if x.shape.rank == 4 and (x.shape[1], x.shape[2]) != (1, 1):
                x = layers.Permute((3, 1, 2))(x)  # torch flattens in C, H, W order
            x = layers.Flatten()(x)
        else:
            raise ValueError(f"unknown layer op {op!r} in the spec")
    logits = layers.Activation("linear", name="logits")(x)
    inputs = [image] + [tensor for pair in rate_inputs.values() for tensor in pair]
    return tf.keras.Model(inputs, logits, name="xnorfault")


def audit(flatbuffer: bytes, spec: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Match every binary layer of the spec to an LCE binary kernel of the .tflite.

    Binary kernels are matched in network order by their filter shape (output channels and
    kernel size). A binary layer left without one would run in float: that raises a
    ``ValueError`` naming the layer.
    """
    contents = read_tflite(flatbuffer)
    kernels = [op for op in contents["operators"] if op["op"] in BINARY_KERNELS]
    expected = []
    for layer in spec["layers"]:
        if layer["op"] in ("binary_conv", "binary_dense"):
            shape = arrays[layer["kernel"]].shape
            kernel = tuple(shape[2:]) if layer["op"] == "binary_conv" else (1, 1)
            expected.append((layer["site"], layer["op"], shape[0], kernel, shape[1]))
    matched, unmatched = [], []
    position = 0
    for site, op, out_channels, kernel, in_features in expected:
        found = None
        for candidate in range(position, len(kernels)):
            filter_shape = kernels[candidate]["inputs"][1]["shape"]
            if filter_shape[:3] == [out_channels, *kernel]:
                found = candidate
                break
        if found is None:
            unmatched.append((site, op, out_channels, kernel, in_features))
        else:
            matched.append(site)
            position = found + 1
    if unmatched:
        described = "; ".join(
            f"{site} ({'dense' if op == 'binary_dense' else 'conv'} {inputs}→{out}, kernel {k[0]}×{k[1]})"
            for site, op, out, k, inputs in unmatched
        )
        fallbacks = sorted(
            {op["op"] for op in contents["operators"] if op["op"] in FLOAT_FALLBACK_OPS}
        )
        raise ValueError(
            f"LCE conversion left binary layer(s) without a binary kernel, they would run in float: "
            f"{described} (float ops in the model: {', '.join(fallbacks) or 'none'})"
        )
    counts: dict[str, int] = {}
    for op in contents["operators"]:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return {
        "binary_layers": len(expected),
        "binary_kernels": len(kernels),
        "matched_layers": matched,
        "operator_counts": dict(sorted(counts.items())),
        "inputs": [t["name"] for t in contents["inputs"]],
    }


def convert(
    spec: dict, arrays: dict[str, np.ndarray], flip_seed: int = 0, binary_dense: str = "conv1x1"
) -> tuple[bytes, dict]:
    """Build, convert with ``larq_compute_engine.convert_keras_model`` and audit."""
    import larq_compute_engine as lce

    model = build_keras_model(spec, arrays, flip_seed, binary_dense)
    flatbuffer = lce.convert_keras_model(model)
    report = audit(flatbuffer, spec, arrays)
    return flatbuffer, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("output")
    parser.add_argument("--flip-seed", type=int, default=0)
    parser.add_argument("--binary-dense", choices=("conv1x1", "dense"), default="conv1x1")
    args = parser.parse_args(argv)
    from xnorfault.exporters.lce import read_spec

    spec, arrays = read_spec(args.spec)
    try:
        flatbuffer, report = convert(spec, arrays, args.flip_seed, args.binary_dense)
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
        return 1
    import larq_compute_engine
    import tensorflow as tf

    with open(args.output, "wb") as handle:
        handle.write(flatbuffer)
    report.update(
        {
            "tensorflow_version": tf.__version__,
            "larq_compute_engine_version": getattr(larq_compute_engine, "__version__", "0.16"),
            "flip_seed": args.flip_seed,
            "bytes": len(flatbuffer),
        }
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
