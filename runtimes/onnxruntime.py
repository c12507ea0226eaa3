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

from xnorfault.contract import INJECTED_KEY, SEED_INPUT, is_control_input, rate_input_names
from xnorfault.errors import XnorfaultError
from xnorfault.faults import FlipRates
from xnorfault.generator import run_seed
from xnorfault.inject import inject_flips, load_model, metadata
from xnorfault.runtimes.base import Backend


class OnnxRuntimeBackend(Backend):
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
        data_inputs = [i for i in self.session.get_inputs() if not is_control_input(i.name)]
        if len(data_inputs) != 1:
            raise XnorfaultError(
                f"the model has {len(data_inputs)} data inputs; evaluate needs exactly one (the images)"
            )
        self.input_name = data_inputs[0].name
        self.input_shape = tuple(data_inputs[0].shape[1:])
        self.input_type = data_inputs[0].type
        if self.input_type != "tensor(float)":
            raise XnorfaultError(
                f"the model's input {self.input_name!r} is {self.input_type}; evaluate feeds "
                "float32 images: export the model with a float32 input"
            )
        batch = data_inputs[0].shape[0] if data_inputs[0].shape else None
        # a model exported with a fixed batch (often 1) is fed in slices of that size
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        """Logits of ``images``. A model with a fixed batch B runs slice by slice (slice k with
        the flip seed :func:`run_seed` (seed, k); the last one padded by repeating its final
        image, whose extra outputs are dropped); flips stay independent per element."""
        count = len(images)
        if self.fixed_batch is None or count == self.fixed_batch:
            return self._run(images, rates, seed)
        size = self.fixed_batch
        outputs = []
        for index, start in enumerate(range(0, count, size)):
            part = images[start : start + size]
            if len(part) < size:
                padding = np.repeat(part[-1:], size - len(part), axis=0)
                part = np.concatenate([part, padding])
            outputs.append(self._run(part, rates, run_seed(seed, index))[: count - start])
        return np.concatenate(outputs)

    def _run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        feeds = {self.input_name: images, SEED_INPUT: np.array(seed, dtype=np.int64)}
        for site in self.sites:
            site_rates = rates.get(site, FlipRates())
            positive, negative = rate_input_names(site)
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
            "fixed_batch": self.fixed_batch,
        }
