"""ORM models of the anonymous channel: the notes, and the counter that limits how many
notes one person may post a day. See :mod:`labelloop.feedback.anonymous` and the
"Anonymous channel" section of ``docs/feedback.md``.

Nothing here names a person, a session, an address or a moment finer than a day:

* :class:`AnonymousNote` holds the project, the category, the text and the day it was
  posted. Its key is random (a fresh uuid4 on every write), never a sequence that
  would order the notes; on SQLite the tables are ``WITHOUT ROWID``, so no hidden
  row number records the order of writes either.
* :class:`AnonymousQuota` counts the notes of one person on one day under a key that
  is an HMAC of their user id: keyed with the day's random salt
  (:class:`AnonymousQuotaSalt`) and with a secret derived from the trail key, which
  never reaches the database. It holds a count, nothing else, and shares no column
  with the notes but the day. Both the salts and the counts are deleted once their
  day is over.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from labelloop.store.base import Base

#: SQLite: no hidden ``rowid`` (it would number the rows in the order they were written).
_NO_ROWID = {"sqlite_with_rowid": False}


class AnonymousNote(Base):
    """One anonymous note to a project's leads."""

    __tablename__ = "anonymous_notes"
    __table_args__ = (
        Index("ix_anonymous_notes_project_day", "project_id", "posted_on"),
        _NO_ROWID,
    )

    #: A random uuid4 (hex), drawn anew whenever the note's day is rewritten.
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    #: The day (UTC) it was posted; no time.
    posted_on: Mapped[date] = mapped_column(Date)


class AnonymousQuotaSalt(Base):
    """The random salt of one day's counter keys; deleted when the day is over."""

    __tablename__ = "anonymous_quota_salts"
    __table_args__ = (_NO_ROWID,)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))  # 32 random bytes, hex


class AnonymousQuota(Base):
    """How many notes one (unnamed) person posted on one day."""

    __tablename__ = "anonymous_quota"
    __table_args__ = (_NO_ROWID,)

    day: Mapped[date] = mapped_column(
        Date,
        ForeignKey("anonymous_quota_salts.day", ondelete="CASCADE"),
        primary_key=True,
    )
    #: HMAC-SHA256 (hex) of the user id; see the module docstring.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
