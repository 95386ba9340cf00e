"""How a request uses the database: every route commits on its own worker thread, and
resolving the caller never needs a second pooled connection while holding one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from labelloop.projects.models import Annotation
from labelloop.web import create_app
from labelloop.web.deps import TransactionRoute, get_session
from tests.web.conftest import ROLE_USERS, Demo, count_rows, make_settings
from tests.web.test_api import _bearer, _token


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint route, through included routers (kept lazily by newer FastAPI)."""
    out: list[APIRoute] = []

    def walk(routes: Any) -> None:
        for route in routes:
            if hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif isinstance(route, APIRoute):
                out.append(route)
            elif hasattr(route, "routes") and getattr(route, "path", "") != "/static":
                walk(route.routes)

    walk(app.routes)
    return out


def _uses_session(dependant: Any) -> bool:
    return dependant.call is get_session or any(_uses_session(d) for d in dependant.dependencies)


def test_every_route_with_a_session_commits_on_its_own_thread(demo_app: FastAPI) -> None:
    routes = [r for r in _api_routes(demo_app) if _uses_session(r.dependant)]
    assert len(routes) > 40
    loose = sorted(r.path for r in routes if not isinstance(r, TransactionRoute))
    assert not loose, f"routes that would commit a round trip later: {loose}"


def test_one_connection_is_enough(demo: Demo, tmp_path: Path) -> None:
    """With a pool of one connection, a bearer request whose token's ``last_used_at``
    is due (its first use) still answers: the lookup and that write never wait for a
    second connection while the request holds one (which would stall until the pool
    timeout and fail)."""
    settings = make_settings(demo.url, tmp_path)
    settings.db_pool_size, settings.db_max_overflow = 1, 0
    token = _token(demo, ROLE_USERS["annotator"], "annotator")
    with TestClient(create_app(settings)) as api:
        r = api.post(f"/api/v1/projects/{demo.project_id}/work/next", headers=_bearer(token))
        assert r.status_code == 200, r.text
        item_id = r.json()["item"]["item_id"]
        before = count_rows(demo.url, Annotation, item_id=item_id)
        r = api.post(
            f"/api/v1/projects/{demo.project_id}/annotations",
            json={"item_id": item_id, "value": "billing"},
            headers=_bearer(token),
        )
        assert r.status_code == 201, r.text
        assert api.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    assert count_rows(demo.url, Annotation, item_id=item_id) == before + 1
