"""Audit policies, runs, frozen samples, review assignments and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow


class AuditPolicy(Base):
    """What to audit and when. ``spec`` holds the validated
    :class:`labelloop.audits.schemas.PolicySpec` (filters, strata, allocation, sample
    size or target half-width, reviewer pool, blindness, double review, taxonomy)."""

    __tablename__ = "audit_policies"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    cadence: Mapped[str] = mapped_column(String(100))  # a cron expression, or "manual"
    spec: Mapped[dict[str, Any]] = mapped_column()
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRun(Base):
    """One execution of a policy over one window. Unique per (policy, window start), so
    two workers, a restart or a manual trigger can never open the same window twice."""

    __tablename__ = "audit_runs"
    __table_args__ = (
        UniqueConstraint("policy_id", "window_start"),
        CheckConstraint("status in ('opening', 'open', 'closed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("audit_policies.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(10), default="open")
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")  # schedule | manual
    seed: Mapped[int] = mapped_column()
    policy_snapshot: Mapped[dict[str, Any]] = mapped_column()
    population_size: Mapped[int] = mapped_column(default=0)
    sample_size: Mapped[int] = mapped_column(default=0)
    plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report: Mapped[dict[str, Any] | None] = mapped_column()
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()


class AuditUnit(Base):
    """One annotation in a run's frozen sample, with its stratum and inclusion probability.

    ``snapshot`` copies what was audited (label value, attributes, annotator, times) when
    the run opened, so later edits to the annotation do not change the audit.
    """

    __tablename__ = "audit_units"
    __table_args__ = (UniqueConstraint("run_id", "annotation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), index=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    stratum: Mapped[str] = mapped_column(String(300))
    inclusion_probability: Mapped[float] = mapped_column()
    snapshot: Mapped[dict[str, Any]] = mapped_column()


class AuditAssignment(Base):
    """A unit given to a reviewer. ``double`` marks the second review used to measure
    reviewers' own agreement."""

    __tablename__ = "audit_assignments"
    __table_args__ = (
        UniqueConstraint("unit_id", "reviewer_id"),
        Index("ix_audit_assignments_run_reviewer", "run_id", "reviewer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"))
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("audit_units.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    double: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditReview(Base):
    """A reviewer's finding on one assignment."""

    __tablename__ = "audit_reviews"
    __table_args__ = (
        UniqueConstraint("assignment_id"),
        CheckConstraint("verdict in ('correct', 'incorrect', 'unsure')", name="verdict"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("audit_runs.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("audit_assignments.id", ondelete="CASCADE")
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("audit_units.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(10))
    corrected_value: Mapped[Any] = mapped_column()
    error_category: Mapped[str | None] = mapped_column(String(100))
    severity: Mapped[str | None] = mapped_column(String(10))
    rule_ref: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    active_seconds: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
