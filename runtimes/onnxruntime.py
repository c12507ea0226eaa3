"""onnxruntime backend: one session per model, reused for a whole sweep.

A clean model (no flip subgraphs) is injected in memory with zero default rates, so clean and
injected files evaluate alike. Rates and the seed are fed as inputs on every run. Test images
are brought into the model's layout and element type once (:mod:`xnorfault.runtimes.feeding`);
a model with a fixed batch is fed in slices of that size. Every onnxruntime failure becomes one
line naming the node and operator and what to do. Imports numpy, onnx and onnxruntime (and
onnx_ir/onnxscript to inject).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from xnorfault.errors import XnorfaultError
from xnorfault.faults import AddressRates, FlipRates, WriteModel
from xnorfault.graph.contract import (
    BITFLIP_DOMAIN,
    INJECTED_KEY,
    OUTPUT_KEY,
    SEED_INPUT,
    is_control_input,
    rate_input_names,
)
from xnorfault.graph.generator import run_seed
from xnorfault.graph.rewrite import inject_flips, load_model, metadata
from xnorfault.graph.weights import binary_weight_tensors
from xnorfault.runtimes.base import Backend
from xnorfault.runtimes.feeding import DataInput, choose_output

# Operator domains stock onnxruntime (CPU) implements; model-local functions add their own.
RUNTIME_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc")


class OnnxRuntimeBackend(Backend):
    """Runs an (injected) ONNX model with onnxruntime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        threads: int | None = None,
        output: str | None = None,
        layout: str | None = None,
        write: WriteModel | None = None,
        rate_maps: bool = False,
    ):
        self.path = None if isinstance(model, onnx.ModelProto) else str(model)
        proto = model if isinstance(model, onnx.ModelProto) else load_model(model)
        props = metadata(proto)
        if INJECTED_KEY not in props:
            proto = inject_flips(
                proto, FlipRates(), write=write or WriteModel(), rate_maps=rate_maps
            )
            props = metadata(proto)
        else:
            info = json.loads(props[INJECTED_KEY])
            other_write = write is not None and WriteModel.from_dict(info.get("write")) != write
            if other_write or (rate_maps and not info.get("rate_maps", False)):
                # another write model than the file's, or rate maps: the same sites and rates,
                # re-injected
                rates = {site: FlipRates.from_dict(r) for site, r in info["rates"].items()}
                proto = inject_flips(
                    proto,
                    rates,
                    sites=info["sites"],
                    source=info.get("source"),
                    write=write or WriteModel.from_dict(info.get("write")),
                    rate_maps=rate_maps,
                )
                props = metadata(proto)
        check_runnable(proto)
        info = json.loads(props[INJECTED_KEY])
        self.write = WriteModel.from_dict(info.get("write"))
        self.rate_maps = bool(info.get("rate_maps", False))
        self.sites: list[str] = info["sites"]
        self.injected_rates = {site: FlipRates.from_dict(r) for site, r in info["rates"].items()}
        self.site_addresses = site_addresses(proto, self.sites)
        self.metadata = props
        self.threads = threads or os.cpu_count() or 1
        self._requested_threads = threads
        self._proto = proto
        self._weights: dict[str, np.ndarray] | None = None
        self._model_proto: onnx.ModelProto | None = None  # without flips, for its latency
        self._model_session: ort.InferenceSession | None = None
        self.session = self._open_session(proto)
        data_inputs = [i for i in self.session.get_inputs() if not is_control_input(i.name)]
        if len(data_inputs) != 1:
            names = ", ".join(i.name for i in data_inputs)
            raise XnorfaultError(
                f"the model has {len(data_inputs)} data inputs ({names}); evaluate needs exactly one (the images)"
            )
        self.data_input = DataInput.from_onnxruntime(data_inputs[0], layout)
        self.input_name = self.data_input.name
        self.input_shape = self.data_input.channels_first_shape
        # a model exported with a fixed batch (often 1) is fed in slices of that size
        self.fixed_batch: int | None = self.data_input.fixed_batch
        outputs = [(o.name, o.type) for o in self.session.get_outputs()]
        self.output_name = choose_output(outputs, output, props.get(OUTPUT_KEY))

    def _open_session(self, proto: onnx.ModelProto, replaced=None) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # rate inputs with defaults are intended, not a warning
        if self._requested_threads:
            options.intra_op_num_threads = self._requested_threads
            options.inter_op_num_threads = 1
        if replaced:
            # a copy with the new tensors: onnxruntime's SessionOptions.add_initializer is
            # not applied to weights its optimiser prepacks (Conv's are reordered first)
            proto = _with_initializers(proto, replaced)
        try:
            session = ort.InferenceSession(
                proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime's own Fail/InvalidGraph/NotImplemented types
            raise runtime_error(error, proto, "load") from None
        return session

    def binary_weights(self) -> dict[str, np.ndarray]:
        """The model's binary weights by initializer name (Constant-node weights lifted to
        initializers first, :func:`xnorfault.graph.weights.binary_weight_tensors`)."""
        if self._weights is None:
            lifted, self._weights = binary_weight_tensors(self._proto)
            if lifted is not self._proto:
                self._proto = lifted
                self.session = self._open_session(lifted)
        return self._weights

    def set_weight_faults(self, weights: dict[str, np.ndarray] | None) -> None:
        """A new session of a copy of the model with ``weights`` in place of those
        initializers."""
        known = self.binary_weights()
        for name, array in (weights or {}).items():
            if name not in known or array.shape != known[name].shape:
                raise XnorfaultError(
                    f"weight {name!r} is not a binary weight of the model of shape {array.shape}"
                )
        self.session = self._open_session(self._proto, weights)

    def conform(self, images: np.ndarray) -> np.ndarray:
        return self.data_input.conform(images)

    @property
    def model_proto(self) -> onnx.ModelProto:
        """The deployed model: this one without its flips (:func:`xnorfault.graph.rewrite.strip_flips`)."""
        if self._model_proto is None:
            from xnorfault.graph.rewrite import strip_flips

            self._model_proto = strip_flips(self._proto)
        return self._model_proto

    def run_model_timed(self, images: np.ndarray) -> float:
        """Seconds one run of :attr:`model_proto` takes (its own session, opened once; a fixed
        batch fed in slices as :meth:`run` does)."""
        if self._model_session is None:
            self._model_session = self._open_session(self.model_proto)
        parts = [part for _, part in self._slices(images)]
        start = time.perf_counter()
        try:
            for part in parts:
                self._model_session.run([self.output_name], {self.input_name: part})
        except Exception as error:  # onnxruntime's own error types
            raise runtime_error(error, None, "run") from None
        return time.perf_counter() - start

    def run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        """Logits of ``images``. A model with a fixed batch B runs slice by slice (slice k with
        the flip seed :func:`run_seed` (seed, k); the last one padded by repeating its final
        image, whose extra outputs are dropped); flips stay independent per element."""
        count = len(images)
        if self.fixed_batch is None or count == self.fixed_batch:
            return self._run(images, rates, seed)
        outputs = [
            self._run(part, rates, run_seed(seed, index))[: count - start]
            for index, (start, part) in enumerate(self._slices(images))
        ]
        return np.concatenate(outputs)

    def _slices(self, images: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(start, slice) of ``images`` as the model takes them: slices of its fixed batch,
        the last padded by repeating its final image; all at once without a fixed batch."""
        size = self.fixed_batch or len(images)
        slices = []
        for start in range(0, len(images), size):
            part = images[start : start + size]
            if len(part) < size:
                part = np.concatenate([part, np.repeat(part[-1:], size - len(part), axis=0)])
            slices.append((start, part))
        return slices

    def _run(self, images: np.ndarray, rates: dict[str, FlipRates], seed: int) -> np.ndarray:
        feeds = {self.input_name: images, SEED_INPUT: np.array(seed, dtype=np.int64)}
        for site in self.sites:
            positive, negative = rate_input_names(site)
            feeds[positive], feeds[negative] = self._rate_feeds(site, rates.get(site, FlipRates()))
        try:
            (logits,) = self.session.run([self.output_name], feeds)
        except Exception as error:  # onnxruntime's own error types
            raise runtime_error(error, None, "run") from None
        return logits

    def _rate_feeds(
        self, site: str, rates: FlipRates | AddressRates
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two rate inputs of ``site``: scalars, or vectors in a model with rate maps."""
        if isinstance(rates, AddressRates):
            if not self.rate_maps:
                raise XnorfaultError(
                    "per-address rates need the model injected with rate maps: open the backend with rate_maps=True"
                )
            expected = self.site_addresses.get(site)
            if rates.addresses != expected:
                raise XnorfaultError(
                    f"site {site}: {rates.addresses} per-address rates for "
                    f"{expected or 'an unknown number of'} elements per image"
                )
            return rates.pos_to_neg, rates.neg_to_pos
        shape = (1,) if self.rate_maps else ()
        return (
            np.full(shape, rates.pos_to_neg, dtype=np.float32),
            np.full(shape, rates.neg_to_pos, dtype=np.float32),
        )

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "runtime_version": ort.__version__,
            "threads": self.threads,
            "execution_provider": self.session.get_providers()[0],
            "graph_optimization": "all",
            "model": self.path,
            "site_names": self.sites,
            "fixed_batch": self.fixed_batch,
            "input": self.data_input.describe(),
            "output": self.output_name,
            "write_model": self.write.to_dict(),
            "rate_maps": self.rate_maps,
        }


def _with_initializers(proto: onnx.ModelProto, tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``proto`` whose named initializers hold ``tensors``."""
    from onnx import numpy_helper

    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for initializer in copy.graph.initializer:
        if initializer.name in tensors:
            array = tensors[initializer.name].astype(
                onnx.helper.tensor_dtype_to_np_dtype(initializer.data_type), copy=False
            )
            initializer.CopyFrom(numpy_helper.from_array(array, initializer.name))
    return copy


def site_addresses(model: onnx.ModelProto, sites: list[str]) -> dict[str, int | None]:
    """Elements per image of each site's activation (its memory's addresses), from the shapes
    ONNX shape inference gave the injected model; ``None`` where a dimension is not fixed."""
    shapes = {
        value.name: value.type.tensor_type.shape
        for value in (*model.graph.value_info, *model.graph.input, *model.graph.output)
        if value.type.HasField("tensor_type")
    }
    addresses = {}
    for site in sites:
        shape = shapes.get(site)
        dims = [] if shape is None else list(shape.dim)
        per_image = dims[1:]
        known = bool(dims) and all(d.HasField("dim_value") for d in per_image)
        addresses[site] = int(np.prod([d.dim_value for d in per_image])) if known else None
    return addresses


def unsupported_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes of the main graph in an operator domain stock onnxruntime does not implement
    (model-local functions count as implemented)."""
    local = {function.domain for function in model.functions} | {BITFLIP_DOMAIN}
    return [
        node
        for node in model.graph.node
        if node.domain not in RUNTIME_DOMAINS and node.domain not in local
    ]


CUSTOM_DOMAIN_HINT = {
    "qonnx.custom_op.general": "xnorfault lowers QONNX BipolarQuant, Quant (constant bit width), Trunc and MultiThreshold (constant thresholds); run 'xnorfault inspect' to see why this one was not",
    "finn.custom_op.general": "xnorfault lowers FINN's Quant, BipolarQuant, Trunc and MultiThreshold; other FINN hardware ops need FINN itself",
}


def check_runnable(model: onnx.ModelProto) -> None:
    """A one-line error naming the first node onnxruntime cannot run, before it tries."""
    nodes = unsupported_nodes(model)
    if not nodes:
        return
    first = nodes[0]
    more = f" (and {len(nodes) - 1} more)" if len(nodes) > 1 else ""
    hint = CUSTOM_DOMAIN_HINT.get(
        first.domain, "convert it to standard ONNX operators before evaluating"
    )
    raise XnorfaultError(
        f"node {first.name or '(unnamed)'!r} ({first.domain}.{first.op_type}){more} is not an "
        f"operator onnxruntime runs: {hint}"
    )


_NODE_IN_MESSAGE = re.compile(r"running (\w+) node\. Name:'([^']*)'")
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def runtime_error(error: Exception, model: onnx.ModelProto | None, stage: str) -> XnorfaultError:
    """One line for an onnxruntime failure: its message's first line without the error-code
    prefix, the node and operator it names, and what to do."""
    text = _ORT_PREFIX.sub("", str(error).strip().splitlines()[0] if str(error).strip() else "")
    text = text or type(error).__name__
    found = _NODE_IN_MESSAGE.search(str(error))
    where = ""
    if found:
        op_type, name = found.group(1), found.group(2)
        # onnxruntime names the nodes of an inlined function after it, and may fuse a model's
        # node into one of them
        inside = " in or beside xnorfault's BitFlip" if name.startswith("_inlfunc_") else ""
        where = f"node {name!r} ({op_type}{inside}): "
    if stage == "load":
        advice = "check the model with 'xnorfault inspect' (and onnx.checker)"
    elif "invalid dimensions" in text or "Invalid rank" in text:
        advice = "the test images do not fit the model's input: see 'xnorfault inspect'"
    else:
        advice = "check the test images and the model with 'xnorfault inspect'"
    return XnorfaultError(f"onnxruntime could not {stage} the model: {where}{text} ({advice})")
