"""Every route × every role (and anonymous): the allow/deny table.

The table below names every (method, path) of the app. A route added without a row
fails :func:`test_every_route_has_a_rule`, so access is decided on purpose, never by
accident. "Allowed" means the request got past authentication and the permission check
(any status but 401, 403 or a redirect to the login page); writes are sent with bodies
that pass validation but name a record that does not exist, so an allowed write answers
404 and nothing is written. Callers who hold no role in a project are told the project
(or run) does not exist: that 404 counts as denied.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web.conftest import ROLE_USERS, Demo

ROLES = tuple(ROLE_USERS)  # admin, lead, auditor, adjudicator, mentor, annotator, model, outsider
PUBLIC = frozenset({"anonymous", *ROLES})
SIGNED_IN = frozenset(ROLES)
MEMBERS = frozenset(ROLES) - {"outsider"}
REVIEWERS = frozenset({"admin", "lead", "auditor", "adjudicator", "mentor"})
LEADS = frozenset({"admin", "lead"})
ADMINS = frozenset({"admin"})
ANNOTATORS = frozenset({"admin", "lead", "mentor", "annotator"})
GOLD_WRITERS = frozenset({"admin", "lead", "adjudicator"})
GOLD_READERS = frozenset({"admin", "lead", "model"})
MODELS = frozenset({"admin", "lead", "model"})

NOWHERE = 999_999_999

#: (method, path) -> who may.
RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("POST", "/logout"): SIGNED_IN,
    ("GET", "/"): SIGNED_IN,
    ("GET", "/account"): SIGNED_IN,
    ("POST", "/account/sessions/revoke"): SIGNED_IN,
    ("GET", "/projects/{project_id}"): LEADS,
    ("POST", "/projects/{project_id}/dashboard/refresh"): LEADS,
    ("GET", "/projects/{project_id}/audits"): REVIEWERS,
    ("GET", "/audits/runs/{run_id}"): REVIEWERS,
    ("GET", "/audits/runs/{run_id}/report"): LEADS,
    ("GET", "/audits/runs/{run_id}/queue"): REVIEWERS,
    ("POST", "/audits/runs/{run_id}/queue/{assignment_id}"): REVIEWERS,
    ("GET", "/projects/{project_id}/queue"): LEADS,
    ("POST", "/projects/{project_id}/queue"): LEADS,
    ("GET", "/admin/users"): ADMINS,
    ("POST", "/admin/users"): ADMINS,
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/projects"): SIGNED_IN,
    ("GET", "/api/v1/projects/{project_id}"): MEMBERS,
    # guidelines: members read and acknowledge, leads edit and publish
    ("GET", "/projects/{project_id}/guidelines"): MEMBERS,
    ("GET", "/projects/{project_id}/guidelines/diff"): MEMBERS,
    ("GET", "/projects/{project_id}/guidelines/read"): MEMBERS,
    ("POST", "/projects/{project_id}/guidelines/acknowledge"): MEMBERS,
    ("GET", "/projects/{project_id}/guidelines/draft"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/draft"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/draft/discard"): LEADS,
    ("GET", "/projects/{project_id}/guidelines/draft/rules/{key}"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/draft/rules/{key}"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/publish"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/guidelines"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/versions"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/diff"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/pending"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/acknowledge"): MEMBERS,
    ("PUT", "/api/v1/projects/{project_id}/guidelines/draft"): LEADS,
    ("DELETE", "/api/v1/projects/{project_id}/guidelines/draft"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/publish"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/items"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/annotations"): ANNOTATORS,
    ("POST", "/api/v1/projects/{project_id}/work/next"): ANNOTATORS,
    ("GET", "/api/v1/projects/{project_id}/work/status"): ANNOTATORS,
    ("POST", "/api/v1/projects/{project_id}/work/{item_id}/skip"): ANNOTATORS,
    ("GET", "/api/v1/projects/{project_id}/gold"): GOLD_READERS,
    ("POST", "/api/v1/projects/{project_id}/gold"): GOLD_WRITERS,
    ("POST", "/api/v1/projects/{project_id}/predictions"): MODELS,
    ("GET", "/api/v1/projects/{project_id}/audit-policies"): REVIEWERS,
    ("GET", "/api/v1/projects/{project_id}/audit-policies/{policy}"): REVIEWERS,
    ("GET", "/api/v1/projects/{project_id}/audit-policies/{policy}/trend"): REVIEWERS,
    ("GET", "/api/v1/projects/{project_id}/audit-runs"): REVIEWERS,
    ("GET", "/api/v1/audit-runs/{run_id}"): REVIEWERS,
    ("GET", "/api/v1/audit-runs/{run_id}/report"): LEADS,
    # lead pages: audit policies, imports, exports
    ("GET", "/projects/{project_id}/policies"): LEADS,
    ("POST", "/projects/{project_id}/policies"): LEADS,
    ("GET", "/projects/{project_id}/policies/{policy_id}"): LEADS,
    ("POST", "/projects/{project_id}/policies/{policy_id}"): LEADS,
    ("POST", "/projects/{project_id}/policies/{policy_id}/run"): LEADS,
    ("GET", "/projects/{project_id}/imports"): LEADS,
    ("POST", "/projects/{project_id}/imports"): LEADS,
    ("GET", "/projects/{project_id}/exports"): GOLD_READERS,
    ("GET", "/projects/{project_id}/exports/download"): GOLD_READERS,
    # API writes
    ("POST", "/api/v1/projects/{project_id}/items"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/audit-policies"): LEADS,
    ("PATCH", "/api/v1/projects/{project_id}/audit-policies/{policy}"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/audit-policies/{policy}/runs"): LEADS,
    ("POST", "/api/v1/audit-runs/{run_id}/close"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/export"): GOLD_READERS,
    # the annotator workbench
    ("GET", "/projects/{project_id}/work"): ANNOTATORS,
    ("POST", "/projects/{project_id}/work/{item_id}"): ANNOTATORS,
    ("POST", "/projects/{project_id}/work/{item_id}/skip"): ANNOTATORS,
}

#: Bodies that pass request validation and reach the service (which then finds nothing).
FORMS: dict[str, dict[str, str]] = {
    "/login": {"username": "nobody-{who}", "password": "wrong-password", "next": "/"},
    "/audits/runs/{run_id}/queue/{assignment_id}": {"verdict": "unsure"},
    "/admin/users": {"username": "   ", "password": "long-enough-pw"},
    "/logout": {},
    "/account/sessions/revoke": {"session_id": str(NOWHERE)},
    "/projects/{project_id}/dashboard/refresh": {},
    "/projects/{project_id}/policies": {"name": " "},
    "/projects/{project_id}/policies/{policy_id}": {"cadence": "manual"},
    "/projects/{project_id}/policies/{policy_id}/run": {},
    "/projects/{project_id}/imports": {"format": "auto"},
    "/projects/{project_id}/work/{item_id}": {"value": "billing"},
    "/projects/{project_id}/work/{item_id}/skip": {"reason": "access table"},
    "/projects/{project_id}/queue": {"overlap": "0", "gold_rate": "0.1", "lease_minutes": "30"},
    "/projects/{project_id}/guidelines/acknowledge": {"version": "99.99"},
    "/projects/{project_id}/guidelines/draft": {"title": ""},
    "/projects/{project_id}/guidelines/draft/discard": {},
    "/projects/{project_id}/guidelines/draft/rules/{key}": {"id": "", "title": "t"},
    "/projects/{project_id}/guidelines/publish": {"note": " "},
}
JSON_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/projects/{project_id}/annotations": {"item_id": NOWHERE, "value": "billing"},
    "/api/v1/projects/{project_id}/work/next": {},
    "/api/v1/projects/{project_id}/work/{item_id}/skip": {"reason": "access table"},
    "/api/v1/projects/{project_id}/gold": {"item_id": NOWHERE, "value": "billing"},
    "/api/v1/projects/{project_id}/predictions": {"item_id": NOWHERE, "model_name": "m"},
    "/api/v1/projects/{project_id}/items": {"external_id": "", "payload": {}},
    "/api/v1/projects/{project_id}/audit-policies": {"name": " "},
    "/api/v1/projects/{project_id}/audit-policies/{policy}": {"active": True},
    "/api/v1/projects/{project_id}/audit-policies/{policy}/runs": {},
    "/api/v1/audit-runs/{run_id}/close": {},
    "/api/v1/projects/{project_id}/guidelines/acknowledge": {"version": "99.99"},
    "/api/v1/projects/{project_id}/guidelines/draft": {
        "title": "t",
        "rules": [{"id": "R1", "title": "x", "labels": ["no-such-label"]}],
    },
    "/api/v1/projects/{project_id}/guidelines/publish": {"note": "access table"},
}


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every endpoint, through included routers (FastAPI versions
    either copy routes into ``app.routes`` or keep lazy included-router nodes)."""
    out: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is not None:
                for ctx in contexts():
                    out.update((m, ctx.path) for m in ctx.methods if m != "HEAD")
                continue
            methods = getattr(route, "methods", None)
            if methods:
                out.update((m, route.path) for m in methods if m != "HEAD")
            elif hasattr(route, "routes") and route.path != "/static":
                walk(route.routes)

    walk(app.routes)
    return sorted(out)


def test_every_route_has_a_rule(demo_app: FastAPI) -> None:
    routes = set(app_routes(demo_app))
    missing = sorted(routes - set(RULES))
    stale = sorted(set(RULES) - routes)
    assert not missing, f"routes without an access rule in RULES: {missing}"
    assert not stale, f"rules for routes that no longer exist: {stale}"


def _url(path: str, demo: Demo, method: str = "GET") -> str:
    # closing the closed run is a 409, so an allowed call writes nothing
    run = demo.closed_run_id if path.endswith(("/report", "/close")) else demo.open_run_id
    policy = "web-weekly" if method == "GET" else str(NOWHERE)  # writes find nothing
    return path.format(
        project_id=demo.project_id,
        run_id=run,
        assignment_id=NOWHERE,
        policy=policy,
        policy_id=NOWHERE,
        item_id=NOWHERE,
        key="R999",
    )


def _hidden(r: Any, demo: Demo) -> bool:
    """The answer to a caller who may not know the project exists: its 404."""
    if r.status_code != 404:
        return False
    text = r.text
    return (
        f"no project with id {demo.project_id}" in text
        or f"no audit run {demo.open_run_id}" in text
        or f"no audit run {demo.closed_run_id}" in text
    )


def _denied(r: Any, demo: Demo) -> bool:
    location = r.headers.get("location") or ""
    return (
        r.status_code in (401, 403)
        or (r.status_code in (302, 303) and location.startswith("/login?next="))
        or _hidden(r, demo)
    )


def _call(
    client: TestClient, csrf: str | None, method: str, path: str, demo: Demo, who: str
) -> Any:
    url = _url(path, demo, method)
    if method == "GET":
        return client.get(url, follow_redirects=False)
    if path in JSON_BODIES:
        headers = {"X-CSRF-Token": csrf} if csrf else {}
        return client.request(
            method, url, json=JSON_BODIES[path], headers=headers, follow_redirects=False
        )
    form = {k: v.format(who=who) for k, v in FORMS[path].items()}
    if path == "/login" and csrf is None:
        from tests.web.conftest import csrf_of

        csrf = csrf_of(client.get("/login").text)
    if csrf:
        form["csrf_token"] = csrf
    return client.post(url, data=form, follow_redirects=False)


@pytest.mark.parametrize("who", ["anonymous", *ROLES])
def test_role_route_table(
    who: str, clients: dict[str, tuple[TestClient, str | None]], demo_app: FastAPI, demo: Demo
) -> None:
    client, csrf = clients[who]
    routes = [r for r in app_routes(demo_app) if r != ("POST", "/logout")]
    routes.append(("POST", "/logout"))  # last: it ends the session
    wrong = []
    for method, path in routes:
        r = _call(client, csrf, method, path, demo, who)
        assert r.status_code < 500, (who, method, path, r.status_code, r.text[:300])
        allowed = not _denied(r, demo)
        expected = who in RULES[(method, path)]
        if allowed != expected:
            wrong.append(
                f"{method} {path}: got {r.status_code}, expected {'allow' if expected else 'deny'}"
            )
    if who != "anonymous":  # sign back in for the other tests of this session
        from tests.web.conftest import login

        clients[who] = (client, login(client, ROLE_USERS[who]))
    assert not wrong, f"{who}:\n" + "\n".join(wrong)


@pytest.fixture(scope="module")
def role_tokens(demo: Demo) -> dict[str, str]:
    """One API token per project role (administrators hold no project role)."""
    from labelloop.accounts import tokens
    from labelloop.accounts.actor import Actor
    from labelloop.accounts.roles import Role
    from labelloop.store import make_engine, make_session_factory, session_scope

    engine = make_engine(demo.url)
    out = {}
    try:
        with session_scope(make_session_factory(engine)) as s:
            for role in ("lead", "auditor", "adjudicator", "mentor", "annotator", "model"):
                out[role] = tokens.create_token(
                    s,
                    actor=Actor.local("test"),
                    username=ROLE_USERS[role],
                    project_id=demo.project_id,
                    role=Role(role),
                ).plaintext
    finally:
        engine.dispose()
    return out


@pytest.mark.parametrize("who", ["lead", "auditor", "adjudicator", "mentor", "annotator", "model"])
def test_api_route_table_with_tokens(
    who: str,
    role_tokens: dict[str, str],
    clients: dict[str, tuple[TestClient, str | None]],
    demo_app: FastAPI,
    demo: Demo,
) -> None:
    """The same table holds for bearer tokens (no cookie, no CSRF token)."""
    anonymous, _ = clients["anonymous"]
    headers = {"Authorization": f"Bearer {role_tokens[who]}"}
    wrong = []
    for method, path in app_routes(demo_app):
        if not path.startswith("/api/"):
            continue
        url = _url(path, demo, method)
        if method == "GET":
            r = anonymous.get(url, headers=headers)
        else:
            r = anonymous.request(method, url, json=JSON_BODIES[path], headers=headers)
        assert r.status_code < 500, (who, method, path, r.status_code, r.text[:300])
        allowed = not _denied(r, demo)
        if allowed != (who in RULES[(method, path)]):
            wrong.append(f"{method} {path}: got {r.status_code}")
    assert not wrong, f"{who} (token):\n" + "\n".join(wrong)
