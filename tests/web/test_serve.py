"""``labelloop serve --workers N``: each worker process builds its app from the
environment the parent set, so all of them use the same database and signing key."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from labelloop.cli import app as cli
from labelloop.web import asgi
from tests.web.conftest import ROLE_USERS, Demo, login


def test_workers_share_database_and_session_key(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABELLOOP_DATABASE_URL", demo.url)
    monkeypatch.setenv("LABELLOOP_SECRET_KEY", "shared-worker-key-" + "y" * 32)
    monkeypatch.setenv(asgi.SECURE_COOKIES_ENV, "")
    with (
        TestClient(asgi.app_from_environment()) as first,
        TestClient(asgi.app_from_environment()) as second,
    ):
        login(first, ROLE_USERS["lead"])
        second.cookies.update(first.cookies)  # the next request lands on another worker
        r = second.get(f"/projects/{demo.project_id}", follow_redirects=False)
        assert r.status_code == 200, r.status_code
        assert "overview" in r.text


def test_serve_hands_settings_to_workers(
    demo: Demo, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    calls: dict[str, object] = {}

    def fake_run(target: object, **kwargs: object) -> None:
        calls["target"], calls["kwargs"] = target, kwargs
        calls["env"] = {k: os.environ.get(k) for k in ("LABELLOOP_DATABASE_URL",)}
        calls["key"] = bool(os.environ.get("LABELLOOP_SECRET_KEY"))

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    # serve sets these for its workers: setting them here first makes monkeypatch put
    # back the state from before the test (delenv of an absent variable records nothing)
    for name in ("LABELLOOP_DATABASE_URL", "LABELLOOP_SECRET_KEY", asgi.SECURE_COOKIES_ENV):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("LABELLOOP_SECRET_KEY_FILE", str(tmp_path / "secret"))
    result = CliRunner().invoke(
        cli, ["serve", "--workers", "3", "--port", "8123", "--database-url", demo.url]
    )
    assert result.exit_code == 0, result.output
    assert calls["target"] == "labelloop.web.asgi:app_from_environment"
    assert calls["kwargs"] == {
        "factory": True,
        "host": "127.0.0.1",
        "port": 8123,
        "workers": 3,
        "log_level": "info",
        "proxy_headers": False,
    }
    assert calls["env"] == {"LABELLOOP_DATABASE_URL": demo.url}
    assert calls["key"]


def test_server_app_freezes_its_start_up_heap(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server process keeps the objects alive at start-up out of full collections
    (``gc.freeze``) while it runs, and gives them back when it stops."""
    import gc

    monkeypatch.setenv("LABELLOOP_DATABASE_URL", demo.url)
    monkeypatch.setenv("LABELLOOP_SECRET_KEY", "freeze-key-" + "z" * 32)
    assert gc.get_freeze_count() == 0
    with TestClient(asgi.app_from_environment()) as client:
        assert gc.get_freeze_count() > 10_000
        assert client.get("/login").status_code == 200
    assert gc.get_freeze_count() == 0
