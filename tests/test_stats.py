"""dm.stats: the mean over seeds, its standard error and the paired difference."""

import math

import numpy as np
import pytest

from dm.stats import Estimate, mean_se, paired


def test_mean_and_standard_error():
    e = mean_se([0.70, 0.74, 0.72, 0.76])
    assert e.n == 4 and e.mean == pytest.approx(0.73)
    assert e.se == pytest.approx(np.std([0.70, 0.74, 0.72, 0.76], ddof=1) / 2)
    assert e.t == pytest.approx(e.mean / e.se)
    assert str(e) == "+0.730 ± 0.013"


def test_paired_difference_is_per_seed():
    a, b = np.array([0.80, 0.85, 0.90]), np.array([0.70, 0.76, 0.79])
    e = paired(a, b)
    assert e == mean_se(a - b)
    # a shared offset across seeds cancels: the pair is far more certain than the two means
    assert e.se < min(mean_se(a).se, mean_se(b).se)


def test_t_at_zero_spread():
    assert Estimate(0.0, 0.0, 3).t == 0.0
    assert Estimate(0.1, 0.0, 3).t == math.inf and Estimate(-0.1, 0.0, 3).t == -math.inf


@pytest.mark.parametrize("values, message", [([0.5], "at least 2 seeds"), ([[0.1, 0.2]], "at least 2 seeds"),
                                             ([0.1, float("nan")], "must be finite")])
def test_bad_input_is_named(values, message):
    with pytest.raises(ValueError, match=message):
        mean_se(values)


def test_paired_needs_matching_seeds():
    with pytest.raises(ValueError, match="one value per seed each"):
        paired([0.1, 0.2, 0.3], [0.1, 0.2])


def test_reading_follows_the_evidence_rule():
    from dm.stats import Estimate, reading

    assert reading(Estimate(0.035, 0.01, 5)) == "ahead"          # t = 3.5
    assert reading(Estimate(-0.05, 0.01, 5)) == "behind"
    assert reading(Estimate(0.03, 0.01, 5)) == "leaning ahead"   # t = 3
    assert reading(Estimate(-0.02, 0.01, 5)) == "leaning behind"  # t = -2
    assert reading(Estimate(0.019, 0.01, 5)) == "not resolved"
    assert reading(Estimate(0.0, 0.0, 5)) == "not resolved"
