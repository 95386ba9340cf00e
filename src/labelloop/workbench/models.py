"""ORM models of the annotator workbench: queue settings, leases and skips.

* :class:`QueueSettings` holds a project's overlap (how many annotators label each
  item), its gold rate (the share of served items that are hidden gold checks) and how
  long a lease lasts. A project without a row uses the defaults.
* :class:`Lease` reserves one item for one annotator while they work on it, so two
  annotators cannot both take the last open slot of an item. A lease ends when the
  annotation is submitted or the item is skipped; an expired lease no longer holds a
  slot. ``is_gold`` records that the item was served as a hidden gold check (never
  shown to the annotator).
* :class:`Skip` records that an annotator skipped an item, and why; a skipped item is
  never offered to them again.
* :class:`OpenItem` and :class:`QueueSync` are a derived index, not records: the items
  of a project that still have fewer than ``overlap`` distinct annotators, with that
  count (``load``), so serving the next item never scans every annotation. The
  workbench builds it on first use (and again when the overlap changes), then keeps it
  current from the items and annotations added since its marks. It can be dropped and
  rebuilt at any time, so its writes have no trail events.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base, utcnow

#: Defaults for a project without a settings row.
DEFAULT_OVERLAP = 3
DEFAULT_GOLD_RATE = 0.1
DEFAULT_LEASE_MINUTES = 30


class QueueSettings(Base):
    """How a project's workbench queues are filled."""

    __tablename__ = "work_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    overlap: Mapped[int] = mapped_column(default=DEFAULT_OVERLAP)
    gold_rate: Mapped[float] = mapped_column(default=DEFAULT_GOLD_RATE)
    lease_minutes: Mapped[int] = mapped_column(default=DEFAULT_LEASE_MINUTES)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """An item reserved for one annotator until ``expires_at``."""

    __tablename__ = "work_leases"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_work_leases_project_annotator", "project_id", "annotator_id"),
        Index("ix_work_leases_project_expires", "project_id", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    is_gold: Mapped[bool] = mapped_column(default=False)
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class Skip(Base):
    """An item an annotator skipped, with their reason."""

    __tablename__ = "work_skips"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_work_skips_project_annotator", "project_id", "annotator_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OpenItem(Base):
    """An item that still needs annotators, with how many distinct ones it has."""

    __tablename__ = "work_open_items"
    __table_args__ = (Index("ix_work_open_items_project_load", "project_id", "load", "item_id"),)

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    load: Mapped[int] = mapped_column(default=0)


class QueueSync(Base):
    """How far :class:`OpenItem` has seen a project: the last item and annotation ids
    taken into account and the overlap it was built for."""

    __tablename__ = "work_sync"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    overlap: Mapped[int] = mapped_column()
    item_mark: Mapped[int] = mapped_column(default=0)
    annotation_mark: Mapped[int] = mapped_column(default=0)
    item_count: Mapped[int] = mapped_column(default=0)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class Progress(Base):
    """How many items the workbench has served an annotator in a project (the position
    that fixes the hidden-gold draw)."""

    __tablename__ = "work_progress"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    annotator_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    served: Mapped[int] = mapped_column(default=0)
