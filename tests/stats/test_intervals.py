"""Bootstrap machinery: exactness of the vectorised resampling, seeding, Krippendorff's bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from labelloop.stats._data import Ratings
from labelloop.stats.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from labelloop.stats.intervals import (
    bootstrap_items,
    krippendorff_bootstrap,
    percentile_interval,
    resample_counts,
    summarize,
)
from tests.stats._agreement_data import KRIPPENDORFF_2011, random_matrix


def test_resample_counts_are_multinomial_draws() -> None:
    w = resample_counts(50, 400, np.random.default_rng(0))
    assert w.shape == (400, 50)
    assert (w.sum(axis=1) == 50).all()
    assert w.mean() == pytest.approx(1.0)
    assert w.var() == pytest.approx(1 - 1 / 50, rel=0.1)  # multinomial(n, 1/n) variance


@pytest.mark.parametrize("kind", ["dense", "sparse", "repeated"])
def test_bootstrap_items_matches_explicit_resampling(kind: str) -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=200), 1.0 + rng.random(200)])
    if kind == "repeated":  # few distinct rows: the multinomial-over-types path
        x = np.round(x)
    per: np.ndarray | sp.csr_matrix = sp.csr_matrix(x) if kind == "sparse" else x

    def ratio(s: np.ndarray) -> np.ndarray:
        return s[:, 0] / s[:, 1]

    res = bootstrap_items(per, ratio, n_boot=3000, seed=7)
    assert res.replicates.shape == (3000,)
    # reference: the statistic on explicit index resamples
    idx = np.random.default_rng(99).integers(0, 200, size=(3000, 200))
    ref = x[idx].sum(axis=1)
    ref_stat = ref[:, 0] / ref[:, 1]
    assert res.se == pytest.approx(np.std(ref_stat, ddof=1), rel=0.15)
    # reproducible
    again = bootstrap_items(per, ratio, n_boot=3000, seed=7)
    np.testing.assert_array_equal(res.replicates, again.replicates)


def test_bootstrap_items_exact_weights() -> None:
    """With a given count matrix, the vectorised sums equal explicit per-resample sums."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 3))
    w = resample_counts(30, 5, np.random.default_rng(3))
    explicit = np.array(
        [x[np.repeat(np.arange(30), w[b].astype(int))].sum(axis=0) for b in range(5)]
    )
    np.testing.assert_allclose(w @ x, explicit, atol=1e-12)


def test_summarize_and_percentiles() -> None:
    reps = np.r_[np.arange(100.0), np.nan]
    res = summarize(reps, 0.9)
    assert res.n_undefined == 1
    assert res.ci == pytest.approx(percentile_interval(reps, 0.9))
    assert res.ci[0] == pytest.approx(4.95) and res.ci[1] == pytest.approx(94.05)
    assert np.isnan(percentile_interval(np.full(3, np.nan), 0.95)[0])
    with pytest.raises(ValueError, match="confidence"):
        summarize(reps, 0.0)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_items(np.ones((3, 1)), lambda s: s[:, 0], n_boot=1)
    with pytest.raises(ValueError, match="two items"):
        bootstrap_items(np.ones((1, 1)), lambda s: s[:, 0], n_boot=10)


def test_krippendorff_bootstrap_centres_on_alpha() -> None:
    m = random_matrix(np.random.default_rng(4), 3000, 4, 4, 0.2).T
    r = Ratings.from_matrix(m)
    for level in ("nominal", "ordinal", "interval"):
        res = krippendorff_alpha(r, level=level, n_boot=2000, seed=5, bootstrap="krippendorff")  # type: ignore[arg-type]
        assert res.ci is not None and res.ci_method == "bootstrap-krippendorff"
        assert res.ci[0] < res.value < res.ci[1]
        assert res.details["n_undefined_resamples"] == 0


def test_krippendorff_bootstrap_pools_continuous_cells() -> None:
    rng = np.random.default_rng(6)
    delta = rng.random(10_000)
    mass = rng.random(10_000)
    a = krippendorff_bootstrap(
        delta,
        mass,
        n_pairable=5000,
        n_coders=3,
        expected_disagreement=0.6,
        n_boot=500,
        seed=1,
        max_cells=64,
    )
    b = krippendorff_bootstrap(
        delta, mass, n_pairable=5000, n_coders=3, expected_disagreement=0.6, n_boot=500, seed=1
    )
    expected = 1 - (delta @ mass / mass.sum()) / 0.6
    assert np.mean(a.replicates) == pytest.approx(expected, abs=0.01)
    assert np.mean(b.replicates) == pytest.approx(expected, abs=0.01)
    nothing = krippendorff_bootstrap(
        delta, mass, n_pairable=10, n_coders=2, expected_disagreement=0.0, n_boot=10, seed=1
    )
    assert np.isnan(nothing.replicates).all()


def test_worked_example_bootstrap_is_seeded() -> None:
    r = Ratings.from_matrix(KRIPPENDORFF_2011)
    a = krippendorff_alpha(r, n_boot=500, seed=3, bootstrap="krippendorff")
    b = krippendorff_alpha(r, n_boot=500, seed=3, bootstrap="krippendorff")
    c = krippendorff_alpha(r, n_boot=500, seed=4, bootstrap="krippendorff")
    assert a.ci == b.ci and a.ci != c.ci
    items = krippendorff_alpha(r, n_boot=500, seed=3)
    assert items.ci_method == "bootstrap-items" and items.ci is not None


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_item_bootstrap_every_level(level: str) -> None:
    m = random_matrix(np.random.default_rng(7), 150, 3, 5, 0.2).T
    r = Ratings.from_matrix(m, level="ratio" if level == "ratio" else "nominal")
    res = krippendorff_alpha(r, level=level, n_boot=300, seed=1)  # type: ignore[arg-type]
    assert res.ci is not None and res.ci[0] <= res.value <= res.ci[1]
    assert res.se is not None and 0 < res.se < 0.2


def test_other_coefficients_bootstrap() -> None:
    m = random_matrix(np.random.default_rng(8), 200, 2, 4, 0.0)
    r = Ratings.from_matrix(m, rows="items")
    boot = cohen_kappa(r, n_boot=1000, seed=2)
    analytic = cohen_kappa(r)
    assert boot.ci_method == "bootstrap-items" and analytic.ci_method == "analytic"
    assert boot.se == pytest.approx(analytic.se, rel=0.2)  # bootstrap SE ≈ analytic SE
    fb = fleiss_kappa(r, n_boot=1000, seed=2)
    fa = fleiss_kappa(r)
    assert fb.se == pytest.approx(fa.se, rel=0.2)


def test_bootstrap_speed_smoke() -> None:
    """1,000 resamples of 20,000 units stay well inside the budget (full size in benchmarks)."""
    import time

    m = random_matrix(np.random.default_rng(9), 20_000, 5, 5, 0.2).T
    r = Ratings.from_matrix(m)
    t0 = time.perf_counter()
    res = krippendorff_alpha(r, n_boot=1000, seed=0)
    assert time.perf_counter() - t0 < 10
    assert res.ci is not None
