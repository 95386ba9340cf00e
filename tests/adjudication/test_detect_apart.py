"""Detection reads apart from its write, whoever runs it (the worker, the API, the CLI):
while it reads the project, another writer can still take SQLite's write lock, and
running it again opens nothing new."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from labelloop import worker
from labelloop.accounts import tokens
from labelloop.accounts.roles import Role
from labelloop.adjudication import service
from labelloop.cli import app as cli_app
from labelloop.projects.models import Project
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from labelloop.web import create_app
from tests.adjudication.test_worker import OPERATOR, _project
from tests.web.conftest import bearer, make_settings


def _writable(url: str) -> bool:
    """Whether another connection may take the write lock at once (SQLite). Reading
    takes no lock that a PostgreSQL writer waits for: True there."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    conn = sqlite3.connect(str(parsed.database), timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


@pytest.fixture
def probed(monkeypatch: pytest.MonkeyPatch, fresh_database_url: str) -> list[bool]:
    """Whether the write lock was free each time detection started reading."""
    seen: list[bool] = []
    original = service.find

    def find(session: Any, **kw: Any) -> service.Findings:
        seen.append(_writable(fresh_database_url))
        return original(session, **kw)

    monkeypatch.setattr(service, "find", find)
    return seen


def _by_api(url: str, project_id: int, tmp_path: Path, _attempt: int) -> int:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            token = tokens.create_token(
                s, actor=OPERATOR, username="judge", project_id=project_id, role=Role.ADJUDICATOR
            ).plaintext
    finally:
        engine.dispose()
    with TestClient(create_app(make_settings(url, tmp_path))) as client:
        r = client.post(f"/api/v1/projects/{project_id}/cases/detect", headers=bearer(token))
    assert r.status_code == 200, r.text
    return int(r.json()["opened"])


def _by_cli(url: str, _project_id: int, _tmp: Path, _attempt: int) -> int:
    args = ["cases", "detect", "--project", "tickets", "--json", "--database-url", url]
    r = CliRunner().invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    return int(json.loads(r.output)["opened"])


def _by_worker(url: str, _project_id: int, _tmp: Path, attempt: int) -> int:
    now = utcnow() + timedelta(hours=2 * attempt)  # each run due on the worker's cadence
    [job] = worker.detect_cases(Settings(database_url=url), now=now)
    return int(job.message.split()[0])


@pytest.mark.parametrize("run", [_by_api, _by_cli, _by_worker], ids=["api", "cli", "worker"])
def test_detection_reads_without_the_write_lock(
    run: Any, fresh_database_url: str, probed: list[bool], tmp_path: Path
) -> None:
    project_id = _project(fresh_database_url, n_disputed=12)
    assert run(fresh_database_url, project_id, tmp_path, 0) == 12
    assert probed == [True]
    assert run(fresh_database_url, project_id, tmp_path, 1) == 0  # nothing new


def test_the_probe_sees_a_write_transaction(fresh_database_url: str, backend: str) -> None:
    """The control: reading inside a write transaction (what the API and the CLI did)
    holds SQLite's write lock, and the probe notices."""
    project_id = _project(fresh_database_url, n_disputed=1)
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            assert s.get(Project, project_id) is not None
            assert _writable(fresh_database_url) is (backend != "sqlite")
    finally:
        engine.dispose()


def test_reader_apart_or_the_session_itself(fresh_database_url: str) -> None:
    project_id = _project(fresh_database_url, n_disputed=5)
    engine = make_engine(fresh_database_url)
    reader = make_engine(fresh_database_url, read_only=True)
    try:
        with (
            session_scope(make_session_factory(reader)) as r,
            session_scope(make_session_factory(engine)) as s,
        ):
            project = r.get(Project, project_id)
            assert project is not None
            apart = service.detect_apart(reader=r, session=s, actor=OPERATOR, project=project)
        with session_scope(make_session_factory(engine)) as s:
            project = s.get(Project, project_id)
            assert project is not None
            again = service.detect_apart(reader=s, session=s, actor=OPERATOR, project=project)
        assert apart.opened == apart.candidates == 5
        assert (again.opened, again.candidates) == (0, 0)
    finally:
        engine.dispose()
        reader.dispose()
