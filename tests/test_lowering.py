"""QONNX quantizers lowered to standard ONNX (xnorfault.graph.lowering) against QONNX's own reference
implementations (the qonnx package): Quant over bit widths, signedness, narrow range, rounding
modes and per-tensor/per-channel scale and zero point; Trunc v1 and v2; MultiThreshold."""

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xnorfault.graph.lowering import ROUNDING_MODES, lower_qonnx, unlowered_nodes
from xnorfault.graph.sites import match_sites

qonnx_quant = pytest.importorskip("qonnx.custom_op.general.quant")
qonnx_trunc = pytest.importorskip("qonnx.custom_op.general.trunc")
qonnx_threshold = pytest.importorskip("qonnx.custom_op.general.multithreshold")

QONNX = "qonnx.custom_op.general"
SHAPE = (4, 3, 5, 6)


def graph(node, constants, x_shape=SHAPE, opset_domain=QONNX):
    """A model y = node(x, constants…) with x a float input of ``x_shape``."""
    model = helper.make_model(
        helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in constants.items()],
        ),
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(opset_domain, 1)],
    )
    return model


def lowered_run(model, x):
    """Lower ``model`` and run it on ``x`` with onnxruntime; also what was lowered."""
    lowered_model = ir.from_proto(model)
    log = lower_qonnx(lowered_model)
    assert not unlowered_nodes(lowered_model)
    session = ort.InferenceSession(ir.to_proto(lowered_model).SerializeToString())
    return session.run(None, {"x": x})[0], log, lowered_model


def quant_inputs(scale, zeropt):
    """Random values plus exact halves of the quantization step (where rounding modes differ)
    and values far outside the range (clipping)."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 6, SHAPE).astype(np.float32) * np.asarray(scale, np.float32)
    halves = (rng.integers(-20, 20, SHAPE) + 0.5 - np.asarray(zeropt)) * np.asarray(scale)
    x = np.where(rng.random(SHAPE) < 0.3, halves, x).astype(np.float32)
    x[0, 0, 0, :2] = [1e4, -1e4]
    return x


SCALES = {
    "per tensor": (np.float32(0.37), np.float32(0.0)),
    "per channel": (
        np.array([0.5, 0.25, 1.5], np.float32).reshape(1, 3, 1, 1),
        np.array([0.0, 1.0, 2.0], np.float32).reshape(1, 3, 1, 1),
    ),
}


@pytest.mark.parametrize("bit_width", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("signed", [0, 1])
@pytest.mark.parametrize("narrow", [0, 1])
@pytest.mark.parametrize("granularity", list(SCALES))
def test_quant_equals_qonnx(bit_width, signed, narrow, granularity):
    scale, zeropt = SCALES[granularity]
    x = quant_inputs(scale, zeropt)
    for mode in ROUNDING_MODES:
        node = helper.make_node(
            "Quant",
            ["x", "scale", "zeropt", "bits"],
            ["y"],
            domain=QONNX,
            signed=signed,
            narrow=narrow,
            rounding_mode=mode,
        )
        model = graph(node, {"scale": scale, "zeropt": zeropt, "bits": float(bit_width)})
        got, log, lowered = lowered_run(model, x)
        expected = qonnx_quant.quant(
            x, scale, zeropt, np.array(float(bit_width)), signed, narrow, mode
        )
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=mode)
        bipolar = bit_width == 1 and bool(signed)  # with a zero point, the ±1 code is the site
        assert [(q.op, q.binary) for q in log] == [("Quant", bipolar)]
        assert (match_sites(lowered) != {}) == bipolar


@pytest.mark.parametrize("bit_width, signed, narrow", [(1, 1, 0), (2, 1, 1), (4, 0, 0), (8, 1, 0)])
def test_quant_weights_fold_to_qonnx_values(bit_width, signed, narrow):
    rng = np.random.default_rng(bit_width)
    weight = rng.normal(0, 1, (3, 5)).astype(np.float32)
    node = helper.make_node(
        "Quant",
        ["w", "scale", "zeropt", "bits"],
        ["wq"],
        domain=QONNX,
        signed=signed,
        narrow=narrow,
        rounding_mode="ROUND",
    )
    matmul = helper.make_node("MatMul", ["x", "wq"], ["y"])
    constants = {"w": weight, "scale": 0.3, "zeropt": 0.0, "bits": float(bit_width)}
    model = graph(node, constants, x_shape=(2, 3))
    model.graph.node.append(matmul)
    x = rng.normal(0, 1, (2, 3)).astype(np.float32)
    got, log, lowered = lowered_run(model, x)
    reference = qonnx_quant.quant(
        weight, np.float32(0.3), np.float32(0), np.array(float(bit_width)), signed, narrow, "ROUND"
    )
    np.testing.assert_allclose(got, x @ reference, rtol=1e-5, atol=1e-6)
    assert [(q.kind, q.result, q.binary) for q in log] == [
        ("weight", "constant", bit_width == 1 and bool(signed))
    ]
    assert {node.op_type for node in lowered.graph} == {"Constant", "MatMul"}


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "HALF_UP", "DOWN"])
def test_trunc_v1_equals_qonnx(mode):
    rng = np.random.default_rng(3)
    scale = np.float32(0.125)
    x = (rng.integers(-300, 300, SHAPE) * scale).astype(np.float32)
    node = helper.make_node(
        "Trunc", ["x", "scale", "zeropt", "in_bits", "out_bits"], ["y"], domain=QONNX,
        rounding_mode=mode,
    )  # fmt: skip
    constants = {"scale": scale, "zeropt": 0.0, "in_bits": 10.0, "out_bits": 6.0}
    got, log, _ = lowered_run(graph(node, constants), x)
    expected = qonnx_trunc.trunc_v1(x, scale, np.float32(0), np.float32(10), np.float32(6), mode)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert [(q.op, q.bit_width, q.binary) for q in log] == [("Trunc", 6.0, False)]


@pytest.mark.parametrize("signed, narrow", [(1, 0), (1, 1), (0, 0)])
@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "UP"])
def test_trunc_v2_equals_qonnx(signed, narrow, mode):
    rng = np.random.default_rng(4)
    scale, out_scale = np.float32(0.125), np.float32(1.0)
    x = (rng.integers(-900, 900, SHAPE) * scale).astype(np.float32)
    node = helper.make_node(
        "Trunc",
        ["x", "scale", "zeropt", "in_bits", "out_scale", "out_bits"],
        ["y"],
        domain=QONNX,
        rounding_mode=mode,
        signed=signed,
        narrow=narrow,
    )
    constants = {
        "scale": scale,
        "zeropt": 0.0,
        "in_bits": 12.0,
        "out_scale": out_scale,
        "out_bits": 4.0,
    }
    got, _, _ = lowered_run(graph(node, constants), x)
    expected = qonnx_trunc.trunc_v2(
        x, scale, np.float32(0), np.float32(12), narrow, signed, out_scale, np.float32(4), mode
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("steps", [1, 3])
def test_multithreshold_equals_qonnx(layout, steps):
    rng = np.random.default_rng(steps)
    shape = SHAPE if layout == "NCHW" else (4, 5, 6, 3)
    x = rng.normal(0, 1, shape).astype(np.float32)
    thresholds = np.sort(rng.normal(0, 0.5, (3, steps)), axis=1).astype(np.float32)
    scale, bias = (2.0, -1.0) if steps == 1 else (0.5, -0.75)
    node = helper.make_node(
        "MultiThreshold",
        ["x", "thresholds"],
        ["y"],
        domain=QONNX,
        out_dtype="BIPOLAR" if steps == 1 else "INT2",
        out_scale=scale,
        out_bias=bias,
        data_layout=layout,
    )
    got, log, lowered = lowered_run(graph(node, {"thresholds": thresholds}, x_shape=shape), x)
    moved = x if layout == "NCHW" else np.moveaxis(x, -1, 1)
    expected = qonnx_threshold.multithreshold(moved, thresholds, scale, bias)
    expected = expected if layout == "NCHW" else np.moveaxis(expected, 1, -1)
    np.testing.assert_allclose(got, expected)
    assert [q.binary for q in log] == [steps == 1]  # one threshold, outputs ±1: a sign
    assert (match_sites(lowered) == {"y": "Where(GreaterOrEqual, c, -c)"}) == (steps == 1)


def test_quant_with_a_computed_bit_width_is_left_and_named():
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["bits"], keepdims=0),
        helper.make_node("Quant", ["x", "scale", "zeropt", "bits"], ["y"], domain=QONNX),
    ]
    model = graph(nodes[1], {"scale": 1.0, "zeropt": 0.0})
    model.graph.node.insert(0, nodes[0])
    lowered_model = ir.from_proto(model)
    assert lower_qonnx(lowered_model) == []
    assert [node.op_type for node in unlowered_nodes(lowered_model)] == ["Quant"]
