"""Binomial confidence bounds for statistical assertions in the tests."""

from scipy.stats import beta


def clopper_pearson(successes: int, trials: int, confidence: float = 0.999) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval."""
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else beta.ppf(alpha / 2, successes, trials - successes + 1)
    high = (
        1.0 if successes == trials else beta.ppf(1 - alpha / 2, successes + 1, trials - successes)
    )
    return low, high


def assert_rate(flips: int, trials: int, p: float) -> None:
    """``p`` lies inside the 99.9 % Clopper–Pearson interval of ``flips`` out of ``trials``."""
    low, high = clopper_pearson(flips, trials)
    assert low <= p <= high, (
        f"{flips}/{trials} = {flips / trials:.5f}, p = {p} outside [{low:.5f}, {high:.5f}]"
    )
