"""Truth inference: API, hand-computed values, edge cases and EM properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import labelloop.stats.inference as inference
from labelloop.stats._data import Ratings
from labelloop.stats.inference import (
    GLAD,
    MACE,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    TruthInference,
    Wawa,
)

ALL = [MajorityVote, Wawa, DawidSkene, OneCoinDawidSkene, GLAD, MACE]
EM_MONOTONE = {
    "dawid-skene": lambda: DawidSkene(max_iter=15, tol=0),
    "dawid-skene-unsmoothed": lambda: DawidSkene(
        max_iter=15, tol=0, smoothing=0, prior_smoothing=0
    ),
    "one-coin": lambda: OneCoinDawidSkene(max_iter=15, tol=0),
    "mace-em": lambda: MACE(method="em", max_iter=15, tol=0, n_restarts=1),
    "glad": lambda: GLAD(max_iter=6, tol=0),
}


def toy() -> Ratings:
    """Three annotators, four items; item c is a 1–1 tie, annotator z always disagrees."""
    rows = [
        ("a", "x", "cat"), ("a", "y", "cat"), ("a", "z", "dog"),
        ("b", "x", "dog"), ("b", "y", "dog"), ("b", "z", "cat"),
        ("c", "x", "dog"), ("c", "z", "cat"),
        ("d", "y", "bird"),
    ]  # fmt: skip
    items, anns, labels = zip(*rows, strict=True)
    return Ratings.from_long(items, anns, labels)


def random_ratings(seed: int, n_items: int = 30, n_ann: int = 6, k: int = 3) -> Ratings:
    rng = np.random.default_rng(seed)
    truth = rng.integers(k, size=n_items)
    acc = rng.uniform(0.3, 0.95, size=n_ann)
    rows = []
    for i in range(n_items):
        for j in rng.choice(n_ann, size=int(rng.integers(1, n_ann + 1)), replace=False):
            label = truth[i] if rng.random() < acc[j] else int(rng.integers(k))
            rows.append((i, int(j), int(label)))
    items, anns, labels = zip(*rows, strict=True)
    return Ratings.from_long(items, anns, labels, categories=list(range(k)))


def test_public_names_are_sorted_and_exported() -> None:
    # isort-style order (ruff RUF022): all-caps names first
    assert inference.__all__ == sorted(inference.__all__, key=lambda n: (not n.isupper(), n))
    for name in inference.__all__:
        assert isinstance(getattr(inference, name), type)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_fitted_attributes_are_aligned(cls: type[TruthInference]) -> None:
    data = toy()
    model = cls().fit(data)
    assert model.labels_.shape == (data.n_items,)
    assert set(model.labels_.tolist()) <= set(data.categories.tolist())
    assert model.probas_.shape == (data.n_items, data.n_categories)
    np.testing.assert_allclose(model.probas_.sum(axis=1), 1.0)
    assert model.annotator_skills_.shape == (data.n_annotators,)
    assert model.priors_.shape == (data.n_categories,)
    assert np.all(np.isfinite(model.probas_))
    np.testing.assert_array_equal(model.fit_predict(data), model.labels_)
    np.testing.assert_array_equal(model.fit_predict_proba(data), model.probas_)
    if isinstance(model, inference.EMEstimator):
        assert model.n_iter_ >= 1
        assert model.log_likelihood_ == model.log_likelihood_history_[-1]


def test_majority_vote_hand_values_and_ties() -> None:
    data = toy()  # categories sorted: bird, cat, dog
    model = MajorityVote().fit(data)
    np.testing.assert_allclose(
        model.probas_, [[0, 2 / 3, 1 / 3], [0, 1 / 3, 2 / 3], [0, 0.5, 0.5], [1, 0, 0]]
    )
    # item c ties cat/dog: "first" takes the first declared category
    assert model.labels_.tolist() == ["cat", "dog", "cat", "bird"]
    # x and y agree with every majority label; z only on the tie it won
    np.testing.assert_allclose(model.annotator_skills_, [2 / 3, 1.0, 1 / 3])
    seen = {
        MajorityVote(tie_break="random", random_state=s).fit(data).labels_[2] for s in range(20)
    }
    assert seen == {"cat", "dog"}
    again = MajorityVote(tie_break="random", random_state=3)
    assert again.fit(data).labels_.tolist() == again.fit(data).labels_.tolist()


def test_wawa_hand_computation() -> None:
    data = toy()
    model = Wawa().fit(data)
    # skills from majority labels (cat, dog, cat, bird): x 2/3, y 3/3, z 1/3
    sx, sy, sz = 2 / 3, 1.0, 1 / 3
    expected = np.array(
        [
            [0, sx + sy, sz],  # a: x cat, y cat, z dog
            [0, sz, sx + sy],  # b: x dog, y dog, z cat
            [0, sz, sx],  # c: x dog, z cat
            [sy, 0, 0],  # d: y bird
        ]
    )
    np.testing.assert_allclose(model.annotator_skills_, [sx, sy, sz])
    np.testing.assert_allclose(model.probas_, expected / expected.sum(axis=1, keepdims=True))
    assert model.labels_.tolist() == ["cat", "dog", "dog", "bird"]


def test_repeated_ratings_count_and_weights_multiply() -> None:
    data = random_ratings(1)
    doubled = Ratings.from_long(
        np.concatenate([data.items[data.item]] * 2),
        np.concatenate([data.annotators[data.annotator]] * 2),
        np.concatenate([data.categories[data.label]] * 2),
        categories=data.categories.tolist(),
    )
    weighted = Ratings.from_long(
        data.items[data.item],
        data.annotators[data.annotator],
        data.categories[data.label],
        categories=data.categories.tolist(),
        weights=np.full(data.n_ratings, 2.0),
    )
    a = DawidSkene(max_iter=20, tol=0).fit(doubled)
    b = DawidSkene(max_iter=20, tol=0).fit(weighted)
    np.testing.assert_allclose(a.probas_, b.probas_, atol=1e-12)
    np.testing.assert_allclose(a.confusions_, b.confusions_, atol=1e-12)


def test_row_order_does_not_matter() -> None:
    data = random_ratings(2)
    perm = np.random.default_rng(0).permutation(data.n_ratings)
    shuffled = Ratings.from_long(
        data.items[data.item][perm],
        data.annotators[data.annotator][perm],
        data.categories[data.label][perm],
        categories=data.categories.tolist(),
    )
    # fixed iteration counts: row order changes float rounding, which could move a tol stop
    models = (
        DawidSkene(max_iter=30, tol=0),
        OneCoinDawidSkene(max_iter=30, tol=0),
        MACE(max_iter=30, tol=0, n_restarts=2),
        GLAD(max_iter=5, tol=0),
    )
    for model in models:
        a = model.fit(data).probas_
        b = model.fit(shuffled).probas_
        np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.mark.parametrize(
    "cls", [DawidSkene, OneCoinDawidSkene, GLAD, MACE], ids=lambda c: c.__name__
)
def test_gold_items_are_clamped(cls: type[TruthInference]) -> None:
    data = random_ratings(3)
    gold = {0: 2, 1: 0, 999: 1}  # item 999 is not in the data: ignored
    model = cls().fit(data, gold=gold)
    np.testing.assert_array_equal(model.probas_[0], [0, 0, 1])
    np.testing.assert_array_equal(model.probas_[1], [1, 0, 0])
    assert model.labels_[0] == 2 and model.labels_[1] == 0
    with pytest.raises(ValueError, match="not among the categories"):
        cls().fit(data, gold={0: 7})


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_single_category_single_annotator_single_rating(cls: type[TruthInference]) -> None:
    one_cat = Ratings.from_long(["a", "a", "b"], ["x", "y", "x"], ["yes", "yes", "yes"])
    model = cls().fit(one_cat)
    assert model.labels_.tolist() == ["yes", "yes"]
    np.testing.assert_array_equal(model.probas_, [[1.0], [1.0]])
    lonely = Ratings.from_long(["a", "b", "c"], ["x", "x", "x"], [0, 1, 1])  # one annotator
    model = cls().fit(lonely)
    assert np.all(np.isfinite(model.probas_))
    assert model.labels_.tolist() == [0, 1, 1]
    single = Ratings.from_long(["a", "b", "c", "c"], ["x", "y", "z", "x"], [0, 1, 1, 1])
    assert np.all(np.isfinite(cls().fit(single).probas_))


def test_bad_input_and_parameters() -> None:
    empty = Ratings.from_long([], [], [], categories=[0, 1])
    with pytest.raises(ValueError, match="no ratings"):
        DawidSkene().fit(empty)
    data = toy()
    for bad in (
        DawidSkene(max_iter=0),
        DawidSkene(tol=-1.0),
        DawidSkene(smoothing=-0.1),
        DawidSkene(min_prob=1.0),
        MajorityVote(tie_break="last"),  # type: ignore[arg-type]
        MACE(method="gibbs"),  # type: ignore[arg-type]
        MACE(n_restarts=0),
        GLAD(m_step_max_iter=0),
    ):
        with pytest.raises(ValueError):
            bad.fit(data)
    with pytest.raises(ValueError, match="both"):
        MACE().fit(data, init_competence=np.ones(3))


def test_no_underflow_with_thousands_of_labels_per_item() -> None:
    rng = np.random.default_rng(0)
    n_items, n_ann, per_item = 4, 50, 3000
    truth = np.arange(n_items) % 2
    item = np.repeat(np.arange(n_items), per_item)
    ann = rng.integers(n_ann, size=item.size)
    label = np.where(rng.random(item.size) < 0.7, truth[item], 1 - truth[item])
    data = Ratings.from_long(item, ann, label)
    for model in (DawidSkene(), OneCoinDawidSkene(), MACE(n_restarts=1), GLAD(max_iter=5)):
        model.fit(data)
        assert np.all(np.isfinite(model.probas_)), type(model).__name__
        assert np.isfinite(model.log_likelihood_ or 0.0)
        assert model.labels_.tolist() == truth.tolist(), type(model).__name__


def test_tolerance_stops_early_and_max_iter_caps() -> None:
    data = random_ratings(4)
    loose = DawidSkene(max_iter=500, tol=1e-3).fit(data)
    assert loose.n_iter_ < 500
    capped = DawidSkene(max_iter=3, tol=0).fit(data)
    assert capped.n_iter_ == 3 and len(capped.log_likelihood_history_) == 3


ratings_strategy = st.builds(
    random_ratings,
    seed=st.integers(0, 10_000),
    n_items=st.integers(2, 25),
    n_ann=st.integers(1, 6),
    k=st.integers(2, 4),
)


@pytest.mark.parametrize("name", list(EM_MONOTONE))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=ratings_strategy, use_gold=st.booleans())
def test_em_never_decreases_its_objective(name: str, data: Ratings, use_gold: bool) -> None:
    model = EM_MONOTONE[name]()
    gold = {data.items[0]: data.categories[0]} if use_gold else None
    history = np.asarray(model.fit(data, gold=gold).log_likelihood_history_)
    assert np.all(np.isfinite(history))
    steps = np.diff(history)
    assert np.all(steps >= -1e-9 * np.maximum(1.0, np.abs(history[1:]))), history


def test_dawid_skene_start_is_configurable() -> None:
    data = random_ratings(7)
    default = DawidSkene(max_iter=10, tol=0).fit(data)
    votes = MajorityVote().fit(data).probas_
    same = DawidSkene(max_iter=10, tol=0).fit(data, init_probas=votes)
    np.testing.assert_allclose(same.probas_, default.probas_, atol=1e-12)
    other = DawidSkene(max_iter=1, tol=0).fit(data, init_probas=np.ones((data.n_items, 3)))
    np.testing.assert_allclose(other.confusions_.sum(axis=2), 1.0)  # uniform start: valid fit
    with pytest.raises(ValueError, match="shape"):
        DawidSkene().fit(data, init_probas=np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        DawidSkene().fit(data, init_probas=-np.ones((data.n_items, 3)))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_refitting_one_instance_equals_fresh_instances(cls: type[TruthInference]) -> None:
    first, second = random_ratings(8), random_ratings(9, n_items=20)
    model = cls()
    model.fit(first)
    np.testing.assert_allclose(model.fit(second).probas_, cls().fit(second).probas_, atol=1e-12)


def test_importing_inference_pulls_in_no_web_or_database_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, labelloop.stats.inference; "
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'typer', 'pandas') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def posterior_by_hand(data: Ratings, confusions: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``q_ic ∝ π_c Π_r e_{j_r}[c, l_r]`` in plain numpy (log space)."""
    log_post = np.tile(np.log(priors), (data.n_items, 1))
    np.add.at(log_post, data.item, np.log(confusions[data.annotator, :, data.label]))
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)


def test_reported_parameters_explain_the_posteriors() -> None:
    data = random_ratings(10, n_items=40)
    mace = MACE(method="em", n_restarts=4, max_iter=40).fit(data)  # best of 4 restarts
    np.testing.assert_allclose(
        posterior_by_hand(data, mace.confusions_, mace.priors_), mace.probas_, atol=1e-9
    )
    ds = DawidSkene().fit(data)
    np.testing.assert_allclose(
        posterior_by_hand(data, ds.confusions_, ds.priors_), ds.probas_, atol=1e-9
    )


def test_ten_thousand_categories() -> None:
    rng = np.random.default_rng(0)
    n = 600
    data = Ratings.from_long(
        rng.integers(200, size=n),
        rng.integers(5_000, size=n),
        rng.integers(10_000, size=n),
        categories=list(range(10_000)),
    )
    for cls in (MajorityVote, Wawa):
        assert cls().fit(data).probas_.shape == (data.n_items, 10_000)
    glad = GLAD(max_iter=2).fit(data)
    assert np.isfinite(glad.probas_).all()
    for cls in (DawidSkene, OneCoinDawidSkene, MACE):
        with pytest.raises(ValueError, match="use MajorityVote, Wawa or GLAD"):
            cls().fit(data)
