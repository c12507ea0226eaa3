"""Property-based fuzzing of the parsers of user input: every text either parses to a value that
meets the parser's contract, or is refused with a one-line :class:`XnorfaultError` — never
another exception."""

import math
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xnorfault.errors import XnorfaultError
from xnorfault.units import (
    MAX_LIST_LENGTH,
    parse_count,
    parse_duration,
    parse_list,
    parse_probability,
    parse_shard,
    parse_voltage,
)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None)
FUZZ_FILES = settings(
    FUZZ, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# texts near the grammar (numbers, units, separators) find more than uniform noise
NUMBERISH = st.text(alphabet="0123456789.eE+-:, nsmuµVvyd%_xabc", max_size=24)
ANY_TEXT = st.one_of(NUMBERISH, st.text(max_size=24))


def refused_or(check, parse, text):
    try:
        value = parse(text)
    except XnorfaultError as error:
        assert "\n" not in str(error) and str(error)
        return
    check(value)


@FUZZ
@given(ANY_TEXT)
def test_quantities(text):
    refused_or(lambda v: math.isfinite(v), parse_duration, text)
    refused_or(lambda v: math.isfinite(v), parse_voltage, text)
    refused_or(lambda v: 0 < v < 1, parse_probability, text)
    refused_or(lambda v: isinstance(v, int) and v >= 1, parse_count, text)


@FUZZ
@given(ANY_TEXT)
def test_lists_and_ranges(text):
    def bounded(values):
        assert 1 <= len(values) <= MAX_LIST_LENGTH
        assert all(math.isfinite(v) for v in values)

    refused_or(bounded, lambda t: parse_list(t, parse_voltage), text)


@FUZZ
@given(
    st.floats(-2, 2, allow_nan=False),
    st.floats(-2, 2, allow_nan=False),
    st.floats(1e-12, 1, allow_nan=False),
)
def test_ranges_include_their_ends_and_stay_bounded(start, stop, step):
    text = f"{start!r}:{stop!r}:{step!r}"
    try:
        values = parse_list(text, parse_voltage)
    except XnorfaultError:
        assert stop < start or (stop - start) / step >= MAX_LIST_LENGTH
        return
    assert values[0] == start and values[-1] <= stop + 1e-9 * step
    assert stop - values[-1] < step * (1 + 1e-6)


@FUZZ
@given(st.one_of(NUMBERISH, st.from_regex(r"-?\d{1,3}/-?\d{1,3}", fullmatch=True)))
def test_shards(text):
    refused_or(lambda v: 1 <= v[0] <= v[1], parse_shard, text)


def toml_value():
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**6), 10**6),
        st.text(alphabet="0123456789.eEnsmuVv -", max_size=10),
        st.booleans(),
        st.lists(st.integers(0, 300), max_size=3),
    )


def toml_text(sections):
    lines = []
    for section, table in sections.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


DEVICE_KEYS = {
    "switching": ["delta", "tau_d", "vc0_p_to_ap", "vc0_ap_to_p", "max_pulse", "other"],
    "breakdown": ["vbd", "gamma", "time_at_vbd"],
    "resistance": ["r_p", "r_ap"],
    "retention": ["attempt_time"],
    "mystery": ["x"],
}


@st.composite
def device_documents(draw):
    sections = draw(st.lists(st.sampled_from(sorted(DEVICE_KEYS)), unique=True, max_size=4))
    return {
        section: draw(
            st.dictionaries(st.sampled_from(DEVICE_KEYS[section]), toml_value(), max_size=4)
        )
        for section in sections
    }


@FUZZ_FILES
@given(device_documents())
def test_device_files(tmp_path, document):
    from xnorfault.mram import load_device

    path = tmp_path / "device.toml"
    path.write_text(toml_text(document))
    with warnings.catch_warnings():  # files that leave keys out warn; not what is fuzzed here
        warnings.simplefilter("ignore")
        refused_or(lambda d: d.delta > 0 and d.vc0 > 0 and d.tau_d > 0, load_device, path)


TARGET_KEYS = [
    "name",
    "description",
    "architecture",
    "cpu",
    "cores",
    "threads",
    "latency_batches",
    "batch_size",
    "os",
    "extra",
]


@FUZZ_FILES
@given(st.dictionaries(st.sampled_from(TARGET_KEYS), toml_value(), max_size=9))
def test_target_files(tmp_path, document):
    from xnorfault.targets import load_target

    lines = [f"{key} = {_toml(value)}" for key, value in document.items()]
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")

    def valid(target):
        assert target.cores >= 1 and target.threads >= 1 and target.batch_size >= 1
        assert all(isinstance(b, int) and b >= 1 for b in target.latency_batches)

    refused_or(valid, load_target, str(path))
