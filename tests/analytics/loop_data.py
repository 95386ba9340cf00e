"""A small feedback loop with hand-countable figures, for the dashboard's feedback and
SLA sections (service tests and web tests build it in their own sessions).

Two recipients each label 20 items whose gold label is ``refund``: 10 in the ten days
before their note (4 labelled ``billing``) and 10 in the ten days after it (1). Notes,
all sent at :data:`SENT`:

====  =========  ==============  ===========  ================  =====  =============
note  recipient  template        confusion    found             items  acknowledged
====  =========  ==============  ===========  ================  =====  =============
1     first      boundary_case   billing→     30 h before sent  2      2 h after
                                 refund
2     second     boundary_case   billing→     10 h before       2      4 h after
                                 refund
3     second     attention_slip  other→       20 h before       1      no
                                 billing
4     first      boundary_case   refund→      (a draft)         3      no
                                 other
====  =========  ==============  ===========  ================  =====  =============

Expected: ``sent`` 3, ``acknowledged`` 2, ``ack_rate`` 0.6667; finding → sent hours
[30, 10, 20]: median 20, p90 28 (linear interpolation: 20 + 0.8 · 10); sent → ack hours
[2, 4]: median 3, p90 3.8. Effect (``boundary_case``, 2 notes): before 8/20 = 0.4,
after 2/20 = 0.1 (note 3's expected label ``billing`` has no annotations: left out).
Pareto (sent notes with a confusion, by items): billing → refund 4 items (2 notes),
share 0.8; other → billing 1 item, share 0.2, cumulative 1.0.

Deadlines (:func:`add_deadlines`, subject ``case``): one resolved at level 0 in time,
one resolved after escalating to level 1, one open and overdue at :data:`NOW`:
resolved 2, in time 1, open 1, overdue 1.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from labelloop.escalation.models import Deadline
from labelloop.feedback.models import FeedbackItem, FeedbackNote
from labelloop.projects.models import Annotation, GoldLabel, Item, Project

LABELS = ["billing", "refund", "other"]
SCHEMA = {"task_type": "single", "labels": LABELS}
SENT = datetime(2026, 10, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 12, tzinfo=UTC)


def _labelled(
    session: Session, project: Project, annotator_id: int, n: int, wrong: int, sign: int
) -> list[int]:
    """``n`` gold-refund items labelled by the annotator ``sign`` · 1..n days from
    :data:`SENT`, the first ``wrong`` as billing; their ids."""
    ids = []
    for k in range(1, n + 1):
        item = Item(
            project_id=project.id,
            external_id=f"loop-{annotator_id}-{sign}-{k}",
            payload={"text": f"please refund order {k}"},
            meta={},
            segments={},
            tags=[],
        )
        session.add(item)
        session.flush()
        session.add(GoldLabel(project_id=project.id, item_id=item.id, value="refund", source="t"))
        session.add(
            Annotation(
                project_id=project.id,
                item_id=item.id,
                annotator_id=annotator_id,
                value="billing" if k <= wrong else "refund",
                submitted_at=SENT + timedelta(days=sign * k),
                active_seconds=10.0,
                source="test",
            )
        )
        ids.append(item.id)
    session.flush()
    return ids


def _note(
    project: Project,
    recipient: int,
    items: list[int],
    *,
    template: str = "boundary_case",
    confusion: tuple[str, str] = ("billing", "refund"),
    found_hours: float = 0.0,
    ack_hours: float | None = None,
    status: str = "sent",
) -> FeedbackNote:
    sent = status != "draft"
    return FeedbackNote(
        project_id=project.id,
        recipient_id=recipient,
        template=template,
        status="acknowledged" if ack_hours is not None else status,
        message="refund, not billing",
        given=confusion[0],
        expected=confusion[1],
        source="manual",
        created_by="test",
        sent_by="user:lead" if sent else None,
        found_at=SENT - timedelta(hours=found_hours),
        sent_at=SENT if sent else None,
        acknowledged_at=None if ack_hours is None else SENT + timedelta(hours=ack_hours),
        response=None if ack_hours is None else "agree",
        items=[FeedbackItem(item_id=i, reference_source="gold") for i in items],
    )


def add_feedback(session: Session, project: Project, first: int, second: int) -> None:
    """The labels and the four notes of the module doc (user ids ``first``, ``second``)."""
    wrong = {}
    for who in (first, second):
        wrong[who] = _labelled(session, project, who, 10, 4, -1)
        _labelled(session, project, who, 10, 1, +1)
    session.add_all(
        [
            _note(project, first, wrong[first][:2], found_hours=30, ack_hours=2),
            _note(project, second, wrong[second][:2], found_hours=10, ack_hours=4),
            _note(
                project,
                second,
                wrong[second][2:3],
                template="attention_slip",
                confusion=("other", "billing"),
                found_hours=20,
            ),
            _note(project, first, wrong[first][:3], confusion=("refund", "other"), status="draft"),
        ]
    )
    session.flush()


def deadline(
    project: Project,
    subject_id: int,
    *,
    subject: str = "case",
    slas: list[int | str] | None = None,
    started: datetime,
    level: int = 0,
    due: datetime | None = None,
    resolved: datetime | None = None,
) -> Deadline:
    """A deadline row, due ``due`` (by default ``slas[0]`` minutes after ``started``;
    pass ``due`` for business-day SLAs)."""
    slas = slas or [60, 120, 240]
    return Deadline(
        project_id=project.id,
        subject=subject,
        subject_id=subject_id,
        title=f"{subject} {subject_id}",
        link=f"/{subject}/{subject_id}",
        path=["adjudicator", "lead", "owner"][: len(slas)],
        level=level,
        slas=slas,
        started_at=started,
        due_at=due or started + timedelta(minutes=int(slas[0])),
        escalated_at=started + timedelta(minutes=60) if level else None,
        resolved_at=resolved,
    )


def add_deadlines(session: Session, project: Project, base_id: int) -> None:
    """The three ``case`` deadlines of the module doc (subject ids from ``base_id``)."""
    start = NOW - timedelta(hours=10)
    session.add_all(
        [
            deadline(project, base_id, started=start, resolved=start + timedelta(minutes=30)),
            deadline(
                project,
                base_id + 1,
                started=start,
                level=1,
                due=start + timedelta(minutes=180),
                resolved=start + timedelta(minutes=90),
            ),
            deadline(project, base_id + 2, started=NOW - timedelta(hours=3)),
        ]
    )
    session.flush()
