"""An open audit run's unreviewed units wait on the reviewers: the run's ``audit_run``
deadline starts when it opens, climbs the project's path when nobody reviews, and stops
when the last unit is reviewed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment
from labelloop.audits.schemas import ReviewInput
from labelloop.escalation import paths
from labelloop.escalation import service as escalation

from .conftest import OPERATOR, Demo
from .test_review_order import _open


def test_unreviewed_units_escalate_and_stop_when_reviewed(demo: Demo) -> None:
    s = demo.session
    paths.set_path(
        s,
        actor=OPERATOR,
        project_id=demo.project.id,
        subject="audit_run",
        spec="auditor:2h, lead:1d",
    )
    opened = _open(demo, sample_size=12, min_per_stratum=1, double_review_fraction=0.0)
    run = opened.run
    d = escalation.deadline_of(s, "audit_run", run.id)
    assert d is not None and d.owner == "auditor" and f"{run.sample_size} units" in d.title
    assert d.due_at == d.started_at + timedelta(hours=2)
    (moved,) = escalation.escalate_due(s, actor=OPERATOR, now=d.due_at + timedelta(seconds=1))
    assert moved.owner == "lead" and moved.notified >= 1
    assignments = s.execute(
        select(AuditAssignment.id, AuditAssignment.reviewer_id).where(
            AuditAssignment.run_id == run.id
        )
    ).all()
    for n, (assignment_id, _reviewer) in enumerate(assignments):
        audits.record_review(
            s,
            actor=OPERATOR,
            assignment_id=assignment_id,
            review=ReviewInput(verdict="correct"),
        )
        s.refresh(d)
        assert (d.resolved_at is not None) == (n == len(assignments) - 1)
