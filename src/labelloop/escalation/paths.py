"""A project's escalation paths: for each kind of thing that waits on someone (its
*subject*), the role that owns it at each level and how long each level may take.

A path is written the way a lead says it: ``"auditor:24h, adjudicator:48h, lead:5bd"``
(levels in order; an SLA in minutes ``m``, hours ``h``, calendar days ``d`` or business
days ``bd``, i.e. Monday to Friday). Roles are project roles plus ``owner`` (the
guideline owner, see :mod:`labelloop.escalation.service`).

Subjects and what ends their wait:

* ``case``: an adjudication case, until it is ruled or dismissed;
* ``flag``: an annotation its annotator flagged as uncertain, until a case opens on its
  item (the case's deadline takes over); an item with a case, open or ruled, starts no
  flag clock;
* ``audit_run``: the unreviewed units of an open audit run, until the last is reviewed
  or the run is closed;
* ``feedback``: a disputed feedback note that no case can settle (a note without
  items), until it is resolved. A dispute on an item opens (or joins) that item's case,
  which carries the deadline.

A project without its own path for a subject uses :data:`DEFAULTS` (for ``case``, the
adjudication settings' ``sla_hours`` at every level).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission, Role
from labelloop.errors import ValidationFailed
from labelloop.escalation.models import EscalationPath
from labelloop.projects.validation import Violation
from labelloop.store.base import utcnow

OWNER = "owner"
ROLES = frozenset({*(r.value for r in Role if r is not Role.MODEL), OWNER})
SUBJECTS = ("case", "flag", "audit_run", "feedback")

#: Paths of a project that set none.
DEFAULTS: dict[str, str] = {
    "case": "adjudicator:48h, lead:48h, owner:48h",  # each level: the settings' sla_hours
    "flag": "adjudicator:24h, lead:48h, owner:5bd",
    "audit_run": "auditor:24h, lead:48h, owner:5bd",
    "feedback": "lead:24h, owner:5bd",
}

_LEVEL = re.compile(r"^\s*([a-z_]+)\s*:\s*(\d+(?:\.\d+)?)\s*(m|h|d|bd)\s*$")
_MINUTES = {"m": 1, "h": 60, "d": 1440}
#: Longest SLA of one level (a year), and most levels in a path.
MAX_MINUTES = 366 * 1440
MAX_LEVELS = 8


@dataclass(frozen=True)
class Level:
    role: str
    #: minutes (``int``), or business days as ``"<n>bd"``
    sla: int | str

    def text(self) -> str:
        return f"{self.role}:{sla_text(self.sla)}"


def sla_text(sla: int | str) -> str:
    """``90`` → ``"90m"``, ``2880`` → ``"48h"``, a week or more in whole days as days
    (``"7d"``); ``"5bd"`` stays."""
    if isinstance(sla, str):
        return sla
    if sla % 60:
        return f"{sla}m"
    return f"{sla // 1440}d" if sla >= 7 * 1440 and sla % 1440 == 0 else f"{sla // 60}h"


def parse(spec: str, *, field: str = "levels") -> list[Level]:
    """Levels of ``"role:sla, role:sla, ..."``; :class:`ValidationFailed` naming the
    level and what is wrong."""
    parts = [p for p in spec.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValidationFailed(
            "an escalation path needs at least one level",
            [Violation(field, "required", "write levels like 'auditor:24h, lead:5bd'")],
        )
    if len(parts) > MAX_LEVELS:
        raise ValidationFailed(
            f"an escalation path has at most {MAX_LEVELS} levels",
            [Violation(field, "too_long", f"{len(parts)} levels")],
        )
    return [_level(part, i + 1, field) for i, part in enumerate(parts)]


def _level(part: str, position: int, field: str) -> Level:
    m = _LEVEL.match(part.lower())
    where = f"{field}[{position}]"
    if m is None:
        raise ValidationFailed(
            f"level {position} {part.strip()!r} is not 'role:SLA' (SLA like 30m, 24h, 2d or 5bd)",
            [Violation(where, "format", "write role:SLA, e.g. lead:5bd")],
        )
    role, amount, unit = m.group(1), float(m.group(2)), m.group(3)
    if role not in ROLES:
        raise ValidationFailed(
            f"level {position}: unknown role {role!r}; one of {', '.join(sorted(ROLES))}",
            [Violation(where, "role", f"unknown role {role!r}")],
        )
    minutes = amount * (_MINUTES.get(unit) or 1440)
    if not 1 <= minutes <= MAX_MINUTES or (unit == "bd" and amount != int(amount)):
        raise ValidationFailed(
            f"level {position}: SLA {amount:g}{unit} must be 1 minute to a year "
            "(whole business days)",
            [Violation(where, "range", "SLA out of range")],
        )
    return Level(role, f"{int(amount)}bd" if unit == "bd" else round(minutes))


def due_after(start: datetime, sla: int | str) -> datetime:
    """When a level that starts at ``start`` is due: ``sla`` minutes later, or for
    ``"<n>bd"`` the same time of day ``n`` business days later (Saturdays and Sundays do
    not count; a start on a weekend counts from the Monday after)."""
    if isinstance(sla, int):
        return start + timedelta(minutes=sla)
    days = int(sla.removesuffix("bd"))
    when = start
    if when.weekday() >= 5:  # Saturday or Sunday: the clock starts on Monday 00:00
        when = (when + timedelta(days=7 - when.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
    while days > 0:
        when += timedelta(days=1)
        if when.weekday() < 5:
            days -= 1
    return when


def _stored(session: Session, project_id: int) -> dict[str, list[Level]]:
    rows = session.scalars(select(EscalationPath).where(EscalationPath.project_id == project_id))
    return {
        row.subject: [Level(str(role), sla) for role, sla in row.levels]
        for row in rows
        if row.subject in SUBJECTS
    }


def path_for(session: Session, project_id: int, subject: str) -> list[Level]:
    """The levels a new ``subject`` deadline of the project follows (no permission
    check: called by the features that start the clock)."""
    own = _stored(session, project_id).get(subject)
    return own if own is not None else _default(session, project_id, subject)


def _default(session: Session, project_id: int, subject: str) -> list[Level]:
    """:data:`DEFAULTS`; the ``case`` path takes the adjudication settings' SLA."""
    levels = parse(DEFAULTS[subject])
    if subject != "case":
        return levels
    from labelloop.adjudication.service import settings_of
    from labelloop.projects.models import Project

    project = session.get(Project, project_id)
    if project is None:
        return levels
    minutes = max(1, round(settings_of(session, project).sla_hours * 60))
    return [Level(level.role, minutes) for level in levels]


def paths(session: Session, *, actor: Actor, project_id: int) -> dict[str, dict[str, Any]]:
    """Every subject's path of the project: ``{subject: {"levels": "...", "default":
    bool}}`` (``project.read``)."""
    require(session, actor, Permission.PROJECT_READ, project_id=project_id)
    own = _stored(session, project_id)
    return {
        subject: {
            "levels": ", ".join(
                lv.text() for lv in own.get(subject) or _default(session, project_id, subject)
            ),
            "default": subject not in own,
        }
        for subject in SUBJECTS
    }


def set_path(
    session: Session, *, actor: Actor, project_id: int, subject: str, spec: str | None
) -> list[Level]:
    """Set (``spec``) or reset to the default (``None``) a subject's path
    (``project.manage``). Deadlines already running keep the path they started with."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project_id)
    if subject not in SUBJECTS:
        raise ValidationFailed(
            f"unknown subject {subject!r}; one of {', '.join(SUBJECTS)}",
            [Violation("subject", "choice", f"unknown subject {subject!r}")],
        )
    levels = parse(spec) if spec is not None else []
    row = session.get(EscalationPath, (project_id, subject))
    before = row.levels if row is not None else None
    if spec is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(EscalationPath(project_id=project_id, subject=subject, levels=_raw(levels)))
    else:
        row.levels, row.updated_at = _raw(levels), utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="escalation.path",
        entity_type="project",
        entity_id=project_id,
        project_id=project_id,
        before={"subject": subject, "levels": before},
        after={"subject": subject, "levels": _raw(levels) if spec is not None else None},
    )
    return levels or path_for(session, project_id, subject)


def _raw(levels: Sequence[Level]) -> list[list[Any]]:
    return [[lv.role, lv.sla] for lv in levels]
