"""Published worked examples used by the agreement tests."""

from __future__ import annotations

import numpy as np

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C:
# 4 observers (rows) × 12 units (columns), missing values as NaN.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Fleiss (1971), psychiatric diagnoses: 30 subjects × 6 raters, categories
# 1 depression, 2 personality disorder, 3 schizophrenia, 4 neurosis, 5 other.
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ]
)  # fmt: skip
FLEISS_1971_KAPPA = 0.430
# per-category kappas as published (Fleiss 1971, table 2; R irr::kappam.fleiss(detail=TRUE))
FLEISS_1971_PER_CATEGORY = [0.245, 0.245, 0.520, 0.471, 0.566]


def random_matrix(
    rng: np.random.Generator, n_items: int, n_raters: int, q: int, p_missing: float
) -> np.ndarray:
    """Items × raters matrix of labels 1..q with NaN for missing; every item keeps one rating."""
    m = rng.integers(1, q + 1, size=(n_items, n_raters)).astype(float)
    # make raters agree more than chance so coefficients are not all near zero
    truth = rng.integers(1, q + 1, size=(n_items, 1)).astype(float)
    m = np.where(rng.random(m.shape) < 0.5, truth, m)
    miss = rng.random(m.shape) < p_missing
    miss[:, 0] &= rng.random(n_items) < 0.5  # keep most items pairable
    m[miss] = nan
    return m
