"""Fault-aware training of binarized networks (needs the ``train`` extra: torch, brevitas)."""
