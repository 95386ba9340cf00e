"""A server error on the anonymous channel leaves no trace of the caller in the server's
log: it is re-raised as ``AnonymousRequestFailed`` without its cause (a database error's
message lists the failed statement's parameters, such as the member's user id), while
the errors that get an answer (here a concurrent change's 409) pass unchanged."""

from __future__ import annotations

import sqlite3
import time
import traceback
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.feedback import anonymous
from labelloop.web import create_app
from labelloop.web.pages.anonymous import AnonymousRequestFailed
from tests.web.conftest import ROLE_USERS, Demo, csrf_of, make_settings
from tests.web.test_anonymous_page import logging_server

#: A number that stands for the member's user id in the failed statement.
MARK = "987654321"


def _failing(*_a: object, **_k: object) -> None:
    raise OperationalError(
        "SELECT role FROM memberships WHERE user_id = ?", (int(MARK),), sqlite3.OperationalError()
    )


def _form(demo: Demo) -> str:
    return f"/projects/{demo.project_id}/anonymous"


def _sign_in(client: httpx.Client | TestClient, username: str) -> str:
    token = csrf_of(client.get("/login").text)
    data = {"username": username, "password": DEMO_PASSWORD, "csrf_token": token, "next": "/"}
    assert client.post("/login", data=data).status_code in (200, 303)
    return csrf_of(client.get("/").text)


def test_a_server_error_loses_its_cause(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anonymous, "post_note", _failing)
    with TestClient(create_app(make_settings(demo.url, tmp_path))) as client:
        csrf = _sign_in(client, ROLE_USERS["annotator"])
        with pytest.raises(AnonymousRequestFailed) as caught:
            client.post(_form(demo), data={"csrf_token": csrf, "category": "other", "text": "x"})
    exc = caught.value
    assert exc.__cause__ is None and exc.__suppress_context__
    printed = "".join(traceback.format_exception(exc))
    assert MARK not in printed and "OperationalError on the anonymous channel" in printed


def test_a_concurrent_change_is_still_a_409(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(*_a: object, **_k: object) -> None:
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed: x"))

    monkeypatch.setattr(anonymous, "post_note", conflict)
    with TestClient(create_app(make_settings(demo.url, tmp_path))) as client:
        csrf = _sign_in(client, ROLE_USERS["annotator"])
        r = client.post(_form(demo), data={"csrf_token": csrf, "category": "other", "text": "x"})
    assert r.status_code == 409


def test_the_servers_error_log_holds_no_parameter(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(anonymous, "post_note", _failing)
    app = create_app(make_settings(demo.url, tmp_path))
    with logging_server(app) as (base, _), httpx.Client(base_url=base, timeout=60) as client:
        csrf = _sign_in(client, ROLE_USERS["annotator"])
        capfd.readouterr()
        body = {"csrf_token": csrf, "category": "other", "text": "x"}
        assert client.post(_form(demo), data=body).status_code == 500
        time.sleep(0.2)
        window = capfd.readouterr()
    printed = window.out + window.err
    assert "AnonymousRequestFailed" in printed and MARK not in printed, printed
