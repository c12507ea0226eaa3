"""Deployment targets such as the Raspberry Pi (importable as ``xnorfault.targets``)."""
