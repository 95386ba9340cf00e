"""Audit policies, runs with frozen samples, reviews, reports, trends and the worker."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from labelloop import trail
from labelloop.accounts import service as accounts
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditRun, AuditUnit
from labelloop.audits.render import to_html, to_json, to_markdown
from labelloop.audits.schemas import PolicySpec, ReviewInput
from labelloop.demo import audits as demo_audits
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.projects.models import Annotation, Item

from .conftest import OPERATOR, Demo

REVIEWERS = ["demo.auditor", "demo.adjudicator"]


def _policy(demo: Demo, name: str = "weekly", **spec: object) -> AuditPolicy:
    base: dict[str, object] = {
        "cadence": "0 6 * * MON",
        "strata": ["annotator"],
        "sample_size": 60,
        "reviewers": REVIEWERS,
    }
    base.update(spec)
    return audits.create_policy(
        demo.session, actor=OPERATOR, project=demo.project, name=name, spec=audits.parse_spec(base)
    )


def _window(demo: Demo, week: int = 0):
    start, end = demo_audits.weekly_windows(demo.data, 3)[week]
    return start, end


# ---------------------------------------------------------------------------- policies
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cadence": "61 * * * *"}, "cadence"),
        ({"cadence": "every monday"}, "not a valid cron"),
        ({"strata": ["colour"]}, "unknown stratum"),
        ({"allocation": "risk"}, "risk_weights"),
        ({"sample_size": 0}, "sample_size"),
        ({"error_categories": []}, "taxonomy"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=[
        "cron-range",
        "cron-words",
        "stratum",
        "risk-weights",
        "sample-size",
        "taxonomy",
        "unknown-key",
    ],
)
def test_bad_policies_are_refused_with_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        audits.parse_spec(spec)


def test_policy_needs_existing_reviewers_with_a_reviewing_role(demo: Demo) -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        _policy(demo, reviewers=["nobody"])
    with pytest.raises(ValidationFailed, match="no reviewing role"):
        _policy(demo, reviewers=["amira.haddad"])  # an annotator


def test_updating_a_policy_to_its_own_settings_writes_nothing(demo: Demo) -> None:
    policy = _policy(demo)
    same = PolicySpec.model_validate(policy.spec)
    before = len(trail.service.query(demo.session, action="audit_policy.update", limit=None))
    audits.update_policy(demo.session, actor=OPERATOR, policy=policy, spec=same)
    after = trail.service.query(demo.session, action="audit_policy.update", limit=None)
    assert len(after) == before
    changed = PolicySpec.model_validate({**policy.spec, "sample_size": 61})
    audits.update_policy(demo.session, actor=OPERATOR, policy=policy, spec=changed)
    after = trail.service.query(demo.session, action="audit_policy.update", limit=None)
    assert len(after) == before + 1 and policy.spec["sample_size"] == 61


def test_annotator_may_not_manage_policies(demo: Demo) -> None:
    from labelloop.accounts.actor import Actor

    user = accounts.get_user(demo.session, "amira.haddad")
    with pytest.raises(PermissionDenied):
        audits.create_policy(
            demo.session,
            actor=Actor.for_user(user.id, user.username),
            project=demo.project,
            name="x",
            spec=PolicySpec(),
        )


# --------------------------------------------------------------------------------- runs
def test_run_freezes_a_stratified_sample(demo: Demo) -> None:
    policy = _policy(demo)
    start, end = _window(demo)
    res = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    )
    run = res.run
    units = demo.session.scalars(select(AuditUnit).where(AuditUnit.run_id == run.id)).all()
    assert res.created and run.sample_size == len(units) == 60
    assert {u.stratum for u in units} == {
        s["stratum"] for s in run.plan["strata"] if s["sample"] > 0
    }
    # inclusion probability n_h / N_h per stratum
    for s in run.plan["strata"]:
        probs = [u.inclusion_probability for u in units if u.stratum == s["stratum"]]
        assert probs == pytest.approx([s["sample"] / s["population"]] * len(probs))
    # later edits do not change what was audited
    unit = units[0]
    before = dict(unit.snapshot)
    demo.session.execute(
        update(Annotation).where(Annotation.id == unit.annotation_id).values(value="other")
    )
    demo.session.expire_all()
    assert demo.session.get(AuditUnit, unit.id).snapshot == before
    # re-opening the same window returns the same run; a duplicate row is impossible
    again = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    )
    assert not again.created and again.run.id == run.id
    with pytest.raises(IntegrityError), demo.session.begin_nested():
        demo.session.add(
            AuditRun(
                policy_id=policy.id,
                project_id=demo.project.id,
                window_start=start,
                window_end=end,
                seed=1,
                policy_snapshot={},
            )
        )
        demo.session.flush()


def test_same_window_draws_the_same_sample(demo: Demo) -> None:
    start, end = _window(demo)
    a = audits.open_run(
        demo.session, actor=OPERATOR, policy=_policy(demo, "a"), window_start=start, window_end=end
    ).run
    seed_a = audits.run_seed(a.policy_id, start)
    assert a.seed == seed_a
    assert audits.run_seed(a.policy_id, start) == audits.run_seed(a.policy_id, start)
    assert audits.run_seed(a.policy_id, start) != audits.run_seed(
        a.policy_id, start + timedelta(days=7)
    )


def test_assignments_are_balanced_and_never_to_the_annotator(demo: Demo) -> None:
    # maria.lopez is a mentor (may review) and also an annotator in the window
    policy = _policy(demo, reviewers=[*REVIEWERS, "maria.lopez"], double_review_fraction=0.2)
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    rows = demo.session.execute(
        select(
            AuditAssignment.reviewer_id,
            AuditAssignment.double,
            AuditUnit.annotator_id,
            AuditUnit.id,
        )
        .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
        .where(AuditAssignment.run_id == run.id)
    ).all()
    assert all(r.reviewer_id != r.annotator_id for r in rows)
    firsts = np.bincount([r.reviewer_id for r in rows if not r.double])
    loads = firsts[firsts > 0]
    assert loads.max() - loads.min() <= max(2, int(0.1 * loads.sum()))
    doubles = [r for r in rows if r.double]
    assert len(doubles) == pytest.approx(0.2 * run.sample_size, abs=2)
    by_unit: dict[int, set[int]] = {}
    for r in rows:
        by_unit.setdefault(r.id, set()).add(r.reviewer_id)
    assert all(len(v) == 2 for k, v in by_unit.items() if any(d.id == k for d in doubles))


def test_pool_of_only_the_audited_annotator_is_refused(demo: Demo) -> None:
    start, end = _window(demo)
    busiest = max(
        (p.username for p in demo.data.annotators),
        key=lambda name: sum(
            a.annotator == name and start <= a.submitted_at < end for a in demo.data.annotations
        ),
    )
    accounts.grant(
        demo.session,
        actor=OPERATOR,
        username=busiest,
        project_id=demo.project.id,
        role=Role.AUDITOR,
    )
    policy = _policy(demo, reviewers=[busiest], population={"annotators": [busiest]})
    with pytest.raises(ValidationFailed, match="only its annotator"):
        audits.open_run(
            demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
        )
    assert demo.session.scalar(select(func.count()).select_from(AuditRun)) == 0


def test_empty_population_and_oversized_sample(demo: Demo) -> None:
    policy = _policy(demo, population={"segments": {"language": ["xx"]}})
    start, end = _window(demo)
    with pytest.raises(ValidationFailed, match="nothing to audit"):
        audits.open_run(
            demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
        )
    empty = audits.open_run(
        demo.session,
        actor=OPERATOR,
        policy=policy,
        window_start=start,
        window_end=end,
        allow_empty=True,
    )
    assert empty.run.status == "closed" and empty.run.population_size == 0
    big = _policy(demo, "big", sample_size=100_000, strata=[])
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=big, window_start=start, window_end=end
    ).run
    assert run.sample_size == run.population_size
    assert any("exceeds the population" in n for n in run.plan["notes"])


def test_target_half_width_sets_the_sample_size(demo: Demo) -> None:
    from labelloop.stats.sampling import sample_size_for_proportion

    policy = _policy(
        demo, sample_size=None, target_half_width=0.05, expected_error_rate=0.1, strata=[]
    )
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    expected = sample_size_for_proportion(
        0.05, expected_rate=0.1, confidence=0.95, population_size=run.population_size
    )
    assert run.sample_size == min(expected, run.population_size)


def test_crash_while_opening_leaves_nothing(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _policy(demo)
    start, end = _window(demo)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(audits, "_assign", boom)
    nested = demo.session.begin_nested()
    with pytest.raises(RuntimeError):
        audits.open_run(
            demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
        )
    nested.rollback()
    assert demo.session.scalar(select(func.count()).select_from(AuditUnit)) == 0
    monkeypatch.undo()
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    assert run.sample_size == 60


# ------------------------------------------------------------------------------ reviews
def _reviewed_run(demo: Demo, week: int = 0, **spec: object) -> AuditRun:
    policy = demo.session.scalar(
        select(AuditPolicy).where(AuditPolicy.name == "weekly")
    ) or _policy(demo, **spec)
    start, end = _window(demo, week)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    demo_audits._review(
        demo.session, actor=OPERATOR, run=run, data=demo.data, rng=np.random.default_rng(week)
    )
    return audits.close_run(demo.session, actor=OPERATOR, run=run)


def test_blind_review_queue_hides_label_and_annotator(demo: Demo) -> None:
    policy = _policy(demo)
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    queue = audits.review_queue(demo.session, actor=OPERATOR, run=run)
    assert queue and all(e.label is None and e.annotator is None for e in queue)
    reviewer = accounts.get_user(demo.session, "demo.auditor")
    from labelloop.accounts.actor import Actor

    mine = audits.review_queue(
        demo.session, actor=Actor.for_user(reviewer.id, reviewer.username), run=run
    )
    assert mine and len(mine) < len(queue)
    # a reviewer cannot answer someone else's assignment
    other = next(e for e in queue if e.assignment_id not in {m.assignment_id for m in mine})
    with pytest.raises(PermissionDenied):
        audits.record_review(
            demo.session,
            actor=Actor.for_user(reviewer.id, reviewer.username),
            assignment_id=other.assignment_id,
            review=ReviewInput(verdict="unsure"),
        )


def test_review_derives_verdict_and_checks_inputs(demo: Demo) -> None:
    policy = _policy(demo)
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    a_id, snapshot = demo.session.execute(
        select(AuditAssignment.id, AuditUnit.snapshot)
        .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
        .where(AuditAssignment.run_id == run.id)
        .limit(1)
    ).one()
    with pytest.raises(ValidationFailed, match="unknown error category"):
        audits.record_review(
            demo.session,
            actor=OPERATOR,
            assignment_id=a_id,
            review=ReviewInput(
                verdict="incorrect", corrected_value="refund", error_category="typo", severity="low"
            ),
        )
    with pytest.raises(ValidationFailed, match="not valid"):
        audits.record_review(
            demo.session,
            actor=OPERATOR,
            assignment_id=a_id,
            review=ReviewInput(
                verdict="incorrect",
                corrected_value="no-such-label",
                error_category="attention slip",
                severity="low",
            ),
        )
    row = audits.record_review(
        demo.session,
        actor=OPERATOR,
        assignment_id=a_id,
        review=ReviewInput(
            verdict="incorrect",
            corrected_value=snapshot["value"],
            error_category="attention slip",
            severity="low",
        ),
    )
    assert row.verdict == "correct"  # blind: the reviewer's label equals the audited one
    with pytest.raises(Conflict):
        audits.record_review(
            demo.session, actor=OPERATOR, assignment_id=a_id, review=ReviewInput(verdict="unsure")
        )
    with pytest.raises(Conflict, match="outstanding"):
        audits.close_run(demo.session, actor=OPERATOR, run=run)
    assert trail.service.query(demo.session, action="audit_review.create")


def test_report_has_every_section_with_intervals(demo: Demo) -> None:
    run = _reviewed_run(demo)
    rep = run.report
    assert rep is not None and run.status == "closed"
    overall = rep["error_rate"]["overall"]
    assert 0 <= overall["ci"][0] <= overall["value"] <= overall["ci"][1] <= 1
    assert overall["n"] == rep["reviews"]["judged"] > 0
    for key in ("by_stratum", "by_label", "by_annotator", "by_segment"):
        assert rep["error_rate"][key]
    alpha = rep["agreement"]["krippendorff_alpha"]
    assert alpha["ci"][0] <= alpha["value"] <= alpha["ci"][1]
    assert rep["agreement"]["reviewers"]["percent_agreement"]["n"] > 0
    assert rep["gold"]["accuracy"]["n"] > 0
    assert rep["consensus"]["agreement_with_reviewers"]["value"] > 0.5
    assert rep["error_categories"] and rep["confusions"]
    assert {"median", "p90"} <= set(rep["turnaround"]["hours_to_verdict"])
    assert rep["edge_cases"]["population_share"] > 0
    assert [r["priority"] for r in rep["recommendations"]] == list(
        range(1, len(rep["recommendations"]) + 1)
    )
    md, page, js = to_markdown(rep), to_html(rep), to_json(rep)
    assert "Population error rate" in md and "| stratum |" in md
    assert (
        "<svg" in page
        and "http://" not in page
        and "https://" not in page
        and "<script" not in page
    )
    assert to_json(rep) == js  # stable


def test_edge_cases_count_items_that_existed_by_the_window_end(demo: Demo) -> None:
    """Checked against a plain reading of every item: the population is the project's
    items created (in the source tool, else in the store) before the window ends; one
    item moved past the window's end leaves every share."""
    policy = _policy(demo)
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    demo_audits._review(
        demo.session, actor=OPERATOR, run=run, data=demo.data, rng=np.random.default_rng(0)
    )
    items = demo.session.execute(
        select(Item.id, Item.tags, Item.meta, Item.created_at).where(
            Item.project_id == demo.project.id
        )
    ).all()
    edge = [i for i in items if "edge-case" in (i.tags or [])]
    assert edge
    late = edge[0]
    meta = dict(late.meta or {}) | {"created_at": (run.window_end + timedelta(days=1)).isoformat()}
    demo.session.execute(update(Item).where(Item.id == late.id).values(meta=meta))
    demo.session.flush()
    run = audits.close_run(demo.session, actor=OPERATOR, run=run)
    rep = run.report
    assert rep is not None

    def born(i: Any) -> datetime:
        when = (i.meta or {}).get("created_at") if i.id != late.id else meta["created_at"]
        return datetime.fromisoformat(when) if isinstance(when, str) else i.created_at

    existing = {i.id for i in items if born(i) < run.window_end}
    edges = {i.id for i in edge} & existing
    labelled = set(
        demo.session.scalars(
            select(Annotation.item_id).where(
                Annotation.project_id == demo.project.id,
                Annotation.submitted_at >= run.window_start,
                Annotation.submitted_at < run.window_end,
            )
        )
    )
    audited = set(demo.session.scalars(select(AuditUnit.item_id).where(AuditUnit.run_id == run.id)))
    got = rep["edge_cases"]
    assert late.id not in existing
    assert got["population_share"] == pytest.approx(len(edges) / len(existing), abs=1e-4)
    assert got["labelled_in_window"]["n"] == len(edges)
    assert got["labelled_in_window"]["value"] == pytest.approx(
        len(edges & labelled) / len(edges), abs=1e-4
    )
    assert got["share_of_labelled"] == pytest.approx(
        len(edges & labelled) / len(labelled), abs=1e-4
    )
    assert got["share_of_audited"] == pytest.approx(len(edges & audited) / len(audited), abs=1e-4)


def test_comparison_and_trend_across_cycles(demo: Demo) -> None:
    first = _reviewed_run(demo, 0)
    second = _reviewed_run(demo, 1)
    assert second.report["comparison"]["previous_run"] == first.id
    assert {"delta", "p_value", "significant"} <= set(second.report["comparison"]["error_rate"])
    policy = demo.session.get(AuditPolicy, first.policy_id)
    rows = audits.trend(demo.session, policy)
    assert [r["run"] for r in rows] == [first.id, second.id]
    assert rows[0]["change"] is None and rows[1]["change"]["error_rate"] is not None
    assert rows[1]["error_rate"]["ci"] is not None


def test_due_windows_follow_the_cron(demo: Demo) -> None:
    policy = _policy(demo)
    policy.created_at = demo.data.annotations[0].submitted_at
    demo.session.flush()
    now = policy.created_at + timedelta(days=22)
    windows = audits.due_windows(demo.session, policy, now)
    assert len(windows) == 3 and all(e - s == timedelta(days=7) for s, e in windows[1:])
    assert all(e.weekday() == 0 and e.hour == 6 for _, e in windows)
    spec = dict(policy.spec, missed_windows="skip")
    policy.spec = spec
    assert len(audits.due_windows(demo.session, policy, now)) == 1


def test_dashboard_counts_first_reviews_like_the_report(demo: Demo) -> None:
    """Second reviews measure reviewer agreement; the dashboard's audit error rates and
    categories, like the report's, count first reviews only."""
    from labelloop.analytics import dashboard

    policy = _policy(demo, blind=False, double_review_fraction=0.5)
    start, end = _window(demo)
    run = audits.open_run(
        demo.session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
    ).run
    rows = demo.session.execute(
        select(
            AuditAssignment.id, AuditAssignment.double, AuditUnit.annotator_id, AuditUnit.snapshot
        )
        .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
        .where(AuditAssignment.run_id == run.id)
    ).all()
    assert any(r.double for r in rows)
    for r in rows:  # every first review says correct, every second one incorrect
        other = "refund" if r.snapshot["value"] != "refund" else "billing"
        review = (
            ReviewInput(
                verdict="incorrect", corrected_value=other, error_category="attention slip",
                severity="low",
            )
            if r.double
            else ReviewInput(verdict="correct")
        )  # fmt: skip
        audits.record_review(demo.session, actor=OPERATOR, assignment_id=r.id, review=review)
    overview, _ = dashboard.compute(demo.session, demo.project)
    payload = overview.payload()
    firsts: dict[int, int] = {}
    for r in rows:
        if not r.double:
            firsts[r.annotator_id] = firsts.get(r.annotator_id, 0) + 1
    names = dict(demo.session.execute(select(User.id, User.username)).tuples().all())
    audited = {s["annotator"]: s for s in payload["scorecard"] if s["audit_n"]}
    assert {a: s["audit_n"] for a, s in audited.items()} == {names[a]: n for a, n in firsts.items()}
    assert all(s["audit_error_rate"] == 0 for s in audited.values())
    categories = next(c for c in payload["charts"] if c["id"] == "categories")
    assert categories["labels"] == []
