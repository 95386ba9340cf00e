"""Case detection: each signal, the priority formula, idempotence, permissions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from labelloop.accounts.actor import Actor
from labelloop.adjudication import service
from labelloop.adjudication.models import Case
from labelloop.audits.models import AuditAssignment, AuditPolicy, AuditReview, AuditRun, AuditUnit
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.escalation.models import Deadline, Notification
from labelloop.trail.models import Event
from tests.adjudication.conftest import Court

OPERATOR = Actor.local("test")


def _cases(court: Court) -> dict[str, Case]:
    rows = court.session.scalars(select(Case).where(Case.project_id == court.project.id))
    names = {i.id: name for name, i in court.items.items()}
    return {names[c.item_id]: c for c in rows if c.item_id in names}


def _background(court: Court, n: int = 12) -> None:
    """Unanimous items: Dawid–Skene learns the annotators from them (on three items
    alone it would trust whoever agrees with the rest most, and be overconfident)."""
    for i in range(n):
        court.item(f"calm-{i}", *(["refund", "billing", "technical"][i % 3],) * 3)


def test_each_vote_signal_opens_one_case(court: Court) -> None:
    _background(court)
    court.item("spread", "refund", "billing", "technical")
    court.item("split", "refund", "billing")
    got = service.detect(court.session, actor=court.adjudicator, project=court.project)
    cases = _cases(court)
    assert not any(name.startswith("calm") for name in cases)
    assert cases["spread"].reason == "posterior"  # the stronger signal names the case
    assert {s["reason"] for s in cases["spread"].signals} == {"posterior", "spread"}
    assert cases["spread"].uncertainty >= 2 / 3 - 1e-4  # 1 - the top label's share
    assert cases["split"].reason == "posterior"
    assert got.opened == 2 and got.by_reason == {"posterior": 2}


def test_model_disagreeing_with_a_confident_consensus(court: Court) -> None:
    # many unanimous items teach the model that these annotators are reliable
    for n in range(12):
        court.item(f"sure-{n}", *(["refund", "billing"][n % 2],) * 5)
    court.factories.PredictionFactory(item=court.items["sure-0"], value="technical", score=0.8)
    court.factories.PredictionFactory(item=court.items["sure-1"], value="billing", score=0.8)
    service.detect(court.session, actor=court.adjudicator, project=court.project)
    cases = _cases(court)
    assert set(cases) == {"sure-0"}
    assert cases["sure-0"].reason == "model"
    assert "technical" in cases["sure-0"].signals[0]["detail"]
    assert cases["sure-0"].uncertainty == 0.25  # the model's dissent, kept as a doubt


def test_uncertain_flags_and_audit_reviews(court: Court) -> None:
    flagged = court.item("flagged", "refund")
    court.session.flush()
    ann = flagged.id
    from labelloop.projects.models import Annotation

    a = court.session.scalar(select(Annotation).where(Annotation.item_id == ann))
    assert a is not None
    a.flags = [{"code": "uncertain", "field": "value", "message": "both?", "source": "annotator"}]
    unsure = court.item("unsure", "refund")
    disputed = court.item("disputed", "refund")
    _review(court, unsure, ["unsure"])
    _review(court, disputed, ["correct", "incorrect"])
    service.detect(court.session, actor=court.adjudicator, project=court.project)
    cases = _cases(court)
    assert cases["flagged"].reason == "flag"
    assert cases["unsure"].reason == "audit_unsure"
    assert cases["disputed"].reason == "audit_disputed"
    # a person's doubt counts as a coin flip at least
    assert all(c.uncertainty == 0.5 for c in cases.values())


def _review(court: Court, item: object, verdicts: list[str]) -> None:
    s, f = court.session, court.factories
    from labelloop.projects.models import Annotation

    ann = s.scalar(select(Annotation).where(Annotation.item_id == item.id))  # type: ignore[attr-defined]
    assert ann is not None
    policy = AuditPolicy(project_id=court.project.id, name=f"p{item.id}", cadence="manual", spec={})  # type: ignore[attr-defined]
    s.add(policy)
    s.flush()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = AuditRun(
        policy_id=policy.id,
        project_id=court.project.id,
        window_start=now,
        window_end=now,
        seed=1,
        policy_snapshot={},
    )
    s.add(run)
    s.flush()
    unit = AuditUnit(
        run_id=run.id,
        annotation_id=ann.id,
        item_id=ann.item_id,
        annotator_id=ann.annotator_id,
        stratum="all",
        inclusion_probability=1.0,
        snapshot={},
    )
    s.add(unit)
    s.flush()
    for verdict in verdicts:
        reviewer = f.UserFactory()
        asg = AuditAssignment(run_id=run.id, unit_id=unit.id, reviewer_id=reviewer.id)
        s.add(asg)
        s.flush()
        corrected = "billing" if verdict == "incorrect" else None
        s.add(
            AuditReview(
                run_id=run.id,
                assignment_id=asg.id,
                unit_id=unit.id,
                reviewer_id=reviewer.id,
                verdict=verdict,
                corrected_value=corrected,
            )
        )
    s.flush()


def test_detection_is_idempotent(court: Court) -> None:
    _background(court)
    court.item("spread", "refund", "billing", "technical")
    first = service.detect(court.session, actor=court.adjudicator, project=court.project)
    again = service.detect(court.session, actor=court.adjudicator, project=court.project)
    assert (first.opened, again.opened) == (1, 0)
    n = court.session.scalar(select(func.count(Case.id)).where(Case.project_id == court.project.id))
    assert n == 1
    events = court.session.scalars(select(Event).where(Event.action == "case.detect")).all()
    assert [len(e.after["opened"]) for e in events] == [1, 0]


def test_priority_is_uncertainty_times_impact(court: Court) -> None:
    _background(court)
    plain = court.item("plain", "refund", "billing")
    rare = court.item("rare", "refund", "billing", segments={"language": "mt"})
    gold = court.item("gold", "refund", "billing")
    court.factories.GoldLabelFactory(item=gold, value="refund")
    service.detect(court.session, actor=court.adjudicator, project=court.project)
    cases = _cases(court)
    p = cases["plain"]
    assert p.impact == pytest.approx(1 + 0.5, abs=1e-4)  # one vote of two differs
    assert p.priority == pytest.approx(p.uncertainty * p.impact, abs=1e-3)
    # scarcity: 1 - n(mt)/n(en), the 20 exemplar items being English too
    n_en = 20 + 12 + 2
    assert cases["rare"].impact == pytest.approx(1 + (1 - 1 / n_en) + 0.5, abs=1e-4)
    assert cases["gold"].impact == pytest.approx(1 + 1 + 0.5, abs=1e-4)
    assert cases["gold"].priority > p.priority
    assert plain.id != rare.id


def test_detect_and_list_need_adjudicate(court: Court) -> None:
    for actor in (court.auditor, court.outsider, Actor.for_user(court.annotators[0].id, "a")):
        with pytest.raises(PermissionDenied):
            service.detect(court.session, actor=actor, project=court.project)
        with pytest.raises(PermissionDenied):
            service.list_cases(court.session, actor=actor, project=court.project)


def test_new_cases_get_a_deadline_and_tell_the_adjudicators(court: Court) -> None:
    _background(court)
    court.item("spread", "refund", "billing", "technical")
    service.detect(court.session, actor=court.adjudicator, project=court.project)
    (row,) = service.list_cases(court.session, actor=court.lead, project=court.project)
    assert row.as_json()["level"] == "adjudicator"
    assert set(row.as_json()) >= {
        "id",
        "item",
        "reason",
        "priority",
        "status",
        "opened_at",
        "due_at",
        "level",
    }
    d = court.session.scalar(select(Deadline).where(Deadline.subject_id == row.case.id))
    assert d is not None and (d.due_at - d.started_at).total_seconds() == 48 * 3600
    note = court.session.scalar(
        select(Notification).where(Notification.user_id == court.adjudicator.user_id)
    )
    assert note is not None and note.kind == "case.open" and "1 new case" in note.title


def test_open_by_hand(court: Court) -> None:
    item = court.item("odd", "refund", "refund")
    with pytest.raises(ValidationFailed) as err:
        service.open_case(
            court.session, actor=court.auditor, project=court.project, item=item.id, note=" "
        )
    assert err.value.violations[0].field == "note"
    case = service.open_case(
        court.session,
        actor=court.auditor,
        project=court.project,
        item=item.id,
        note="the customer asks for both",
    )
    assert (case.reason, case.uncertainty, case.note) == (
        "manual",
        0.5,
        "the customer asks for both",
    )
    with pytest.raises(Conflict):
        service.open_case(
            court.session, actor=court.lead, project=court.project, item=item.id, note="again"
        )
    with pytest.raises(PermissionDenied):
        annotator = Actor.for_user(court.annotators[0].id, "a")
        service.open_case(
            court.session, actor=annotator, project=court.project, item=item.id, note="x"
        )
    assert service.detect(court.session, actor=OPERATOR, project=court.project).opened == 0


def test_next_case_walks_down_the_queue(court: Court) -> None:
    ids = []
    for n in range(3):
        item = court.item(f"hand-{n}", "refund")
        ids.append(
            service.open_case(
                court.session,
                actor=court.adjudicator,
                project=court.project,
                item=item.id,
                note="which one?",
            ).id
        )
    order = [
        r.case.id
        for r in service.list_cases(court.session, actor=court.lead, project=court.project)
    ]
    assert sorted(order) == sorted(ids)
    walk = [service.next_case(court.session, actor=court.lead, project=court.project).case.id]  # type: ignore[union-attr]
    for _ in range(3):
        found = service.next_case(
            court.session, actor=court.lead, project=court.project, after=walk[-1]
        )
        assert found is not None
        walk.append(found.case.id)
    assert walk == [*order, order[0]]  # down the queue, then back to the top
