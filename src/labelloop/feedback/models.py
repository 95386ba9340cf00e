"""ORM models of feedback: notes to annotators about specific work, the items each
note is about, replies, and per-project settings (custom templates, auto-send).

A note's lifecycle is ``draft → sent → acknowledged → resolved``: drafts are generated
(an audit run's findings, a ruling, a run's good results) or written by hand; a lead
sends them; the recipient acknowledges with *agree* or *disagree* (with a reason,
which opens an adjudication case on the items); the note is resolved when that case is
ruled, or by a lead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labelloop.store.base import Base, utcnow

DRAFT, SENT, ACKNOWLEDGED, RESOLVED = "draft", "sent", "acknowledged", "resolved"
STATUSES = (DRAFT, SENT, ACKNOWLEDGED, RESOLVED)


class FeedbackSettings(Base):
    """A project's feedback settings."""

    __tablename__ = "feedback_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    auto_send: Mapped[bool] = mapped_column(default=False)  # generated drafts go out at once
    due_days: Mapped[int] = mapped_column(default=7)  # time to acknowledge a note
    #: custom templates: [{"name", "title", "required": [field, ...]}]
    templates: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackNote(Base):
    """One note to one annotator."""

    __tablename__ = "feedback_notes"
    __table_args__ = (
        Index("ix_feedback_notes_project_status", "project_id", "status"),
        Index("ix_feedback_notes_recipient", "recipient_id", "status"),
        Index("ix_feedback_notes_source", "source", "source_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    template: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(10), default="medium")
    status: Mapped[str] = mapped_column(String(15), default=DRAFT)
    message: Mapped[str] = mapped_column(Text, default="")
    #: the template's other fields (what_to_change, context, indicator, what_was_right...)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rule_refs: Mapped[list[str]] = mapped_column(default=list)
    category: Mapped[str | None] = mapped_column(String(100))  # the error category
    given: Mapped[str | None] = mapped_column(Text)  # the confusion: label given ...
    expected: Mapped[str | None] = mapped_column(Text)  # ... and the reference label
    source: Mapped[str] = mapped_column(String(20))  # audit | ruling | gold | manual
    source_id: Mapped[int | None] = mapped_column()  # the run or ruling
    #: when the finding was made (the review, the ruling): latency starts there
    found_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_by: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column()
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    response: Mapped[str | None] = mapped_column(String(10))  # agree | disagree
    response_reason: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    resolved_at: Mapped[datetime | None] = mapped_column()
    items: Mapped[list[FeedbackItem]] = relationship(
        order_by="FeedbackItem.id", cascade="all, delete-orphan", lazy="selectin"
    )


class FeedbackItem(Base):
    """An item a note is about: the recipient's label and the reference label."""

    __tablename__ = "feedback_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_notes.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="SET NULL")
    )
    given: Mapped[Any] = mapped_column(nullable=True)
    reference: Mapped[Any] = mapped_column(nullable=True)
    reference_source: Mapped[str] = mapped_column(String(20))  # audit | gold | ruling | model


class FeedbackReply(Base):
    """A message in a note's thread."""

    __tablename__ = "feedback_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(
        ForeignKey("feedback_notes.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
