r"""Binary weights kept in MRAM: the probability that each weight reads wrong, and chips.

An edge device writes its binary weights once, at deployment, then reads them at every
inference and leaves them idle in between (PAPER §1: the paper's future work — errors in the
weights, and read, read-disturb and retention errors). Unlike an activation's write error,
which a later write replaces, a weight fault persists until the weights are written again.
:class:`WeightMemory` describes that life: the write point, the state the memory was erased
to, the age, the temperature, the read point and the reads since the write.
:func:`weight_error` composes the per-event probabilities exactly.

Writing. +1 is stored as P and −1 as AP (paper, eqs. 2–3). Writing a +1 must switch the cell
AP→P unless it already holds +1, and then fails with
:math:`w_+ = \mathrm{WER}_{AP\to P}(V_w, \tau_w)`; a −1 fails with
:math:`w_- = \mathrm{WER}_{P\to AP}`. The probability that a weight
of value :math:`s` is wrong after the write is

.. math:: P_0(s) = \pi_s\,w_s,\qquad \pi_s = \begin{cases}1 & \text{erased ``none``: every
          write switches (the paper's bound)}\\ 0 \text{ or } 1 & \text{erased to } \pm 1:
          \text{only the other value switches}\\ \tfrac12 & \text{erased ``random'': the
          previous contents}\end{cases}

Keeping and reading. Over the age :math:`T` the weights are read :math:`N = n_r\,n_{inf}`
times (reads per inference × inferences), one read after each idle interval :math:`T/N`.
Idle, a cell flips thermally at rate :math:`r = e^{-\Delta(T_K)}/\tau_0` each way
(Néel–Arrhenius, :math:`\Delta(T_K) = \Delta\,T_{ref}/T_K`), so over an interval it changes
state with :math:`\rho = \tfrac12(1 - e^{-2rT/N})`. A read current in one write direction
switches a cell in the state it destabilises with :math:`q = P_{sw}(V_r/V_{c0}, \tau_r/\tau_D)`
(:meth:`~xnorfault.mram.MTJ.read_disturb`) and never
switches the other state — so reads disturb the weights of one value and restore those of the
other. Per interval and read, a right weight turns wrong with :math:`a` and a wrong one right
with :math:`b`,

.. math:: a = (1-\rho)\,q_R + \rho\,(1 - q_W),\qquad b = (1-\rho)\,q_W + \rho\,(1 - q_R),

where :math:`q_R = q` if the read destabilises the weight's right state (else 0) and
:math:`q_W = q` if it destabilises the wrong one. This two-state Markov chain has the exact
solution

.. math:: P_N = P_0\,\lambda^N + \frac{a}{a+b}\left(1-\lambda^N\right),\qquad
          \lambda = 1-a-b = e^{-2rT/N}(1-q),

evaluated with :math:`\ln\lambda^N = -2rT + N\ln(1-q)` and ``expm1`` so that probabilities of
1e-20 keep their digits. Without reads (:math:`N = 0`) it is retention alone,
:math:`P = P_0(1-2\rho_T) + \rho_T`.

Chips. A chip's weight faults are fixed: weight :math:`i` of chip :math:`k` is wrong exactly
when :math:`u_{k,i} < P(s_i)` for one uniform draw :math:`u_{k,i}` per weight, drawn from
``numpy.random.default_rng([S, k, 1, tensor])`` (chip seed S). The same draw serves every age,
so a chip's faults at a later age contain the ones at an earlier age whenever the probability
grows (common random numbers: the chip ages, its accuracy-vs-age curve is one chip's). With a
device's cell-to-cell variation, each weight's cell has its own Δ and critical voltages,
drawn from ``default_rng([S, k, 2, tensor])``, and its own :math:`P`.

Imports numpy and scipy only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from xnorfault.errors import XnorfaultError
from xnorfault.mram.device import CONVENTIONAL_WER, DIRECTIONS, MTJ, Direction
from xnorfault.units import (
    LONG_DURATION_SCALE,
    format_duration,
    format_temperature,
    format_voltage,
    parse_duration,
    parse_temperature,
    parse_voltage,
)

ERASED_STATES = ("none", "pos", "neg", "random")
WEIGHT_STREAM, CELL_STREAM = 1, 2  # the chip seed's streams for weights (activations: none)
DEFAULT_READ_VOLTAGE = 0.1  # V: a third of the paper's critical voltage, a common read margin
DEFAULT_READ_PULSE = 5e-9  # s


@dataclass(frozen=True)
class WeightMemory:
    r"""How the binary weights are written, kept and read (all SI units).

    ``write_voltage`` ``None`` writes at the conventional point: the voltage of WER 1e-6 at
    ``write_pulse`` (PAPER Table I). ``erased``: the state the memory holds before the
    deployment write (see the module docstring). ``temperature`` ``None``: the device's
    reference temperature. ``inferences`` since the write, or ``inference_rate`` (per second)
    times the age. ``read_direction``: the write direction the read current pushes
    (``p_to_ap`` disturbs weights stored as +1).

    >>> from xnorfault import MTJ
    >>> memory = WeightMemory(write_voltage=0.55, write_pulse=10e-9, age=365.25 * 86400)
    >>> wrong_pos, wrong_neg = weight_error(MTJ(), memory)
    >>> round(float(wrong_pos), 3)  # a year at 25 °C, no reads: retention alone
    0.122
    """

    write_voltage: float | None = None
    write_pulse: float = 10e-9
    erased: str = "none"
    age: float = 0.0
    temperature: float | None = None
    read_voltage: float = DEFAULT_READ_VOLTAGE
    read_pulse: float = DEFAULT_READ_PULSE
    read_direction: Direction = "p_to_ap"
    reads_per_inference: int = 1
    inferences: float = 0.0
    inference_rate: float | None = None

    def __post_init__(self):
        if self.erased not in ERASED_STATES:
            raise XnorfaultError(
                f"unknown erased state {self.erased!r}: use one of {', '.join(ERASED_STATES)}"
            )
        if self.read_direction not in DIRECTIONS:
            raise XnorfaultError(
                f"unknown read direction {self.read_direction!r}: use p_to_ap or ap_to_p"
            )
        for name in ("write_pulse", "read_voltage", "read_pulse"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise XnorfaultError(f"weight memory {name} must be positive, got {value!r}")
        if self.write_voltage is not None and not (
            math.isfinite(self.write_voltage) and self.write_voltage > 0
        ):
            raise XnorfaultError(
                f"weight write voltage must be positive, got {self.write_voltage!r}"
            )
        if not (math.isfinite(self.age) and self.age >= 0):
            raise XnorfaultError(f"age must be a non-negative duration, got {self.age!r} s")
        if not (isinstance(self.reads_per_inference, int) and self.reads_per_inference >= 0):
            raise XnorfaultError(
                f"reads per inference must be a whole number >= 0, got {self.reads_per_inference!r}"
            )
        if not (math.isfinite(self.inferences) and self.inferences >= 0):
            raise XnorfaultError(f"inferences must be >= 0, got {self.inferences!r}")
        if self.inference_rate is not None and not (
            math.isfinite(self.inference_rate) and self.inference_rate >= 0
        ):
            raise XnorfaultError(
                f"inference rate must be >= 0 per second, got {self.inference_rate!r}"
            )
        if self.temperature is not None and not (
            math.isfinite(self.temperature) and self.temperature > 0
        ):
            raise XnorfaultError(f"temperature must be above 0 K, got {self.temperature!r}")

    @property
    def reads(self) -> float:
        """Reads of each weight since the write: reads per inference × inferences (the rate
        times the age when a rate is given)."""
        count = self.inferences if self.inference_rate is None else self.inference_rate * self.age
        return float(self.reads_per_inference) * float(count)

    def at_age(self, age: float) -> WeightMemory:
        return replace(self, age=float(age))

    def kelvin(self, device: MTJ) -> float:
        return device.reference_temperature if self.temperature is None else self.temperature

    def device_at_temperature(self, device: MTJ) -> MTJ:
        return device.at_temperature(self.kelvin(device))

    def resolved_write_voltage(self, device: MTJ) -> float:
        """The write voltage; when none is given the device's conventional one: WER 1e-6 in
        both directions at the pulse and the device's reference temperature (the datasheet
        point; the write itself happens at the memory's temperature)."""
        if self.write_voltage is not None:
            return float(self.write_voltage)
        return float(device.conventional_voltage(self.write_pulse, CONVENTIONAL_WER))

    def to_dict(self, device: MTJ | None = None) -> dict:
        data = asdict(self)
        if device is not None:
            data["write_voltage"] = self.resolved_write_voltage(device)
            data["temperature"] = self.kelvin(device)
        data["reads"] = self.reads
        return data

    def describe(self, device: MTJ) -> str:
        """One line: write point, erased state, temperature, reads (the age aside)."""
        voltage = self.resolved_write_voltage(device)
        conventional = " (conventional)" if self.write_voltage is None else ""
        if self.inference_rate is not None:
            reads = f"{self.reads_per_inference} read(s) per inference at {self.inference_rate:.3g} inferences/s"
        else:
            reads = f"{self.reads:.3g} reads in all"
        return (
            f"weights written at {format_voltage(voltage)}{conventional}, "
            f"{format_duration(self.write_pulse)} (erased: {self.erased}); kept at "
            f"{format_temperature(self.kelvin(device))}; {reads}, each at "
            f"{format_voltage(self.read_voltage)}, {format_duration(self.read_pulse)} "
            f"({self.read_direction} current)"
        )

    @classmethod
    def from_device(cls, device: MTJ, **overrides) -> WeightMemory:
        """The device file's ``[weight_memory]`` table with ``overrides`` (``None`` values
        ignored) on top: keys ``write_voltage``, ``write_pulse``, ``erased``, ``temperature``,
        ``read_voltage``, ``read_pulse``, ``read_direction``, ``reads_per_inference``,
        ``inferences``, ``inference_rate`` (per second), ``age``."""
        parsers = {
            "write_voltage": parse_voltage,
            "write_pulse": parse_duration,
            "erased": str,
            "age": parse_duration,
            "temperature": parse_temperature,
            "read_voltage": parse_voltage,
            "read_pulse": parse_duration,
            "read_direction": str,
            "reads_per_inference": _whole,
            "inferences": float,
            "inference_rate": float,
        }
        values = {}
        for key, raw in device.weight_memory:
            if key not in parsers:
                raise XnorfaultError(
                    f"device '{device.name}': unknown key weight_memory.{key} "
                    f"(known: {', '.join(parsers)})"
                )
            try:
                values[key] = parsers[key](raw)
            except (TypeError, ValueError) as error:
                raise XnorfaultError(
                    f"device '{device.name}': weight_memory.{key} = {raw!r}: {error}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _whole(value) -> int:
    number = float(value)
    if number != int(number):
        raise ValueError("give a whole number")
    return int(number)


def format_age(seconds: float) -> str:
    """An age in the largest unit it reaches; below a minute in SI seconds.

    >>> format_age(365.25 * 86400), format_age(5400.0), format_age(0.0)
    ('1 y', '1.5 h', '0')
    """
    for unit, scale in (("y", 365.25 * 86400), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return format_duration(seconds) if seconds > 0 else "0"


def write_failure(wer_pos, wer_neg, erased: str) -> tuple:
    """:math:`P_0(\\pm1) = \\pi_\\pm w_\\pm`: the probability that a +1 / −1 weight is wrong
    right after the deployment write (module docstring), from the AP→P WER ``wer_pos`` and
    the P→AP WER ``wer_neg``."""
    share = {"none": (1.0, 1.0), "pos": (0.0, 1.0), "neg": (1.0, 0.0), "random": (0.5, 0.5)}
    must_pos, must_neg = share[erased]
    return must_pos * np.asarray(wer_pos, dtype=float), must_neg * np.asarray(wer_neg, dtype=float)


def compose(initial_wrong, rate, age: float, reads: float, q_right, q_wrong) -> np.ndarray:
    r"""The exact two-state composition of the module docstring:
    :math:`P_N = P_0\lambda^N + a(1-\lambda^N)/(a+b)` with ``rate`` r (1/s), ``reads`` N,
    per-read switching probabilities ``q_right`` (right → wrong) and ``q_wrong``
    (wrong → right), at most one of them nonzero per weight. Broadcasts.

    >>> float(compose(0.0, 1e-3, 1000.0, 0, 0.0, 0.0))  # retention alone: (1 − e^{−2})/2
    0.43233235838169365
    >>> round(float(compose(0.0, 0.0, 1.0, 100, 0.01, 0.0)), 12)  # 100 reads: 1 − 0.99^100
    0.633967658727
    """
    p0 = np.asarray(initial_wrong, dtype=float)
    rate = np.asarray(rate, dtype=float)
    q_right = np.asarray(q_right, dtype=float)
    q_wrong = np.asarray(q_wrong, dtype=float)
    steps = max(float(reads), 1.0)
    if reads == 0:
        q_right, q_wrong = np.zeros_like(q_right), np.zeros_like(q_wrong)
    interval = float(age) / steps
    rho = -0.5 * np.expm1(-2 * rate * interval)
    a = (1 - rho) * q_right + rho * (1 - q_wrong)
    log_lambda = -2 * rate * interval + np.log1p(-(q_right + q_wrong))
    decay = np.exp(steps * log_lambda)  # λ^N
    gone = -np.expm1(steps * log_lambda)  # 1 − λ^N
    total = -np.expm1(log_lambda)  # a + b = 1 − λ
    stationary_share = np.divide(
        a, total, out=np.zeros(np.broadcast(a, total).shape), where=total > 0
    )
    return np.clip(p0 * decay + stationary_share * gone, 0.0, 1.0)


def weight_error(
    device: MTJ,
    memory: WeightMemory,
    delta_factor=1.0,
    vc0_factor=1.0,
    tables: WeightTables | None = None,
) -> tuple:
    """The probabilities ``(wrong_pos, wrong_neg)`` that a weight stored as +1 / −1 reads
    wrong after ``memory``'s life (module docstring), for a nominal cell or for cells whose
    Δ and critical voltages are scaled by the given factors (arrays broadcast; their WERs
    and read-disturb probabilities interpolated in ``tables`` when given, else solved)."""
    hot = memory.device_at_temperature(device)
    write_voltage = memory.resolved_write_voltage(device)
    delta_factor = np.asarray(delta_factor, dtype=float)
    vc0_factor = np.asarray(vc0_factor, dtype=float)
    nominal = delta_factor.ndim == 0 and vc0_factor.ndim == 0
    wers, disturb = {}, {}
    for direction in DIRECTIONS:
        if tables is not None:
            wers[direction] = tables.write.wer(write_voltage, delta_factor, vc0_factor, direction)
            disturb[direction] = tables.read.wer(
                memory.read_voltage, delta_factor, vc0_factor, direction
            )
        elif nominal:
            wers[direction] = hot.cell_wer(
                write_voltage, memory.write_pulse, delta_factor, vc0_factor, direction
            )
            disturb[direction] = _cell_disturb(hot, memory, delta_factor, vc0_factor, direction)
        else:
            raise XnorfaultError("cell factors need the tables of their device (WeightTables)")
    p0_pos, p0_neg = write_failure(wers["ap_to_p"], wers["p_to_ap"], memory.erased)
    rate = np.exp(-hot.delta * delta_factor) / hot.attempt_time
    q = disturb[memory.read_direction]
    zero = np.zeros_like(q)
    # a p_to_ap read pushes cells out of P (+1): it disturbs right +1 weights and restores
    # wrong −1 weights (which sit in P); an ap_to_p read the other way round
    pushes_out_of_pos = memory.read_direction == "p_to_ap"
    wrong_pos = compose(
        p0_pos,
        rate,
        memory.age,
        memory.reads,
        q if pushes_out_of_pos else zero,
        zero if pushes_out_of_pos else q,
    )
    wrong_neg = compose(
        p0_neg,
        rate,
        memory.age,
        memory.reads,
        zero if pushes_out_of_pos else q,
        q if pushes_out_of_pos else zero,
    )
    if nominal:
        return float(wrong_pos), float(wrong_neg)
    return wrong_pos, wrong_neg


def _cell_disturb(device: MTJ, memory: WeightMemory, delta_factor, vc0_factor, direction):
    from xnorfault.mram.disturb import switch_probability

    volts = float(device.operating_voltage(memory.read_voltage))
    reduced = volts / (float(vc0_factor) * device.critical_voltage(direction))
    return np.asarray(
        switch_probability(
            reduced, memory.read_pulse / device.tau_d, device.delta * float(delta_factor)
        )
    )


@dataclass(frozen=True, eq=False)
class WeightTables:
    """Interpolation tables of a varied device's cells at the memory's temperature: the WER
    of the deployment write and the switching probability of one read."""

    write: object
    read: object

    @classmethod
    def build(cls, device: MTJ, memory: WeightMemory) -> WeightTables:
        from xnorfault.mram.chips import cell_switch_table, cell_wer_table

        hot = memory.device_at_temperature(device)
        write_voltage = memory.resolved_write_voltage(device)
        return cls(
            cell_wer_table(hot, float(memory.write_pulse), (write_voltage,)),
            cell_switch_table(hot, float(memory.read_pulse), float(memory.read_voltage)),
        )


@dataclass(frozen=True, eq=False)
class WeightChip:
    """One chip's weight memory: a uniform draw per weight (and, on a varied device, each
    weight cell's Δ and critical-voltage factors), per binary weight tensor."""

    seed: int
    index: int
    uniforms: dict[str, np.ndarray]
    delta_factor: dict[str, np.ndarray] | None
    vc0_factor: dict[str, np.ndarray] | None


def draw_weight_chip(device: MTJ, sizes: dict[str, int], seed: int, index: int) -> WeightChip:
    """Chip ``index`` of chip seed ``seed`` for binary weight tensors of ``sizes`` elements
    (in the model's order): the same chip whatever else is drawn."""
    from xnorfault.mram.chips import Z_LIMIT

    uniforms, delta_factor, vc0_factor = {}, {}, {}
    for position, (name, count) in enumerate(sizes.items()):
        key = int(seed) & (2**63 - 1)
        uniforms[name] = np.random.default_rng([key, int(index), WEIGHT_STREAM, position]).random(
            count
        )
        if device.varies:
            rng = np.random.default_rng([key, int(index), CELL_STREAM, position])
            delta_factor[name], vc0_factor[name] = device.sample_cells(count, rng, Z_LIMIT)
    varied = device.varies
    return WeightChip(
        int(seed),
        int(index),
        uniforms,
        delta_factor if varied else None,
        vc0_factor if varied else None,
    )


def weight_faults(
    chip: WeightChip,
    signs: dict[str, np.ndarray],
    device: MTJ,
    memory: WeightMemory,
    tables: WeightTables | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The weights of ``chip`` that read wrong after ``memory``'s life: a boolean mask per
    tensor (``signs``: each weight's stored value, flattened, ``True`` for +1), and the
    expected share of wrong weights per tensor (the mean of the cells' probabilities)."""
    masks, expected = {}, {}
    nominal = None if chip.delta_factor is not None else weight_error(device, memory)
    for name, positive in signs.items():
        if nominal is not None:
            probability = np.where(positive, nominal[0], nominal[1])
        else:
            wrong_pos, wrong_neg = weight_error(
                device, memory, chip.delta_factor[name], chip.vc0_factor[name], tables
            )
            probability = np.where(positive, wrong_pos, wrong_neg)
        masks[name] = chip.uniforms[name] < probability
        expected[name] = float(probability.mean())
    return masks, expected


WEIGHT_OPTIONS = (
    "temperature",
    "weight_voltage",
    "weight_pulse",
    "weight_erased",
    "read_voltage",
    "read_pulse",
    "read_direction",
    "reads_per_inference",
    "inferences",
)


def parse_inferences(text) -> tuple[float | None, float | None]:
    """``--inferences``: a count (``1e6``) or a rate per unit time (``10/s``, ``100/h``,
    ``1000/d``), returned as ``(count, rate per second)`` with the other ``None``.

    >>> parse_inferences("1e6"), parse_inferences("36/h")
    ((1000000.0, None), (None, 0.01))
    """
    if isinstance(text, int | float):
        count = float(text)
        rate = None
    else:
        number, _, unit = str(text).strip().partition("/")
        try:
            value = float(number)
        except ValueError:
            raise XnorfaultError(
                f"cannot read --inferences {text!r}: give a count (1e6) or a rate (10/s, 100/h)"
            ) from None
        if not unit:
            count, rate = value, None
        else:
            scale = {"s": 1.0, **LONG_DURATION_SCALE}.get(unit.strip().lower())
            if scale is None:
                raise XnorfaultError(
                    f"unknown time unit {unit!r} in --inferences {text!r}: use s, min, h, d or y"
                )
            count, rate = None, value / scale
    for value in (count, rate):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise XnorfaultError(f"--inferences {text!r} must be a non-negative number")
    return count, rate


def weight_memory_options(device: MTJ, age, **options) -> tuple[WeightMemory, list[float]] | None:
    """The weight memory and the ages that ``evaluate``'s options give (``None`` without
    ``age``): ``age`` one duration or a list (``"1d,1y,10y"``, numbers in seconds), the other
    options those of :data:`WEIGHT_OPTIONS` as text or SI numbers, on top of the device
    file's ``[weight_memory]`` table. Options without ``age`` are a one-line error."""
    from xnorfault.units import parse_list

    given = [name for name in WEIGHT_OPTIONS if options.get(name) is not None]
    if age is None:
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise XnorfaultError(
                f"{flags} describe the weight memory: give --age too (e.g. --age 0 for the "
                "deployment write alone, or --age 1d,1y,10y)"
            )
        return None
    if isinstance(age, str):
        ages = parse_list(age, parse_duration)
    else:
        ages = [float(a) for a in np.atleast_1d(np.asarray(age, dtype=float))]
    if any(not (math.isfinite(a) and a >= 0) for a in ages):
        raise XnorfaultError(f"--age {age!r}: ages are non-negative durations, e.g. 1d,1y")
    count, rate = (None, None)
    if options.get("inferences") is not None:
        count, rate = parse_inferences(options["inferences"])

    def value(name, parse):
        raw = options.get(name)
        return None if raw is None else parse(raw)

    reads = options.get("reads_per_inference")
    memory = WeightMemory.from_device(
        device,
        write_voltage=value("weight_voltage", parse_voltage),
        write_pulse=value("weight_pulse", parse_duration),
        erased=options.get("weight_erased"),
        temperature=value("temperature", parse_temperature),
        read_voltage=value("read_voltage", parse_voltage),
        read_pulse=value("read_pulse", parse_duration),
        read_direction=options.get("read_direction"),
        reads_per_inference=None if reads is None else _whole(reads),
        inferences=count,
        inference_rate=rate,
    )
    if memory.write_voltage is not None:
        device.operating_voltage(memory.write_voltage)  # above breakdown: one line, now
    device.operating_voltage(memory.read_voltage)
    return memory, sorted(ages)


__all__ = [
    "ERASED_STATES",
    "WeightChip",
    "WeightMemory",
    "WeightTables",
    "compose",
    "draw_weight_chip",
    "format_age",
    "weight_error",
    "weight_faults",
    "weight_memory_options",
    "write_failure",
]
