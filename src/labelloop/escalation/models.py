"""ORM models of escalation: a **deadline** on anything that waits on someone (a case
to rule, later feedback to acknowledge), and the **notifications** of the inbox.

A deadline names its subject (``"case"``, 12), the escalation path as role names by
level (``["adjudicator", "lead", "owner"]``) with the SLA of each level in minutes
(``slas``, aligned with ``path``), the level it has reached and the moment the current
level is due. It ends when its subject is
resolved (``resolved_at``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, JSONType, utcnow


class Deadline(Base):
    """One thing waiting on someone, with its escalation path and SLA."""

    __tablename__ = "deadlines"
    __table_args__ = (
        UniqueConstraint("subject", "subject_id"),
        Index("ix_deadlines_open_due", "resolved_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    subject: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(String(300))  # what the notifications say
    link: Mapped[str] = mapped_column(String(500))  # where they point
    path: Mapped[list[str]] = mapped_column()  # role names by level
    level: Mapped[int] = mapped_column(default=0)
    #: what each level gets, by level: minutes, or business days as "<n>bd"
    slas: Mapped[list[int | str]] = mapped_column(JSONType)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime] = mapped_column()
    escalated_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()

    @property
    def owner(self) -> str:
        """The role the subject waits on now."""
        return self.path[min(self.level, len(self.path) - 1)]

    def sla(self, level: int) -> int | str:
        """What the subject may wait at ``level``: minutes, or ``"<n>bd"``."""
        value = self.slas[min(level, len(self.slas) - 1)]
        return value if isinstance(value, str) else int(value)


class Notification(Base):
    """One entry of a user's inbox."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(50))  # case.escalate, ruling.differs, ...
    subject: Mapped[str | None] = mapped_column(String(50))
    subject_id: Mapped[int | None] = mapped_column()
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column()


class EscalationPath(Base):
    """A project's own path for one subject (levels as ``[role, sla]`` pairs)."""

    __tablename__ = "escalation_paths"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(50), primary_key=True)
    levels: Mapped[list[list[Any]]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
