"""The operators, inputs and outputs of a ``.tflite``, read with tensorflow's generated schema:
the LCE environment only (the LCE worker's audit, the LCE export). A machine without tensorflow
reads a model's inputs with :mod:`xnorfault.runtimes.tflite`.
"""

from __future__ import annotations


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def read_tflite(flatbuffer: bytes) -> dict:
    """Operators (in execution order), inputs and outputs of a .tflite's main subgraph, read
    with tensorflow's generated schema (the LCE environment only; :func:`read_inputs` needs none)."""
    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    builtin_names = {
        value: name for name, value in vars(schema.BuiltinOperator).items() if name.isupper()
    }
    graph = model.subgraphs[0]

    def tensor(index):
        t = graph.tensors[index]
        return {
            "name": t.name.decode(),
            "shape": [int(v) for v in (t.shape if t.shape is not None else [])],
        }

    operators = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = (
            code.customCode.decode()
            if code.customCode
            else builtin_names.get(builtin, str(builtin))
        )
        operators.append(
            {
                "op": name,
                "inputs": [tensor(i) for i in op.inputs if i >= 0],
                "outputs": [tensor(i) for i in op.outputs if i >= 0],
            }
        )
    return {
        "operators": operators,
        "inputs": [tensor(i) for i in graph.inputs],
        "outputs": [tensor(i) for i in graph.outputs],
    }
