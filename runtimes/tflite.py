"""Read the inputs of a ``.tflite`` file without tensorflow (``flatbuffers`` only).

A machine without tensorflow (a Raspberry Pi, the main environment) still needs the order and
shapes of a model's inputs to drive ``lce_benchmark_model``. This reads just that from the
flatbuffer, following the TFLite schema (``tensorflow/lite/schema/schema.fbs``):
``Model.subgraphs`` (field 2) → ``SubGraph.tensors`` (field 0) and ``SubGraph.inputs``
(field 1) → ``Tensor.shape`` (field 0) and ``Tensor.name`` (field 3).
"""

from __future__ import annotations

from pathlib import Path

from flatbuffers import encode, number_types, packer
from flatbuffers.table import Table

from xnorfault.errors import XnorfaultError

TFLITE_IDENTIFIER = b"TFL3"
_SIGNATURE_PREFIX = "serving_default_"


def feed_name(tensor_name: str) -> str:
    """The Keras input name behind a converted tensor name:
    ``serving_default_p_flip_pos_act1:0`` → ``p_flip_pos_act1``."""
    return tensor_name.split(":")[0].removeprefix(_SIGNATURE_PREFIX)


def _field(table: Table, index: int) -> int:
    """Offset of field ``index`` in ``table`` (0 when absent); vtable slots start at 4."""
    return table.Offset(4 + 2 * index)


def _table_vector(table: Table, index: int) -> list[Table]:
    offset = _field(table, index)
    if not offset:
        return []
    start = table.Vector(offset)
    return [
        Table(table.Bytes, table.Indirect(start + 4 * i)) for i in range(table.VectorLen(offset))
    ]


def _int_vector(table: Table, index: int) -> list[int]:
    offset = _field(table, index)
    if not offset:
        return []
    start = table.Vector(offset)
    return [
        table.Get(number_types.Int32Flags, start + 4 * i) for i in range(table.VectorLen(offset))
    ]


def tflite_inputs(path: str | Path) -> list[tuple[str, list[int]]]:
    """``(tensor name, shape)`` of every input of the main subgraph, in the model's order."""
    path = Path(path)
    if not path.is_file():
        raise XnorfaultError(f"model file {path} not found")
    data = bytearray(path.read_bytes())
    if len(data) < 8 or bytes(data[4:8]) != TFLITE_IDENTIFIER:
        raise XnorfaultError(f"{path} is not a TFLite model (no 'TFL3' identifier)")
    root = encode.Get(packer.uoffset, data, 0)
    model = Table(data, root)
    subgraphs = _table_vector(model, 2)
    if not subgraphs:
        raise XnorfaultError(f"{path} has no subgraph")
    graph = subgraphs[0]
    tensors = _table_vector(graph, 0)
    inputs = []
    for index in _int_vector(graph, 1):
        tensor = tensors[index]
        name_offset = _field(tensor, 3)
        name = tensor.String(tensor.Pos + name_offset).decode() if name_offset else f"input{index}"
        inputs.append((name, _int_vector(tensor, 0)))
    return inputs
