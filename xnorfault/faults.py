r"""Fault specifications: which binary values flip, and with what probability.

One :class:`FaultSpec` drives the flips during training (``xnorfault.training``), the ONNX
rewrite and the LCE flip layers. It holds, for the binary activations, a flip probability per
polarity — :math:`p_{+\to-}` for a stored +1 read back as −1 and :math:`p_{-\to+}` for the
reverse (paper, eqs. 2–3: the two write directions of an MTJ can fail at different rates) —
optionally overridden per site (layer), optionally varying per epoch (a BER ramp or a write-
voltage schedule mapped through :mod:`xnorfault.mram`), and optionally rates for the binary
weights too (the paper's future work). Each element flips independently (Bernoulli per
element), as in the paper.

The spec serialises to plain JSON (run records, ONNX ``metadata_props``). A chip's rates per
address (:class:`AddressRates`) are for evaluation only. Imports numpy only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.units import (
    check_probability,
)

WRITE_MODELS = ("iid", "previous", "reset")
INITIAL_STATES = ("neg", "pos", "random")  # the stored value before the first image of a stream


@dataclass(frozen=True)
class FlipRates:
    """Flip probabilities of one binary value: ``pos_to_neg`` = P(+1 → −1),
    ``neg_to_pos`` = P(−1 → +1).

    >>> FlipRates.symmetric(0.01)
    FlipRates(pos_to_neg=0.01, neg_to_pos=0.01)
    >>> FlipRates(0.02, 0.0).is_symmetric
    False
    """

    pos_to_neg: float = 0.0
    neg_to_pos: float = 0.0

    def __post_init__(self):
        object.__setattr__(
            self, "pos_to_neg", check_probability(self.pos_to_neg, "flip rate +1→−1")
        )
        object.__setattr__(
            self, "neg_to_pos", check_probability(self.neg_to_pos, "flip rate −1→+1")
        )

    @classmethod
    def symmetric(cls, ber: float) -> FlipRates:
        """Both polarities flip with the bit-error rate ``ber``."""
        return cls(ber, ber)

    @property
    def is_zero(self) -> bool:
        return self.pos_to_neg == 0.0 and self.neg_to_pos == 0.0

    @property
    def is_symmetric(self) -> bool:
        return self.pos_to_neg == self.neg_to_pos

    def to_dict(self) -> dict:
        return {"pos_to_neg": self.pos_to_neg, "neg_to_pos": self.neg_to_pos}

    @classmethod
    def from_dict(cls, data) -> FlipRates:
        if isinstance(data, int | float):
            return cls.symmetric(data)
        return cls(float(data["pos_to_neg"]), float(data["neg_to_pos"]))


@dataclass(frozen=True, eq=False)
class AddressRates:
    """Flip probabilities of every address of one site's activation memory on one chip:
    ``pos_to_neg[a]`` = P(+1 → −1) and ``neg_to_pos[a]`` = P(−1 → +1) at address a, one per
    element of one image's activation (flat, in the tensor's own layout). Cells differ from
    address to address (:mod:`xnorfault.mram.chips`); every image written there sees the same
    cell."""

    pos_to_neg: np.ndarray
    neg_to_pos: np.ndarray

    def __post_init__(self):
        arrays = []
        for name, values in (("+1→−1", self.pos_to_neg), ("−1→+1", self.neg_to_pos)):
            array = np.asarray(values, dtype=np.float32)
            if array.ndim != 1 or array.size == 0:
                raise XnorfaultError(
                    f"per-address flip rates {name} must be one rate per address (a non-empty vector)"
                )
            if not (np.all(np.isfinite(array)) and np.all((array >= 0) & (array <= 1))):
                raise XnorfaultError(f"per-address flip rates {name} must lie in [0, 1]")
            arrays.append(array)
        if arrays[0].size != arrays[1].size:
            raise XnorfaultError(
                f"per-address flip rates: {arrays[0].size} addresses +1→−1 but {arrays[1].size} −1→+1"
            )
        object.__setattr__(self, "pos_to_neg", arrays[0])
        object.__setattr__(self, "neg_to_pos", arrays[1])

    @property
    def addresses(self) -> int:
        return int(self.pos_to_neg.size)

    def mean(self) -> FlipRates:
        """The rates averaged over the addresses."""
        return FlipRates(float(self.pos_to_neg.mean()), float(self.neg_to_pos.mean()))


@dataclass(frozen=True)
class WriteModel:
    r"""When a write to an activation memory can fail (:func:`xnorfault.graph.generator.write_mask`).

    ``iid``: every write switches the cell, so every element flips with the WER of its value —
    the upper bound the paper's experiments assume. ``previous``: each address holds what the
    previous image of the stream (the batch, in order) stored there; a write fails only where
    it must switch the cell, and a failed write leaves the old value, against which the next
    image is written; ``initial_state`` (``neg``, ``pos`` or ``random``) is stored before the
    first image. ``reset``: cells are reset to ``initial_state`` (``neg`` or ``pos``) before
    every write, so only writes of the other value can fail. Writing +1 (P) over −1 (AP)
    fails with WER(AP→P) and reads −1; writing −1 over +1 fails with WER(P→AP) and reads +1.

    >>> WriteModel("previous", "pos").label
    'previous (pos)'
    """

    model: str = "iid"
    initial_state: str = "neg"

    def __post_init__(self):
        if self.model not in WRITE_MODELS:
            raise XnorfaultError(
                f"unknown write model {self.model!r}: use one of {', '.join(WRITE_MODELS)}"
            )
        if self.initial_state not in INITIAL_STATES:
            raise XnorfaultError(
                f"unknown initial state {self.initial_state!r}: use one of {', '.join(INITIAL_STATES)}"
            )
        if self.model == "reset" and self.initial_state == "random":
            raise XnorfaultError(
                "--write-model reset resets every cell to one state: give --initial-state neg or pos"
            )

    @property
    def label(self) -> str:
        return "iid" if self.model == "iid" else f"{self.model} ({self.initial_state})"

    def to_dict(self) -> dict:
        return {"model": self.model, "initial_state": self.initial_state}

    @classmethod
    def from_dict(cls, data) -> WriteModel:
        data = data or {}
        return cls(str(data.get("model", "iid")), str(data.get("initial_state", "neg")))


@dataclass(frozen=True)
class FaultSpec:
    """Where and how often binary values flip.

    ``activations``: default rates at every binary activation site. ``layers``: per-site
    overrides, keyed by site name (``lenet4``'s sites are ``act1``, ``act2``…). ``epochs``:
    per-epoch activation rates for training (epoch 0 first; the last entry holds for later
    epochs), overriding ``activations`` but not ``layers``. ``weights``: rates for the binary
    weights during training (``None``: weights never flip). ``write``: when an activation
    write can fail (:class:`WriteModel`; the rates are the WERs of a write that must switch).
    ``source``: how the rates were derived (a BER, or an MRAM operating point with its
    device), for the record.

    >>> from xnorfault.mram import load_device
    >>> spec = FaultSpec.from_mram(load_device("paper"), 0.5, 10e-9)
    >>> round(spec.activations.pos_to_neg, 4), spec.source["kind"]
    (0.0216, 'mram')
    >>> FaultSpec.from_ber(0.04, layers={"act1": FlipRates()}).layers["act1"].is_zero
    True
    """

    activations: FlipRates = field(default_factory=FlipRates)
    layers: dict[str, FlipRates] = field(default_factory=dict)
    epochs: tuple[FlipRates, ...] = ()
    weights: FlipRates | None = None
    source: dict = field(default_factory=dict)
    write: WriteModel = field(default_factory=WriteModel)

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_ber(cls, ber: float, **kwargs) -> FaultSpec:
        """Every binary activation flips with probability ``ber`` in both polarities."""
        return cls(
            activations=FlipRates.symmetric(ber),
            source={"kind": "ber", "ber": float(ber)},
            **kwargs,
        )

    @classmethod
    def from_rates(cls, rates: FlipRates, **kwargs) -> FaultSpec:
        """Every binary activation flips with ``rates`` (one probability per polarity)."""
        return cls(activations=rates, source={"kind": "rates", **rates.to_dict()}, **kwargs)

    @classmethod
    def from_mram(cls, device, voltage: float, pulse: float, **kwargs) -> FaultSpec:
        """Rates of an MRAM activation memory written at ``voltage`` (V) with ``pulse`` (s):
        :math:`p_{+\\to-} = \\mathrm{WER}_{AP\\to P}`, :math:`p_{-\\to+} = \\mathrm{WER}_{P\\to AP}`
        (:meth:`xnorfault.mram.MTJ.flip_rates`)."""
        rates = FlipRates(*device.flip_rates(voltage, pulse))
        source = {
            "kind": "mram",
            "voltage": float(voltage),
            "pulse": float(pulse),
            "device": device.to_dict(),
            **rates.to_dict(),
        }
        return cls(activations=rates, source=source, **kwargs)

    @classmethod
    def ber_ramp(cls, start: float, end: float, epochs: int, **kwargs) -> FaultSpec:
        """BER rising linearly from ``start`` at epoch 0 to ``end`` at epoch ``epochs - 1``."""
        if epochs < 1:
            raise XnorfaultError("a BER ramp needs at least one epoch")
        steps = [start + (end - start) * (i / max(epochs - 1, 1)) for i in range(epochs)]
        return cls(
            activations=FlipRates.symmetric(end),
            epochs=tuple(FlipRates.symmetric(p) for p in steps),
            source={"kind": "ber_ramp", "start": float(start), "end": float(end), "epochs": epochs},
            **kwargs,
        )

    @classmethod
    def voltage_schedule(cls, device, voltages, pulse: float, **kwargs) -> FaultSpec:
        """One write voltage per epoch (the last holds afterwards), each mapped to flip rates
        through the MRAM model at a fixed ``pulse``."""
        if len(voltages) == 0:
            raise XnorfaultError("a voltage schedule needs at least one voltage")
        rates = tuple(FlipRates(*device.flip_rates(v, pulse)) for v in voltages)
        source = {
            "kind": "voltage_schedule",
            "voltages": [float(v) for v in voltages],
            "pulse": float(pulse),
            "device": device.to_dict(),
        }
        return cls(activations=rates[-1], epochs=rates, source=source, **kwargs)

    # --- queries -------------------------------------------------------------------------

    def activation_rates(self, site: str, epoch: int | None = None) -> FlipRates:
        """Rates at binary activation ``site`` during ``epoch`` (``None``: after training)."""
        if site in self.layers:
            return self.layers[site]
        if self.epochs and epoch is not None:
            return self.epochs[min(max(epoch, 0), len(self.epochs) - 1)]
        return self.activations

    @property
    def is_zero(self) -> bool:
        return (
            self.activations.is_zero
            and all(r.is_zero for r in self.layers.values())
            and all(r.is_zero for r in self.epochs)
            and (self.weights is None or self.weights.is_zero)
        )

    def check_sites(self, sites) -> None:
        """Raise a clear error when a per-layer override names a site the model lacks."""
        unknown = sorted(set(self.layers) - set(sites))
        if unknown:
            raise XnorfaultError(
                f"fault spec names unknown binary site(s) {', '.join(unknown)}; the model has {', '.join(sites)}"
            )

    # --- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "activations": self.activations.to_dict(),
            "layers": {name: rates.to_dict() for name, rates in self.layers.items()},
            "epochs": [rates.to_dict() for rates in self.epochs],
            "weights": None if self.weights is None else self.weights.to_dict(),
            "source": self.source,
            "write": self.write.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FaultSpec:
        try:
            return cls(
                activations=FlipRates.from_dict(data.get("activations", 0.0)),
                layers={k: FlipRates.from_dict(v) for k, v in data.get("layers", {}).items()},
                epochs=tuple(FlipRates.from_dict(v) for v in data.get("epochs", [])),
                weights=None
                if data.get("weights") is None
                else FlipRates.from_dict(data["weights"]),
                source=dict(data.get("source", {})),
                write=WriteModel.from_dict(data.get("write")),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise XnorfaultError(f"malformed fault spec: {error}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise XnorfaultError(f"fault spec is not valid JSON: {error}") from None


@dataclass(frozen=True)
class FaultPoint:
    """One point of a sweep — of training jobs or of an evaluation: a label (``ber=0.04``,
    ``V=0.5``) and its fault spec, with the numeric BER or MRAM operating point it stands for
    and, for MRAM points, the figures of that operating point (``extra``: WER per write
    direction, write energy, endurance)."""

    label: str
    spec: FaultSpec
    ber: float | None = None
    voltage: float | None = None
    pulse: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rates(self) -> FlipRates:
        """The activation rates after training (every site without an override)."""
        return self.spec.activations


@dataclass(frozen=True)
class FaultSource:
    """Where the fault rates of a command come from — one of: ``bers`` (both polarities
    alike; ``ramp``: rising linearly over the training epochs), ``rates`` (one pair per
    polarity), ``voltages`` (an MRAM activation memory written at each voltage with
    ``pulse`` on ``device``), or ``voltage_schedule`` (one write voltage per training epoch).
    The command line builds it from ``--ber``, ``--p-flip-pos/--p-flip-neg``, ``--voltage``
    with ``--pulse`` and ``--mram-device``, or ``--voltage-schedule``."""

    bers: tuple[float, ...] = ()
    rates: FlipRates | None = None
    voltages: tuple[float, ...] = ()
    voltage_schedule: tuple[float, ...] = ()
    pulse: float | None = None
    device: object = None  # an xnorfault.mram.MTJ for voltages and schedules
    ramp: bool = False
    write: WriteModel = field(default_factory=WriteModel)


def mram_figures(device, voltage: float, pulse: float) -> dict:
    """WER of each write direction, write energy (J per bit) and endurance of an MRAM written
    at ``voltage`` with ``pulse`` (:mod:`xnorfault.mram`): cycles to breakdown, their ratio to
    the conventional point (WER 1e-6 in both directions at the same pulse) — both E-model
    extrapolations — and whether writing back to back would outlast a 100-year service life."""
    pos_to_neg, neg_to_pos = device.flip_rates(voltage, pulse)
    try:
        gain = float(device.endurance_gain(voltage, pulse))
    except XnorfaultError:  # no voltage below breakdown reaches 1e-6 at this pulse
        gain = None
    return {
        "wer_p_to_ap": float(neg_to_pos),
        "wer_ap_to_p": float(pos_to_neg),
        "write_energy": float(device.write_energy(voltage, pulse)),
        "endurance_cycles": float(device.endurance(voltage, pulse)),
        "endurance_gain": gain,
        "outlasts_service_life": bool(device.outlasts_service_life(voltage, pulse)),
    }


def fault_points(
    source: FaultSource,
    *,
    epochs: int = 1,
    layers: dict[str, FlipRates] | None = None,
    weights: FlipRates | None = None,
) -> list[FaultPoint]:
    """The sweep points of ``source``, in its order. ``epochs``: training epochs (for a BER
    ramp and a voltage schedule); ``layers``/``weights``: per-site overrides and weight rates
    added to every point's spec."""
    extra = {"layers": dict(layers or {}), "weights": weights, "write": source.write}
    if source.rates is not None:
        rates = source.rates
        label = f"p+-={rates.pos_to_neg:g},p-+={rates.neg_to_pos:g}"
        return [FaultPoint(label, FaultSpec.from_rates(rates, **extra))]
    if source.voltages:
        return [
            FaultPoint(
                f"V={voltage:g}",
                FaultSpec.from_mram(source.device, voltage, source.pulse, **extra),
                voltage=float(voltage),
                pulse=float(source.pulse),
                extra=mram_figures(source.device, voltage, source.pulse),
            )
            for voltage in source.voltages
        ]
    if source.voltage_schedule:
        if len(source.voltage_schedule) > epochs:
            raise XnorfaultError(
                f"--voltage-schedule gives {len(source.voltage_schedule)} voltages for {epochs} "
                "epoch(s): give one per epoch at most (the last holds for later epochs), or raise --epochs"
            )
        spec = FaultSpec.voltage_schedule(
            source.device, source.voltage_schedule, source.pulse, **extra
        )
        return [FaultPoint("voltage-schedule", spec, pulse=float(source.pulse))]
    if source.ramp:
        return [
            FaultPoint(f"ber-ramp={ber:g}", FaultSpec.ber_ramp(0.0, ber, epochs, **extra), ber)
            for ber in source.bers
        ]
    return [
        FaultPoint(f"ber={ber:g}", FaultSpec.from_ber(ber, **extra), ber) for ber in source.bers
    ]
