"""The anonymous channel: members post notes to their project's leads without being
named, and leads read them only in groups of at least :data:`THRESHOLD`.

**Posting** (:func:`post_note`) needs a role in the project, any role. What is stored
is the project, the category (:data:`CATEGORIES`), the text and the day (UTC): no user,
session, address, user agent or time. The day's notes of the project are rewritten in a
random order under fresh random keys on every post, so neither their keys nor where the
database put them (PostgreSQL's row versions and transaction ids, SQLite's pages) order
them within the day. The trail gets an ``anonymous_note.post`` event whose actor is
``anonymous`` and which names the project and the day only: not the note, its key, its
category or its text (the event's own time is precise, and a category beside it would
tie the category to a moment).

**The daily limit** (:data:`DAILY_LIMIT` notes per person per day, all projects
together) is counted in :class:`~labelloop.feedback.anonymous_models.AnonymousQuota`
under ``HMAC(pepper, day salt ‖ user id)``: the salt is random, one per day, kept in
its own table and deleted with the day's counts once the day is over (by the worker's
pass, :func:`labelloop.worker.purge_anonymous`, within one interval of midnight UTC, and
by the first post of a later day); the pepper is derived from the trail key, which
never reaches the database. A count is all a row holds.

**Reading** (:func:`summary`, ``project.manage``: leads and administrators) shows only
completed ISO weeks. In each week the notes fall into disjoint groups: one per category
with at least :data:`THRESHOLD` notes (shown with its count and texts), and the other
categories together (their count is shown only when it is at least the threshold,
never their texts; "fewer than 5" otherwise, which includes none). The week's total is
shown only when every group is, and a week with fewer than :data:`THRESHOLD` notes in
all is not listed. Every number on the page is therefore a sum of whole groups of at
least the threshold, and so is every sum or difference of them: no subtraction reaches
a group below it. A week's numbers never change once it is over (notes are dated the
day they are posted, and never edited or moved), so comparing the page on two days
reveals nothing either. See ``docs/feedback.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require, roles_of, sees
from labelloop.accounts.roles import Permission, Role
from labelloop.errors import NotFound, PermissionDenied, RateLimited, ValidationFailed
from labelloop.feedback.anonymous_models import AnonymousNote, AnonymousQuota, AnonymousQuotaSalt
from labelloop.projects.models import Project
from labelloop.projects.validation import Violation
from labelloop.store.base import utcnow
from labelloop.store.engine import trail_key_of

#: What a note may be about, in the order pages list them.
CATEGORIES: tuple[str, ...] = ("guidelines", "workload", "tooling", "pressure", "other")
#: Longest note, in characters.
MAX_TEXT = 2000
#: Notes one person may post a day (UTC), all projects together.
DAILY_LIMIT = 5
#: The fewest notes a group must hold for leads to see its count (and a category's texts).
THRESHOLD = 5
#: How many completed weeks the summary covers.
WEEKS_SHOWN = 52
#: The trail's actor for posts.
ACTOR = "anonymous"
#: Characters a note may hold although Unicode calls them control characters.
_ALLOWED_CONTROLS = frozenset("\n\t")
#: What the pepper of the counter's keys is derived from the trail key with.
_PEPPER_LABEL = b"labelloop/anonymous-notes/daily-quota"


# -- posting ---------------------------------------------------------------------------


def _visible(session: Session, actor: Actor, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None or not sees(session, actor, project_id):
        raise NotFound(f"no project with id {project_id}")
    return project


def _member_id(session: Session, actor: Actor, project_id: int) -> int:
    """The user id of an actor who holds a role in the project (a token: its own
    project and role); PermissionDenied otherwise (administrators included: the
    channel is for the people who work in the project)."""
    if actor.user_id is None:
        raise PermissionDenied("anonymous notes come from members of a project")
    roles: set[Role] = set(roles_of(session, actor.user_id, project_id))
    if actor.scope_role is not None and project_id != actor.scope_project_id:
        roles = set()
    elif actor.scope_role is not None:
        roles &= {Role(actor.scope_role)}
    if not roles:
        raise PermissionDenied(f"only members of project {project_id} may post anonymous notes")
    return actor.user_id


def may_post(session: Session, *, actor: Actor, project_id: int) -> bool:
    """Whether the actor may post to the project (for showing the form)."""
    try:
        _member_id(session, actor, project_id)
    except PermissionDenied:
        return False
    return True


def clean_text(text: str) -> tuple[str, list[Violation]]:
    """The note as stored (line ends made ``\\n``, trimmed) and its problems."""
    value = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not value:
        return value, [Violation("text", "required", "write the note")]
    problems = []
    if len(value) > MAX_TEXT:
        problems.append(
            Violation("text", "too_long", f"{len(value)} characters; at most {MAX_TEXT}")
        )
    for ch in value:
        kind = unicodedata.category(ch)
        if kind == "Cs":
            problems.append(
                Violation("text", "not_text", f"holds a lone surrogate (U+{ord(ch):04X})")
            )
            break
        if kind == "Cc" and ch not in _ALLOWED_CONTROLS:
            problems.append(
                Violation(
                    "text", "control_character", f"holds the control character U+{ord(ch):04X}"
                )
            )
            break
    return value, problems


def _validated(category: str, text: str) -> str:
    cleaned, problems = clean_text(text)
    if category not in CATEGORIES:
        problems.insert(
            0,
            Violation("category", "unknown_category", "choose one of " + ", ".join(CATEGORIES)),
        )
    if problems:
        raise ValidationFailed("the note cannot be posted", problems)
    return cleaned


def _upsert(session: Session) -> Any:
    """The dialect's ``INSERT ... ON CONFLICT`` constructor."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _quota_key(session: Session, day: date, user_id: int, *, create: bool) -> str | None:
    """The counter's key of ``user_id`` on ``day``: HMAC-SHA256 keyed with a pepper
    derived from the trail key (never stored) over the day's random salt and the user
    id. ``None`` when the day has no salt yet and ``create`` is false."""
    if create:
        salt_row = {"day": day, "salt": secrets.token_hex(32)}
        session.execute(
            _upsert(session)(AnonymousQuotaSalt).values(salt_row).on_conflict_do_nothing()
        )
    salt = session.scalar(select(AnonymousQuotaSalt.salt).where(AnonymousQuotaSalt.day == day))
    if salt is None:
        return None
    pepper = hmac.new(trail_key_of(session.connection().info), _PEPPER_LABEL, hashlib.sha256)
    message = bytes.fromhex(salt) + b"\x00" + str(user_id).encode()
    return hmac.new(pepper.digest(), message, hashlib.sha256).hexdigest()


def _posted_today(session: Session, day: date, user_id: int) -> int:
    key = _quota_key(session, day, user_id, create=False)
    if key is None:
        return 0
    found = session.scalar(
        select(AnonymousQuota.count).where(AnonymousQuota.day == day, AnonymousQuota.key == key)
    )
    return int(found or 0)


def _count_post(session: Session, day: date, user_id: int) -> int:
    """Add one to the user's count of the day; returns the new count."""
    key = _quota_key(session, day, user_id, create=True)
    assert key is not None
    stmt = (
        _upsert(session)(AnonymousQuota)
        .values(day=day, key=key, count=1)
        .on_conflict_do_update(
            index_elements=[AnonymousQuota.day, AnonymousQuota.key],
            set_={"count": AnonymousQuota.count + 1},
        )
    )
    session.execute(stmt)
    count = session.scalar(
        select(AnonymousQuota.count).where(AnonymousQuota.day == day, AnonymousQuota.key == key)
    )
    return int(count or 0)


def _limit_reached() -> RateLimited:
    return RateLimited(
        f"you have posted {DAILY_LIMIT} anonymous notes today, the most a day allows; "
        "post again tomorrow (UTC)"
    )


def remaining_today(session: Session, *, actor: Actor, today: date | None = None) -> int:
    """How many more notes the actor may post today (reads the counter only)."""
    if actor.user_id is None:
        return 0
    day = today or utcnow().date()
    return max(0, DAILY_LIMIT - _posted_today(session, day, actor.user_id))


def purge_expired(session: Session, *, today: date | None = None) -> int:
    """Delete the counts and salts of days before ``today`` (UTC); returns how many
    counts went. Every post does this first, and the worker on every pass
    (:func:`labelloop.worker.purge_anonymous`)."""
    day = today or utcnow().date()
    gone = session.execute(delete(AnonymousQuota).where(AnonymousQuota.day < day))
    session.execute(delete(AnonymousQuotaSalt).where(AnonymousQuotaSalt.day < day))
    return int(getattr(gone, "rowcount", 0) or 0)


def _rewrite_day(session: Session, project_id: int, day: date, new: tuple[str, str]) -> None:
    """Write the project's notes of ``day`` again, with ``new`` among them, in a random
    order under fresh random keys: no key, row position or row version then says
    which of the day's notes came when."""
    same_day = and_(AnonymousNote.project_id == project_id, AnonymousNote.posted_on == day)
    notes = [
        (row.category, row.text)
        for row in session.execute(
            select(AnonymousNote.category, AnonymousNote.text).where(same_day)
        )
    ]
    notes.append(new)
    secrets.SystemRandom().shuffle(notes)
    session.execute(delete(AnonymousNote).where(same_day))
    session.execute(
        insert(AnonymousNote),
        [
            {
                "key": uuid.uuid4().hex,
                "project_id": project_id,
                "category": category,
                "text": text,
                "posted_on": day,
            }
            for category, text in notes
        ],
    )


def post_note(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    category: str,
    text: str,
    today: date | None = None,
) -> None:
    """Post an anonymous note to the project (see the module docstring). NotFound for
    callers who may not know the project, PermissionDenied for those who hold no role
    in it, ValidationFailed naming ``category`` or ``text``, RateLimited past
    :data:`DAILY_LIMIT` notes today. Nothing is returned: not even the poster learns a
    key that could name their note."""
    _visible(session, actor, project_id)
    user_id = _member_id(session, actor, project_id)
    cleaned = _validated(category, text)
    day = today or utcnow().date()
    purge_expired(session, today=day)
    if _posted_today(session, day, user_id) >= DAILY_LIMIT:
        raise _limit_reached()
    # the event first: appending locks the trail head, which orders concurrent posts,
    # so the day's notes are read below only after any other post has committed
    trail.service.append(
        session,
        actor=ACTOR,
        action="anonymous_note.post",
        entity_type="anonymous_note",
        entity_id=None,
        project_id=project_id,
        after={"posted_on": day.isoformat()},
    )
    if _count_post(session, day, user_id) > DAILY_LIMIT:  # a concurrent post won
        raise _limit_reached()
    _rewrite_day(session, project_id, day, (category, cleaned))


# -- the leads' summary ----------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A category of one week with at least :data:`THRESHOLD` notes."""

    category: str
    count: int
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeekSummary:
    """What leads see of one completed ISO week."""

    monday: date
    #: Categories with at least the threshold, in :data:`CATEGORIES` order.
    cells: tuple[Cell, ...]
    #: The other categories (fewer than the threshold each, none included).
    others: tuple[str, ...]
    #: Their notes together when at least the threshold, else ``None``.
    others_count: int | None
    #: The week's notes, when every group is shown (else ``None``).
    total: int | None

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def label(self) -> str:
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    def shown_numbers(self) -> list[tuple[frozenset[str], int]]:
        """Every number shown, with the categories it counts (for checks and tests)."""
        out = [(frozenset({c.category}), c.count) for c in self.cells]
        if self.others_count is not None:
            out.append((frozenset(self.others), self.others_count))
        if self.total is not None:
            out.append((frozenset(c.category for c in self.cells) | set(self.others), self.total))
        return out


@dataclass(frozen=True)
class Summary:
    """The leads' view of a project's anonymous notes."""

    project_id: int
    #: The completed weeks covered: ``first`` (a Monday) to ``last`` (a Sunday).
    first: date
    last: date
    #: Weeks with at least :data:`THRESHOLD` notes, newest first.
    weeks: tuple[WeekSummary, ...]
    threshold: int = THRESHOLD


def _ordered(categories: Iterable[str]) -> tuple[str, ...]:
    known = [c for c in CATEGORIES if c in categories]
    return (*known, *sorted(set(categories) - set(CATEGORIES)))


def week_summary(monday: date, counts: Mapping[str, int]) -> WeekSummary | None:
    """The groups leads may see of one week's counts by category (texts left out);
    ``None`` when the week holds fewer than :data:`THRESHOLD` notes in all."""
    total = sum(counts.values())
    if total < THRESHOLD:
        return None
    categories = _ordered(set(CATEGORIES) | {c for c, n in counts.items() if n})
    shown = tuple(Cell(c, counts.get(c, 0)) for c in categories if counts.get(c, 0) >= THRESHOLD)
    others = tuple(c for c in categories if counts.get(c, 0) < THRESHOLD)
    rest = sum(counts.get(c, 0) for c in others)
    rest_shown = rest >= THRESHOLD
    return WeekSummary(
        monday=monday,
        cells=shown,
        others=others,
        others_count=rest if rest_shown else None,
        total=total if rest_shown or not others else None,
    )


def _texts(
    session: Session, project_id: int, weeks: Iterable[WeekSummary]
) -> dict[tuple[date, str], tuple[str, ...]]:
    """The texts of the shown cells, by (Monday, category), sorted by text (never in
    an order that could follow the order of posting)."""
    wanted = [
        and_(
            AnonymousNote.category == cell.category,
            AnonymousNote.posted_on.between(week.monday, week.sunday),
        )
        for week in weeks
        for cell in week.cells
    ]
    if not wanted:
        return {}
    found: dict[tuple[date, str], list[str]] = defaultdict(list)
    rows = session.execute(
        select(AnonymousNote.posted_on, AnonymousNote.category, AnonymousNote.text).where(
            AnonymousNote.project_id == project_id, or_(*wanted)
        )
    )
    for day, category, text in rows:
        found[(_monday(day), category)].append(text)
    return {k: tuple(sorted(v, key=lambda t: (t.casefold(), t))) for k, v in found.items()}


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def last_completed_sunday(today: date) -> date:
    """The end of the newest ISO week that is over on ``today``."""
    return today - timedelta(days=today.isoweekday())


def summary(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    today: date | None = None,
    weeks: int = WEEKS_SHOWN,
) -> Summary:
    """The leads' summary of the project's anonymous notes over the last ``weeks``
    completed ISO weeks (see the module docstring). NotFound for callers who may not
    know the project, PermissionDenied without ``project.manage``."""
    _visible(session, actor, project_id)
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project_id)
    last = last_completed_sunday(today or utcnow().date())
    first = last - timedelta(weeks=max(1, weeks)) + timedelta(days=1)
    by_week: dict[date, Counter[str]] = defaultdict(Counter)
    rows = session.execute(
        select(AnonymousNote.posted_on, AnonymousNote.category, func.count())
        .where(AnonymousNote.project_id == project_id, AnonymousNote.posted_on.between(first, last))
        .group_by(AnonymousNote.posted_on, AnonymousNote.category)
    )
    for day, category, n in rows:
        by_week[_monday(day)][category] += int(n)
    shown = [
        week
        for monday in sorted(by_week, reverse=True)
        if (week := week_summary(monday, by_week[monday])) is not None
    ]
    texts = _texts(session, project_id, shown)
    shown = [
        replace(
            week,
            cells=tuple(
                replace(cell, texts=texts.get((week.monday, cell.category), ()))
                for cell in week.cells
            ),
        )
        for week in shown
    ]
    return Summary(project_id=project_id, first=first, last=last, weeks=tuple(shown))
