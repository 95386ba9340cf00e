"""Agreement equals published worked examples and the reference libraries (to 1e-9)."""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pandas as pd
import pytest

from labelloop.stats._data import Ratings
from labelloop.stats.agreement import (
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    intraclass_correlation,
    krippendorff_alpha,
    pairwise_kappa,
    per_category_agreement,
    scott_pi,
)
from tests.stats._agreement_data import (
    FLEISS_1971,
    FLEISS_1971_KAPPA,
    FLEISS_1971_PER_CATEGORY,
    KRIPPENDORFF_2011,
    KRIPPENDORFF_2011_ALPHA,
    random_matrix,
)

TOL = 1e-9
LEVELS = ("nominal", "ordinal", "interval", "ratio")


# ------------------------------------------------------------ published examples
@pytest.mark.parametrize("level", LEVELS)
def test_krippendorff_2011_worked_example(level: str) -> None:
    r = Ratings.from_matrix(KRIPPENDORFF_2011, rows="annotators")
    res = krippendorff_alpha(r, level=level)  # type: ignore[arg-type]
    assert round(res.value, 3) == KRIPPENDORFF_2011_ALPHA[level]
    assert res.n_items == 12 and res.n_annotators == 4
    assert res.n_pairable == 40  # unit 12 holds a single value


def test_fleiss_1971_worked_example() -> None:
    r = Ratings.from_matrix(FLEISS_1971, rows="items")
    res = fleiss_kappa(r)
    assert round(res.value, 3) == FLEISS_1971_KAPPA
    assert res.value == pytest.approx(0.4302445, abs=1e-7)  # R irr::kappam.fleiss
    per = per_category_agreement(r)
    np.testing.assert_allclose(per.kappa, FLEISS_1971_PER_CATEGORY, atol=5e-4)


# -------------------------------------------------------------- krippendorff
SHAPES = [(2, 10, 2, 0.0), (3, 25, 4, 0.2), (5, 60, 6, 0.3), (7, 40, 3, 0.5), (4, 200, 10, 0.1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("level", LEVELS)
def test_alpha_equals_krippendorff_package(shape: tuple[int, int, int, float], level: str) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(zlib.crc32(repr((shape, level)).encode()))
    coders, units, q, p = shape
    m = random_matrix(rng, units, coders, q, p).T  # coders × units
    ours = krippendorff_alpha(Ratings.from_matrix(m, rows="annotators"), level=level).value  # type: ignore[arg-type]
    ref = krippendorff.alpha(reliability_data=m, level_of_measurement=level)
    assert ours == pytest.approx(ref, abs=TOL)


@pytest.mark.parametrize("level", ["interval", "ratio"])
def test_alpha_continuous_values_equal_package(level: str) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    m = rng.gamma(2.0, 3.0, size=(4, 60))  # the package needs units × values² memory
    m[rng.random(m.shape) < 0.25] = np.nan
    m[0, :5] = 0.0  # zeros are legal ratio values
    ours = krippendorff_alpha(Ratings.from_matrix(m, level=level), level=level).value  # type: ignore[arg-type]
    assert ours == pytest.approx(krippendorff.alpha(m, level_of_measurement=level), abs=TOL)


def test_alpha_string_labels_nominal() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(3)
    m = random_matrix(rng, 50, 3, 4, 0.2).T
    words = np.array(["", "a", "b", "c", "d"], dtype=object)
    items, anns, labs = [], [], []
    for a in range(m.shape[0]):
        for u in range(m.shape[1]):
            if not np.isnan(m[a, u]):
                items.append(f"u{u}")
                anns.append(f"c{a}")
                labs.append(words[int(m[a, u])])
    ours = krippendorff_alpha(Ratings.from_long(items, anns, labs)).value
    ref = krippendorff.alpha(m, level_of_measurement="nominal")
    assert ours == pytest.approx(ref, abs=TOL)


# ------------------------------------------------------------------ irrCAC
@pytest.mark.parametrize("shape", [(3, 20, 3, 0.2), (5, 40, 5, 0.3), (2, 30, 4, 0.0)])
@pytest.mark.parametrize("weights", ["identity", "linear", "quadratic"])
def test_chance_corrected_equal_irrcac(shape: tuple[int, int, int, float], weights: str) -> None:
    raw = pytest.importorskip("irrCAC.raw")
    rng = np.random.default_rng(zlib.crc32(repr((shape, weights)).encode()))
    raters, n, q, p = shape
    m = random_matrix(rng, n, raters, q, p)
    cats = list(range(1, q + 1))
    r = Ratings.from_matrix(m, rows="items", categories=cats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cac = raw.CAC(
            pd.DataFrame(m), weights=weights, categories=[float(c) for c in cats], digits=15
        )
        refs = {"fleiss": cac.fleiss()["est"], "gwet": cac.gwet()["est"], "bp": cac.bp()["est"]}
    for fn, key in ((fleiss_kappa, "fleiss"), (gwet_ac, "gwet"), (brennan_prediger, "bp")):
        ours = fn(r, weights=weights)  # type: ignore[arg-type]
        ref = refs[key]
        assert ours.value == pytest.approx(ref["coefficient_value"], abs=TOL), key
        assert ours.se == pytest.approx(ref["se"], abs=TOL), key
        assert ours.ci is not None
        assert ours.ci[0] == pytest.approx(ref["confidence_interval"][0], abs=TOL), key
        assert ours.ci[1] == pytest.approx(ref["confidence_interval"][1], abs=TOL), key
        assert ours.observed == pytest.approx(ref["pa"], abs=TOL)
        assert ours.expected == pytest.approx(ref["pe"], abs=TOL)


@pytest.mark.parametrize("weights", ["identity", "quadratic"])
def test_scott_pi_equals_irrcac_table(weights: str) -> None:
    table = pytest.importorskip("irrCAC.table")
    rng = np.random.default_rng(11)
    m = random_matrix(rng, 80, 2, 4, 0.2)
    r = Ratings.from_matrix(m, rows="items", categories=[1, 2, 3, 4])
    both = ~np.isnan(m).any(axis=1)
    tab = np.zeros((4, 4))
    np.add.at(tab, (m[both, 0].astype(int) - 1, m[both, 1].astype(int) - 1), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = table.CAC(pd.DataFrame(tab), weights=weights, digits=15).scott()["est"]
    assert scott_pi(r, weights=weights).value == pytest.approx(ref["coefficient_value"], abs=TOL)  # type: ignore[arg-type]


# ------------------------------------------------------------------ statsmodels
@pytest.mark.parametrize("seed", range(4))
def test_fleiss_equals_statsmodels_on_complete_data(seed: int) -> None:
    ir = pytest.importorskip("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(seed)
    m = random_matrix(rng, 30 + 10 * seed, 3 + seed, 3 + seed, 0.0)
    table, _ = ir.aggregate_raters(m.astype(int))
    ours = fleiss_kappa(Ratings.from_matrix(m, rows="items")).value
    assert ours == pytest.approx(ir.fleiss_kappa(table), abs=TOL)


def _two_raters(rng: np.random.Generator, n: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, q, n)
    b = np.where(rng.random(n) < 0.6, a, rng.integers(0, q, n))
    return a, b


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("wt", [None, "linear", "quadratic"])
def test_cohen_equals_statsmodels_on_values(seed: int, wt: str | None) -> None:
    ir = pytest.importorskip("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(seed)
    q = 3 + seed
    a, b = _two_raters(rng, 40 + 20 * seed, q)
    values = np.sort(rng.choice(50, q, replace=False)).astype(float)  # unevenly spaced values
    n = len(a)
    r = Ratings.from_long(
        np.r_[np.arange(n), np.arange(n)],
        np.r_[np.zeros(n), np.ones(n)].astype(int),
        np.r_[values[a], values[b]],
        categories=values.tolist(),
    )
    tab = np.zeros((q, q))
    np.add.at(tab, (a, b), 1)
    ref = ir.cohens_kappa(tab) if wt is None else ir.cohens_kappa(tab, weights=values, wt=wt)
    ours = cohen_kappa(r, weights=wt or "identity")  # type: ignore[arg-type]
    assert ours.value == pytest.approx(ref.kappa, abs=TOL)
    assert ours.se == pytest.approx(ref.std_kappa, abs=TOL)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_equals_sklearn_with_labels(seed: int, weights: str | None) -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(100 + seed)
    q = 4 + seed
    a, b = _two_raters(rng, 50, q)
    n = len(a)
    r = Ratings.from_long(
        np.r_[np.arange(n), np.arange(n)],
        np.r_[np.zeros(n), np.ones(n)].astype(int),
        np.r_[a, b],
        categories=list(range(q)),
    )
    ref = metrics.cohen_kappa_score(a, b, labels=list(range(q)), weights=weights)
    assert cohen_kappa(r, weights=weights or "identity").value == pytest.approx(ref, abs=TOL)  # type: ignore[arg-type]


def test_pairwise_matrix_equals_sklearn_loop() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    m = random_matrix(rng, 150, 6, 4, 0.4)
    r = Ratings.from_matrix(m, rows="items", categories=[1, 2, 3, 4])
    for weights in (None, "quadratic"):
        pw = pairwise_kappa(r, weights=weights or "identity")  # type: ignore[arg-type]
        for i in range(6):
            for j in range(6):
                ok = ~np.isnan(m[:, i]) & ~np.isnan(m[:, j])
                assert pw.n_overlap[i, j] == ok.sum()
                if i != j:
                    ref = metrics.cohen_kappa_score(
                        m[ok, i], m[ok, j], labels=[1, 2, 3, 4], weights=weights
                    )
                    assert pw.kappa[i, j] == pytest.approx(ref, abs=TOL)
        np.testing.assert_allclose(pw.kappa, pw.kappa.T, atol=TOL)


# ------------------------------------------------------------------ pingouin
@pytest.mark.parametrize("shape", [(10, 3), (25, 4), (8, 2), (40, 6)])
def test_icc_equals_pingouin(shape: tuple[int, int]) -> None:
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(shape[0] * shape[1])
    n, k = shape
    x = rng.normal(size=(n, 1)) + 0.7 * rng.normal(size=(n, k)) + rng.normal(size=(1, k))
    it, ra = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    df = pd.DataFrame({"t": it.ravel(), "r": ra.ravel(), "y": x.ravel()})
    ref = pg.intraclass_corr(df, "t", "r", "y").set_index("Type")
    ours = intraclass_correlation(
        Ratings.from_long(it.ravel(), ra.ravel(), x.ravel(), level="interval")
    )
    names = {"ICC1": "ICC(1,1)", "ICC2": "ICC(A,1)", "ICC3": "ICC(C,1)",
             "ICC1k": "ICC(1,k)", "ICC2k": "ICC(A,k)", "ICC3k": "ICC(C,k)"}  # fmt: skip
    for form, pg_name in names.items():
        assert ours[form].value == pytest.approx(ref.loc[pg_name, "ICC"], abs=TOL)
        assert ours[form].details["F"] == pytest.approx(ref.loc[pg_name, "F"], rel=1e-9)
        assert ours[form].ci is not None
        # pingouin rounds its CI95 to two decimals
        np.testing.assert_allclose(ours[form].ci, ref.loc[pg_name, "CI95"], atol=0.005 + 1e-9)


# ------------------------------------------------------------ the references' traps
def test_sklearn_trap_unused_middle_category() -> None:
    """sklearn without labels= treats 2 and 4 as neighbours when nobody used 3."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(12)
    vals = np.array([1, 2, 4])
    a = vals[rng.integers(0, 3, 80)]
    b = np.where(rng.random(80) < 0.6, a, vals[rng.integers(0, 3, 80)])
    r = Ratings.from_long(
        np.r_[np.arange(80), np.arange(80)],
        np.r_[np.zeros(80), np.ones(80)].astype(int),
        np.r_[a, b],
        categories=[1, 2, 3, 4],
    )
    ours = cohen_kappa(r, weights="linear").value
    assert ours == pytest.approx(
        metrics.cohen_kappa_score(a, b, labels=[1, 2, 3, 4], weights="linear"), abs=TOL
    )
    assert abs(ours - metrics.cohen_kappa_score(a, b, weights="linear")) > 1e-3


def test_krippendorff_trap_default_level_is_interval() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    m = random_matrix(np.random.default_rng(13), 60, 3, 4, 0.1).T
    r = Ratings.from_matrix(m)  # level defaults to nominal here
    assert krippendorff_alpha(r).value == pytest.approx(
        krippendorff.alpha(m, level_of_measurement="nominal"), abs=TOL
    )
    assert abs(krippendorff_alpha(r).value - krippendorff.alpha(m)) > 1e-3  # its default: interval


def test_statsmodels_trap_refuses_missing() -> None:
    ir = pytest.importorskip("statsmodels.stats.inter_rater")
    table = np.array([[2, 1, 0], [0, 3, 0], [1, 1, 0]])  # last item has 2 ratings, not 3
    with pytest.raises(AssertionError):
        ir.fleiss_kappa(table)
    items = [0, 0, 0, 1, 1, 1, 2, 2]
    anns = [0, 1, 2, 0, 1, 2, 0, 1]
    labs = ["a", "a", "b", "b", "b", "b", "a", "b"]
    res = fleiss_kappa(Ratings.from_long(items, anns, labs))
    assert np.isfinite(res.value) and res.ci is not None and res.se is not None
