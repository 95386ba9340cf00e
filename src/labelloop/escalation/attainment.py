"""SLA attainment: how often what waits on someone is done at the first level in time.

Per deadline subject (``case``, ``feedback``, ...) of a project, over its deadlines
(:class:`~labelloop.escalation.models.Deadline`):

* **resolved** ``n``: deadlines with ``resolved_at`` set, at whatever level;
* **on time** ``k``: those resolved at level 0 strictly before their first due time,
  ``started_at + slas[0]`` (minutes, or business days:
  :func:`labelloop.escalation.paths.due_after`), so never escalated, and not late while
  the worker had yet to move them. A deadline's ``due_at`` is that first due time for
  as long as it stays at level 0 (:func:`~labelloop.escalation.service.track` sets it;
  only escalation, which raises the level, moves it), so the count is one SQL
  aggregate, ``level = 0 AND resolved_at < due_at``, however many deadlines there are;
* **attainment** ``p = k / n`` with its Wilson 95 % score interval (Wilson 1927,
  :func:`labelloop.stats.wilson_interval`):
  ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``, ``z = 1.96``;
* **open**: deadlines not resolved; **overdue**: open ones whose current due time has
  passed (``due_at <= now``, the worker's own test for escalating).

A read: nothing is written. Leads (``project.manage``) read it, as they read the
dashboard that shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.escalation.models import Deadline
from labelloop.projects.models import Project
from labelloop.stats import wilson_interval
from labelloop.store.base import utcnow


@dataclass(frozen=True)
class Attainment:
    """One subject's SLA attainment (``rate`` and ``ci`` are None with nothing resolved)."""

    subject: str
    resolved: int
    on_time: int
    rate: float | None
    ci: tuple[float, float] | None
    open: int
    overdue: int


def sla_attainment(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> list[Attainment]:
    """Attainment per subject of the project's deadlines, by subject name (module doc)."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    now = now or utcnow()
    d = Deadline
    resolved, is_open = d.resolved_at.is_not(None), d.resolved_at.is_(None)
    rows = session.execute(
        select(
            d.subject,
            _total(resolved),
            # at level 0, due_at is still the first due time (module doc)
            _total(and_(resolved, d.level == 0, d.resolved_at < d.due_at)),
            _total(is_open),
            _total(and_(is_open, d.due_at <= now)),
        )
        .where(d.project_id == project.id)
        .group_by(d.subject)
        .order_by(d.subject)
    ).tuples()
    return [_attainment(str(s), int(n), int(k), int(o), int(late)) for s, n, k, o, late in rows]


def _total(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SQL: how many rows of the group meet ``condition``."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _attainment(subject: str, resolved: int, on_time: int, open_: int, overdue: int) -> Attainment:
    rate = on_time / resolved if resolved else None
    ci = wilson_interval(rate, resolved) if rate is not None else None
    return Attainment(subject, resolved, on_time, rate, ci, open_, overdue)
