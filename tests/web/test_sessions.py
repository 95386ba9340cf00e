"""Sessions live on the server: logout, "sign out everywhere", the CLI, deactivation
and idleness end them, copies of the cookie included."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from labelloop.accounts import service as accounts
from labelloop.accounts.models import User, UserSession
from labelloop.cli import app as cli
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from labelloop.trail.models import Event
from labelloop.web import create_app
from tests.web.conftest import OPERATOR, Demo, count_rows, login, make_settings

_names = itertools.count()


@pytest.fixture
def person(demo: Demo) -> str:
    """A new user with no role (a cheap password hash), so tests may end their sessions."""
    name = f"session.user{next(_names)}-{id(demo) % 10_000}"
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            user = accounts.create_user(s, actor=OPERATOR, username=name)
            user.password_hash = PasswordHasher(time_cost=1, memory_cost=1024).hash(DEMO_PASSWORD)
    finally:
        engine.dispose()
    return name


@pytest.fixture
def app(demo: Demo, tmp_path: Path) -> Iterator[FastAPI]:
    application = create_app(make_settings(demo.url, tmp_path))
    with TestClient(application):  # the lifespan: one engine for the test's clients
        yield application


def _signed_in(client: TestClient) -> bool:
    r = client.get("/account", follow_redirects=False)
    return r.status_code == 200


def test_logout_ends_the_session_for_every_copy_of_the_cookie(
    app: FastAPI, demo: Demo, person: str
) -> None:
    first = TestClient(app)
    csrf = login(first, person)
    copy = TestClient(app)
    copy.cookies.update(first.cookies)
    assert _signed_in(copy)
    r = first.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert not _signed_in(copy)  # the copied cookie no longer works
    assert count_rows(demo.url, Event, action="session.end") >= 1


def test_sign_out_everywhere(app: FastAPI, demo: Demo, person: str) -> None:
    laptop, phone, other = TestClient(app), TestClient(app), TestClient(app)
    csrf = login(laptop, person)
    login(phone, person)
    login(other, "demo.lead")
    page = laptop.get("/account")
    assert page.status_code == 200
    assert page.text.count('name="session_id"') == 2 and "(this session)" in page.text
    # sign the phone out from the laptop: the laptop stays signed in
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            _laptop, phone_id = s.scalars(
                select(UserSession.id)
                .join(User, User.id == UserSession.user_id)
                .where(User.username == person)
                .order_by(UserSession.id)
            ).all()
    finally:
        engine.dispose()
    r = laptop.post(
        "/account/sessions/revoke",
        data={"csrf_token": csrf, "session_id": str(phone_id)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/account?ended=1"
    assert not _signed_in(phone) and _signed_in(laptop)
    assert "Signed out 1 session." in laptop.get("/account?ended=1").text
    # and everywhere, this session too
    csrf = login(laptop, person)
    login(phone, person)
    r = laptop.post("/account/sessions/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert not _signed_in(laptop) and not _signed_in(phone)
    assert _signed_in(other)  # somebody else's session is untouched


def test_cli_revokes_a_users_sessions(app: FastAPI, demo: Demo, person: str) -> None:
    client = TestClient(app)
    login(client, person)
    runner = CliRunner()
    listed = runner.invoke(
        cli, ["user", "sessions", "list", person, "--json", "--database-url", demo.url]
    )
    assert listed.exit_code == 0, listed.output
    assert '"client"' in listed.output
    result = runner.invoke(cli, ["user", "sessions", "revoke", person, "--database-url", demo.url])
    assert result.exit_code == 0, result.output
    assert "ended 1 session" in result.output
    assert not _signed_in(client)
    missing = runner.invoke(
        cli, ["user", "sessions", "revoke", "no-such-user", "--database-url", demo.url]
    )
    assert missing.exit_code == 1


def test_deactivation_and_idleness_end_sessions(app: FastAPI, demo: Demo, person: str) -> None:
    idle, gone = TestClient(app), TestClient(app)
    login(idle, person)
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            uid = s.scalar(select(User.id).where(User.username == person))
            s.execute(
                update(UserSession)
                .where(UserSession.user_id == uid)
                .values(last_seen_at=utcnow() - timedelta(hours=3))
            )
        assert not _signed_in(idle)  # idle longer than session_idle_hours (2)
        login(gone, person)
        assert _signed_in(gone)
        with session_scope(make_session_factory(engine)) as s:
            s.execute(update(User).where(User.id == uid).values(is_active=False))
        assert not _signed_in(gone)
    finally:
        engine.dispose()


def test_the_cookie_holds_no_user_id_and_the_table_no_secret(
    app: FastAPI, demo: Demo, person: str
) -> None:
    client = TestClient(app)
    login(client, person)
    cookie = client.cookies.get("labelloop_session")
    assert cookie
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            row = s.scalars(
                select(UserSession)
                .join(User, User.id == UserSession.user_id)
                .where(User.username == person)
            ).one()
            # only a SHA-256 of the secret is stored; the cookie does not contain it
            assert len(row.token_hash) == 64 and row.token_hash not in cookie
    finally:
        engine.dispose()
