"""The simulated demo team: deterministic, the right size, and its planted problems
(confuser, speeder, fatigued annotator) are visible in the data while nobody else's are."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from datetime import datetime

import numpy as np
import pytest

from labelloop.demo.simulate import (
    CONFUSED_PAIR,
    LABELS,
    MODEL_NAME,
    MODEL_VERSION,
    START,
    DemoData,
    simulate,
)
from labelloop.formats.records import AnnotationRecord, GoldRecord, ItemRecord, PredictionRecord
from labelloop.projects.schemas import LabelSchema


@pytest.fixture(scope="module")
def demo() -> DemoData:
    return simulate(seed=7, n_items=2000)


def test_same_seed_same_records_other_seed_different() -> None:
    a, b, c = simulate(3, 300), simulate(3, 300), simulate(4, 300)
    assert list(a.records()) == list(b.records())
    assert a.truth == b.truth
    assert list(a.records()) != list(c.records())
    assert [x.payload for x in a.items] != [x.payload for x in c.items]


def test_simulate_is_pure() -> None:
    code = (
        "import sys, labelloop.demo.simulate; "
        "bad = [m for m in ('sqlalchemy', 'fastapi', 'typer', 'pydantic') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_items"):
        simulate(1, 0)
    with pytest.raises(ValueError, match="gold_fraction"):
        simulate(1, 10, gold_fraction=1.5)


def test_counts_and_proportions(demo: DemoData) -> None:
    assert len(demo.items) == 2000
    assert len({i.external_id for i in demo.items}) == 2000
    assert len(demo.annotators) == 12
    assert {a.annotator for a in demo.annotations} == {p.username for p in demo.annotators}
    per_item = Counter(a.item_external_id for a in demo.annotations)
    assert len(per_item) == 2000
    assert 2.9 <= len(demo.annotations) / 2000 <= 3.15
    assert set(per_item.values()) == {2, 3, 4, 5}  # not everyone gets the same k
    pairs = Counter((a.item_external_id, a.annotator) for a in demo.annotations)
    assert max(pairs.values()) == 1  # nobody labels an item twice
    assert len(demo.gold) == 100
    assert len(demo.predictions) == 2000
    assert len(list(demo.records())) == len(demo) == 2000 + len(demo.annotations) + 100 + 2000
    kinds = Counter(p.kind for p in demo.annotators)
    assert kinds["confuser"] == kinds["speeder"] == kinds["fatigued"] == 1
    assert kinds["strong"] >= 3 and kinds["average"] >= 3


def test_record_types_and_schema(demo: DemoData) -> None:
    schema = LabelSchema.from_dict(demo.schema)
    assert schema.task_type == "single"
    assert schema.label_names == list(LABELS)
    assert all(isinstance(r, ItemRecord) for r in demo.items)
    assert all(
        isinstance(r, AnnotationRecord) and r.task_type == "single" for r in demo.annotations
    )
    assert {a.value for a in demo.annotations} == set(LABELS)
    assert all(isinstance(r, GoldRecord) and r.rationale for r in demo.gold)
    assert all(g.value == demo.truth[g.item_external_id] for g in demo.gold)
    assert all(isinstance(r, PredictionRecord) for r in demo.predictions)
    for p in demo.predictions:
        assert p.model_name == MODEL_NAME and p.model_version == MODEL_VERSION
        assert p.probabilities is not None and list(p.probabilities) == list(LABELS)
        assert abs(sum(p.probabilities.values()) - 1) < 1e-9
        assert p.value == max(p.probabilities, key=p.probabilities.__getitem__)
        assert p.score == p.probabilities[p.value]


def test_items_are_realistic(demo: DemoData) -> None:
    segments = {
        key: Counter(i.segments[key] for i in demo.items)
        for key in ("language", "channel", "region")
    }
    assert set(segments["language"]) == {"en", "es", "de", "fr"}
    assert segments["language"]["en"] > 900
    assert set(segments["channel"]) == {"email", "chat", "phone"}
    assert len(segments["region"]) >= 3
    edge = [i for i in demo.items if "edge-case" in i.tags]
    assert 0.06 <= len(edge) / 2000 <= 0.14
    tiers = Counter(i.metadata["customer_tier"] for i in demo.items)
    assert set(tiers) == {"free", "pro", "enterprise"}
    created = [datetime.fromisoformat(i.metadata["created_at"]) for i in demo.items]
    assert created == sorted(created)  # ticket numbers follow arrival
    assert (created[-1] - created[0]).days >= 40 and created[0] >= START
    texts = {i.payload["text"] for i in demo.items}
    assert len(texts) > 1600  # common short tickets repeat, as in real queues
    german = [i.payload["text"] for i in demo.items if i.segments["language"] == "de"]
    assert any("Bestellung" in t for t in german)
    assert all("{" not in t for t in texts)  # every slot filled
    assert Counter(demo.truth.values()).keys() == set(LABELS)


def test_timestamps_are_consistent(demo: DemoData) -> None:
    created = {i.external_id: datetime.fromisoformat(i.metadata["created_at"]) for i in demo.items}
    by_annotator: dict[str, list[AnnotationRecord]] = {}
    for a in demo.annotations:
        assert (
            a.started_at is not None and a.submitted_at is not None and a.active_seconds is not None
        )
        assert a.started_at >= created[a.item_external_id]
        assert (a.submitted_at - a.started_at).total_seconds() >= a.active_seconds
        assert a.started_at.weekday() < 5  # sessions start on weekdays
        assert a.guideline_version in {"1.0", "1.1"}
        by_annotator.setdefault(a.annotator or "", []).append(a)
    for rows in by_annotator.values():
        rows.sort(key=lambda a: a.started_at or START)
        for prev, nxt in itertools.pairwise(rows):
            assert prev.submitted_at is not None and nxt.started_at is not None
            assert nxt.started_at >= prev.submitted_at  # one item at a time


def _pair_rate(demo: DemoData, index: int, version: str = "1.0") -> float:
    """How often annotator ``index`` swapped refund and billing under ``version``."""
    tr = demo.trace
    t, g = LABELS.index(CONFUSED_PAIR[0]), LABELS.index(CONFUSED_PAIR[1])
    under = np.asarray([a.guideline_version == version for a in demo.annotations])
    mine = (tr.annotator == index) & under
    hits = ((tr.true == t) & (tr.given == g) | (tr.true == g) & (tr.given == t)) & mine
    return float(hits.sum() / (((tr.true == t) | (tr.true == g)) & mine).sum())


def test_confuser_confuses_the_pair(demo: DemoData) -> None:
    confuser = demo.annotator("confuser")
    assert confuser.confused_pair == CONFUSED_PAIR
    mine = _pair_rate(demo, confuser.index)
    others = [_pair_rate(demo, p.index) for p in demo.annotators if p.kind != "confuser"]
    assert mine > 0.25
    assert mine > 2.5 * max(others)
    for p in demo.annotators:
        assert np.allclose(p.confusion.sum(axis=1), 1.0)


def test_clarified_guideline_helps_the_confuser(demo: DemoData) -> None:
    """Guideline 1.1 clarifies refund vs billing: the confuser's swaps fall (a planted
    effect the audits should see), the others stay as they were."""
    confuser = demo.annotator("confuser")
    assert confuser.clarified is not None and np.allclose(confuser.clarified.sum(axis=1), 1.0)
    before, after = _pair_rate(demo, confuser.index), _pair_rate(demo, confuser.index, "1.1")
    assert after < before / 2
    assert {a.guideline_version for a in demo.annotations} == {"1.0", "1.1"}


def test_speeder_is_fast_and_worse(demo: DemoData) -> None:
    tr = demo.trace
    speeder = demo.annotator("speeder")
    median = {
        p.index: float(np.median(tr.active_seconds[tr.annotator == p.index]))
        for p in demo.annotators
    }
    others = [m for i, m in median.items() if i != speeder.index]
    assert median[speeder.index] < 0.4 * min(others)
    accuracy = {p.index: float(tr.correct[tr.annotator == p.index].mean()) for p in demo.annotators}
    typical = [accuracy[p.index] for p in demo.annotators if p.kind in ("strong", "average")]
    assert accuracy[speeder.index] < min(typical) - 0.05


def test_only_the_fatigued_annotator_tires(demo: DemoData) -> None:
    tr = demo.trace
    drops = {}
    for p in demo.annotators:
        mine = tr.annotator == p.index
        early = tr.correct[mine & (tr.position < 30)].mean()
        late = tr.correct[mine & (tr.position >= 50)].mean()
        drops[p.kind if p.kind == "fatigued" else p.username] = float(early - late)
    assert drops.pop("fatigued") > 0.25
    assert max(drops.values()) < 0.1, drops


def test_model_is_overconfident_on_edge_cases(demo: DemoData) -> None:
    edge = np.array(["edge-case" in i.tags for i in demo.items])
    right = np.array([p.value == demo.truth[p.item_external_id] for p in demo.predictions])
    conf = np.array([p.score for p in demo.predictions], dtype=float)
    assert right[~edge].mean() > 0.85
    assert abs(conf[~edge].mean() - right[~edge].mean()) < 0.08  # roughly calibrated
    assert conf[edge].mean() - right[edge].mean() > 0.2  # overconfident


def test_sessions_can_be_recovered_from_timestamps(demo: DemoData) -> None:
    """A 30-minute gap separates sessions, so fatigue analytics can find them in stored data."""
    tr = demo.trace
    starts = np.array([(a.started_at - START).total_seconds() for a in demo.annotations])  # type: ignore[operator]
    ends = np.array([(a.submitted_at - START).total_seconds() for a in demo.annotations])  # type: ignore[operator]
    agree = 0
    for p in demo.annotators:
        rows = np.flatnonzero(tr.annotator == p.index)
        rows = rows[np.argsort(starts[rows])]
        new = np.r_[True, starts[rows][1:] - ends[rows][:-1] > 1800]
        found = np.cumsum(new)
        # same partition: each simulated session maps to exactly one recovered session
        pairs = set(zip(tr.session[rows].tolist(), found.tolist(), strict=True))
        agree += (
            len(rows) if len(pairs) == len(set(found.tolist())) == len(set(tr.session[rows])) else 0
        )
    assert agree == len(demo.annotations)
