import pytest

from xnorfault.errors import XnorfaultError
from xnorfault.units import (
    format_duration,
    format_energy,
    parse_duration,
    parse_list,
    parse_probability,
    parse_voltage,
)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("10ns", 1e-8),
        ("1.5e-8s", 1.5e-8),
        ("2 us", 2e-6),
        ("2µs", 2e-6),
        ("3ms", 3e-3),
        ("1y", 31557600.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text, volts", [("550mV", 0.55), ("0.55", 0.55), ("0.55 V", 0.55), (".5v", 0.5)]
)
def test_voltages(text, volts):
    assert parse_voltage(text) == pytest.approx(volts)


@pytest.mark.parametrize("text", ["ten ns", "10 parsecs", "", "1e999"])
def test_bad_quantities(text):
    with pytest.raises(XnorfaultError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["10", "1.5e-8", " 5 "])
def test_a_duration_as_text_needs_its_unit(text):
    """A bare ``--pulse 10`` was ten seconds (a WER of 1e-76, hundreds of µJ per bit): text
    without a unit is refused and the message names the units; a number is seconds (the API)."""
    with pytest.raises(XnorfaultError, match="has no unit: write it with one, e.g. .*ns"):
        parse_duration(text)
    assert parse_duration(1e-8) == 1e-8


def test_the_mtj_takes_quantities_with_units_and_refuses_other_text():
    from xnorfault.mram import MTJ

    mtj = MTJ()
    assert float(mtj.wer("500mV", "10ns")) == float(mtj.wer(0.5, 10e-9))
    with pytest.raises(XnorfaultError, match="cannot read duration 'soon'"):
        mtj.wer(0.5, "soon")
    with pytest.raises(XnorfaultError, match="has no unit"):
        mtj.wer(0.5, "10")


def test_probabilities_and_lists():
    assert parse_probability("1%") == pytest.approx(0.01)
    assert parse_probability("1e-6") == 1e-6
    for bad in ("0", "1", "-0.1", "x"):
        with pytest.raises(XnorfaultError):
            parse_probability(bad)
    assert parse_list("0.45:0.85:0.1", parse_voltage) == pytest.approx(
        [0.45, 0.55, 0.65, 0.75, 0.85]
    )
    assert parse_list("10ns,20ns", parse_duration) == pytest.approx([1e-8, 2e-8])
    with pytest.raises(XnorfaultError):
        parse_list("0.5:0.4:0.1", parse_voltage)


def test_formatting():
    assert format_duration(1e-8) == "10 ns"
    assert format_duration(4.83e-9) == "4.83 ns"
    assert format_energy(1.74e-12) == "1.74 pJ"


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("1pt", 0.01), ("2.5 points", 0.025), ("1%", 0.01), ("0.01", 0.01), (0.05, 0.05)],
)
def test_a_drop_has_one_meaning_in_points_percent_or_fraction(text, fraction):
    from xnorfault.units import parse_drop

    assert parse_drop(text) == pytest.approx(fraction)


@pytest.mark.parametrize("text", ["1", "2", 1.0, "0", "-1pt", "100pt", "lots"])
def test_a_drop_of_one_or_more_or_none_is_refused(text):
    """``--max-drop 1`` was taken as all of the accuracy (100 points) while tables speak in
    points: a bare number of 1 or more is refused with the three spellings."""
    from xnorfault.units import parse_drop

    with pytest.raises(XnorfaultError, match="write it as points, a percentage or a fraction"):
        parse_drop(text)
