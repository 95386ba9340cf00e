"""A stored, precomputed dashboard for one project."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow


class DashboardSnapshot(Base):
    """The lead dashboard of a project as computed at ``computed_at``.

    ``trail_seq`` is the newest audit-trail event of the project the computation saw:
    every write to the project's items, annotations, gold labels and audits appends an
    event with the project's id, so a newer event means the snapshot is stale.
    ``max_annotation_id`` lets the page count the annotations added since, cheaply.
    Derived data: it is recomputed from the tables at any time and older snapshots of
    the project are deleted when a new one is stored.
    """

    __tablename__ = "dashboard_snapshots"
    __table_args__ = (Index("ix_dashboard_snapshots_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    compute_seconds: Mapped[float] = mapped_column(default=0.0)
    trail_seq: Mapped[int] = mapped_column(default=0)
    max_annotation_id: Mapped[int] = mapped_column(default=0)
    annotation_count: Mapped[int] = mapped_column(default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(deferred=True)  # read when used
