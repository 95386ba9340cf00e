"""ORM models of adjudication: per-project detection settings, **cases** (an item whose
labels conflict or that someone flagged) and **rulings** (the final label with its
rationale).

At most one case per item is open at a time: a partial unique index on ``item_id``
where ``status = 'open'`` (both databases), which is what makes detection idempotent
when two workers run it at once. A case has at most one ruling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow

OPEN = "open"
RULED = "ruled"
DISMISSED = "dismissed"

#: Detection defaults (see docs/adjudication.md).
DEFAULT_POSTERIOR_BELOW = 0.7
DEFAULT_SPREAD_MIN_VOTES = 3
DEFAULT_SPREAD_MAX_SHARE = 0.5
DEFAULT_MODEL_CONSENSUS = 0.9
DEFAULT_MODEL_CONFIDENCE = 0.8
DEFAULT_RATIONALE_MIN = 20
DEFAULT_SLA_HOURS = 48.0
DEFAULT_DETECT_MINUTES = 60


class AdjudicationSettings(Base):
    """A project's detection thresholds, rationale minimum, SLA and anonymity."""

    __tablename__ = "adjudication_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    posterior_below: Mapped[float] = mapped_column(default=DEFAULT_POSTERIOR_BELOW)
    spread_min_votes: Mapped[int] = mapped_column(default=DEFAULT_SPREAD_MIN_VOTES)
    spread_max_share: Mapped[float] = mapped_column(default=DEFAULT_SPREAD_MAX_SHARE)
    model_consensus: Mapped[float] = mapped_column(default=DEFAULT_MODEL_CONSENSUS)
    model_confidence: Mapped[float] = mapped_column(default=DEFAULT_MODEL_CONFIDENCE)
    rationale_min: Mapped[int] = mapped_column(default=DEFAULT_RATIONALE_MIN)
    sla_hours: Mapped[float] = mapped_column(default=DEFAULT_SLA_HOURS)
    anonymous: Mapped[bool] = mapped_column(default=False)
    #: the worker runs detection when the last run is at least this old
    detect_minutes: Mapped[int] = mapped_column(default=DEFAULT_DETECT_MINUTES)
    detected_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    """One disagreement case on one item."""

    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "uq_cases_open_item",
            "item_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_cases_project_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(30))  # the strongest signal
    #: every signal found: [{"reason": ..., "detail": ...}]
    signals: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    priority: Mapped[float] = mapped_column(default=0.0)
    uncertainty: Mapped[float] = mapped_column(default=0.0)
    impact: Mapped[float] = mapped_column(default=1.0)
    posterior: Mapped[float | None] = mapped_column()  # of the consensus label
    consensus: Mapped[str | None] = mapped_column(Text)  # label key, when there were votes
    status: Mapped[str] = mapped_column(String(10), default=OPEN)
    note: Mapped[str | None] = mapped_column(Text)  # why it was opened by hand
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class Ruling(Base):
    """The adjudicator's decision on a case: the item's adjudicated label."""

    __tablename__ = "rulings"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    value: Mapped[Any] = mapped_column()
    rationale: Mapped[str] = mapped_column(Text)
    rule_refs: Mapped[list[str]] = mapped_column(default=list)
    gold: Mapped[bool] = mapped_column(default=False)
    exemplar_rule: Mapped[str | None] = mapped_column(String(50))
    amendment: Mapped[str | None] = mapped_column(Text)
    notable: Mapped[bool] = mapped_column(default=False)
    adjudicator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    adjudicator: Mapped[str] = mapped_column(String(200))  # the actor's name
    guideline_version: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    digested_at: Mapped[datetime | None] = mapped_column()
