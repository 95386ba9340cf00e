"""Audit sampling: allocation, selection, inclusion probabilities, sample sizes, estimates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.stats.sampling import (
    allocate,
    estimate_error_rate,
    estimate_from_plan,
    inclusion_probabilities,
    largest_remainder,
    sample_size_for_proportion,
    stratified_sample,
    weighted_sample,
    wilson_half_width,
    wilson_interval,
)

proportion = pytest.importorskip("statsmodels.stats.proportion")


# ----------------------------------------------------------------------------- allocation
def test_largest_remainder_worked_example() -> None:
    # Hamilton's method: 10 seats for quotas 4.3, 3.5, 2.2 -> floors 4,3,2, one seat to 3.5
    np.testing.assert_array_equal(largest_remainder([4.3, 3.5, 2.2], 10), [4, 4, 2])
    # ties go to the first stratum
    np.testing.assert_array_equal(largest_remainder([2.5, 2.5, 1.0], 6), [3, 2, 1])
    # caps are respected
    np.testing.assert_array_equal(largest_remainder([1.5, 1.5], 3, caps=[1, 5]), [1, 2])


def test_allocations_worked_examples() -> None:
    sizes = [500, 300, 200]
    np.testing.assert_array_equal(allocate(sizes, 100, method="proportional"), [50, 30, 20])
    np.testing.assert_array_equal(allocate(sizes, 99, method="equal"), [33, 33, 33])
    np.testing.assert_array_equal(allocate(sizes, 100, method="equal"), [34, 33, 33])
    # Neyman: n_h ∝ N_h S_h = 500*.1, 300*.2, 200*.4 = 50, 60, 80 -> 100*(50,60,80)/190
    ney = allocate(sizes, 100, method="neyman", std=[0.1, 0.2, 0.4])
    np.testing.assert_array_equal(ney, largest_remainder(np.array([50, 60, 80]) * 100 / 190, 100))
    np.testing.assert_array_equal(
        allocate(sizes, 10, method="custom", shares=[1, 0, 1], min_per_stratum=0), [5, 0, 5]
    )
    np.testing.assert_array_equal(allocate(sizes, 10, method="custom", shares=[1, 0, 1]), [5, 1, 4])
    np.testing.assert_array_equal(
        allocate(sizes, 10, method="custom", shares=[1, 0, 1], min_per_stratum=2), [4, 2, 4]
    )
    # caps: stratum 2 has only 3 items, its excess goes to the others proportionally
    np.testing.assert_array_equal(allocate([10, 10, 3], 18, method="equal"), [8, 7, 3])
    # minimum per stratum takes precedence over proportionality
    np.testing.assert_array_equal(allocate([1000, 10, 5], 20, min_per_stratum=3), [14, 3, 3])
    np.testing.assert_array_equal(allocate([1000, 10, 1], 20, min_per_stratum=3), [16, 3, 1])
    np.testing.assert_array_equal(allocate(sizes, 1000), sizes)


def test_allocation_errors() -> None:
    with pytest.raises(ValueError, match="exceeds the population"):
        allocate([5, 5], 11)
    with pytest.raises(ValueError, match="minimum of 3 per stratum"):
        allocate([5, 5, 5], 8, min_per_stratum=3)
    with pytest.raises(ValueError, match="needs std"):
        allocate([5, 5], 4, method="neyman")
    with pytest.raises(ValueError, match="std must hold 2"):
        allocate([5, 5], 4, method="neyman", std=[1.0])
    with pytest.raises(ValueError, match="unknown allocation"):
        allocate([5, 5], 4, method="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative integers"):
        allocate([5, -1], 4)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=8),
    frac=st.floats(0, 1),
    method=st.sampled_from(["proportional", "equal", "neyman", "custom"]),
    min_per=st.integers(0, 5),
    data=st.data(),
)
def test_property_allocation_sums_and_bounds(
    sizes: list[int], frac: float, method: str, min_per: int, data: st.DataObject
) -> None:
    total = sum(sizes)
    n = int(frac * total)
    floor = np.minimum(sizes, min_per)
    extra = data.draw(
        st.lists(st.floats(0, 10), min_size=len(sizes), max_size=len(sizes)), label="std/shares"
    )
    if floor.sum() > n:
        with pytest.raises(ValueError):
            allocate(sizes, n, method=method, std=extra, shares=extra, min_per_stratum=min_per)  # type: ignore[arg-type]
        return
    n_h = allocate(sizes, n, method=method, std=extra, shares=extra, min_per_stratum=min_per)  # type: ignore[arg-type]
    assert n_h.sum() == n
    assert np.all(n_h <= np.asarray(sizes))
    assert np.all(n_h >= floor)


# ----------------------------------------------------------------------------- selection
def test_stratified_sample_reproducible_and_exact() -> None:
    rng = np.random.default_rng(1)
    strata = rng.choice(np.array(["en", "de", "fr", "ja"]), size=5000, p=[0.6, 0.2, 0.15, 0.05])
    plan = stratified_sample(strata, 200, allocation="equal", seed=42)
    again = stratified_sample(strata, 200, allocation="equal", seed=42)
    other = stratified_sample(strata, 200, allocation="equal", seed=43)
    np.testing.assert_array_equal(plan.indices, again.indices)
    assert not np.array_equal(plan.indices, other.indices)
    assert plan.n == 200 and len(set(plan.indices.tolist())) == 200
    assert plan.strata.tolist() == ["de", "en", "fr", "ja"]
    np.testing.assert_array_equal(plan.allocation, [50, 50, 50, 50])
    np.testing.assert_array_equal(strata[plan.indices], plan.strata[plan.stratum])
    np.testing.assert_allclose(
        plan.inclusion_probability, (plan.allocation / plan.population_sizes)[plan.stratum]
    )
    assert plan.population_size == 5000 and plan.design == "stratified" and plan.seed == 42
    rows = plan.rows()
    assert rows[0][1] == "de" and rows[0][2] == pytest.approx(50 / plan.population_sizes[0])
    np.testing.assert_allclose(plan.weights.sum(), 5000)
    # a Generator works as a seed too, and mapping-style inputs per stratum
    ney = stratified_sample(
        strata,
        100,
        allocation="neyman",
        std={"en": 0.1, "de": 0.3, "fr": 0.3, "ja": 0.5},
        seed=np.random.default_rng(0),
    )
    assert ney.n == 100 and ney.seed is None
    explicit = stratified_sample(strata, 10, allocation=[1, 2, 3, 4], seed=0)
    np.testing.assert_array_equal(explicit.allocation, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="sums to"):
        stratified_sample(strata, 11, allocation=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="no value given"):
        stratified_sample(strata, 10, allocation="neyman", std={"en": 1.0})


def test_srswor_within_strata_is_uniform() -> None:
    strata = np.array([0] * 6 + [1] * 4)
    hits = np.zeros(10)
    runs = 1500
    for seed in range(runs):
        hits[stratified_sample(strata, 5, allocation=[3, 2], seed=seed).indices] += 1
    expected = np.array([0.5] * 6 + [0.5] * 4) * runs
    # binomial sd = sqrt(runs * .25) ≈ 27; allow 4.5 sd
    assert np.all(np.abs(hits - expected) < 4.5 * math.sqrt(runs * 0.25))


@settings(max_examples=150, deadline=None)
@given(
    weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=30),
    frac=st.floats(0.01, 1),
)
def test_property_inclusion_probabilities_sum_to_n(weights: list[float], frac: float) -> None:
    n = max(1, int(frac * len(weights)))
    pi = inclusion_probabilities(weights, n)
    assert pi.sum() == pytest.approx(n, rel=1e-9)
    assert np.all((pi > 0) & (pi <= 1))
    w = np.asarray(weights)
    free = pi < 1
    if free.sum() > 1:  # proportional to size among the non-certainty units
        ratio = pi[free] / w[free]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    if (~free).any() and free.any():  # certainty units are the largest
        assert w[~free].min() >= w[free].max() - 1e-12


@pytest.mark.parametrize("method", ["systematic", "poisson"])
def test_weighted_sample_inclusion_frequencies(method: str) -> None:
    weights = np.array([1, 1, 2, 3, 5, 8, 13, 40, 0.5, 2.5])
    n = 4
    pi = inclusion_probabilities(weights, n)
    assert pi[7] == 1.0  # 40 would exceed 1: taken with certainty
    runs = 1500
    hits = np.zeros(len(weights))
    sizes = []
    for seed in range(runs):
        plan = weighted_sample(weights, n, method=method, seed=seed)  # type: ignore[arg-type]
        hits[plan.indices] += 1
        sizes.append(plan.n)
        assert len(set(plan.indices.tolist())) == plan.n
    if method == "systematic":
        assert set(sizes) == {n}
    else:
        assert abs(np.mean(sizes) - n) < 0.1
    sd = np.sqrt(runs * pi * (1 - pi))
    assert np.all(np.abs(hits - runs * pi) <= 4.5 * sd + 1e-9)
    plan = weighted_sample(weights, n, method=method, seed=5)  # type: ignore[arg-type]
    np.testing.assert_array_equal(plan.inclusion_probability, pi[plan.indices])
    np.testing.assert_array_equal(
        plan.indices,
        weighted_sample(weights, n, method=method, seed=5).indices,  # type: ignore[arg-type]
    )


def test_weighted_sample_errors_and_strata() -> None:
    with pytest.raises(ValueError, match="> 0"):
        weighted_sample([1, 0, 2], 1)
    with pytest.raises(ValueError, match=r"n must lie"):
        weighted_sample([1, 2], 3)
    with pytest.raises(ValueError, match="method"):
        weighted_sample([1, 2], 1, method="sampford")  # type: ignore[arg-type]
    plan = weighted_sample([1, 2, 3, 4], 2, strata=["a", "b", "a", "b"], seed=0)
    assert plan.strata.tolist() == ["a", "b"]
    np.testing.assert_allclose(plan.expected_allocation, [0.8, 1.2])


# ----------------------------------------------------------------------------- sample size
@pytest.mark.parametrize("p", [0.5, 0.2, 0.05, 0.01])
@pytest.mark.parametrize("h", [0.05, 0.02, 0.1])
def test_sample_size_is_minimal_wilson(p: float, h: float) -> None:
    n = sample_size_for_proportion(h, expected_rate=p)

    def width(m: int) -> float:
        lo, hi = proportion.proportion_confint(p * m, m, alpha=0.05, method="wilson")
        return float(hi - lo) / 2

    assert width(n) <= h + 1e-12
    assert n == 1 or width(n - 1) > h
    assert wilson_half_width(p, n) == pytest.approx(width(n), abs=1e-12)


def test_sample_size_worked_example_and_fpc() -> None:
    # worst case p=0.5, ±5 points at 95%: Wilson needs 381 (Wald's 1.96²/4/0.05² = 384.2 -> 385)
    assert sample_size_for_proportion(0.05) == 381
    with_fpc = sample_size_for_proportion(0.05, population_size=1000)
    assert with_fpc < 381
    n_eff = with_fpc * 999 / (1000 - with_fpc)
    assert wilson_half_width(0.5, n_eff) <= 0.05
    assert sample_size_for_proportion(0.01, population_size=50) <= 50
    assert sample_size_for_proportion(0.05, expected_rate=0.5, confidence=0.99) > 381
    with pytest.raises(ValueError, match="half_width"):
        sample_size_for_proportion(0)
    with pytest.raises(ValueError, match="confidence"):
        sample_size_for_proportion(0.1, confidence=1.5)


@pytest.mark.parametrize(("count", "nobs"), [(0, 10), (3, 10), (10, 10), (17, 250), (1, 3000)])
def test_wilson_interval_equals_statsmodels(count: int, nobs: int) -> None:
    for conf in (0.9, 0.95, 0.99):
        ref = proportion.proportion_confint(count, nobs, alpha=1 - conf, method="wilson")
        ours = wilson_interval(count / nobs, nobs, confidence=conf)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- estimation
def test_stratified_estimate_worked_example() -> None:
    # two strata, N = 600 + 400, n = 20 + 10, errors 2/20 and 5/10
    y = np.array([1] * 2 + [0] * 18 + [1] * 5 + [0] * 5, dtype=float)
    pi = np.array([20 / 600] * 20 + [10 / 400] * 10)
    stratum = np.array(["a"] * 20 + ["b"] * 10)
    est = estimate_error_rate(y, pi, stratum=stratum)
    p = 0.6 * 0.1 + 0.4 * 0.5
    var = (
        0.6**2 * (1 - 20 / 600) * np.var(y[:20], ddof=1) / 20
        + 0.4**2 * (1 - 10 / 400) * np.var(y[20:], ddof=1) / 10
    )
    assert est.value == pytest.approx(p, abs=1e-12)
    assert est.se == pytest.approx(math.sqrt(var), abs=1e-12)
    assert est.population_size == pytest.approx(1000)
    assert est.n_eff == pytest.approx(p * (1 - p) / var)
    np.testing.assert_allclose(est.ci, wilson_interval(p, est.n_eff), atol=1e-12)
    assert est.by_stratum["a"].value == pytest.approx(0.1)
    assert est.by_stratum["b"].value == pytest.approx(0.5)
    wald = estimate_error_rate(y, pi, stratum=stratum, ci_method="wald")
    assert wald.ci == pytest.approx(
        (p - 1.959963984540054 * wald.se, p + 1.959963984540054 * wald.se)
    )
    # unweighted mean would say 7/30 = 0.233; the design-weighted answer is 0.26
    ht = estimate_error_rate(
        y, pi, stratum=stratum, estimator="horvitz_thompson", population_size=1000
    )
    assert ht.value == pytest.approx(p)


def test_zero_errors_give_a_nondegenerate_interval() -> None:
    est = estimate_error_rate(np.zeros(50), np.full(50, 0.05))
    assert est.value == 0 and est.ci[0] == 0 and 0.05 < est.ci[1] < 0.1


def test_stratified_ht_unbiased_by_enumeration() -> None:
    y = [np.array([1, 0, 0, 1.0]), np.array([0, 1, 1.0])]
    n_h = [2, 2]
    truth = np.concatenate(y).mean()
    values, variances = [], []
    for a in itertools.combinations(range(4), n_h[0]):
        for b in itertools.combinations(range(3), n_h[1]):
            ys = np.concatenate([y[0][list(a)], y[1][list(b)]])
            pi = np.array([2 / 4] * 2 + [2 / 3] * 2)
            est = estimate_error_rate(ys, pi, stratum=[0, 0, 1, 1])
            values.append(est.value)
            variances.append(est.se**2)
    assert np.mean(values) == pytest.approx(truth, abs=1e-12)
    # the stratified variance estimator is unbiased too
    assert np.mean(variances) == pytest.approx(np.var(values), abs=1e-12)


def test_poisson_ht_and_variance_unbiased_by_enumeration() -> None:
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0], dtype=float)
    pi = inclusion_probabilities([1, 2, 3, 1, 5, 2, 1, 1], 4)
    big_n = len(y)
    mean_est = mean_var = second = 0.0
    for mask in itertools.product([False, True], repeat=big_n):
        sel = np.array(mask)
        prob = float(np.prod(np.where(sel, pi, 1 - pi)))
        if sel.any():
            est = estimate_error_rate(
                y[sel],
                pi[sel],
                design="poisson",
                estimator="horvitz_thompson",
                population_size=big_n,
            )
            value, var = est.value, est.se**2
        else:
            value = var = 0.0
        mean_est += prob * value
        second += prob * value**2
        mean_var += prob * var
    assert mean_est == pytest.approx(y.mean(), abs=1e-12)
    assert mean_var == pytest.approx(second - mean_est**2, abs=1e-12)


def test_systematic_pps_estimate_unbiased_over_seeds() -> None:
    rng = np.random.default_rng(3)
    big_n = 60
    risk = rng.uniform(0.2, 5, big_n)
    y = (rng.random(big_n) < 0.05 + 0.08 * risk).astype(float)  # riskier items err more
    values, covered = [], 0
    runs = 400
    for seed in range(runs):
        plan = weighted_sample(risk, 12, seed=seed)
        est = estimate_from_plan(plan, y[plan.indices], estimator="horvitz_thompson")
        values.append(est.value)
        covered += est.ci[0] <= y.mean() <= est.ci[1]
    sd = np.std(values) / math.sqrt(runs)
    assert abs(np.mean(values) - y.mean()) < 4 * sd
    naive = np.mean([y[weighted_sample(risk, 12, seed=s).indices].mean() for s in range(100)])
    assert naive > y.mean() + 0.05  # the unweighted sample mean is biased upwards
    assert covered / runs > 0.85


def test_estimate_from_plan_per_stratum() -> None:
    strata = np.repeat(["low", "mid", "high"], [800, 150, 50])
    plan = stratified_sample(strata, 90, allocation="equal", seed=0)
    errors = (plan.strata[plan.stratum] == "high").astype(float)
    est = estimate_from_plan(plan, errors)
    assert est.value == pytest.approx(50 / 1000)
    assert set(est.by_stratum) == {"low", "mid", "high"}
    assert est.by_stratum["high"].value == 1.0
    with pytest.raises(ValueError, match="one entry per sampled unit"):
        estimate_from_plan(plan, errors[:-1])
    wplan = weighted_sample(np.linspace(1, 3, 1000), 50, strata=strata, seed=0)
    west = estimate_from_plan(wplan, np.zeros(50))
    assert (
        west.value == 0
        and west.design == "systematic"
        and set(west.by_stratum) <= {"low", "mid", "high"}
    )


def test_estimate_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        estimate_error_rate([], [])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        estimate_error_rate([1, 0], [0.5, 0])
    with pytest.raises(ValueError, match="0/1"):
        estimate_error_rate([2, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match="equal length"):
        estimate_error_rate([1, 0], [0.5])
    with pytest.raises(ValueError, match="one inclusion probability per stratum"):
        estimate_error_rate([1, 0], [0.5, 0.2])
    with pytest.raises(ValueError, match="design"):
        estimate_error_rate([1, 0], [0.5, 0.5], design="cluster")  # type: ignore[arg-type]


def test_stratified_pps_inside_segments() -> None:
    rng = np.random.default_rng(4)
    strata = np.repeat(["en", "de", "ja"], [40, 20, 10])
    risk = rng.uniform(0.5, 4, 70)
    risk[3] = 200.0  # a certainty unit
    y = (rng.random(70) < 0.05 * risk).astype(float)
    plan = weighted_sample(risk, 12, strata=strata, allocation="equal", seed=1)
    assert plan.stratified and plan.design == "systematic"
    np.testing.assert_array_equal(plan.allocation, [4, 4, 4])
    for h in range(3):
        assert plan.expected_allocation[h] == pytest.approx(4)
    runs = 300
    hits = np.zeros(70)
    values = []
    for seed in range(runs):
        p = weighted_sample(risk, 12, strata=strata, allocation="equal", seed=seed)
        hits[p.indices] += 1
        values.append(estimate_from_plan(p, y[p.indices], estimator="horvitz_thompson").value)
    pi = np.zeros(70)
    for label in ("en", "de", "ja"):
        members = strata == label
        pi[members] = inclusion_probabilities(risk[members], 4)
    assert pi[3] == 1.0 and hits[3] == runs
    assert np.all(np.abs(hits - runs * pi) <= 4.5 * np.sqrt(runs * pi * (1 - pi)) + 1e-9)
    assert abs(np.mean(values) - y.mean()) < 4 * np.std(values) / math.sqrt(runs)
    with pytest.raises(ValueError, match="needs strata"):
        weighted_sample(risk, 12, allocation="equal")


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(0.05, 50), min_size=1, max_size=40),
    frac=st.floats(0.01, 1),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["systematic", "poisson"]),
)
def test_property_weighted_sample_seeded_and_sized(
    weights: list[float], frac: float, seed: int, method: str
) -> None:
    n = max(1, int(frac * len(weights)))
    a = weighted_sample(weights, n, method=method, seed=seed)  # type: ignore[arg-type]
    b = weighted_sample(weights, n, method=method, seed=seed)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a.indices, b.indices)
    assert len(set(a.indices.tolist())) == a.n
    if method == "systematic":
        assert a.n == n
    assert np.all(a.inclusion_probability[a.inclusion_probability >= 1] == 1.0)
    certain = np.flatnonzero(inclusion_probabilities(weights, n) >= 1.0)
    assert set(certain.tolist()) <= set(a.indices.tolist())


@settings(max_examples=30, deadline=None)
@given(
    strata=st.lists(st.lists(st.integers(0, 1), min_size=2, max_size=5), min_size=1, max_size=3),
    data=st.data(),
)
def test_property_stratified_estimate_unbiased_by_enumeration(
    strata: list[list[int]], data: st.DataObject
) -> None:
    ys = [np.array(s, dtype=float) for s in strata]
    n_h = [data.draw(st.integers(1, len(s)), label=f"n_{h}") for h, s in enumerate(strata)]
    truth = np.concatenate(ys).mean()
    combos = [
        list(itertools.combinations(range(len(s)), k)) for s, k in zip(strata, n_h, strict=True)
    ]
    values = []
    for choice in itertools.product(*combos):
        y = np.concatenate([ys[h][list(c)] for h, c in enumerate(choice)])
        pi = np.concatenate([[n_h[h] / len(strata[h])] * n_h[h] for h in range(len(strata))])
        code = np.concatenate([[h] * n_h[h] for h in range(len(strata))])
        values.append(estimate_error_rate(y, pi, stratum=code).value)
    assert np.mean(values) == pytest.approx(truth, abs=1e-12)
