"""Torch-free ONNX work: the model contract, the BitFlip function and its reference generator,
the binary-site rules, the lowering of QONNX quantizers, the flip rewrite, the inspection of a
model, and the binary-weight helpers.

Imports nothing itself: :mod:`xnorfault.graph.contract` stays importable in the LCE
environment (no onnx there), and each module imports only what it needs (numpy, onnx,
onnx_ir, onnxscript).
"""
