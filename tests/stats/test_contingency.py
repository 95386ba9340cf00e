"""The Cochran–Mantel–Haenszel test against statsmodels and a textbook example, plus
properties (symmetry, invariance to stratum order, a calibrated null)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.contingency_tables import StratifiedTable

from labelloop.stats import cochran_mantel_haenszel

#: Agresti, *Categorical Data Analysis* (2nd ed. §6.3.3; 3rd ed. §6.4): penicillin
#: against streptococci in rabbits, five penicillin levels; rows: immediate injection,
#: 1.5 h delay; columns: cured, died. Agresti reports the continuity-corrected CMH
#: statistic 3.93 (P = 0.047) and the Mantel–Haenszel odds ratio 7.0.
PENICILLIN = np.array(
    [
        [[0, 6], [0, 5]],
        [[3, 3], [0, 6]],
        [[6, 0], [2, 4]],
        [[5, 1], [6, 0]],
        [[2, 0], [5, 0]],
    ],
    dtype=float,
)


def _statsmodels(t: np.ndarray) -> StratifiedTable:
    return StratifiedTable(t.transpose(1, 2, 0))  # statsmodels wants 2 x 2 x K


def test_published_example() -> None:
    corrected = cochran_mantel_haenszel(PENICILLIN, correction=True)
    assert round(corrected.statistic, 2) == 3.93
    assert round(corrected.p_value, 3) == 0.047
    assert corrected.odds_ratio == pytest.approx(7.0, abs=1e-12)


@pytest.mark.parametrize("correction", [False, True])
def test_equals_statsmodels(correction: bool) -> None:
    ours = cochran_mantel_haenszel(PENICILLIN, correction=correction)
    ref = _statsmodels(PENICILLIN).test_null_odds(correction=correction)
    assert ours.statistic == pytest.approx(ref.statistic, abs=1e-9)
    assert ours.p_value == pytest.approx(ref.pvalue, abs=1e-9)
    assert ours.odds_ratio == pytest.approx(_statsmodels(PENICILLIN).oddsratio_pooled, abs=1e-9)


counts = st.integers(0, 30)
table = st.tuples(counts, counts, counts, counts).map(lambda t: [[t[0], t[1]], [t[2], t[3]]])


@given(st.lists(table, min_size=1, max_size=12))
@settings(max_examples=200, deadline=None)
def test_matches_statsmodels_and_ignores_order(data: list[list[list[int]]]) -> None:
    t = np.asarray(data, dtype=float)
    ours = cochran_mantel_haenszel(t)
    again = cochran_mantel_haenszel(t[::-1])
    swapped = cochran_mantel_haenszel(t[:, ::-1, :])  # the two conditions swapped
    if np.isnan(ours.statistic):
        assert np.isnan(again.statistic) and np.isnan(swapped.statistic)
        return
    assert again.statistic == pytest.approx(ours.statistic, rel=1e-9, abs=1e-12)
    assert swapped.statistic == pytest.approx(ours.statistic, rel=1e-9, abs=1e-12)
    assert 0 <= ours.p_value <= 1
    kept = t[t.sum(axis=(1, 2)) >= 2]
    ref = _statsmodels(kept).test_null_odds(correction=False)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-7, abs=1e-9)


def test_null_is_calibrated() -> None:
    """With no association, p < 0.05 in about 5 % of 2,000 simulated studies."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(2000):
        p = rng.uniform(0.1, 0.3, size=10)  # each stratum its own base rate
        before = rng.binomial(200, p)
        after = rng.binomial(200, p)
        t = np.stack([[after, 200 - after], [before, 200 - before]], axis=0).transpose(2, 0, 1)
        hits += cochran_mantel_haenszel(t).p_value < 0.05
    assert 0.035 <= hits / 2000 <= 0.065


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="K x 2 x 2"):
        cochran_mantel_haenszel(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        cochran_mantel_haenszel([[[1, -1], [0, 2]]])
