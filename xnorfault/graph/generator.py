r"""The counter-based random generator of the injected flips, in numpy: the reference that the
ONNX function ``xnorfault.BitFlip`` (:mod:`xnorfault.graph.bitflip`) reproduces draw for draw.

SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
2014): the j-th draw of the stream with key k is :math:`\mathrm{mix64}(k + j\varphi)` with
:math:`\varphi` = 0x9E3779B97F4A7C15 (the 64-bit golden ratio) and mix64 the finaliser

.. math:: z \mathrel{\wedge}= z \gg 30;\ z \mathrel{*}= \mathtt{0xbf58476d1ce4e5b9};\
          z \mathrel{\wedge}= z \gg 27;\ z \mathrel{*}= \mathtt{0x94d049bb133111eb};\
          z \mathrel{\wedge}= z \gg 31

(wrapping 64-bit arithmetic), a bijection of 64-bit words. Its top 53 bits give a double in
(0, 1). Every binary site has two streams (gap lengths; polarity thinning) whose keys are
:math:`\mathrm{mix64}(s \oplus c)` for the run's seed s and a constant c per site and stream, so
one 62-bit seed per run gives independent, reproducible masks that never repeat over a campaign.

Write models (PAPER §3: a write can fail only when the cell must switch). ``iid`` flips every
element with the rate of its value (every write switches: the upper bound); ``reset`` resets
the cells to one state before each write, so only writes of the other value can fail;
``previous`` keeps what was stored for the previous image of the batch (the batch is the write
stream) and a write fails only where the stored value differs — a failed write leaves the old
value, against which the next image is written. :func:`write_mask` is the reference of all
three. Imports numpy only.
"""

from __future__ import annotations

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX_MULTIPLIERS = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
MIX_SHIFTS = (30, 27, 31)
STREAMS_PER_SITE = 2  # gap lengths, polarity thinning
_WORD = 0xFFFFFFFFFFFFFFFF


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 (wrapping arithmetic); a bijection of 64-bit words."""
    x = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(MIX_SHIFTS[0])
        x *= np.uint64(MIX_MULTIPLIERS[0])
        x ^= x >> np.uint64(MIX_SHIFTS[1])
        x *= np.uint64(MIX_MULTIPLIERS[1])
        x ^= x >> np.uint64(MIX_SHIFTS[2])
    return x


def stream_constants(site_index: int) -> np.ndarray:
    r"""The constants of site ``site_index``'s two streams:
    :math:`\mathrm{mix64}((2i + 1)\varphi)` and :math:`\mathrm{mix64}((2i + 2)\varphi)`."""
    numbers = np.array([1, 2], dtype=np.uint64) + np.uint64(STREAMS_PER_SITE * site_index)
    with np.errstate(over="ignore"):
        return mix64(numbers * np.uint64(GOLDEN))


def stream_keys(seed: int, site_index: int) -> np.ndarray:
    r"""Keys of a site's two streams for a non-negative ``seed``:
    :math:`\mathrm{mix64}(s \oplus c)`. mix64 is a bijection, so distinct seeds give distinct
    keys (64-bit keys: no birthday collisions among the seeds of a long campaign)."""
    return mix64(stream_constants(site_index) ^ np.uint64(seed))


def uniforms(key: np.uint64, count: int) -> np.ndarray:
    r"""The first ``count`` uniforms (float64 in (0, 1)) of the stream with ``key``:
    :math:`(\lfloor h/2^{11}\rfloor + 1/2)\,2^{-53}` with :math:`h = \mathrm{mix64}(k + j\varphi)`."""
    j = np.arange(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(key) + j * np.uint64(GOLDEN))
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def gap_count(size: int, p: float) -> int:
    r"""How many geometric gaps a site of ``size`` elements draws at flip rate ``p``:
    :math:`K = \lceil Np + 10\sqrt{Np} + 16\rceil`, so that the chance they fall short of the
    end (a Poisson tail ten standard deviations out) is below :math:`10^{-20}`."""
    mean = size * p
    return int(np.ceil(mean + 10.0 * np.sqrt(mean) + 16.0))


def flip_mask(values: np.ndarray, p_pos, p_neg, seed: int, site_index: int) -> np.ndarray:
    r"""Which elements of ``values`` (one site's activation) ``xnorfault.BitFlip`` negates for
    ``flip_seed = seed`` (non-negative), as a boolean array of the same shape.

    Bernoulli(p) by geometric skipping at :math:`p = \max(p_{+\to-}, p_{-\to+})`: gaps
    :math:`G_j = \lfloor \ln U_j / \ln(1-p) \rfloor` from the first stream, flipped positions
    :math:`\sum_{i\le j}(G_i + 1) - 1`; with unequal rates a candidate of sign s is kept when
    the j-th uniform of the second stream is below :math:`p_s/p` (independent thinning of a
    Bernoulli process is Bernoulli with rate :math:`p_s`).

    ``p_pos`` and ``p_neg`` are each a rate or one rate per address (element of one image; the
    flat index modulo the map's length): :math:`p` is then the largest rate of both maps and a
    candidate at address a is kept below :math:`p_s[a]/p`.
    """
    flat = np.asarray(values).ravel()
    size = flat.size
    # the graph's float32 inputs
    rates_pos = np.asarray(p_pos, np.float32).astype(np.float64).ravel()
    rates_neg = np.asarray(p_neg, np.float32).astype(np.float64).ravel()
    p = max(rates_pos.max(), rates_neg.max())
    uniform = p == min(rates_pos.min(), rates_neg.min())
    count = gap_count(size, p)
    gap_key, thin_key = stream_keys(seed, site_index)
    with np.errstate(divide="ignore"):  # p = 1: ln 0 = -inf, every element flips
        log_q = min(np.log(1.0 - p), -1e-300)
    gaps = np.minimum(np.floor(np.log(uniforms(gap_key, count)) / log_q), size)
    positions = np.cumsum(gaps + 1.0) - 1.0
    valid = positions < size
    clipped = np.minimum(positions, size - 1).astype(np.int64)
    if not uniform:
        keep = np.where(
            flat[clipped] >= 0,
            rates_pos[clipped % rates_pos.size],
            rates_neg[clipped % rates_neg.size],
        ) / max(p, 1e-300)
        valid &= uniforms(thin_key, count) < keep
    mask = np.zeros(size, bool)
    mask[clipped[valid]] = True
    return mask.reshape(np.shape(values))


def initial_key(seed: int, site_index: int) -> np.uint64:
    r"""Key of the stream that draws a site's random initial state (``previous`` with
    ``random``): :math:`\mathrm{mix64}(k_{thin} \oplus \varphi)`, one uniform per address."""
    return mix64(stream_keys(seed, site_index)[1] ^ np.uint64(GOLDEN))


def initial_values(seed: int, site_index: int, per_image: int, state: str) -> np.ndarray:
    """The stored values (±1) of a site's ``per_image`` addresses before its stream's first
    write: all −1 (``neg``), all +1 (``pos``), or each +1 with probability 1/2 (``random``)."""
    if state == "neg":
        return -np.ones(per_image)
    if state == "pos":
        return np.ones(per_image)
    return np.where(uniforms(initial_key(seed, site_index), per_image) < 0.5, 1.0, -1.0)


def write_mask(
    values: np.ndarray,
    p_pos,
    p_neg,
    seed: int,
    site_index: int,
    write_model: str = "iid",
    initial_state: str = "neg",
) -> np.ndarray:
    r"""Which elements of ``values`` (one site's activation, batch first) read back wrong under
    ``write_model``, as ``xnorfault.BitFlip`` / ``xnorfault.BitFlipPrevious`` compute them.

    Write failures :math:`F_{i,a}` are drawn exactly as :func:`flip_mask` draws flips:
    Bernoulli with the rate of the value written (:math:`p_{+\to-}` = WER(AP→P) for +1,
    :math:`p_{-\to+}` = WER(P→AP) for −1).

    - ``iid``: every failure shows (:func:`flip_mask`).
    - ``reset`` to ``initial_state`` r (``neg`` or ``pos``): writing r never fails, so the rate of
      r's direction is 0.
    - ``previous``: the cell of address a holds :math:`s_{i-1,a}` when image i writes
      :math:`t_{i,a}`; the write fails only if :math:`s_{i-1,a} \ne t_{i,a}` and
      :math:`F_{i,a}`, and then keeps :math:`s_{i,a} = s_{i-1,a}`; the value read is
      :math:`s_{i,a}`. :math:`s_{-1}` is the initial state. Written here as that sequential
      recursion over the batch; the ONNX function resolves the same events sparsely.
    """
    values = np.asarray(values)
    if write_model == "reset":
        if initial_state == "random":
            raise ValueError("reset needs a definite reset state, neg or pos")
        p_pos, p_neg = (p_pos, 0.0) if initial_state == "neg" else (0.0, p_neg)
    failures = flip_mask(values, p_pos, p_neg, seed, site_index)
    if write_model != "previous":
        return failures
    batch = values.shape[0]
    targets = np.where(values >= 0, 1.0, -1.0).reshape(batch, -1)
    failures = failures.reshape(batch, -1)
    stored = initial_values(seed, site_index, targets.shape[1], initial_state)
    wrong = np.zeros_like(failures)
    for image in range(batch):
        failed = failures[image] & (stored != targets[image])
        wrong[image] = failed
        stored = np.where(failed, stored, targets[image])
    return wrong.reshape(values.shape)


def run_seed(base_seed: int, run_index: int) -> int:
    """A distinct non-negative 62-bit ``flip_seed`` for run ``run_index`` of a campaign started
    with ``base_seed`` (SplitMix64 of the pair): feed one per ``run()`` for independent,
    reproducible masks."""
    value = (int(base_seed) * GOLDEN + int(run_index) + 1) & _WORD
    value = ((value ^ (value >> MIX_SHIFTS[0])) * MIX_MULTIPLIERS[0]) & _WORD
    value = ((value ^ (value >> MIX_SHIFTS[1])) * MIX_MULTIPLIERS[1]) & _WORD
    return (value ^ (value >> MIX_SHIFTS[2])) >> 2
