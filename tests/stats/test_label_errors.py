"""Confident learning and CROWDLAB against cleanlab."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from labelloop.stats._data import Ratings
from labelloop.stats.label_errors import (
    FILTERS,
    confident_joint,
    confident_thresholds,
    crowdlab,
    find_label_issues,
    label_quality_scores,
)

cleanlab_filter = pytest.importorskip("cleanlab.filter")
cleanlab_count = pytest.importorskip("cleanlab.count")
cleanlab_rank = pytest.importorskip("cleanlab.rank")
cleanlab_multi = pytest.importorskip("cleanlab.multiannotator")
pd = pytest.importorskip("pandas")


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _noisy(
    n: int,
    k: int,
    seed: int,
    *,
    noise: float = 0.1,
    sharp: float = 2.5,
    dtype: Any = np.float64,
    decimals: int | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), true] += sharp
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    if decimals is not None:
        p = p.round(decimals)
    labels = true.copy()
    flip = rng.random(n) < noise
    labels[flip] = rng.integers(0, k, int(flip.sum()))
    return labels, p.astype(dtype)


def _assert_same(labels: npt.NDArray[Any], p: npt.NDArray[Any], **kw: Any) -> None:
    filter_by = kw.get("filter_by", "prune_by_noise_rate")
    rank_by = kw.pop("rank_by", "self_confidence")
    ref = _quiet(cleanlab_filter.find_label_issues, labels, p, n_jobs=1, **kw)
    ref_ranked = _quiet(
        cleanlab_filter.find_label_issues,
        labels,
        p,
        n_jobs=1,
        return_indices_ranked_by=rank_by,
        **kw,
    )
    ours = find_label_issues(labels, p, rank_by=rank_by, **kw)
    assert ours.filter_by == filter_by
    np.testing.assert_array_equal(ours.is_issue, ref)
    np.testing.assert_array_equal(ours.ranked, ref_ranked)


# ----------------------------------------------------------------------------- confident learning
SHAPES = [(8, 2), (50, 3), (400, 2), (700, 5), (1500, 10), (3000, 4), (600, 25), (2000, 100)]


@pytest.mark.parametrize(("n", "k"), SHAPES)
@pytest.mark.parametrize("filter_by", FILTERS)
def test_flagged_set_equals_cleanlab_random(n: int, k: int, filter_by: str) -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        labels, p = _noisy(
            n, k, seed * 97 + n, noise=float(rng.uniform(0, 0.5)), sharp=float(rng.uniform(0, 4))
        )
        for rank_by in ("self_confidence", "normalized_margin"):
            _assert_same(labels, p, filter_by=filter_by, rank_by=rank_by)


@pytest.mark.parametrize("decimals", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("filter_by", FILTERS)
def test_ties_and_float32_break_like_cleanlab(decimals: int, dtype: Any, filter_by: str) -> None:
    labels, p = _noisy(2000, 4, decimals, noise=0.3, sharp=1.0, dtype=dtype, decimals=decimals)
    for rank_by in ("self_confidence", "normalized_margin"):
        _assert_same(labels, p, filter_by=filter_by, rank_by=rank_by)


@pytest.mark.parametrize("min_examples_per_class", [0, 1, 5, 300])
@pytest.mark.parametrize("frac_noise", [1.0, 0.5, 0.1])
def test_min_examples_and_frac_noise(min_examples_per_class: int, frac_noise: float) -> None:
    labels, p = _noisy(900, 6, 3, noise=0.25, sharp=2.0)
    labels[labels == 5] = 4  # class 5 never given: threshold 2, no example counted for it
    labels[:3] = 5  # ... now only three examples
    for filter_by in ("prune_by_noise_rate", "prune_by_class", "both"):
        _assert_same(
            labels,
            p,
            filter_by=filter_by,
            min_examples_per_class=min_examples_per_class,
            frac_noise=frac_noise,
        )


def test_realistic_noisy_digits() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    linear = pytest.importorskip("sklearn.linear_model")
    selection = pytest.importorskip("sklearn.model_selection")
    x, y = datasets.load_digits(return_X_y=True)
    rng = np.random.default_rng(7)
    noisy = y.copy()
    flip = rng.random(len(y)) < 0.1
    noisy[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    model = linear.LogisticRegression(max_iter=300)
    p = _quiet(selection.cross_val_predict, model, x / 16.0, noisy, cv=3, method="predict_proba")
    for filter_by in FILTERS:
        _assert_same(noisy, p, filter_by=filter_by)
    found = find_label_issues(noisy, p)
    true_errors = noisy != y
    precision = (found.is_issue & true_errors).sum() / found.n_issues
    recall = (found.is_issue & true_errors).sum() / true_errors.sum()
    assert precision > 0.7 and recall > 0.7


def test_many_classes_runs_and_is_sane() -> None:
    labels, p = _noisy(5_000, 1000, 5, noise=0.2, sharp=6.0)
    result = find_label_issues(labels, p, filter_by="both")
    assert result.confident_joint.shape == (1000, 1000)
    truth_flipped = p.argmax(axis=1) != labels
    assert result.is_issue.sum() <= truth_flipped.sum()
    assert (result.is_issue & truth_flipped).sum() == result.is_issue.sum()


def test_building_blocks_equal_cleanlab() -> None:
    labels, p = _noisy(1200, 7, 11, noise=0.2)
    labels[labels == 6] = 0  # a class that is never a given label
    np.testing.assert_array_equal(
        confident_thresholds(labels, p), cleanlab_count.get_confident_thresholds(labels, p)
    )
    for calibrate in (True, False):
        ref = _quiet(cleanlab_count.compute_confident_joint, labels, p, calibrate=calibrate)
        np.testing.assert_array_equal(confident_joint(labels, p, calibrate=calibrate), ref)
    for method in ("self_confidence", "normalized_margin"):
        np.testing.assert_array_equal(
            label_quality_scores(labels, p, method=method),
            cleanlab_rank.get_label_quality_scores(labels, p, method=method),
        )
    result = find_label_issues(labels, p)
    assert result.confident_joint.sum() == len(labels)
    np.testing.assert_array_equal(
        result.confident_joint.sum(axis=1), np.bincount(labels, minlength=7)
    )
    assert 0 < result.noise_rate < 0.5


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 60),
    k=st.integers(2, 5),
    seed=st.integers(0, 2**32 - 1),
    decimals=st.sampled_from([None, 1, 2]),
)
def test_property_equals_cleanlab_and_never_flags_argmax(
    n: int, k: int, seed: int, decimals: int | None
) -> None:
    labels, p = _noisy(n, k, seed, noise=0.3, sharp=1.5, decimals=decimals)
    assume(len(set(labels.tolist())) >= 2)  # cleanlab refuses a single given class
    for filter_by in FILTERS:
        ours = find_label_issues(labels, p, filter_by=filter_by)
        ref = _quiet(cleanlab_filter.find_label_issues, labels, p, n_jobs=1, filter_by=filter_by)
        np.testing.assert_array_equal(ours.is_issue, ref)
        bumped = p.copy()
        bumped[np.arange(n), labels] += 1e-6
        if not filter_by.startswith("low_"):  # the low_* variants have no argmax exemption
            assert not (ours.is_issue & (bumped.argmax(axis=1) == labels)).any()
        assert set(ours.ranked.tolist()) == set(np.flatnonzero(ours.is_issue).tolist())


def test_bad_input_raises_clear_errors() -> None:
    labels, p = _noisy(20, 3, 0)
    with pytest.raises(ValueError, match="2-D"):
        find_label_issues(labels, p[:, 0])
    with pytest.raises(ValueError, match="rows"):
        find_label_issues(labels[:-1], p)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        find_label_issues(np.where(labels == 0, 3, labels), p)
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        find_label_issues(labels, bad)
    with pytest.raises(ValueError, match="logits"):
        find_label_issues(labels, p * 3)
    with pytest.raises(ValueError, match="filter_by"):
        find_label_issues(labels, p, filter_by="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank_by"):
        find_label_issues(labels, p, rank_by="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer class codes"):
        find_label_issues(np.array(["a"] * 20), p)
    with pytest.raises(ValueError, match="frac_noise"):
        find_label_issues(labels, p, frac_noise=0)
    with pytest.raises(ValueError, match="2 classes"):
        find_label_issues(np.zeros(3, dtype=int), np.ones((3, 1)))


# ----------------------------------------------------------------------------- CROWDLAB
def _crowd(
    seed: int, *, n_max: int = 150, ties: bool = False
) -> tuple[Ratings, npt.NDArray[Any], Any]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(10, n_max))
    m = int(rng.integers(2, 7))
    k = int(rng.integers(2, 5))
    true = rng.integers(0, k, n)
    acc = rng.uniform(0.3, 0.95, m)
    rows = []
    for i in range(n):
        size = 2 if ties and i % 2 == 0 else int(rng.integers(1, m + 1))
        for a in rng.choice(m, size=size, replace=False):
            lab = int(true[i]) if rng.random() < acc[a] else int(rng.integers(0, k))
            rows.append((i, int(a), lab))
    items, anns, labs = (np.array(c) for c in zip(*rows, strict=True))
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), true] += 1.5
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    if ties:
        p = p.round(1)
    ratings = Ratings.from_long(
        [f"item{i:04d}" for i in items],
        [f"ann{a}" for a in anns],
        [f"c{lab}" for lab in labs],
        categories=[f"c{c}" for c in range(k)],
    )
    dense = np.full((n, m), np.nan)
    dense[items, anns] = labs
    frame = pd.DataFrame(dense, columns=[f"ann{a}" for a in range(m)])
    return ratings, p, frame


@pytest.mark.parametrize("consensus_method", ["best_quality", "majority_vote"])
def test_crowdlab_equals_cleanlab(consensus_method: str) -> None:
    compared = 0
    for seed in range(25):
        ratings, p, frame = _crowd(seed, ties=seed % 3 == 0)
        if ratings.n_annotators != frame.shape[1] or ratings.n_items != frame.shape[0]:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ref = cleanlab_multi.get_label_quality_multiannotator(
                frame, p, consensus_method=consensus_method, verbose=False, return_weights=True
            )
        if any("random" in str(w.message) for w in caught):
            continue  # cleanlab broke a tie at random; we break it by smallest code
        ours = crowdlab(ratings, p, consensus_method=consensus_method)  # type: ignore[arg-type]
        compared += 1
        quality = ref["label_quality"]
        np.testing.assert_array_equal(ours.consensus_label, quality["consensus_label"].to_numpy())
        np.testing.assert_allclose(
            ours.consensus_quality, quality["consensus_quality_score"], rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(
            ours.agreement, quality["annotator_agreement"], rtol=0, atol=1e-12
        )
        np.testing.assert_array_equal(ours.num_annotations, quality["num_annotations"])
        stats = ref["annotator_stats"].loc[[f"ann{a}" for a in range(frame.shape[1])]]
        np.testing.assert_allclose(
            ours.annotator_quality, stats["annotator_quality"], rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(
            ours.annotator_agreement, stats["agreement_with_consensus"], rtol=0, atol=1e-12
        )
        np.testing.assert_array_equal(ours.annotator_num_labeled, stats["num_examples_labeled"])
        np.testing.assert_array_equal(ours.annotator_worst_class, stats["worst_class"])
        detailed = ref["detailed_label_quality"].to_numpy()
        np.testing.assert_allclose(
            ours.rating_quality, detailed[ratings.item, ratings.annotator], rtol=0, atol=1e-12
        )
        assert ours.model_weight == pytest.approx(ref["model_weight"], abs=1e-12)
        np.testing.assert_allclose(
            ours.annotator_weight, ref["annotator_weight"], rtol=0, atol=1e-12
        )
        assert np.all((ours.posterior >= 0) & (ours.posterior <= 1 + 1e-12))
    assert compared >= 15


def test_crowdlab_majority_vote_tie_chain_equals_cleanlab() -> None:
    from labelloop.stats.label_errors import _majority_vote

    compared = 0
    for seed in range(60):
        ratings, p, frame = _crowd(seed, n_max=50, ties=True)
        if seed % 4 == 0:
            p = np.full_like(p, 1.0 / p.shape[1])  # model gives no tie-break: stages 2 and 3
        if ratings.n_annotators != frame.shape[1] or ratings.n_items != frame.shape[0]:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ref = cleanlab_multi.get_majority_vote_label(frame, p, verbose=False)
        if any("random" in str(w.message) for w in caught):
            continue
        compared += 1
        np.testing.assert_array_equal(_majority_vote(ratings.counts(), p, ratings), ref)
    assert compared >= 30


def test_crowdlab_sparse_scale_and_errors() -> None:
    rng = np.random.default_rng(0)
    n_items, n_ann, k = 50_000, 2_000, 4
    items = np.repeat(np.arange(n_items), 3)
    anns = rng.integers(0, n_ann, items.shape[0])
    keep = np.unique(items * n_ann + anns, return_index=True)[1]
    labs = rng.integers(0, k, items.shape[0])
    ratings = Ratings.from_long(items[keep], anns[keep], labs[keep], categories=list(range(k)))
    p = rng.dirichlet(np.ones(k), ratings.n_items)
    out = crowdlab(ratings, p)  # items × annotators dense would be 100M cells
    assert out.consensus_label.shape == (ratings.n_items,)
    assert np.all((out.annotator_quality >= 0) & (out.annotator_quality <= 1))

    small = Ratings.from_long([1, 1, 2], ["a", "b", "a"], ["x", "y", "x"])
    with pytest.raises(ValueError, match="shape"):
        crowdlab(small, np.full((2, 3), 1 / 3))
    dup = Ratings.from_long([1, 1, 1], ["a", "a", "b"], ["x", "y", "x"])
    with pytest.raises(ValueError, match="repeated"):
        crowdlab(dup, np.full((1, 2), 0.5))
    single = Ratings.from_long([1, 2], ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="two or more"):
        crowdlab(single, np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="consensus_method"):
        crowdlab(small, np.full((2, 2), 0.5), consensus_method="x")  # type: ignore[arg-type]


def test_crowdlab_on_a_subset_ignores_annotators_without_ratings() -> None:
    ratings, p, _ = _crowd(3)
    items = ratings.items[ratings.item].tolist()
    anns = ratings.annotators[ratings.annotator].tolist()
    labs = ratings.categories[ratings.label].tolist()
    cats = ratings.categories.tolist()
    extra = Ratings.from_long([*items, items[0]], [*anns, "zzz"], [*labs, labs[0]], categories=cats)
    sub = extra.subset(extra.annotator != extra.n_annotators - 1)  # "zzz" keeps its code
    got = crowdlab(sub, p)
    expected = crowdlab(ratings, p)
    assert np.isnan(got.annotator_quality[-1]) and got.annotator_num_labeled[-1] == 0
    np.testing.assert_allclose(got.annotator_quality[:-1], expected.annotator_quality, atol=1e-12)
    np.testing.assert_array_equal(got.consensus_label, expected.consensus_label)
    np.testing.assert_allclose(got.consensus_quality, expected.consensus_quality, atol=1e-12)
    with pytest.raises(ValueError, match="has no ratings"):
        crowdlab(ratings.subset(ratings.item != 0), p)
