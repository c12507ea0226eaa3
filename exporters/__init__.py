"""Model exporters: standard ONNX and Larq Compute Engine (importable as ``xnorfault.exporters``)."""
