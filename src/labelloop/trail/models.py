"""Event rows and the chain head."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow


class Event(Base):
    """One entry of the trail: who did what to which record, when, with before/after.

    ``hash = HMAC-SHA256(trail key, prev_hash || canonical_json(event))`` (plain SHA-256
    for legacy events, ``key_id`` NULL); see :mod:`labelloop.trail.chain`.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_entity", "entity_type", "entity_id"),
        Index("ix_events_project_seq", "project_id", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(100))
    project_id: Mapped[int | None] = mapped_column()
    before: Mapped[dict[str, Any] | None] = mapped_column()
    after: Mapped[dict[str, Any] | None] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Which trail key chained this event (a fingerprint of the key, never the key);
    #: ``None`` for events written before the chain was keyed (plain SHA-256).
    key_id: Mapped[str | None] = mapped_column(String(16))


class TrailHead(Base):
    """A single row holding the newest event's sequence number and hash.

    Appends lock this row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite writers are
    already serialised), which orders concurrent writers, and verification compares it
    with the last event so that deleting the newest events is detected too.
    """

    __tablename__ = "trail_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(Text, default="0" * 64)
