"""Truth inference against crowd-kit and against published data (Snow et al. 2008)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

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

pd = pytest.importorskip("pandas")
ck = pytest.importorskip("crowdkit.aggregation")
sps = pytest.importorskip("scipy.stats")

ITERATIVE_TOL = 1e-6


def crowd_frame(seed: int, n_items: int = 40, n_ann: int = 6, k: int = 3) -> Any:
    """Random crowd data; annotator ids and labels first appear in sorted order.

    (crowd-kit's MACE M-step mixes first-appearance and sorted orders; with this layout
    both orders agree, so its numbers are comparable.)
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(k, size=n_items)
    acc = rng.uniform(0.3, 0.95, size=n_ann)
    rows = [("t0000", f"w{j}", j % k) for j in range(n_ann)]
    for i in range(n_items):
        for j in sorted(rng.choice(n_ann, size=int(rng.integers(1, n_ann + 1)), replace=False)):
            label = truth[i] if rng.random() < acc[j] else int(rng.integers(k))
            rows.append((f"t{i:04d}", f"w{j}", int(label)))
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def to_ratings(frame: Any) -> Ratings:
    return Ratings.from_frame(frame, item="task", annotator="worker")


def aligned(probas: Any, data: Ratings) -> np.ndarray:
    return np.asarray(probas.reindex(index=data.items, columns=data.categories), dtype=float)


def crowdkit_mace_start(n_ann: int, k: int, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The starting values crowd-kit's MACE draws (same seed for both arrays)."""
    spam = sps.uniform(1, 1.5).rvs(size=(n_ann, 2), random_state=random_state)
    strat = sps.uniform(1, 1.5).rvs(size=(n_ann, k), random_state=random_state)
    return (spam / spam.sum(axis=1, keepdims=True))[:, 1], strat / strat.sum(axis=1, keepdims=True)


# name -> (ours, crowd-kit, how many of our iterations match crowd-kit's n_iter=3)
CASES: dict[str, tuple[Callable[[int], TruthInference], Callable[[int], Any], int]] = {
    "dawid-skene": (
        lambda n: DawidSkene(max_iter=n, tol=0, smoothing=0, prior_smoothing=0, min_prob=1e-10),
        lambda n: ck.DawidSkene(n_iter=n, tol=-np.inf),
        0,
    ),
    "one-coin": (
        lambda n: OneCoinDawidSkene(
            max_iter=n, tol=0, smoothing=0, prior_smoothing=0, min_prob=1e-10
        ),
        lambda n: ck.OneCoinDawidSkene(n_iter=n, tol=-np.inf),
        0,
    ),
    "mace-vb": (
        lambda n: MACE(max_iter=n, tol=0, n_restarts=1),
        lambda n: ck.MACE(n_iter=n, n_restarts=1, method="vb"),
        0,
    ),
    "mace-em": (
        lambda n: MACE(max_iter=n, tol=0, n_restarts=1, method="em"),
        lambda n: ck.MACE(n_iter=n, n_restarts=1, method="em"),
        0,
    ),
    # crowd-kit's GLAD posteriors lag its parameters by one E-step
    "glad": (lambda n: GLAD(max_iter=n, tol=0), lambda n: ck.GLAD(n_iter=n, tol=-np.inf), -1),
}


@pytest.mark.parametrize(
    ("name", "seed"),
    [(name, 0) for name in CASES] + [("dawid-skene", 1), ("mace-vb", 1), ("mace-em", 1)],
)
def test_equal_to_crowdkit(name: str, seed: int) -> None:
    n_iter = 3 if name == "glad" else 8
    frame = crowd_frame(seed, n_items=20 if name == "glad" else 50)
    data = to_ratings(frame)
    make_ours, make_ref, lag = CASES[name]
    ref = make_ref(n_iter).fit(frame)
    ours = make_ours(n_iter + lag)
    if isinstance(ours, MACE):
        comp, strat = crowdkit_mace_start(data.n_annotators, data.n_categories)
        ours.fit(data, init_competence=comp, init_strategies=strat)
    else:
        ours.fit(data)
    np.testing.assert_allclose(ours.probas_, aligned(ref.probas_, data), atol=ITERATIVE_TOL)
    assert ours.labels_.tolist() == ref.labels_.reindex(data.items).tolist()
    if isinstance(ours, GLAD):  # parameters after n_iter M-steps
        full = GLAD(max_iter=n_iter, tol=0).fit(data)
        np.testing.assert_allclose(
            full.alphas_, ref.alphas_.reindex(data.annotators), atol=ITERATIVE_TOL
        )
        np.testing.assert_allclose(full.betas_, ref.betas_.reindex(data.items), atol=ITERATIVE_TOL)
    if isinstance(ours, OneCoinDawidSkene):
        np.testing.assert_allclose(
            ours.annotator_skills_[: data.n_annotators],
            ck.OneCoinDawidSkene(n_iter=n_iter - 1, tol=-np.inf)
            .fit(frame)
            .skills_.reindex(data.annotators),
            atol=ITERATIVE_TOL,
        )


def test_majority_vote_equals_crowdkit() -> None:
    # crowd-kit's skills count a repeated identical rating once; ours count every rating
    frame = crowd_frame(5, n_items=80).drop_duplicates(["task", "worker"], keep="last")
    data = to_ratings(frame)
    ref = ck.MajorityVote().fit(frame)
    ours = MajorityVote().fit(data)
    np.testing.assert_allclose(ours.probas_, aligned(ref.probas_, data), atol=1e-12)
    assert ours.labels_.tolist() == ref.labels_.reindex(data.items).tolist()
    np.testing.assert_allclose(
        ours.annotator_skills_, ref.skills_.reindex(data.annotators), atol=1e-12
    )


def wawa_by_hand(frame: Any) -> tuple[Any, Any]:
    """Wawa in plain pandas: majority vote, agreement skills, skill-weighted vote."""
    counts = frame.groupby(["task", "label"]).size().unstack(fill_value=0)
    majority = counts.idxmax(axis=1)  # first column among ties = lowest label
    agree = frame["label"].to_numpy() == majority.reindex(frame["task"]).to_numpy()
    skills = pd.Series(agree, index=frame["worker"]).groupby(level=0).mean()
    weighted = frame.assign(skill=skills.reindex(frame["worker"]).to_numpy())
    scores = weighted.groupby(["task", "label"])["skill"].sum().unstack(fill_value=0.0)
    return scores.div(scores.sum(axis=1), axis=0), skills


def test_wawa_equals_hand_computation_and_crowdkit_when_it_runs() -> None:
    frame = crowd_frame(6, n_items=80).drop_duplicates(["task", "worker"], keep="last")
    data = to_ratings(frame)
    ours = Wawa().fit(data)
    probas, skills = wawa_by_hand(frame)
    np.testing.assert_allclose(ours.probas_, aligned(probas, data), atol=1e-12)
    np.testing.assert_allclose(ours.annotator_skills_, skills.reindex(data.annotators), atol=1e-12)
    try:
        ref = ck.Wawa().fit(frame).predict_proba(frame)
    except AttributeError as exc:  # crowd-kit 1.4 + scikit-learn >= 1.6: __sklearn_tags__
        pytest.skip(f"crowd-kit Wawa does not run here: {str(exc)[:60]}")
    np.testing.assert_allclose(ours.probas_, aligned(ref, data), atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # crowd-kit: 0/0 after underflow
def test_mace_does_not_underflow_where_crowdkit_does() -> None:
    rng = np.random.default_rng(0)
    n_items, n_ann, per_item = 3, 20, 2000
    truth = np.array([0, 1, 0])
    task = np.repeat(np.arange(n_items), per_item)
    worker = np.tile(np.arange(per_item) % n_ann, n_items)
    label = np.where(rng.random(task.size) < 0.8, truth[task], 1 - truth[task])
    frame = pd.DataFrame({"task": task, "worker": worker, "label": label})
    ref = ck.MACE(n_iter=3, n_restarts=1).fit(frame)
    assert ref.probas_.isna().to_numpy().any()  # products of 2,000 probabilities underflow
    ours = MACE(max_iter=3, n_restarts=1).fit(to_ratings(frame))
    assert np.isfinite(ours.probas_).all()
    assert ours.labels_.tolist() == truth.tolist()


def snow(shared_fixtures: Path, name: str) -> tuple[Any, Any]:
    frame = pd.read_csv(
        shared_fixtures / "crowdsourcing" / f"snow2008_{name}.standardized.tsv",
        sep="\t",
        dtype={"orig_id": str},
    )
    ratings = frame.rename(
        columns={"orig_id": "task", "!amt_worker_ids": "worker", "response": "label"}
    )[["task", "worker", "label"]]
    return ratings, frame.groupby("orig_id")["gold"].first()


@pytest.mark.parametrize("name", ["rte", "temp"])
def test_dawid_skene_at_least_as_accurate_as_crowdkit_on_snow2008(
    shared_fixtures: Path, name: str
) -> None:
    frame, gold = snow(shared_fixtures, name)
    reference = ck.DawidSkene(n_iter=100).fit(frame).labels_
    ref_accuracy = float((reference.reindex(gold.index) == gold).mean())
    data = to_ratings(frame)
    ours = DawidSkene().fit(data)
    accuracy = float(np.mean(ours.labels_ == gold.reindex(data.items).to_numpy()))
    assert accuracy >= ref_accuracy, (accuracy, ref_accuracy)
    assert accuracy > 0.92  # RTE 0.9275 (crowd-kit 0.9275); TEMP 0.9416 (crowd-kit 0.9416)


def test_adult_content_worked_example(shared_fixtures: Path) -> None:
    """Ipeirotis' AdultContent toy: worker1 always says porn, worker5 always lies."""
    folder = shared_fixtures / "crowdsourcing"
    frame = pd.read_csv(
        folder / "AdultContent_labels.txt", sep="\t", header=None, names=["worker", "task", "label"]
    )
    gold = dict(pd.read_csv(folder / "AdultContent_gold.txt", sep="\t", header=None).to_numpy())
    data = to_ratings(frame)
    expected = ["notporn", "porn", "notporn", "porn", "notporn"]  # url1..url5
    assert MajorityVote().fit(data).labels_.tolist()[4] == "porn"  # 3 of 5 votes
    for g in (None, gold):
        model = DawidSkene(smoothing=0, prior_smoothing=0).fit(data, gold=g)
        assert model.labels_.tolist() == expected
        conf = model.confusions_  # annotators × true × observed; categories notporn, porn
        np.testing.assert_allclose(conf[0][:, 1], [1, 1], atol=1e-6)  # worker1: always porn
        np.testing.assert_allclose(conf[4], [[0, 1], [1, 0]], atol=1e-6)  # worker5: inverted
        np.testing.assert_allclose(model.priors_, [0.6, 0.4], atol=1e-6)
