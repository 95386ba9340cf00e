"""SLA attainment on a hand-built set of deadlines: what counts as in time (level 0,
strictly before the first due time, business days included), open and overdue at an
injected now, the Wilson interval against statsmodels, and who may read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from sqlalchemy.orm import Session
from statsmodels.stats.proportion import proportion_confint

from labelloop.accounts.actor import Actor
from labelloop.errors import PermissionDenied
from labelloop.escalation.attainment import Attainment, sla_attainment
from tests.analytics.loop_data import NOW, deadline

FRIDAY = datetime(2026, 10, 30, 10, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 3, 10, tzinfo=UTC)  # two business days after FRIDAY


def _wilson(k: int, n: int) -> tuple[float, float]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def test_attainment_per_subject(session: Session, factories: ModuleType) -> None:
    project, other = factories.ProjectFactory(), factories.ProjectFactory()
    start = NOW - timedelta(hours=10)
    after = [30, 59, 60]  # minutes to resolution at level 0; the SLA is 60: 60 is late
    rows = [
        deadline(project, 900 + i, started=start, resolved=start + timedelta(minutes=m))
        for i, m in enumerate(after)
    ]
    rows += [
        deadline(
            project,
            903,
            started=start,
            level=1,
            due=start + timedelta(minutes=180),
            resolved=start + timedelta(minutes=90),
        ),
        deadline(project, 904, started=start, due=NOW - timedelta(minutes=1)),  # overdue
        deadline(project, 905, started=start, due=NOW + timedelta(hours=1)),  # open
        deadline(project, 906, started=start, due=NOW),  # due now: overdue
        # two business days from a Friday: Tuesday, so Monday is in time
        *[
            deadline(
                project,
                910 + i,
                subject="feedback",
                slas=["2bd", "5bd"],
                started=FRIDAY,
                due=TUESDAY,
                resolved=when,
            )
            for i, when in enumerate([NOW - timedelta(hours=3), TUESDAY + timedelta(hours=1)])
        ],
        deadline(other, 920, started=start, resolved=start),  # another project's
    ]
    session.add_all(rows)
    session.flush()

    got = sla_attainment(session, actor=Actor.local("test"), project=project, now=NOW)

    assert [(a.subject, a.resolved, a.on_time, a.open, a.overdue) for a in got] == [
        ("case", 4, 2, 3, 2),
        ("feedback", 2, 1, 0, 0),
    ]
    for row, (k, n) in zip(got, [(2, 4), (1, 2)], strict=True):
        assert row.rate == k / n
        assert row.ci is not None
        assert row.ci == pytest.approx(_wilson(k, n), abs=1e-9)


def test_nothing_resolved_has_no_rate(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    session.add(deadline(project, 930, started=NOW - timedelta(minutes=30)))
    session.flush()
    got = sla_attainment(session, actor=Actor.local("test"), project=project, now=NOW)
    assert got == [Attainment("case", 0, 0, None, None, 1, 0)]
    empty = factories.ProjectFactory()
    assert sla_attainment(session, actor=Actor.local("test"), project=empty, now=NOW) == []


def test_only_leads_read_it(session: Session, factories: ModuleType) -> None:
    project = factories.ProjectFactory()
    lead, annotator = factories.UserFactory(), factories.UserFactory()
    factories.MembershipFactory(user=lead, project=project, lead=True)
    factories.MembershipFactory(user=annotator, project=project)
    as_lead = Actor.for_user(lead.id, lead.username)
    assert sla_attainment(session, actor=as_lead, project=project) == []
    with pytest.raises(PermissionDenied):
        sla_attainment(
            session, actor=Actor.for_user(annotator.id, annotator.username), project=project
        )


def test_through_the_escalation_service(session: Session, factories: ModuleType) -> None:
    """Deadlines started with ``track``, escalated by ``escalate_due`` and stopped with
    ``resolve``: one with a business-day SLA done on the Monday (in time), one done after
    escalating, one done late before the worker moved it (both not in time)."""
    from labelloop.escalation import service as escalation

    project = factories.ProjectFactory()
    paths: list[tuple[int, list[int | str]]] = [
        (940, ["2bd", 60]),
        (941, [60, 60]),
        (942, [60, 60]),
    ]
    for subject_id, slas in paths:
        escalation.track(
            session,
            project_id=project.id,
            subject="case",
            subject_id=subject_id,
            title=f"case {subject_id}",
            link=f"/cases/{subject_id}",
            path=["adjudicator", "lead"],
            slas=slas,
            now=FRIDAY,
        )
    escalation.resolve(session, subject="case", subject_id=942, now=FRIDAY + timedelta(minutes=70))
    moved = escalation.escalate_due(
        session, actor=Actor.local("test"), now=FRIDAY + timedelta(minutes=75)
    )
    assert [m.subject_id for m in moved] == [941]
    escalation.resolve(session, subject="case", subject_id=941, now=FRIDAY + timedelta(hours=2))
    escalation.resolve(session, subject="case", subject_id=940, now=NOW - timedelta(hours=3))
    got = sla_attainment(session, actor=Actor.local("test"), project=project, now=NOW)
    assert [(a.resolved, a.on_time, a.open, a.overdue) for a in got] == [(3, 1, 0, 0)]
