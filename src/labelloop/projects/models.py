"""ORM models of the domain core.

Label values are stored as JSON in the canonical shapes documented in
:mod:`labelloop.formats.records` (a label name, a sorted list of names, a number, a list
of regions, or free text).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow


class Project(Base):
    """A labeling effort with one label schema (stored as validated JSON, versioned)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    task_type: Mapped[str] = mapped_column(String(20))
    label_schema: Mapped[dict[str, Any]] = mapped_column("schema")
    schema_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Item(Base):
    """A unit to label, with metadata, segments (strata) and tags."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("project_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    segments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    """One annotator's label for one item.

    ``external_key`` is the annotation's id in the tool it came from ("" when the
    source has none); (item, annotator, external_key) is unique, which makes
    re-imports idempotent. ``flags`` holds validation warnings (code, field, message).
    """

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id", "external_key"),
        Index("ix_annotations_project_annotator", "project_id", "annotator_id"),
        Index("ix_annotations_project_submitted", "project_id", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    external_key: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[Any] = mapped_column()
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime | None] = mapped_column()
    submitted_at: Mapped[datetime | None] = mapped_column()
    active_seconds: Mapped[float | None] = mapped_column()
    guideline_version: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(50))
    flags: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class GoldLabel(Base):
    """The accepted truth for an item, with rationale and where it came from."""

    __tablename__ = "gold_labels"
    __table_args__ = (UniqueConstraint("item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    value: Mapped[Any] = mapped_column()
    rationale: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    """A model's label or class probabilities for an item."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("item_id", "model_name", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100), default="")
    value: Mapped[Any] = mapped_column()
    probabilities: Mapped[dict[str, Any] | None] = mapped_column()
    score: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportBatch(Base):
    """One imported file: its SHA-256, format and what it added, updated and skipped."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(20))
    counts: Mapped[dict[str, Any]] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
