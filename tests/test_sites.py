"""Site patterns (xnorfault.graph.sites) and the BipolarQuant lowering (xnorfault.graph.lowering), one rule at
a time."""

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xnorfault.graph.lowering import lower_qonnx
from xnorfault.graph.sites import find_pattern_sites, match_sites

QONNX = "qonnx.custom_op.general"


def model(nodes, initializers=(), inputs=(("x", [2, 8]),), output="y", domains=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, np.float32), name) for name, v in initializers],
    )
    opsets = [helper.make_opsetid("", 18), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets)


def where(comparison, plus, minus, threshold=0.0):
    return model(
        [
            helper.make_node(comparison, ["x", "t"], ["c"]),
            helper.make_node("Where", ["c", "a", "b"], ["y"]),
        ],
        [("t", threshold), ("a", plus), ("b", minus)],
    )


@pytest.mark.parametrize(
    "comparison, plus, minus, threshold, is_site",
    [
        ("GreaterOrEqual", 1.0, -1.0, 0.0, True),
        ("Greater", 0.25, -0.25, 0.0, True),
        ("Less", -2.0, 2.0, 0.0, True),
        ("LessOrEqual", -1.0, 1.0, 0.0, True),
        ("GreaterOrEqual", [0.5, 2.0], [-0.5, -2.0], 0.0, True),  # per-channel scale
        ("GreaterOrEqual", -1.0, 1.0, 0.0, False),  # the negative value for x >= 0
        ("Less", 1.0, -1.0, 0.0, False),
        ("GreaterOrEqual", 1.0, -2.0, 0.0, False),  # not ±c
        ("GreaterOrEqual", 1.0, -1.0, 0.5, True),  # a threshold (a lowered MultiThreshold)
        ("Equal", 1.0, -1.0, 0.0, False),
    ],
)
def test_where_binarizers(comparison, plus, minus, threshold, is_site):
    found = find_pattern_sites(ir.from_proto(where(comparison, plus, minus, threshold)))
    assert found == (["y"] if is_site else [])


def test_a_threshold_that_is_not_constant_is_no_site():
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["t"], keepdims=1),
        helper.make_node("GreaterOrEqual", ["x", "t"], ["c"]),
        helper.make_node("Where", ["c", "a", "b"], ["y"]),
    ]
    assert find_pattern_sites(ir.from_proto(model(nodes, [("a", 1.0), ("b", -1.0)]))) == []


def test_where_with_a_computed_scale_and_its_negation():
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["s"], keepdims=1),
        helper.make_node("GreaterOrEqual", ["x", "zero"], ["c"]),
        helper.make_node("Neg", ["s"], ["minus_s"]),
        helper.make_node("Where", ["c", "s", "minus_s"], ["y"]),
    ]
    assert find_pattern_sites(ir.from_proto(model(nodes, [("zero", 0.0)]))) == ["y"]
    other = [*nodes[:2], helper.make_node("Where", ["c", "s", "x"], ["y"])]
    assert find_pattern_sites(ir.from_proto(model(other, [("zero", 0.0)]))) == []


def test_sign_is_a_site():
    graph = ir.from_proto(model([helper.make_node("Sign", ["x"], ["y"])]))
    assert match_sites(graph) == {"y": "Sign"}


def test_bipolar_quant_weights_fold_and_activations_lower():
    weight = np.array([[0.0, -0.3], [2.0, -1.0]], np.float32)
    nodes = [
        helper.make_node("BipolarQuant", ["x", "s"], ["act"], domain=QONNX),
        helper.make_node("BipolarQuant", ["w", "ws"], ["wq"], domain=QONNX),
        helper.make_node("MatMul", ["act", "wq"], ["y"]),
    ]
    graph = ir.from_proto(
        model(
            nodes,
            [("s", [0.5, 2.0]), ("ws", 3.0), ("w", weight)],
            inputs=[("x", [3, 2])],
            domains=[QONNX],
        )
    )
    lowered = lower_qonnx(graph)
    assert sorted((q.op, q.kind, q.result) for q in lowered) == [
        ("BipolarQuant", "activation", "binary site"),
        ("BipolarQuant", "weight", "constant"),
    ]
    assert QONNX not in graph.opset_imports
    assert {node.op_type for node in graph.graph} == {
        "Constant",
        "GreaterOrEqual",
        "Neg",
        "Where",
        "MatMul",
    }
    assert find_pattern_sites(graph) == ["act"]  # the activation keeps its name
    x = np.array([[0.0, -1.0], [3.0, 0.5], [-2.0, -0.1]], np.float32)
    runner = ort.InferenceSession(ir.to_proto(graph).SerializeToString())
    expected = (np.where(x >= 0, 1, -1) * [0.5, 2.0]) @ (np.where(weight >= 0, 1, -1) * 3.0)
    assert np.allclose(runner.run(None, {"x": x})[0], expected)


def test_bipolar_quant_of_a_weight_without_constant_scale_is_left_alone():
    nodes = [
        helper.make_node("BipolarQuant", ["w", "x"], ["wq"], domain=QONNX),
        helper.make_node("Add", ["wq", "x"], ["y"]),
    ]
    graph = ir.from_proto(model(nodes, [("w", [1.0, -1.0])], inputs=[("x", [2])], domains=[QONNX]))
    assert lower_qonnx(graph) == []
    assert QONNX in graph.opset_imports


def test_find_binary_sites_reads_metadata_first_and_lowers_qonnx():
    from xnorfault.graph.rewrite import find_binary_sites

    tagged = where("GreaterOrEqual", 1.0, -1.0)
    helper.set_model_props(tagged, {"xnorfault.binary_sites": '["c"]'})
    assert find_binary_sites(tagged) == ["c"]  # the metadata wins over the patterns
    qonnx = model(
        [helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=QONNX)],
        [("s", 1.0)],
        domains=[QONNX],
    )
    assert find_binary_sites(qonnx) == ["y"]
