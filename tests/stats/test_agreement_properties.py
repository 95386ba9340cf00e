"""Hypothesis properties of the agreement coefficients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from labelloop.stats._data import Ratings
from labelloop.stats.agreement import (
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    krippendorff_alpha,
    pairwise_kappa,
    percent_agreement,
    scott_pi,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def matrices(draw: st.DrawFn, min_items: int = 2, max_items: int = 25) -> np.ndarray:
    """Items × raters label matrices (labels 0..q-1, NaN missing) with >= 1 pairable item."""
    n = draw(st.integers(min_items, max_items))
    k = draw(st.integers(2, 5))
    q = draw(st.integers(1, 5))
    cells = draw(st.lists(st.integers(-1, q - 1), min_size=n * k, max_size=n * k))
    m = np.array(cells, dtype=float).reshape(n, k)
    m[m < 0] = np.nan
    counts = (~np.isnan(m)).sum(axis=1)
    assume((counts >= 2).any())
    assume(((~np.isnan(m)).sum(axis=0) > 0).sum() >= 2)
    return m


def _r(m: np.ndarray, level: str = "nominal") -> Ratings:
    return Ratings.from_matrix(m, rows="items", level=level, categories=None)  # type: ignore[arg-type]


COEFS = [percent_agreement, fleiss_kappa, gwet_ac, brennan_prediger, scott_pi, krippendorff_alpha]


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) < 1e-9


@SETTINGS
@given(matrices(), st.randoms(use_true_random=False))
def test_permuting_items_and_annotators_changes_nothing(m: np.ndarray, rnd: object) -> None:
    rng = np.random.default_rng(rnd.randint(0, 2**31))  # type: ignore[attr-defined]
    p = m[rng.permutation(m.shape[0])][:, rng.permutation(m.shape[1])]
    for fn in COEFS:
        assert _same(fn(_r(m)).value, fn(_r(p)).value), fn.__name__  # type: ignore[operator]
    for level in ("ordinal", "interval", "ratio"):
        a = krippendorff_alpha(_r(m), level=level).value  # type: ignore[arg-type]
        b = krippendorff_alpha(_r(p), level=level).value  # type: ignore[arg-type]
        assert _same(a, b), level


@SETTINGS
@given(matrices(), st.permutations(list(range(5))))
def test_relabeling_nominal_categories_changes_nothing(m: np.ndarray, perm: list[int]) -> None:
    relabeled = np.where(
        np.isnan(m), np.nan, np.take(np.array(perm, dtype=float), np.nan_to_num(m).astype(int))
    )
    for fn in (percent_agreement, fleiss_kappa, scott_pi, krippendorff_alpha):
        assert _same(fn(_r(m)).value, fn(_r(relabeled)).value), fn.__name__  # type: ignore[operator]


@SETTINGS
@given(matrices())
def test_bounds(m: np.ndarray) -> None:
    r = _r(m)
    pa = percent_agreement(r).value
    assert 0.0 <= pa <= 1.0 + 1e-12
    for fn in (fleiss_kappa, scott_pi, gwet_ac, brennan_prediger):
        v = fn(r).value  # type: ignore[operator]
        assert np.isnan(v) or v <= 1.0 + 1e-12
    for level in ("nominal", "ordinal", "interval"):
        a = krippendorff_alpha(r, level=level).value  # type: ignore[arg-type]
        assert np.isnan(a) or a <= 1.0 + 1e-12
    pw = pairwise_kappa(r)
    ok = np.isfinite(pw.kappa)
    assert (pw.kappa[ok] <= 1.0 + 1e-12).all() and (pw.kappa[ok] >= -1.0 - 1e-12).all()


@SETTINGS
@given(
    st.lists(st.integers(0, 4), min_size=2, max_size=40).filter(lambda xs: len(set(xs)) >= 2),
    st.integers(2, 5),
    st.floats(0.0, 0.6),
)
def test_perfect_agreement_gives_one(truth: list[int], k: int, p_missing: float) -> None:
    rng = np.random.default_rng(len(truth) * k)
    m = np.repeat(np.array(truth, dtype=float)[:, None], k, axis=1)
    miss = rng.random(m.shape) < p_missing
    miss[:, :2] = False  # every item keeps two ratings
    m[miss] = np.nan
    r = _r(m)
    for fn in COEFS:
        assert fn(r).value == pytest.approx(1.0), fn.__name__  # type: ignore[operator]
    for level in ("ordinal", "interval", "ratio"):
        assert krippendorff_alpha(r, level=level).value == pytest.approx(1.0)  # type: ignore[arg-type]
    assert cohen_kappa(r, pair=(0, 1)).value == pytest.approx(1.0)
    assert np.allclose(pairwise_kappa(r).kappa[:2, :2], 1.0)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(30, 80),
    st.integers(0, 2**31 - 1),
    st.sampled_from(["nominal", "interval", "ordinal"]),
)
def test_bootstrap_ci_contains_the_estimate(n: int, seed: int, level: str) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    m = np.column_stack(
        [np.where(rng.random(n) < 0.7, truth, rng.integers(0, 4, n)) for _ in range(3)]
    ).astype(float)
    m[rng.random(m.shape) < 0.15] = np.nan
    m[:, 0] = np.where(np.isnan(m[:, 0]), truth, m[:, 0])
    r = _r(m, level="interval" if level == "interval" else "nominal")
    for method in ("items", "krippendorff"):
        res = krippendorff_alpha(r, level=level, n_boot=400, seed=seed, bootstrap=method)  # type: ignore[arg-type]
        assert res.ci is not None and res.ci[0] <= res.value <= res.ci[1], method
    for fn in (fleiss_kappa, gwet_ac, percent_agreement):
        res = fn(r, n_boot=400, seed=seed)  # type: ignore[operator]
        assert res.ci is not None and res.ci[0] <= res.value <= res.ci[1], fn.__name__
