"""The anonymous channel's service: posting (membership, validation, the daily limit),
what is stored, and the leads' summary, which must not let anyone compute the size of
a group smaller than the threshold by adding and subtracting what it shows, on one
day or across days."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import combinations
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.errors import NotFound, PermissionDenied, RateLimited, ValidationFailed
from labelloop.feedback import anonymous
from labelloop.feedback.anonymous import CATEGORIES, THRESHOLD, WeekSummary, week_summary
from labelloop.feedback.anonymous_models import AnonymousNote, AnonymousQuota, AnonymousQuotaSalt
from labelloop.projects.models import Project
from labelloop.store.engine import trail_key_of
from labelloop.trail.models import Event

#: A Monday (ISO week 2026-W10); tests date notes relative to it.
MONDAY = date(2026, 3, 2)
#: A cell of the summary's table: (Monday of the week, category).
CellKey = tuple[date, str]


def actor_of(user: User) -> Actor:
    return Actor.for_user(user.id, user.username)


@dataclass
class Team:
    session: Session
    project: Project
    lead: Actor
    auditor: Actor
    annotators: list[Actor]
    users: list[User]
    admin: Actor
    outsider: Actor


@pytest.fixture
def team(factories: ModuleType, session: Session) -> Team:
    project = factories.ProjectFactory()
    lead = factories.UserFactory()
    auditor = factories.UserFactory()
    factories.MembershipFactory(user=lead, project=project, lead=True)
    factories.MembershipFactory(user=auditor, project=project, role="auditor")
    users = [factories.UserFactory() for _ in range(4)]
    for user in users:
        factories.MembershipFactory(user=user, project=project)
    admin = factories.AdminFactory()
    outsider = factories.UserFactory()
    return Team(
        session=session,
        project=project,
        lead=actor_of(lead),
        auditor=actor_of(auditor),
        annotators=[actor_of(u) for u in users],
        users=users,
        admin=Actor.for_user(admin.id, admin.username, is_admin=True),
        outsider=actor_of(outsider),
    )


def post(team: Team, who: Actor, category: str = "workload", text: str = "too much", **kw: object):
    return anonymous.post_note(
        team.session,
        actor=who,
        project_id=team.project.id,
        category=category,
        text=text,
        **kw,  # type: ignore[arg-type]
    )


def notes(team: Team) -> list[AnonymousNote]:
    return list(
        team.session.scalars(
            select(AnonymousNote).where(AnonymousNote.project_id == team.project.id)
        )
    )


def post_events(team: Team) -> list[Event]:
    return list(
        team.session.scalars(
            select(Event).where(
                Event.action == "anonymous_note.post", Event.project_id == team.project.id
            )
        )
    )


def seed(session: Session, project_id: int, day: date, category: str, n: int) -> None:
    """``n`` notes as the service stores them (without the daily limit in the way)."""
    for i in range(n):
        session.add(
            AnonymousNote(
                key=uuid.uuid4().hex,
                project_id=project_id,
                category=category,
                text=f"{category} note {i} of {day.isoformat()}",
                posted_on=day,
            )
        )
    session.flush()


def seed_weeks(session: Session, project_id: int, weeks: dict[date, dict[str, int]]) -> None:
    for monday, counts in weeks.items():
        for category, n in counts.items():
            seed(session, project_id, monday + timedelta(days=2), category, n)


# -- posting ---------------------------------------------------------------------------


def test_post_stores_the_note_and_no_identity(team: Team) -> None:
    who, user = team.annotators[0], team.users[0]
    post(team, who, "tooling", "  The shortcut for refund\r\ndoes nothing.  ", today=MONDAY)

    [note] = notes(team)
    assert (note.category, note.text, note.posted_on) == (
        "tooling",
        "The shortcut for refund\ndoes nothing.",
        MONDAY,
    )
    assert len(note.key) == 32 and int(note.key, 16) >= 0
    # the table has these columns and no other: nothing that could name anyone
    columns = {c.key for c in inspect(AnonymousNote).columns}
    assert columns == {"key", "project_id", "category", "text", "posted_on"}

    [event] = post_events(team)
    assert (event.actor, event.entity_type, event.entity_id) == (
        "anonymous",
        "anonymous_note",
        None,
    )
    assert event.before is None and event.after == {"posted_on": MONDAY.isoformat()}

    [quota] = team.session.scalars(select(AnonymousQuota)).all()
    assert (quota.day, quota.count) == (MONDAY, 1)
    for row in (note, event, quota):
        values = [str(getattr(row, c.key)) for c in inspect(type(row)).columns]
        assert user.username not in " ".join(values)
    # (the project's id may equal the user's by chance: ids of different tables)
    assert str(user.id) not in {note.key, quota.key}


def test_quota_key_needs_the_trail_key_and_the_days_salt(team: Team) -> None:
    """The counter's key is HMAC(pepper from the trail key, salt ‖ user id): the salt
    and the user ids in the database are not enough to tell whose count a row is."""
    who = team.annotators[0]
    post(team, who, today=MONDAY)
    [quota] = team.session.scalars(select(AnonymousQuota)).all()
    salt = team.session.scalar(
        select(AnonymousQuotaSalt.salt).where(AnonymousQuotaSalt.day == MONDAY)
    )
    assert salt is not None
    message = bytes.fromhex(salt) + b"\x00" + str(who.user_id).encode()
    without_pepper = hmac.new(bytes.fromhex(salt), str(who.user_id).encode(), hashlib.sha256)
    assert quota.key not in (without_pepper.hexdigest(), hashlib.sha256(message).hexdigest())
    key = trail_key_of(team.session.connection().info)
    pepper = hmac.new(key, b"labelloop/anonymous-notes/daily-quota", hashlib.sha256).digest()
    assert quota.key == hmac.new(pepper, message, hashlib.sha256).hexdigest()


def test_the_days_notes_get_fresh_keys_on_every_post(team: Team) -> None:
    post(team, team.annotators[0], "workload", "first", today=MONDAY)
    first = {n.key for n in notes(team)}
    post(team, team.annotators[1], "pressure", "second", today=MONDAY)
    second = {n.key for n in notes(team)}
    assert len(second) == 2 and not first & second
    assert sorted(n.text for n in notes(team)) == ["first", "second"]
    # another day's notes are left alone
    post(team, team.annotators[1], "pressure", "third", today=MONDAY + timedelta(days=1))
    assert second <= {n.key for n in notes(team)}


@pytest.mark.parametrize("role", ["lead", "auditor", "annotator"])
def test_every_member_may_post(team: Team, role: str) -> None:
    who = {"lead": team.lead, "auditor": team.auditor, "annotator": team.annotators[0]}[role]
    post(team, who, today=MONDAY)
    assert len(notes(team)) == 1


def test_outsiders_admins_and_operators_may_not_post(team: Team) -> None:
    with pytest.raises(NotFound, match=f"no project with id {team.project.id}"):
        post(team, team.outsider)
    with pytest.raises(PermissionDenied, match="only members"):
        post(team, team.admin)  # sees the project, holds no role in it
    with pytest.raises(PermissionDenied):
        post(team, Actor.local("test"))
    with pytest.raises(NotFound):
        anonymous.post_note(
            team.session, actor=team.lead, project_id=999_999, category="other", text="x"
        )
    token = Actor.for_token(
        team.annotators[0].user_id or 0, "t", project_id=team.project.id + 1, role="annotator"
    )
    with pytest.raises(NotFound):
        post(team, token)
    assert notes(team) == [] and post_events(team) == []


@pytest.mark.parametrize(
    ("category", "text", "fields", "code"),
    [
        ("complaints", "fine text", ["category"], "unknown_category"),
        ("", "fine text", ["category"], "unknown_category"),
        ("workload", "   \n ", ["text"], "required"),
        ("workload", "x" * (anonymous.MAX_TEXT + 1), ["text"], "too_long"),
        ("workload", "bell \x07 inside", ["text"], "control_character"),
        ("workload", "lone \ud800 surrogate", ["text"], "not_text"),
        ("nope", "", ["category", "text"], "unknown_category"),
    ],
    ids=["unknown", "empty-category", "blank", "too-long", "control", "surrogate", "both"],
)
def test_validation_names_the_field(
    team: Team, category: str, text: str, fields: list[str], code: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        post(team, team.annotators[0], category, text)
    assert [v.field for v in caught.value.violations] == fields
    assert caught.value.violations[0].code == code
    assert notes(team) == [] and post_events(team) == []


def test_longest_note_and_tabs_and_newlines_pass(team: Team) -> None:
    post(team, team.annotators[0], "other", "a\tb\n" + "x" * (anonymous.MAX_TEXT - 4))
    assert len(notes(team)[0].text) == anonymous.MAX_TEXT


def test_daily_limit_counts_per_person_and_day(team: Team) -> None:
    me, other = team.annotators[0], team.annotators[1]
    for i in range(anonymous.DAILY_LIMIT):
        assert anonymous.remaining_today(team.session, actor=me, today=MONDAY) == (
            anonymous.DAILY_LIMIT - i
        )
        post(team, me, CATEGORIES[i % len(CATEGORIES)], f"note {i}", today=MONDAY)
    assert anonymous.remaining_today(team.session, actor=me, today=MONDAY) == 0
    with pytest.raises(RateLimited, match="post again tomorrow"):
        post(team, me, today=MONDAY)
    assert len(notes(team)) == anonymous.DAILY_LIMIT == len(post_events(team))
    post(team, other, today=MONDAY)  # someone else's count is their own

    # the counter holds counts only, one row per person, under keys that are no user id
    rows = team.session.execute(select(AnonymousQuota.key, AnonymousQuota.count)).all()
    assert sorted(n for _, n in rows) == [1, anonymous.DAILY_LIMIT]
    assert {k for k, _ in rows}.isdisjoint({str(me.user_id), str(other.user_id)})

    # a new day: a new count and a new salt; the old day's are deleted
    tuesday = MONDAY + timedelta(days=1)
    post(team, me, today=tuesday)
    assert team.session.scalars(select(AnonymousQuota.day)).all() == [tuesday]
    assert team.session.scalars(select(AnonymousQuotaSalt.day)).all() == [tuesday]
    assert anonymous.remaining_today(team.session, actor=me, today=tuesday) == 4


def test_purge_expired_deletes_past_days_only(team: Team) -> None:
    post(team, team.annotators[0], today=MONDAY)
    post(team, team.annotators[0], today=MONDAY + timedelta(days=1))
    assert anonymous.purge_expired(team.session, today=MONDAY + timedelta(days=1)) == 0
    assert anonymous.purge_expired(team.session, today=MONDAY + timedelta(days=2)) == 1
    assert team.session.scalar(select(func.count()).select_from(AnonymousQuotaSalt)) == 0
    assert len(notes(team)) == 2  # the notes stay


# -- the summary -----------------------------------------------------------------------


def summary_of(team: Team, today: date, who: Actor | None = None) -> anonymous.Summary:
    return anonymous.summary(
        team.session, actor=who or team.lead, project_id=team.project.id, today=today
    )


def test_summary_is_for_leads_and_admins(team: Team) -> None:
    summary_of(team, MONDAY, team.admin)
    for who in (team.auditor, team.annotators[0]):
        with pytest.raises(PermissionDenied):
            summary_of(team, MONDAY, who)
    with pytest.raises(NotFound):
        summary_of(team, MONDAY, team.outsider)


def test_summary_shows_categories_of_at_least_five_with_their_texts(team: Team) -> None:
    seed_weeks(team.session, team.project.id, {MONDAY: {"guidelines": 6, "workload": 2}})
    [week] = summary_of(team, MONDAY + timedelta(days=7)).weeks
    assert (week.label, week.monday, week.sunday) == ("2026-W10", MONDAY, MONDAY + timedelta(6))
    [cell] = week.cells
    assert (cell.category, cell.count) == ("guidelines", 6)
    assert len(cell.texts) == 6 and list(cell.texts) == sorted(cell.texts)
    assert week.others == ("workload", "tooling", "pressure", "other")
    assert week.others_count is None and week.total is None  # 8 - 6 would say 2
    assert "workload note" not in repr(week)  # hidden texts never leave the service


@pytest.mark.parametrize(
    ("counts", "cells", "others_count", "total"),
    [
        ({"guidelines": 6, "workload": 3, "tooling": 2}, {"guidelines": 6}, 5, 11),
        ({"workload": 4, "tooling": 4, "other": 1}, {}, 9, 9),
        ({c: 5 for c in CATEGORIES}, {c: 5 for c in CATEGORIES}, None, 25),
        ({"pressure": 7, "other": 4}, {"pressure": 7}, None, None),
        ({"pressure": 4}, None, None, None),
        ({}, None, None, None),
    ],
    ids=["others-add-up", "only-others", "all-shown", "others-hidden", "too-few", "none"],
)
def test_week_groups(
    counts: dict[str, int],
    cells: dict[str, int] | None,
    others_count: int | None,
    total: int | None,
) -> None:
    week = week_summary(MONDAY, counts)
    if cells is None:
        assert week is None
        return
    assert week is not None
    assert {c.category: c.count for c in week.cells} == cells
    assert (week.others_count, week.total) == (others_count, total)
    assert set(week.others) == set(CATEGORIES) - set(cells)


def test_the_week_in_progress_is_never_shown(team: Team) -> None:
    seed(team.session, team.project.id, MONDAY, "pressure", 9)
    seed(team.session, team.project.id, MONDAY + timedelta(days=6), "pressure", 1)
    for day in range(7):  # Monday to Sunday of the same week
        assert summary_of(team, MONDAY + timedelta(days=day)).weeks == ()
    [week] = summary_of(team, MONDAY + timedelta(days=7)).weeks
    assert week.cells[0].count == 10


def test_summary_covers_the_last_completed_weeks(team: Team) -> None:
    seed(team.session, team.project.id, MONDAY - timedelta(weeks=52), "other", 5)
    seed(team.session, team.project.id, MONDAY - timedelta(weeks=51), "other", 5)
    found = summary_of(team, MONDAY)
    assert (found.first, found.last) == (MONDAY - timedelta(weeks=52), MONDAY - timedelta(1))
    assert [w.monday for w in found.weeks] == [MONDAY - timedelta(weeks=51), found.first]
    assert [w.monday for w in summary_of(team, MONDAY + timedelta(7)).weeks] == [
        MONDAY - timedelta(weeks=51)
    ]


# -- the differencing attack -----------------------------------------------------------


Number = tuple[frozenset[CellKey], int]


def determined_small_groups(
    numbers: Sequence[Number], counts: dict[CellKey, int]
) -> list[tuple[frozenset[CellKey], int]]:
    """The attacker: every set of cells whose notes can be counted exactly by adding
    and subtracting the shown numbers (its indicator lies in their span), and whose
    count is between 1 and THRESHOLD - 1."""
    cells = sorted(counts)
    if not numbers:
        return []
    index = {c: i for i, c in enumerate(cells)}
    shown = np.zeros((len(numbers), len(cells)))
    for row, (group, _) in enumerate(numbers):
        for cell in group:
            shown[row, index[cell]] = 1
    rank = np.linalg.matrix_rank(shown)
    found = []
    for size in range(1, len(cells) + 1):
        for subset in combinations(cells, size):
            count = sum(counts[c] for c in subset)
            if not 0 < count < THRESHOLD:
                continue
            wanted = np.zeros(len(cells))
            wanted[[index[c] for c in subset]] = 1
            if np.linalg.matrix_rank(np.vstack([shown, wanted])) == rank:
                found.append((frozenset(subset), count))
    return found


def numbers_of(weeks: Iterable[WeekSummary]) -> list[Number]:
    return [
        (frozenset((w.monday, c) for c in group), n)
        for w in weeks
        for group, n in w.shown_numbers()
    ]


def naive_numbers(table: dict[CellKey, int]) -> list[Number]:
    """What a summary without complementary suppression would show: each cell of at
    least the threshold, each week's total and each category's total."""
    out: list[Number] = [(frozenset({c}), n) for c, n in table.items() if n >= THRESHOLD]
    for monday in {m for m, _ in table}:
        cells = frozenset(c for c in table if c[0] == monday)
        out.append((cells, sum(table[c] for c in cells)))
    for category in CATEGORIES:
        cells = frozenset(c for c in table if c[1] == category)
        out.append((cells, sum(table[c] for c in cells)))
    return out


#: Two completed weeks where subtraction reveals groups of 2 and 4 in a naive summary.
ATTACK = {
    MONDAY: {"guidelines": 6, "workload": 2},
    MONDAY + timedelta(weeks=1): {"guidelines": 5, "workload": 5, "pressure": 3, "tooling": 1},
}


def full_table(weeks: dict[date, dict[str, int]]) -> dict[CellKey, int]:
    return {(m, c): counts.get(c, 0) for m, counts in weeks.items() for c in CATEGORIES}


def test_differencing_attack_on_a_naive_summary_succeeds() -> None:
    """The attack works: week 10's total minus its guidelines (8 - 6) reveals the two
    workload notes; week 11's total minus its two shown cells reveals 4."""
    table = full_table(ATTACK)
    leaked = determined_small_groups(naive_numbers(table), table)
    assert (frozenset({(MONDAY, "workload")}), 2) in leaked
    week11 = MONDAY + timedelta(weeks=1)
    rest = frozenset({(week11, "tooling"), (week11, "pressure"), (week11, "other")})
    assert (rest, 4) in leaked


def test_differencing_attack_on_the_summary_finds_nothing(team: Team) -> None:
    seed_weeks(team.session, team.project.id, ATTACK)
    found = summary_of(team, MONDAY + timedelta(weeks=2))
    assert len(found.weeks) == 2
    table = full_table(ATTACK)
    assert determined_small_groups(numbers_of(found.weeks), table) == []
    # what it does show: the cells of 5 or more; the rest only as "fewer than 5"
    shown = {(w.monday, c.category): c.count for w in found.weeks for c in w.cells}
    assert shown == {
        (MONDAY, "guidelines"): 6,
        (MONDAY + timedelta(weeks=1), "guidelines"): 5,
        (MONDAY + timedelta(weeks=1), "workload"): 5,
    }
    assert all(w.others_count is None and w.total is None for w in found.weeks)


def test_views_on_different_days_cannot_be_subtracted(team: Team) -> None:
    """Notes arrive day after day while the lead looks every day: a week's numbers
    appear once it is over and never change, so the union of everything seen over
    three weeks still determines no group of 1-4 notes."""
    posts = {  # day offset -> (category, count)
        0: ("pressure", 3),
        1: ("workload", 2),
        3: ("pressure", 2),
        5: ("tooling", 1),
        8: ("pressure", 4),
        9: ("workload", 5),
        12: ("guidelines", 1),
        15: ("pressure", 1),
    }
    seen: dict[date, WeekSummary] = {}
    numbers: list[Number] = []
    for offset in range(22):
        today = MONDAY + timedelta(days=offset)
        if offset - 1 in posts:  # what was posted yesterday
            category, n = posts[offset - 1]
            seed(team.session, team.project.id, today - timedelta(days=1), category, n)
        for week in summary_of(team, today).weeks:
            assert week.sunday < today
            assert seen.setdefault(week.monday, week) == week  # never changes
            numbers.extend(numbers_of([week]))
    assert set(seen) == {MONDAY, MONDAY + timedelta(weeks=1)}
    counts: dict[CellKey, int] = {}
    for offset, (category, n) in posts.items():
        monday = MONDAY + timedelta(weeks=offset // 7)
        counts[(monday, category)] = counts.get((monday, category), 0) + n
    table = {(m, c): counts.get((m, c), 0) for m in seen for c in CATEGORIES}
    assert determined_small_groups(numbers, table) == []

    # a naive running total per category, read on two days, differs by one note
    def running(day: date) -> int:
        return sum(n for o, (c, n) in posts.items() if c == "pressure" and o < (day - MONDAY).days)

    assert running(MONDAY + timedelta(days=16)) - running(MONDAY + timedelta(days=15)) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(CATEGORIES), st.integers(0, 9), max_size=5),
        min_size=1,
        max_size=2,
    )
)
def test_no_shown_numbers_determine_a_small_group(weeks: list[dict[str, int]]) -> None:
    """For any counts, nothing computed from the shown numbers of a summary counts a
    group of 1 to THRESHOLD - 1 notes (the hidden groups' texts never show either)."""
    by_week = {MONDAY + timedelta(weeks=i): counts for i, counts in enumerate(weeks)}
    shown = [w for m, c in by_week.items() if (w := week_summary(m, c)) is not None]
    table = full_table(by_week)
    assert determined_small_groups(numbers_of(shown), table) == []
    for week in shown:
        for group, n in week.shown_numbers():
            assert n >= THRESHOLD
            assert n == sum(table[(week.monday, c)] for c in group)
