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
from tests.web.test_adjudication_pages import access_case  # noqa: F401  (fixture)

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
ADJUDICATORS = frozenset({"admin", "lead", "adjudicator"})

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
    # guidelines: members read and acknowledge, leads edit and publish; the re-check
    # list shows annotations' labels (readers of data), sending it opens an audit run
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
    ("POST", "/projects/{project_id}/guidelines/recheck"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/guidelines"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/versions"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/diff"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/pending"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/acknowledge"): MEMBERS,
    ("PUT", "/api/v1/projects/{project_id}/guidelines/draft"): LEADS,
    ("DELETE", "/api/v1/projects/{project_id}/guidelines/draft"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/publish"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/recheck"): GOLD_READERS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/recheck"): LEADS,
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
    # the adjudication API: as its pages (settings are read by adjudicators too)
    ("GET", "/api/v1/projects/{project_id}/cases"): ADJUDICATORS,
    ("POST", "/api/v1/projects/{project_id}/cases"): REVIEWERS,
    ("POST", "/api/v1/projects/{project_id}/cases/detect"): ADJUDICATORS,
    ("GET", "/api/v1/cases/{case_id}"): ADJUDICATORS,
    ("POST", "/api/v1/cases/{case_id}/ruling"): ADJUDICATORS,
    ("GET", "/api/v1/projects/{project_id}/rulings"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/rulings/{ruling_id}"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/adjudication/settings"): ADJUDICATORS,
    ("PATCH", "/api/v1/projects/{project_id}/adjudication/settings"): LEADS,
    # escalation: what is overdue (leads), the paths (any member reads, leads set)
    ("GET", "/api/v1/projects/{project_id}/escalation/overdue"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/escalation/paths"): MEMBERS,
    ("PUT", "/api/v1/projects/{project_id}/escalation/paths/{subject}"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/guidelines/amendments"): ADJUDICATORS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/amendments/{amendment_id}/accept"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/guidelines/amendments/{amendment_id}/reject"): LEADS,
    # feedback: leads write, send and measure; a note is read and acknowledged by its
    # recipient (NOWHERE here: a note that does not exist is a 404 for members too)
    ("GET", "/api/v1/projects/{project_id}/feedback"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/feedback"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/feedback/mine"): MEMBERS,
    ("GET", "/api/v1/projects/{project_id}/feedback/stats"): LEADS,
    ("POST", "/api/v1/projects/{project_id}/feedback/send"): LEADS,
    ("GET", "/api/v1/projects/{project_id}/feedback/notes/{note_id}"): MEMBERS,
    ("PATCH", "/api/v1/projects/{project_id}/feedback/notes/{note_id}"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/feedback/notes/{note_id}/acknowledge"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/feedback/notes/{note_id}/replies"): MEMBERS,
    ("POST", "/api/v1/projects/{project_id}/feedback/notes/{note_id}/resolve"): MEMBERS,
    ("GET", "/api/v1/notifications"): SIGNED_IN,
    ("POST", "/api/v1/notifications/read"): SIGNED_IN,
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
    # adjudication pages: adjudicators read and rule cases; reviewers (auditors,
    # mentors) may open one by hand; every member reads rulings; leads set thresholds
    # and decide amendments; everyone signed in has an inbox
    ("GET", "/projects/{project_id}/cases"): ADJUDICATORS,
    ("POST", "/projects/{project_id}/cases/detect"): ADJUDICATORS,
    ("GET", "/projects/{project_id}/cases/next"): ADJUDICATORS,
    ("GET", "/projects/{project_id}/cases/open"): REVIEWERS,
    ("POST", "/projects/{project_id}/cases/open"): REVIEWERS,
    ("GET", "/cases/{case_id}"): ADJUDICATORS,
    ("POST", "/cases/{case_id}/rule"): ADJUDICATORS,
    ("GET", "/projects/{project_id}/rulings"): MEMBERS,
    ("GET", "/projects/{project_id}/rulings/{ruling_id}"): MEMBERS,
    ("GET", "/projects/{project_id}/adjudication/settings"): LEADS,
    ("POST", "/projects/{project_id}/adjudication/settings"): LEADS,
    ("GET", "/projects/{project_id}/overdue"): LEADS,
    ("POST", "/projects/{project_id}/escalation/paths"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/amendments/{amendment_id}/accept"): LEADS,
    ("POST", "/projects/{project_id}/guidelines/amendments/{amendment_id}/reject"): LEADS,
    ("GET", "/inbox"): SIGNED_IN,
    ("POST", "/inbox/read"): SIGNED_IN,
    ("POST", "/inbox/{notification_id}/read"): SIGNED_IN,
    # the anonymous channel: every member of the project posts (administrators hold no
    # role in it), leads read the summary
    ("GET", "/projects/{project_id}/anonymous"): MEMBERS,
    ("POST", "/projects/{project_id}/anonymous"): MEMBERS - ADMINS,
    ("GET", "/projects/{project_id}/anonymous/summary"): LEADS,
    # feedback pages: a note is read, acknowledged and answered by its recipient (or a
    # lead), so a note that does not exist (NOWHERE) is a 404 for everyone signed in;
    # every member has their notes page and their own quality page; leads write, edit
    # and send
    ("GET", "/feedback/{note_id}"): SIGNED_IN,
    ("POST", "/feedback/{note_id}/acknowledge"): SIGNED_IN,
    ("POST", "/feedback/{note_id}/reply"): SIGNED_IN,
    ("POST", "/feedback/{note_id}/resolve"): SIGNED_IN,
    ("GET", "/projects/{project_id}/feedback"): MEMBERS,
    ("POST", "/projects/{project_id}/feedback"): LEADS,
    ("POST", "/projects/{project_id}/feedback/send"): LEADS,
    ("GET", "/projects/{project_id}/feedback/drafts/{note_id}"): LEADS,
    ("POST", "/projects/{project_id}/feedback/drafts/{note_id}"): LEADS,
    ("GET", "/projects/{project_id}/quality"): MEMBERS,
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
    # detection writes (opens whatever is new); the others are refused by validation
    # (a ruling without a rationale, an unknown item, a posterior threshold of 2) or
    # find nothing (amendment and notification NOWHERE)
    "/projects/{project_id}/cases/detect": {},
    "/projects/{project_id}/cases/open": {"item": "no-such-item-{who}", "note": "access"},
    "/cases/{case_id}/rule": {"label": "billing", "rationale": ""},
    "/projects/{project_id}/adjudication/settings": {
        "posterior_below": "2",
        "spread_min_votes": "3",
        "spread_max_share": "0.5",
        "model_consensus": "0.9",
        "model_confidence": "0.8",
        "rationale_min": "20",
        "sla_hours": "48",
        "detect_minutes": "60",
    },
    "/projects/{project_id}/guidelines/amendments/{amendment_id}/accept": {},
    "/projects/{project_id}/guidelines/amendments/{amendment_id}/reject": {},
    "/inbox/read": {},
    # an unknown role: refused by validation, nothing written
    "/projects/{project_id}/escalation/paths": {"subject": "case", "levels": "boss:1h"},
    "/inbox/{notification_id}/read": {},
    "/projects/{project_id}/guidelines/recheck": {"to": "99.99"},
    # refused by validation after the membership check: nothing is posted
    "/projects/{project_id}/anonymous": {"category": "no-such-category", "text": "access"},
    # feedback: a note to nobody is refused (422); the others find no note (404)
    "/feedback/{note_id}/acknowledge": {"response": "agree"},
    "/feedback/{note_id}/reply": {"body": "access table"},
    "/feedback/{note_id}/resolve": {},
    "/projects/{project_id}/feedback": {
        "recipient": "nobody-{who}",
        "template": "attention_slip",
        "severity": "low",
        "message": "access table",
    },
    "/projects/{project_id}/feedback/send": {"ids": str(NOWHERE)},
    "/projects/{project_id}/feedback/drafts/{note_id}": {
        "template": "attention_slip",
        "severity": "low",
        "message": "access table",
    },
}
JSON_BODIES: dict[str, dict[str, Any]] = {
    "/api/v1/projects/{project_id}/escalation/paths/{subject}": {"levels": "boss:1h"},
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
    "/api/v1/projects/{project_id}/guidelines/recheck": {"to": "99.99"},
    # refused by the service after its permission check: an unknown item, a ruling
    # without a rationale; settings without changes write nothing; a detection opens
    # whatever is new
    "/api/v1/projects/{project_id}/cases": {"item": "no-such-item", "note": "access"},
    "/api/v1/projects/{project_id}/cases/detect": {},
    "/api/v1/cases/{case_id}/ruling": {"label": "billing", "rationale": ""},
    "/api/v1/projects/{project_id}/adjudication/settings": {},
    "/api/v1/projects/{project_id}/guidelines/amendments/{amendment_id}/accept": {},
    "/api/v1/projects/{project_id}/guidelines/amendments/{amendment_id}/reject": {},
    "/api/v1/notifications/read": {"ids": [NOWHERE]},
    "/api/v1/projects/{project_id}/feedback": {
        "recipient": "nobody",
        "template": "attention_slip",
        "message": "access table",
    },
    "/api/v1/projects/{project_id}/feedback/send": {"ids": [NOWHERE]},
    "/api/v1/projects/{project_id}/feedback/notes/{note_id}": {"message": "x"},
    "/api/v1/projects/{project_id}/feedback/notes/{note_id}/acknowledge": {"agree": True},
    "/api/v1/projects/{project_id}/feedback/notes/{note_id}/replies": {"body": "access"},
    "/api/v1/projects/{project_id}/feedback/notes/{note_id}/resolve": {},
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


#: A real case of the demo project (filled by :func:`_access_case`): a case id that
#: does not exist would be a 404 for everyone.
CASE: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _access_case(access_case: int) -> None:  # noqa: F811
    CASE["id"] = access_case


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
        case_id=CASE.get("id", NOWHERE),
        ruling_id=NOWHERE,
        amendment_id=NOWHERE,
        notification_id=NOWHERE,
        note_id=NOWHERE,
        subject="case",
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
        or ("id" in CASE and f"no case {CASE['id']}" in text)
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
