"""onnxruntime backend: one session per model, reused for a whole sweep.

A clean model (no flip subgraphs) is injected in memory with zero default rates, so clean and
injected files evaluate alike. Rates and the seed are fed as inputs on every run. Imports numpy,
onnx and onnxruntime only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.inject import (
    INJECTED_KEY,
    SEED_INPUT,
    inject_flips,
    load_model,
    metadata,
    rate_inputs,
)


class OnnxRuntimeBackend:
    """Runs an (injected) ONNX model with onnxruntime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, model: str | Path | onnx.ModelProto, threads: int | None = None):
        self.path = None if isinstance(model, onnx.ModelProto) else str(model)
        proto = model if isinstance(model, onnx.ModelProto) else load_model(model)
        props = metadata(proto)
        if INJECTED_KEY not in props:
            proto = inject_flips(proto, FlipRates())
            props = metadata(proto)
        info = json.loads(props[INJECTED_KEY])
        self.sites: list[str] = info["sites"]
        self.injected_rates = {site: FlipRates.from_dict(r) for site, r in info["rates"].items()}
        self.metadata = props
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # rate inputs with defaults are intended, not a warning
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.threads = threads or os.cpu_count() or 1
        self.session = ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        data_inputs = [
            i
            for i in self.session.get_inputs()
            if i.name != SEED_INPUT and not i.name.startswith("p_flip_")
        ]
        if len(data_inputs) != 1:
            raise XnorfaultError(
                f"the model has {len(data_inputs)} data inputs; evaluate needs exactly one (the images)"
            )
        self.input_name = data_inputs[0].name
        self.input_shape = tuple(data_inputs[0].shape[1:])
        self.input_type = data_inputs[0].type

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        feeds = {self.input_name: images, SEED_INPUT: np.array(seed, dtype=np.int64)}
        for site in self.sites:
            site_rates = rates.get(site, FlipRates())
            positive, negative = rate_inputs(site)
            feeds[positive] = np.array(site_rates.pos_to_neg, dtype=np.float32)
            feeds[negative] = np.array(site_rates.neg_to_pos, dtype=np.float32)
        return self.session.run(None, feeds)[0]

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "runtime_version": ort.__version__,
            "threads": self.threads,
            "execution_provider": self.session.get_providers()[0],
            "graph_optimization": "all",
            "model": self.path,
            "sites": self.sites,
        }
