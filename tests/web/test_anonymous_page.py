"""The anonymous channel's pages, tested the way an auditor of its claim would.

The claim: a note posted at ``/projects/{id}/anonymous`` leaves nothing that names its
author: not in any table, not in the trail, not in the server's log. The auditor signs
in as a known user (one whose user id and session id are numbers that cannot turn up
by chance), posts through a real uvicorn server with its access log on, then dumps
every table before and after and reads the log of those requests, looking for the
username, the display name, the e-mail address, the user id and the session id as
words, the session's secret, its hash, the cookie, the CSRF token and the client's
address. The rest: the page for each role, CSRF, validation, the daily limit, and the
pages at a phone's width.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text, update

from labelloop.accounts.models import Membership, User, UserSession
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.feedback import anonymous
from labelloop.feedback.anonymous_models import AnonymousNote
from labelloop.store import make_engine, make_session_factory, session_scope, utcnow
from labelloop.trail.models import Event
from labelloop.web import create_app
from labelloop.web.app import SESSION_COOKIE
from tests.web.conftest import ROLE_USERS, Demo, count_rows, csrf_of, login, make_settings

#: Roles that hold a role in the demo project (administrators do not).
PROJECT_ROLES = ("lead", "auditor", "adjudicator", "mentor", "annotator", "model")


def form_url(demo: Demo) -> str:
    return f"/projects/{demo.project_id}/anonymous"


def notes_in(demo: Demo) -> int:
    return count_rows(demo.url, AnonymousNote, project_id=demo.project_id)


# -- the page for each role ------------------------------------------------------------


@pytest.mark.parametrize("who", ["anonymous", *ROLE_USERS])
def test_pages_for_each_role(
    who: str, clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    client, _ = clients[who]
    form = client.get(form_url(demo), follow_redirects=False)
    summary = client.get(form_url(demo) + "/summary", follow_redirects=False)
    if who == "anonymous":
        for r in (form, summary):
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        return
    if who == "outsider":
        assert form.status_code == summary.status_code == 404
        assert f"no project with id {demo.project_id}" in form.text
        return
    assert form.status_code == 200, form.text
    assert ('id="anonymous-form"' in form.text) == (who != "admin")
    assert ('id="not-member"' in form.text) == (who == "admin")
    assert ('id="summary-link"' in form.text) == (who in ("admin", "lead"))
    if who in ("admin", "lead"):
        assert summary.status_code == 200, summary.text
        assert "anonymous notes" in summary.text and "at least 5 notes" in summary.text
    else:
        assert summary.status_code == 403


def test_projects_list_links_the_page(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    client, _ = clients["annotator"]
    assert f'href="{form_url(demo)}"' in client.get("/").text


def test_post_needs_the_csrf_token(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    client, _ = clients["annotator"]
    before = notes_in(demo)
    body = {"category": "workload", "text": "no token"}
    assert client.post(form_url(demo), data=body).status_code == 403
    r = client.post(form_url(demo), data=body | {"csrf_token": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert notes_in(demo) == before


def test_post_validates_and_confirms(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    client, csrf = clients["mentor"]
    before = notes_in(demo)
    r = client.post(
        form_url(demo),
        data={"csrf_token": csrf or "", "category": "moods", "text": " "},
        follow_redirects=False,
    )
    assert r.status_code == 422
    assert 'id="err-category"' in r.text and 'id="err-text"' in r.text
    assert "write the note" in r.text and notes_in(demo) == before
    r = client.post(
        form_url(demo),
        data={"csrf_token": csrf or "", "category": "tooling", "text": "The <b>hotkeys</b> lag"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == form_url(demo) + "?sent=1"
    page = client.get(r.headers["location"])
    assert 'id="sent"' in page.text and notes_in(demo) == before + 1


def _new_member(demo: Demo, *, user_id: int | None = None) -> tuple[int, str]:
    """A new annotator of the demo project with the demo password (and, when given,
    this exact user id); returns (user id, username)."""
    username = f"anon.subject.{uuid.uuid4().hex[:8]}"
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(DEMO_PASSWORD)
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            user = User(
                username=username,
                display_name=f"Subject {username[-8:].upper()} Quill",
                email=f"{username}@example.org",
                password_hash=cheap,
            )
            if user_id is not None:
                user.id = user_id
            s.add(user)
            s.flush()
            s.add(Membership(user_id=user.id, project_id=demo.project_id, role="annotator"))
            return user.id, username
    finally:
        engine.dispose()


def test_post_past_the_daily_limit_is_429(
    demo_app: FastAPI, clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    _, username = _new_member(demo)
    client = TestClient(demo_app)  # the engine of `clients`' lifespan; own cookie jar
    csrf = login(client, username)
    for i in range(anonymous.DAILY_LIMIT):
        r = client.post(
            form_url(demo),
            data={"csrf_token": csrf, "category": "workload", "text": f"note {i}"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    assert "You can post 0 more today" in client.get(form_url(demo)).text
    r = client.post(
        form_url(demo),
        data={"csrf_token": csrf, "category": "pressure", "text": "one more"},
    )
    assert r.status_code == 429 and 'id="err-form"' in r.text
    assert "post again tomorrow" in r.text and "one more" in r.text  # kept in the form


# -- the auditor's test ----------------------------------------------------------------


class _Records(logging.Handler):
    """Every log record the server emits, with its message, arguments and extras."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in vars(record).items() if k not in _PLAIN_RECORD}
        self.lines.append(f"{record.name} {record.getMessage()} {record.args!r} {extras!r}")


_PLAIN_RECORD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
#: The server's loggers: uvicorn's (its access log included) and the app's own.
_SERVER_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "labelloop")


@contextmanager
def logging_server(app: FastAPI) -> Iterator[tuple[str, _Records]]:
    """``app`` under uvicorn as ``labelloop serve`` runs it (log level info, so every
    request gets an access line); yields its address and the records it logs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", proxy_headers=False))
    records = _Records()
    for name in _SERVER_LOGGERS:
        logging.getLogger(name).addHandler(records)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", records
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
        for name in _SERVER_LOGGERS:
            logging.getLogger(name).removeHandler(records)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # off the captured streams
            logging.getLogger(name).handlers.clear()


def dump(url: str) -> dict[str, Counter[str]]:
    """Every row of every table, each as the text of all its columns."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: Counter(
                    " | ".join(str(v) for v in row)
                    for row in conn.execute(text(f'SELECT * FROM "{name}"'))
                )
                for name in inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def _distinctive_session_ids(url: str, user_id: int, first: int) -> None:
    """Make the next session id ``first``: a spent placeholder session just below it
    (and the sequence moved there on PostgreSQL)."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            now = utcnow()
            s.add(
                UserSession(
                    id=first - 1,
                    user_id=user_id,
                    token_hash=secrets.token_hex(32),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now,
                    revoked_at=now,
                )
            )
            s.flush()
            if engine.dialect.name == "postgresql":
                s.execute(
                    text("SELECT setval(pg_get_serial_sequence('user_sessions', 'id'), :v)"),
                    {"v": first - 1},
                )
    finally:
        engine.dispose()


def _unused_id(url: str, model: type, low: int) -> int:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            while True:
                candidate = low + secrets.randbelow(8_000_000)
                if s.get(model, candidate) is None and s.get(model, candidate - 1) is None:
                    return candidate
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Subject:
    """Everything that would name the author of a note."""

    user_id: int
    username: str
    display_name: str
    email: str
    session_id: int
    secret: str
    token_hash: str
    cookie: str
    csrf: str
    address: str

    def marks(self) -> dict[str, re.Pattern[str]]:
        def word(value: object) -> re.Pattern[str]:
            return re.compile(rf"(?<![0-9A-Za-z_]){re.escape(str(value))}(?![0-9A-Za-z_])")

        plain = {
            "username": self.username,
            "display name": self.display_name,
            "e-mail": self.email,
            "session secret": self.secret,
            "session hash": self.token_hash,
            "cookie": self.cookie,
            "CSRF token": self.csrf,
            "client address": self.address,
        }
        out = {k: re.compile(re.escape(v), re.IGNORECASE) for k, v in plain.items()}
        return out | {"user id": word(self.user_id), "session id": word(self.session_id)}

    def found_in(self, text_: str) -> list[str]:
        return [name for name, mark in self.marks().items() if mark.search(text_)]


def _sign_in(client: httpx.Client, url: str, username: str, user_id: int) -> Subject:
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token, "next": "/"},
    )
    assert r.status_code == 303, r.text
    csrf = csrf_of(client.get("/").text)
    cookie = client.cookies[SESSION_COOKIE]
    payload = cookie.split(".")[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    secret = data["sid"]
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            user = s.get(User, user_id)
            row = s.scalars(
                select(UserSession).where(
                    UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
                )
            ).one()
            assert user is not None and user.display_name and user.email
            assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
            return Subject(
                user_id=user_id,
                username=username,
                display_name=user.display_name,
                email=user.email,
                session_id=row.id,
                secret=secret,
                token_hash=row.token_hash,
                cookie=cookie,
                csrf=csrf,
                address="127.0.0.1",
            )
    finally:
        engine.dispose()


def _make_touch_due(url: str, session_id: int) -> Any:
    """Date the session's last use ten minutes back, so that any request that records
    a use of the session would write ``last_seen_at`` now."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            back = utcnow() - timedelta(minutes=10)
            s.execute(
                update(UserSession).where(UserSession.id == session_id).values(last_seen_at=back)
            )
            return s.scalar(select(UserSession.last_seen_at).where(UserSession.id == session_id))
    finally:
        engine.dispose()


def _last_seen(url: str, session_id: int) -> Any:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return s.scalar(select(UserSession.last_seen_at).where(UserSession.id == session_id))
    finally:
        engine.dispose()


NOTES = {
    "workload": "Queues doubled this week and nobody said why.",
    "pressure": "Being timed per ticket makes me rush the hard ones.",
    "guidelines": "Refund versus billing still reads both ways.",
}


def test_a_post_leaves_no_trace_of_its_author(
    demo: Demo, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    uid, username = _new_member(demo, user_id=_unused_id(demo.url, User, 1_000_000))
    sid = _unused_id(demo.url, UserSession, 3_000_000)
    _distinctive_session_ids(demo.url, uid, sid)

    app = create_app(make_settings(demo.url, tmp_path))
    page = form_url(demo)
    with logging_server(app) as (base, records), httpx.Client(base_url=base, timeout=60) as client:
        me = _sign_in(client, demo.url, username, uid)
        assert (me.user_id, me.session_id) == (uid, sid)
        seen_at = _make_touch_due(demo.url, me.session_id)
        before = dump(demo.url)
        capfd.readouterr()
        records.lines.clear()

        # the channel's requests: the form, a refused post without the token, a refused
        # post, three posts and the confirmations they lead to, the summary (refused)
        assert client.get(page).status_code == 200
        assert client.post(page, data={"category": "other", "text": "x"}).status_code == 403
        body = {"csrf_token": me.csrf, "category": "mood", "text": "x"}
        assert client.post(page, data=body).status_code == 422
        for category, note in NOTES.items():
            r = client.post(page, data={"csrf_token": me.csrf, "category": category, "text": note})
            assert r.status_code == 303, r.text
            assert client.get(r.headers["location"]).status_code == 200
        assert client.get(page + "/summary").status_code == 403
        time.sleep(0.2)
        window = capfd.readouterr()
        printed = window.out + window.err
        lines = list(records.lines)
        records.lines.clear()

        after = dump(demo.url)
        assert _last_seen(demo.url, me.session_id) == seen_at

        # the controls: any other page's access line names the client (so the log is
        # on, and read here), and records the use of the session (so a touch would have
        # shown in the tables)
        assert client.get("/").status_code == 200
        time.sleep(0.2)
        control = capfd.readouterr()
        assert me.found_in(control.out + control.err) == ["client address"]
        assert any('"GET / HTTP/1.1" 200' in line for line in records.lines)
        touched = dump(demo.url)["user_sessions"] - after["user_sessions"]
        [row] = touched
        assert {"user id", "session id", "session hash"} <= set(me.found_in(row))

    # the log: every request of the channel has its line, and none names the caller
    logged = "\n".join(lines)
    post_line = f'"POST /projects/{demo.project_id}/anonymous HTTP/1.1"'
    assert logged.count(post_line) == 5 and f"{post_line} 303" in printed
    assert f'"GET /projects/{demo.project_id}/anonymous?sent=1 HTTP/1.1" 200' in logged
    assert me.found_in(logged) == [], logged
    assert me.found_in(printed) == [], printed

    # the database: what changed holds the notes, their events and a count, and
    # nothing that names the author; the session was not touched
    changed = {name: after[name] - before.get(name, Counter()) for name in after}
    changed = {name: rows for name, rows in changed.items() if rows}
    # (today's salt is new unless an earlier test posted today)
    assert set(changed) - {"anonymous_quota_salts"} == {
        "anonymous_notes",
        "anonymous_quota",
        "events",
        "trail_head",
    }
    for name, rows in changed.items():
        for row in rows:
            assert me.found_in(row) == [], (name, row)
    for name in ("anonymous_notes", "anonymous_quota", "anonymous_quota_salts"):
        for row in after[name]:
            assert me.found_in(row) == [], (name, row)
    # the session secret, the cookie and the CSRF token are in no table at all
    everything = "\n".join(row for rows in after.values() for row in rows)
    for name in ("session secret", "cookie", "CSRF token"):
        assert not me.marks()[name].search(everything), name

    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            texts = s.scalars(
                select(AnonymousNote.text).where(AnonymousNote.project_id == demo.project_id)
            ).all()
            assert set(NOTES.values()) <= set(texts)
            events = s.scalars(
                select(Event).where(Event.action == "anonymous_note.post").order_by(Event.seq)
            ).all()[-3:]
            assert {(e.actor, e.entity_id, e.project_id) for e in events} == {
                ("anonymous", None, demo.project_id)
            }
            assert s.scalar(select(func.max(Event.seq))) == events[-1].seq
    finally:
        engine.dispose()


# -- at a phone's width ----------------------------------------------------------------


def test_pages_fit_a_phone(demo: Demo, tmp_path: Path, backend: str) -> None:
    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, Page, playwright_sync

    # a past week with a shown category (long texts) for the summary
    engine = make_engine(demo.url)
    monday = date.today() - timedelta(days=date.today().weekday() + 14)
    try:
        with session_scope(make_session_factory(engine)) as s:
            for i in range(6):
                s.add(
                    AnonymousNote(
                        key=uuid.uuid4().hex,
                        project_id=demo.project_id,
                        category="tooling",
                        text=f"Phone check {i}: " + "averyveryverylongwordwithoutspaces" * 4,
                        posted_on=monday + timedelta(days=1),
                    )
                )
    finally:
        engine.dispose()
    app = create_app(make_settings(demo.url, tmp_path))
    with logging_server(app) as (base, _), playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for who, path in (("annotator", ""), ("lead", "/summary")):
                p = Page(browser, base)
                try:
                    p.login(ROLE_USERS[who])
                    p.page.set_viewport_size({"width": 360, "height": 800})
                    r = p.page.goto(base + form_url(demo) + path)
                    assert r is not None and r.status == 200
                    assert p.page.evaluate("document.documentElement.scrollWidth") <= 362
                    p.shot(f"anonymous{path.replace('/', '-')}-{who}", backend)
                    if who == "annotator":
                        p.page.check("input[name=category][value=workload]")
                        p.page.fill("textarea[name=text]", "Sent from a phone.")
                        p.page.click("#anonymous-form button[type=submit]")
                        p.page.wait_for_url("**/anonymous?sent=1")
                        assert "Your note was posted" in p.page.inner_text("#sent")
                    else:
                        p.page.click("details summary")
                        assert "Phone check 0" in p.page.inner_text("main")
                        assert p.page.evaluate("document.documentElement.scrollWidth") <= 362
                    assert not p.errors, p.errors
                finally:
                    p.close()
        finally:
            browser.close()
