"""The worker's purge of the anonymous channel's daily counter, on a real committed
database with an injected clock: a day's counts and salt outlive it by at most one
pass, today's stay (the daily limit still holds), the notes are never touched, and
the worker's loop runs the purge on every pass."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from labelloop import worker
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.feedback import anonymous
from labelloop.feedback.anonymous_models import AnonymousNote, AnonymousQuota, AnonymousQuotaSalt
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from tests.guidelines._data import INTENT

OPERATOR = Actor.local("test")
#: The day of the posts (a Monday).
DAY = date(2026, 3, 2)


def _team(url: str) -> tuple[int, list[Actor]]:
    """A project with two annotators."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            p = projects.create_project(
                s, actor=OPERATOR, name="tickets", schema=LabelSchema.from_dict(INTENT)
            )
            people = [User(username=f"poster{i}") for i in range(2)]
            s.add_all(people)
            s.flush()
            s.add_all([Membership(user_id=u.id, project_id=p.id, role="annotator") for u in people])
            return p.id, [Actor.for_user(u.id, u.username) for u in people]
    finally:
        engine.dispose()


def _post(url: str, project_id: int, who: Actor, day: date) -> None:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            anonymous.post_note(
                s, actor=who, project_id=project_id, category="workload", text="x", today=day
            )
    finally:
        engine.dispose()


def _days(url: str) -> dict[str, list[date]]:
    """The days of every counter row, salt and note."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return {
                "counts": sorted(s.scalars(select(AnonymousQuota.day))),
                "salts": sorted(s.scalars(select(AnonymousQuotaSalt.day))),
                "notes": sorted(s.scalars(select(AnonymousNote.posted_on))),
            }
    finally:
        engine.dispose()


def _remaining(url: str, who: Actor, day: date) -> int:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return anonymous.remaining_today(s, actor=who, today=day)
    finally:
        engine.dispose()


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=UTC)


def test_a_days_counts_go_at_the_first_pass_after_midnight(fresh_database_url: str) -> None:
    project_id, (ann, bea) = _team(fresh_database_url)
    settings = Settings(database_url=fresh_database_url)
    for who in (ann, ann, bea):
        _post(fresh_database_url, project_id, who, DAY)
    assert _days(fresh_database_url) == {"counts": [DAY, DAY], "salts": [DAY], "notes": [DAY] * 3}

    # during the day the counts stay: they are what enforces the limit
    assert worker.purge_anonymous(settings, now=_at(DAY, 23, 59, 59)) == 0
    assert _remaining(fresh_database_url, ann, DAY) == anonymous.DAILY_LIMIT - 2
    assert _days(fresh_database_url)["counts"] == [DAY, DAY]

    # the first pass of the next day deletes the counts and the salt, not the notes
    next_day = DAY + timedelta(days=1)
    assert worker.purge_anonymous(settings, now=_at(next_day, 0, 0, 30)) == 2
    assert _days(fresh_database_url) == {"counts": [], "salts": [], "notes": [DAY] * 3}
    assert worker.purge_anonymous(settings, now=_at(next_day, 0, 1)) == 0

    # the new day's counts are left to the end of that day
    _post(fresh_database_url, project_id, bea, next_day)
    assert worker.purge_anonymous(settings, now=_at(next_day, 12)) == 0
    assert _days(fresh_database_url)["counts"] == [next_day]
    assert _remaining(fresh_database_url, bea, next_day) == anonymous.DAILY_LIMIT - 1


def test_the_loop_purges_on_every_pass(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id, (ann, _) = _team(fresh_database_url)
    yesterday = utcnow().date() - timedelta(days=1)
    _post(fresh_database_url, project_id, ann, yesterday)
    # the other jobs are theirs to test; here they do nothing
    for job in ("escalate", "run_due", "refresh_dashboards", "detect_cases", "send_digests"):
        monkeypatch.setattr(worker, job, lambda *_a, **_k: [])
    monkeypatch.setattr(worker, "checkpoint_due", lambda *_a, **_k: None)
    worker.loop(Settings(database_url=fresh_database_url), interval=0, iterations=1)
    assert _days(fresh_database_url) == {"counts": [], "salts": [], "notes": [yesterday]}


def test_a_failed_purge_does_not_stop_the_worker(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_a: object, **_k: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(anonymous, "purge_expired", broken)
    settings = Settings(database_url=fresh_database_url)
    assert worker.purge_anonymous(settings, now=_at(DAY, 1)) == 0
    assert "anonymous channel" in caplog.text and "disk full" in caplog.text
