"""Web test fixtures: a demo database built once per backend per test session, apps
and signed-in clients for every demo role.

The demo (300 tickets, one closed weekly audit cycle) is built through the services
into a fresh migrated database and committed; a second, small blind policy with one
open run gives the review-queue tests work. Tests share it, so they only add rows
(annotations, gold labels, tokens, reviews) and never depend on exact counts that
other tests change.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment
from labelloop.audits.schemas import ReviewInput
from labelloop.demo.builder import DEMO_ACCOUNTS, DEMO_PASSWORD, build_demo
from labelloop.demo.simulate import START, DemoData, simulate
from labelloop.projects.models import Project
from labelloop.projects.service import get_project
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.web import create_app
from tests.conftest import _copy_database, _Postgres

DEMO_ITEMS = 300
DEMO_SEED = 7
OPERATOR = Actor.local("test")
#: The demo logins by role, plus a user with no role anywhere.
ROLE_USERS = {a.role: a.username for a in DEMO_ACCOUNTS} | {"outsider": "web.outsider"}
TEST_POLICY = "web-test-blind"


@dataclass(frozen=True)
class Demo:
    url: str
    project_id: int
    closed_run_id: int
    open_run_id: int
    auditor_assignment_ids: tuple[int, ...]


def _closed_cycles(session: Session, project: Project, data: DemoData) -> list[int]:
    """Two small weekly cycles, reviewed by a reviewer who knows the simulated truth
    (the demo's own 700-unit cycles take ~15 s to review through the services)."""
    spec = audits.parse_spec(
        {
            "strata": ["annotator"],
            "allocation": "equal",
            "sample_size": 36,
            "min_per_stratum": 2,
            "reviewers": ["demo.auditor"],
            "blind": True,
            "double_review_fraction": 0.0,
        }
    )
    policy = audits.create_policy(
        session, actor=OPERATOR, project=project, name="web-weekly", spec=spec
    )
    reviewer = accounts.get_user(session, "demo.auditor")
    times = sorted(a.submitted_at for a in data.annotations if a.submitted_at is not None)
    first, middle, last = times[0], times[len(times) // 2], times[-1] + timedelta(seconds=1)
    out = []
    for start, end in ((first, middle), (middle, last)):
        run = audits.open_run(
            session, actor=OPERATOR, policy=policy, window_start=start, window_end=end
        ).run
        for entry in audits.review_queue(session, actor=OPERATOR, run=run, reviewer_id=reviewer.id):
            audits.record_review(
                session,
                actor=OPERATOR,
                assignment_id=entry.assignment_id,
                review=ReviewInput(
                    verdict="correct",
                    corrected_value=data.truth[entry.item_external_id],
                    error_category="guideline misread" if entry.unit_id % 2 else "attention slip",
                    severity="medium",
                ),
            )
        audits.close_run(session, actor=OPERATOR, run=run)
        out.append(run.id)
    return out


def _cheap_hashes(session: Session) -> None:
    """Sign-in costs ~1 s with argon2's default cost on a test machine; the demo logins
    get the same password hashed with a low cost (verification reads the cost from the
    hash, so the code under test is unchanged)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(DEMO_PASSWORD)
    for user in session.scalars(select(User).where(User.username.in_(ROLE_USERS.values()))):
        user.password_hash = cheap


def _build(url: str) -> Demo:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            summary = build_demo(session, actor=OPERATOR, seed=DEMO_SEED, n_items=DEMO_ITEMS)
            accounts.create_user(
                session, actor=OPERATOR, username=ROLE_USERS["outsider"], password=DEMO_PASSWORD
            )
            session.flush()
            _cheap_hashes(session)
        with session_scope(factory) as session:
            project = get_project(session, summary.project)
            data = simulate(DEMO_SEED, DEMO_ITEMS)
            closed = _closed_cycles(session, project, data)
            spec = audits.parse_spec(
                {
                    "sample_size": 8,
                    "reviewers": ["demo.auditor", "demo.adjudicator"],
                    "blind": True,
                    "double_review_fraction": 0.0,
                }
            )
            policy = audits.create_policy(
                session, actor=OPERATOR, project=project, name=TEST_POLICY, spec=spec
            )
            run = audits.open_run(
                session,
                actor=OPERATOR,
                policy=policy,
                window_start=START - timedelta(days=1),
                window_end=START + timedelta(days=60),
                trigger="manual",
            ).run
            auditor = accounts.get_user(session, "demo.auditor")
            mine = session.scalars(
                select(AuditAssignment.id)
                .where(AuditAssignment.run_id == run.id, AuditAssignment.reviewer_id == auditor.id)
                .order_by(AuditAssignment.id)
            ).all()
            assert closed and mine
            return Demo(url, project.id, closed[-1], run.id, tuple(mine))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def demo(
    backend: str,
    template_url: str,
    _postgres: _Postgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Demo:
    """The demo database of this backend (built once per test session and worker)."""
    url = _copy_database(backend, template_url, _postgres, tmp_path_factory.mktemp("webdemo"))
    return _build(url)


def make_settings(url: str, tmp: Path) -> Settings:
    return Settings(
        database_url=url, secret_key="test-secret-key-" + "x" * 32, secret_key_file=tmp / "k"
    )


@pytest.fixture(scope="session")
def demo_app(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    app = create_app(make_settings(demo.url, tmp_path_factory.mktemp("app")))
    yield app


@pytest.fixture
def fresh_app(demo: Demo, tmp_path: Path) -> FastAPI:
    """A new app (own throttle and idempotency memory) on the shared demo database."""
    return create_app(make_settings(demo.url, tmp_path))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: TestClient, username: str, password: str = DEMO_PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    token = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/").text)


@pytest.fixture(scope="session")
def clients(demo_app: FastAPI) -> Iterator[dict[str, tuple[TestClient, str | None]]]:
    """One client per role (signed in, with its CSRF token) and an anonymous one."""
    out: dict[str, tuple[TestClient, str | None]] = {}
    with TestClient(demo_app) as anonymous:  # runs the lifespan (the engine) once
        out["anonymous"] = (anonymous, None)
        for role, username in ROLE_USERS.items():
            c = TestClient(demo_app)  # shares the app's engine; own cookie jar
            out[role] = (c, login(c, username))
        yield out


def user_id(demo: Demo, username: str) -> int:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            uid = s.scalar(select(User.id).where(User.username == username))
            assert uid is not None
            return uid
    finally:
        engine.dispose()


def count_rows(url: str, model: type, **where: object) -> int:
    """Rows of ``model`` in the database at ``url`` whose columns equal ``where``."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            stmt = select(func.count()).select_from(model)
            for k, v in where.items():
                stmt = stmt.where(getattr(model, k) == v)
            return int(s.scalar(stmt) or 0)
    finally:
        engine.dispose()


def make_token(demo: Demo, username: str, role: str, project_id: int | None = None) -> str:
    """A new API token of ``username`` for ``role`` in the demo project (or another)."""
    from labelloop.accounts import tokens
    from labelloop.accounts.roles import Role

    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return tokens.create_token(
                s,
                actor=OPERATOR,
                username=username,
                project_id=project_id or demo.project_id,
                role=Role(role),
            ).plaintext
    finally:
        engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def live_server(app: FastAPI) -> Iterator[int]:
    """``app`` served by uvicorn on a free local port (yields the port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
