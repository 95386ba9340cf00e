"""Edge cases, bad input and the smaller agreement helpers."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.stats._data import Ratings
from labelloop.stats.agreement import (
    AgreementResult,
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    intraclass_correlation,
    krippendorff_alpha,
    leave_one_out,
    pairwise_kappa,
    per_category_agreement,
    percent_agreement,
    scott_pi,
    set_alpha,
    span_alpha,
    weight_matrix,
)
from tests.stats._agreement_data import KRIPPENDORFF_2011, random_matrix

COEFFICIENTS = [
    percent_agreement,
    fleiss_kappa,
    gwet_ac,
    brennan_prediger,
    scott_pi,
    krippendorff_alpha,
]


def _ratings(m: np.ndarray, **kw: object) -> Ratings:
    return Ratings.from_matrix(m, rows="items", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", COEFFICIENTS)
def test_single_annotator_is_a_clear_error(fn: object) -> None:
    r = Ratings.from_long([1, 2, 3], ["ann", "ann", "ann"], ["a", "b", "a"])
    with pytest.raises(ValueError, match="at least two annotators"):
        fn(r)  # type: ignore[operator]


@pytest.mark.parametrize("fn", COEFFICIENTS)
def test_no_pairable_item_is_a_clear_error(fn: object) -> None:
    r = Ratings.from_long([1, 2], ["x", "y"], ["a", "b"])
    with pytest.raises(ValueError, match="two or more ratings"):
        fn(r)  # type: ignore[operator]


def test_one_category_only_gives_nan_not_a_crash() -> None:
    r = Ratings.from_long([0, 0, 1, 1], [0, 1, 0, 1], ["a"] * 4)
    assert percent_agreement(r).value == 1.0
    for fn in (fleiss_kappa, gwet_ac, scott_pi, krippendorff_alpha, cohen_kappa):
        res = fn(r)  # type: ignore[operator]
        assert np.isnan(res.value) and res.ci is None
    assert np.isnan(pairwise_kappa(r).kappa).all()


def test_item_with_all_ratings_missing_is_ignored() -> None:
    m = random_matrix(np.random.default_rng(0), 30, 4, 3, 0.2)
    full = _ratings(m, categories=[1, 2, 3])
    m2 = np.vstack([m, np.full((1, 4), np.nan)])
    holed = _ratings(m2, categories=[1, 2, 3])
    assert holed.n_items == 31
    for fn in COEFFICIENTS:
        a, b = fn(full), fn(holed)  # type: ignore[operator]
        assert a.value == pytest.approx(b.value, abs=1e-12)
        assert b.n_items == 30


def test_ten_thousand_categories() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    truth = rng.integers(0, 10_000, n)
    labs = np.repeat(truth, 3)
    flip = rng.random(3 * n) < 0.3
    labs[flip] = rng.integers(0, 10_000, int(flip.sum()))
    r = Ratings.from_long(
        np.repeat(np.arange(n), 3), np.tile(np.arange(3), n), labs, categories=list(range(10_000))
    )
    assert r.n_categories == 10_000
    alpha = krippendorff_alpha(r).value
    kappa = fleiss_kappa(r).value
    assert 0.4 < alpha < 0.6 and kappa == pytest.approx(alpha, abs=0.01)
    assert 0.4 < cohen_kappa(r.subset(r.annotator < 2)).value < 0.6
    assert pairwise_kappa(r).kappa.shape == (3, 3)
    assert per_category_agreement(r).kappa.shape == (10_000,)
    assert krippendorff_alpha(r, n_boot=50, seed=0).ci is not None


def test_bad_inputs() -> None:
    r = _ratings(random_matrix(np.random.default_rng(2), 20, 3, 3, 0.0))
    with pytest.raises(ValueError, match="unknown level"):
        krippendorff_alpha(r, level="cardinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown weights"):
        fleiss_kappa(r, weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3×3"):
        fleiss_kappa(r, weights=np.eye(2))
    with pytest.raises(ValueError, match="confidence"):
        fleiss_kappa(r, confidence=1.5)
    with pytest.raises(ValueError, match="two annotators"):
        cohen_kappa(r)
    with pytest.raises(ValueError, match="bootstrap must be"):
        krippendorff_alpha(r, n_boot=10, bootstrap="jackknife")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha(Ratings.from_long([0, 0], [0, 1], [-1.0, 2.0], level="ratio"))
    with pytest.raises(ValueError, match="numeric"):
        krippendorff_alpha(Ratings.from_long([0, 0], [0, 1], ["a", "b"]), level="interval")
    dup = Ratings.from_long([0, 0, 0, 1, 1], [0, 0, 1, 0, 1], ["a", "b", "a", "a", "a"])
    with pytest.raises(ValueError, match="one rating per annotator"):
        cohen_kappa(dup)
    with pytest.raises(ValueError, match="one rating per annotator"):
        pairwise_kappa(dup)
    assert -1.0 <= krippendorff_alpha(dup).value <= 1.0  # alpha takes repeated values as values
    with pytest.raises(TypeError, match="Ratings"):
        fleiss_kappa([1, 2, 3])  # type: ignore[arg-type]


def test_cohen_pair_selection_and_weights_on_values() -> None:
    m = random_matrix(np.random.default_rng(3), 60, 3, 4, 0.1)
    r = _ratings(m, categories=[1, 2, 3, 4])
    res = cohen_kappa(r, pair=(0, 2))
    assert isinstance(res, AgreementResult) and res.n_annotators == 2
    assert res.ci is not None and res.ci[0] < res.value < res.ci[1]
    with pytest.raises(ValueError, match="not found"):
        cohen_kappa(r, pair=(0, 9))
    # values (1, 2, 3, 10): linear weights follow the values, not the positions
    r2 = Ratings.from_long([0, 0], [0, 1], [1, 2], categories=[1, 2, 3, 10])
    w = weight_matrix(r2, "linear")
    assert w is not None and w[0, 1] == pytest.approx(1 - 1 / 9)
    # custom weights: identity matrix equals unweighted
    assert cohen_kappa(r, pair=(0, 1), weights=np.eye(4)).value == pytest.approx(
        cohen_kappa(r, pair=(0, 1)).value, abs=1e-12
    )


def test_declared_unused_category_changes_gwet_not_fleiss() -> None:
    m = random_matrix(np.random.default_rng(4), 40, 3, 3, 0.0)
    r3 = _ratings(m, categories=[1, 2, 3])
    r4 = _ratings(m, categories=[1, 2, 3, 4])
    assert fleiss_kappa(r3).value == pytest.approx(fleiss_kappa(r4).value, abs=1e-12)
    assert gwet_ac(r3).value != pytest.approx(gwet_ac(r4).value, abs=1e-6)


def test_leave_one_out_flags_the_random_annotator() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, 300)
    m = np.column_stack(
        [np.where(rng.random(300) < 0.9, truth, rng.integers(0, 3, 300)) for _ in range(4)]
    )
    m[:, 3] = rng.integers(0, 3, 300)  # a random clicker
    r = _ratings(m.astype(float))
    loo = leave_one_out(r)
    assert int(np.argmin(loo.kappa)) == 3
    assert int(np.argmax(loo.alpha_without)) == 3
    assert (loo.n_items == 300).all()
    # two annotators: vs-rest kappa is Cohen's kappa's observed agreement, same p_o
    two = _ratings(m[:, :2].astype(float))
    assert leave_one_out(two).percent_agreement[0] == pytest.approx(
        percent_agreement(two).value, abs=1e-12
    )


def test_icc_errors_and_omit() -> None:
    r = Ratings.from_long(
        [0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [1.0, 2.0, 3.0, 3.5, 1.0], level="interval"
    )
    with pytest.raises(ValueError, match="missing='omit'"):
        intraclass_correlation(r)
    with pytest.raises(ValueError, match="at least two completely rated"):
        intraclass_correlation(r.subset(r.item != 1), missing="omit")
    out = intraclass_correlation(r, missing="omit")
    assert out["ICC1"].n_items == 2
    with pytest.raises(ValueError, match="numeric"):
        intraclass_correlation(Ratings.from_long([0, 0], [0, 1], ["a", "b"]))


def test_set_alpha_masi_and_jaccard() -> None:
    items = [0, 0, 1, 1, 2, 2, 3, 3]
    anns = ["a", "b"] * 4
    same = [{"x"}, {"x"}, {"y", "z"}, {"y", "z"}, set(), set(), {"x", "y"}, {"x", "y"}]
    assert set_alpha(items, anns, same).value == pytest.approx(1.0)
    diff = [{"x"}, {"x", "y"}, {"y"}, {"z"}, {"x"}, {"x"}, {"z"}, {"y", "z"}]
    masi = set_alpha(items, anns, diff, distance="masi").value
    jac = set_alpha(items, anns, diff, distance="jaccard").value
    assert masi < 1 and jac < 1 and masi != jac
    # singleton sets with a 0/1 distance reduce to nominal alpha
    labs = ["p", "q", "p", "p", "q", "q", "r", "p"]
    nominal = krippendorff_alpha(Ratings.from_long(items, anns, labs)).value
    sets = [{v} for v in labs]
    assert set_alpha(items, anns, sets, distance="jaccard").value == pytest.approx(
        nominal, abs=1e-12
    )
    with pytest.raises(ValueError, match="unknown set distance"):
        set_alpha(items, anns, sets, distance="hamming")  # type: ignore[arg-type]


def test_span_alpha_tokens() -> None:
    spans = [("d1", "a", 0, 3, "PER"), ("d1", "b", 0, 3, "PER"), ("d2", "a", 2, 4, "ORG"),
             ("d2", "b", 2, 4, "ORG")]  # fmt: skip
    assert span_alpha(spans, doc_lengths={"d1": 10, "d2": 6}).value == pytest.approx(1.0)
    shifted = [*spans[:3], ("d2", "b", 3, 5, "ORG")]
    res = span_alpha(shifted, doc_lengths={"d1": 10, "d2": 6})
    assert 0 < res.value < 1 and res.n_items == 16
    with pytest.raises(ValueError, match="outside document"):
        span_alpha([("d1", "a", 0, 11, "PER"), ("d1", "b", 0, 1, "PER")], doc_lengths={"d1": 10})
    with pytest.raises(ValueError, match="two annotators"):
        span_alpha([("d1", "a", 0, 1, "PER")], doc_lengths={"d1": 10})


def test_result_fields_and_float() -> None:
    r = Ratings.from_matrix(KRIPPENDORFF_2011)
    res = krippendorff_alpha(r)
    assert float(res) == res.value
    assert res.observed is not None and res.expected is not None
    assert res.value == pytest.approx(1 - (1 - res.observed) / (1 - res.expected))
    with pytest.raises(AttributeError):
        res.value = 0.0  # type: ignore[misc]


def test_bootstrap_on_a_single_pairable_item_is_skipped_not_an_error() -> None:
    r = Ratings.from_long([0, 0, 1], ["x", "y", "x"], ["a", "b", "a"])
    for res in (
        krippendorff_alpha(r, n_boot=100, seed=0),
        fleiss_kappa(r.subset(r.item == 0), n_boot=100, seed=0),
        cohen_kappa(r, n_boot=100, seed=0),
    ):
        assert res.ci is None and "skipped" in res.details["bootstrap"]


def test_span_alpha_document_bootstrap() -> None:
    rng = np.random.default_rng(14)
    spans = []
    lengths = {}
    for d in range(30):
        lengths[d] = 40
        for _ in range(3):
            start = int(rng.integers(0, 35))
            spans.append((d, "a", start, start + 4, "X"))
            shift = int(rng.integers(-1, 2))
            spans.append((d, "b", max(0, start + shift), min(40, start + 4 + shift), "X"))
    res = span_alpha(spans, doc_lengths=lengths, n_boot=300, seed=1)
    assert res.ci is not None and res.ci_method == "bootstrap-documents"
    assert res.ci[0] <= res.value <= res.ci[1]
    one = span_alpha(spans[:2], doc_lengths={0: 40}, n_boot=50, seed=1)
    assert one.ci is None and "skipped" in one.details["bootstrap"]
