"""Which guideline version was in force when: the version stamped on each annotation.

A version is in force from its ``published_at`` until the next one is published. An
annotation made before the first version has none. Used by every path that stores
annotations (the queue, the API, imports), so it reads only the versions table.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.guidelines.models import GuidelineVersion
from labelloop.store.base import utcnow


def version_at(session: Session, project_id: int, when: datetime | None = None) -> str | None:
    """The number of the version in force at ``when`` (default now), or None."""
    return session.scalar(
        select(GuidelineVersion.number)
        .where(
            GuidelineVersion.project_id == project_id,
            GuidelineVersion.published_at.is_not(None),
            GuidelineVersion.published_at <= (when or utcnow()),
        )
        .order_by(GuidelineVersion.published_at.desc(), GuidelineVersion.id.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class Timeline:
    """Every published version of a project by time, to stamp many annotations at once."""

    starts: Sequence[datetime]
    numbers: Sequence[str]

    def at(self, when: datetime | None) -> str | None:
        when = when or utcnow()
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        i = bisect_right(self.starts, when)
        return self.numbers[i - 1] if i else None


def timeline(session: Session, project_id: int) -> Timeline:
    rows = session.execute(
        select(GuidelineVersion.published_at, GuidelineVersion.number)
        .where(
            GuidelineVersion.project_id == project_id,
            GuidelineVersion.published_at.is_not(None),
        )
        .order_by(GuidelineVersion.published_at, GuidelineVersion.id)
    ).all()
    return Timeline([r[0] for r in rows if r[0] is not None], [r[1] for r in rows])
