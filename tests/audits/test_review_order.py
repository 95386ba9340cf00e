"""A blind review queue must not reveal whose work it holds: not by its order, not by ids.

Strata are often annotators, so a queue served in stratum blocks, or ids handed out
stratum by stratum, tell a reviewer whose labels they judge. The checks below count runs
of consecutive same-stratum entries (Wald–Wolfowitz style) against random permutations
of the same entries, drawn with a fixed seed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditRun, AuditUnit
from labelloop.audits.population import load_population, stratum_codes
from labelloop.audits.schemas import PolicySpec, ReviewInput

from .conftest import OPERATOR, Demo

REVIEWERS = ("demo.auditor", "demo.adjudicator")


def _runs(strata: Sequence[str]) -> int:
    """Number of runs of consecutive equal strata."""
    return sum(1 for _ in itertools.groupby(strata))


def _random_runs_floor(strata: Sequence[str], quantile: float = 0.01) -> float:
    """The ``quantile`` of the run count over random orders of the same strata."""
    rng = np.random.default_rng(20240601)
    values = np.asarray(strata, dtype=object)
    counts = [_runs(rng.permutation(values).tolist()) for _ in range(2000)]
    return float(np.quantile(counts, quantile))


def _assert_mixed(strata: Sequence[str]) -> None:
    """Not grouped by stratum: as many runs as a random order would plausibly give."""
    distinct = len(set(strata))
    assert distinct >= 4, "the check needs several strata"
    runs, floor = _runs(strata), _random_runs_floor(strata)
    assert runs >= floor, f"{runs} runs for {distinct} strata (random orders: ≥ {floor:.0f})"


@dataclass
class Opened:
    run: AuditRun
    stratum_of_assignment: dict[int, str]
    unit_of_assignment: dict[int, int]
    reviewer_ids: dict[str, int]


def _open(demo: Demo, **spec: object) -> Opened:
    """A run stratified by annotator with several strata, two reviewers and double reviews."""
    base: dict[str, object] = {
        "cadence": "manual",
        "strata": ["annotator"],
        "allocation": "equal",
        "sample_size": 120,
        "min_per_stratum": 4,
        "reviewers": list(REVIEWERS),
        "double_review_fraction": 0.25,
    }
    base.update(spec)
    policy = audits.create_policy(
        demo.session,
        actor=OPERATOR,
        project=demo.project,
        name="order",
        spec=audits.parse_spec(base),
    )
    times = [a.submitted_at for a in demo.data.annotations if a.submitted_at is not None]
    start, end = min(times), max(times) + timedelta(seconds=1)  # all twelve annotators
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    rows = demo.session.execute(
        select(AuditAssignment.id, AuditAssignment.unit_id, AuditUnit.stratum)
        .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
        .where(AuditAssignment.run_id == run.id)
    ).all()
    return Opened(
        run,
        {r.id: r.stratum for r in rows},
        {r.id: r.unit_id for r in rows},
        {name: accounts.get_user(demo.session, name).id for name in REVIEWERS},
    )


def _by_key(seed: int, reviewer_id: int, assignment_ids: Sequence[int]) -> list[int]:
    """Assignment ids in queue order for one reviewer."""
    keys = audits.queue_keys(seed, [reviewer_id] * len(assignment_ids), assignment_ids)
    return [assignment_ids[i] for i in np.argsort(keys, kind="stable").tolist()]


def _as_reviewer(demo: Demo, username: str) -> Actor:
    user = accounts.get_user(demo.session, username)
    return Actor.for_user(user.id, user.username)


# ----------------------------------------------------------------------------- (a) order
def test_a_reviewers_queue_mixes_strata(demo: Demo) -> None:
    opened = _open(demo)
    for name in REVIEWERS:
        queue = audits.review_queue(demo.session, actor=_as_reviewer(demo, name), run=opened.run)
        assert len(queue) >= 40
        _assert_mixed([opened.stratum_of_assignment[e.assignment_id] for e in queue])


def test_the_queue_is_ordered_by_the_keyed_hash_not_by_id(demo: Demo) -> None:
    opened = _open(demo)
    rid = opened.reviewer_ids["demo.auditor"]
    queue = audits.review_queue(demo.session, actor=OPERATOR, run=opened.run, reviewer_id=rid)
    ids = [e.assignment_id for e in queue]
    assert ids == _by_key(opened.run.seed, rid, ids)
    assert ids != sorted(ids)
    # the operator's view of every queue keeps each reviewer's own order
    everyone = [
        e.assignment_id for e in audits.review_queue(demo.session, actor=OPERATOR, run=opened.run)
    ]
    assert len(everyone) == len(opened.stratum_of_assignment)
    assert [a for a in everyone if a in set(ids)] == ids


# ------------------------------------------------------------------ (b) stable, per person
def test_b_order_is_stable_across_calls_and_differs_between_reviewers(demo: Demo) -> None:
    opened = _open(demo)
    auditor = _as_reviewer(demo, "demo.auditor")
    first = audits.review_queue(demo.session, actor=auditor, run=opened.run)
    # the same on every call, and the same through the CLI's operator naming the reviewer
    assert audits.review_queue(demo.session, actor=auditor, run=opened.run) == first
    via_cli = audits.review_queue(
        demo.session,
        actor=OPERATOR,
        run=opened.run,
        reviewer_id=opened.reviewer_ids["demo.auditor"],
    )
    assert via_cli == first
    # units both reviewers hold (double reviews) come to each in a different order
    other = audits.review_queue(
        demo.session, actor=_as_reviewer(demo, "demo.adjudicator"), run=opened.run
    )
    shared = {e.unit_id for e in first} & {e.unit_id for e in other}
    assert len(shared) >= 10
    mine = [e.unit_id for e in first if e.unit_id in shared]
    theirs = [e.unit_id for e in other if e.unit_id in shared]
    assert sorted(mine) == sorted(theirs) and mine != theirs
    # reviewing the next item leaves the rest in the same order
    audits.record_review(
        demo.session,
        actor=auditor,
        assignment_id=first[0].assignment_id,
        review=ReviewInput(verdict="unsure"),
    )
    assert audits.review_queue(demo.session, actor=auditor, run=opened.run) == first[1:]


def test_the_page_loads_only_the_next_item_and_counts_the_rest(demo: Demo) -> None:
    opened = _open(demo)
    auditor = _as_reviewer(demo, "demo.auditor")
    full = audits.review_queue(demo.session, actor=auditor, run=opened.run)
    assert audits.review_queue(demo.session, actor=auditor, run=opened.run, limit=1) == full[:1]
    assert audits.review_queue(demo.session, actor=auditor, run=opened.run, limit=0) == []
    assert audits.queue_length(demo.session, actor=auditor, run=opened.run) == len(full)
    assert audits.queue_length(demo.session, actor=OPERATOR, run=opened.run) == len(
        opened.stratum_of_assignment
    )


# ----------------------------------------------------------------------------- (c) ids
def test_c_ids_carry_no_stratum(demo: Demo) -> None:
    opened = _open(demo)
    by_assignment = sorted(opened.stratum_of_assignment)
    _assert_mixed([opened.stratum_of_assignment[a] for a in by_assignment])
    units = demo.session.execute(
        select(AuditUnit.id, AuditUnit.stratum)
        .where(AuditUnit.run_id == opened.run.id)
        .order_by(AuditUnit.id)
    ).all()
    _assert_mixed([u.stratum for u in units])
    # a reviewer's own ids, as the page and the CLI show them, are mixed too
    rid = opened.reviewer_ids["demo.adjudicator"]
    own = sorted(
        a
        for a, unit in opened.unit_of_assignment.items()
        if demo.session.get(AuditAssignment, a).reviewer_id == rid  # type: ignore[union-attr]
    )
    _assert_mixed([opened.stratum_of_assignment[a] for a in own])


def test_shuffled_ids_change_neither_the_sample_nor_who_reviews_what(demo: Demo) -> None:
    """The sample is the plan's and the balanced assignment is made in plan order, as it
    always was: reports built from the same reviews keep their numbers."""
    opened = _open(demo)
    run = opened.run
    spec = PolicySpec.model_validate({k: v for k, v in run.policy_snapshot.items() if k != "name"})
    pop = load_population(demo.session, demo.project, spec, run.window_start, run.window_end)
    codes, names = stratum_codes(demo.session, demo.project, spec, pop, run.window_start)
    policy = demo.session.get(AuditPolicy, run.policy_id)
    assert policy is not None
    plan, _ = audits.plan_sample(demo.session, policy, spec, codes, names, run.seed)
    refs = [
        audits._UnitRef(pos, int(pop.annotation_id[idx]), int(pop.annotator_id[idx]))
        for pos, (idx, _, _) in enumerate(plan.rows())
    ]
    reviewers = {uid: name for name, uid in opened.reviewer_ids.items()}
    expected = sorted(
        (ref.annotation_id, reviewer, double)
        for ref, reviewer, double in audits._assign(
            refs, reviewers, spec.double_review_fraction, np.random.default_rng(run.seed)
        )
    )
    stored = sorted(
        (r.annotation_id, r.reviewer_id, r.double)
        for r in demo.session.execute(
            select(AuditUnit.annotation_id, AuditAssignment.reviewer_id, AuditAssignment.double)
            .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
            .where(AuditAssignment.run_id == run.id)
        )
    )
    assert stored == expected
    assert {a for a, _, _ in stored} == {int(pop.annotation_id[i]) for i in plan.indices}


def test_an_open_run_shows_label_and_annotator_in_the_same_order(demo: Demo) -> None:
    opened = _open(demo, blind=False)
    rid = opened.reviewer_ids["demo.auditor"]
    queue = audits.review_queue(demo.session, actor=OPERATOR, run=opened.run, reviewer_id=rid)
    ids = [e.assignment_id for e in queue]
    assert ids == _by_key(opened.run.seed, rid, ids)
    for entry in queue[:10]:
        unit = demo.session.get(AuditUnit, entry.unit_id)
        assert unit is not None
        assert entry.label == unit.snapshot["value"]
        assert entry.annotator == opened.stratum_of_assignment[entry.assignment_id].removeprefix(
            "annotator="
        )


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_queue_keys_depend_on_run_reviewer_and_assignment(seed: int) -> None:
    ids = list(range(1, 5001))
    keys = audits.queue_keys(seed, [3] * len(ids), ids)
    assert len(set(keys.tolist())) == len(ids)  # no ties within a reviewer
    assert (audits.queue_keys(seed, [3] * len(ids), ids) == keys).all()
    assert _by_key(seed, 3, ids) != _by_key(seed, 4, ids) != _by_key(seed + 1, 3, ids)
    assert _by_key(seed, 3, ids) != ids
    # consecutive ids are scattered: the first tenth of the order spans the whole range
    first = _by_key(seed, 3, ids)[:500]
    assert np.histogram(first, bins=10, range=(1, 5001))[0].min() >= 25
    assert audits.queue_keys(seed, [], []).shape == (0,)
