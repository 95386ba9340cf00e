"""ORM models of guidelines: versions, their rules, the rules' exemplars, and who has
acknowledged which version.

A project has at most one **draft** (``number == "draft"``) and any number of published
versions (``number == "MAJOR.MINOR"``). Publishing turns the draft into the next
version; a published version and its rules are never changed afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labelloop.store.base import Base, utcnow

DRAFT = "draft"


class GuidelineVersion(Base):
    """One version of a project's guideline (or its draft)."""

    __tablename__ = "guideline_versions"
    __table_args__ = (UniqueConstraint("project_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(20))
    major: Mapped[int | None] = mapped_column()
    minor: Mapped[int | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    preamble: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime | None] = mapped_column()
    rules: Mapped[list[GuidelineRule]] = relationship(
        order_by="GuidelineRule.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def is_draft(self) -> bool:
        return self.number == DRAFT


class GuidelineRule(Base):
    """A numbered rule: stable key (``R12``), title, Markdown text, the labels it
    concerns, and its exemplars."""

    __tablename__ = "guideline_rules"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("guideline_versions.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[list[str]] = mapped_column(default=list)
    exemplars: Mapped[list[GuidelineExemplar]] = relationship(
        order_by="GuidelineExemplar.position", cascade="all, delete-orphan", lazy="selectin"
    )


class GuidelineExemplar(Base):
    """An item shown as a positive, negative or boundary example of a rule, with its
    correct label and a short why."""

    __tablename__ = "guideline_exemplars"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("guideline_rules.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(10))
    label: Mapped[Any] = mapped_column()
    why: Mapped[str] = mapped_column(Text, default="")


class GuidelineAck(Base):
    """A user has read and acknowledged a published version."""

    __tablename__ = "guideline_acks"
    __table_args__ = (UniqueConstraint("version_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("guideline_versions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    acknowledged_at: Mapped[datetime] = mapped_column(default=utcnow)


PROPOSED = "proposed"
ACCEPTED = "accepted"
REJECTED = "rejected"


class GuidelineAmendment(Base):
    """A proposed change to one rule, usually from a ruling: a clarification of its
    text (``kind == "text"``) or an item to add as an exemplar (``"exemplar"``). The
    guideline owner accepts it into the draft (it ships with the next published version)
    or rejects it."""

    __tablename__ = "guideline_amendments"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    rule_key: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))  # text | exemplar
    text: Mapped[str] = mapped_column(Text, default="")  # the clarification, or the why
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    label: Mapped[Any] = mapped_column(nullable=True)
    ruling_id: Mapped[int | None] = mapped_column(ForeignKey("rulings.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default=PROPOSED)
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column()
    #: the draft version the accepted change went into
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("guideline_versions.id", ondelete="SET NULL")
    )
