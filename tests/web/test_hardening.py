"""The holes found when the running app was attacked, each closed (HTTP level, on
SQLite and PostgreSQL): annotators label only through the queue, outsiders learn
nothing, idempotent replays need a valid credential, responses are not cached, the
API explorer has a strict policy, and sign-in throttling cannot be dodged."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.accounts import tokens
from labelloop.accounts.models import ApiToken
from labelloop.projects.models import Annotation, Item
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from labelloop.web import create_app
from tests.web.conftest import (
    OPERATOR,
    ROLE_USERS,
    Demo,
    bearer,
    count_rows,
    csrf_of,
    make_settings,
    make_token,
    user_id,
)

Clients = dict[str, tuple[TestClient, str | None]]


@pytest.fixture
def api(clients: Clients) -> TestClient:
    """The running app's anonymous client (callers send bearer tokens): sharing the
    session's app and its engine, not starting another lifespan on it."""
    return clients["anonymous"][0]


def _annotations_url(demo: Demo) -> str:
    return f"/api/v1/projects/{demo.project_id}/annotations"


def _serve(client: TestClient, demo: Demo, headers: dict[str, str]) -> int:
    r = client.post(f"/api/v1/projects/{demo.project_id}/work/next", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["item"] is not None, "the annotator's queue is empty"
    return int(r.json()["item"]["item_id"])


def _other_item(demo: Demo, not_this: int) -> int:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            found = s.scalar(
                select(Item.id)
                .where(Item.project_id == demo.project_id, Item.id != not_this)
                .order_by(Item.id.desc())
            )
            assert found is not None
            return found
    finally:
        engine.dispose()


def _events_of(demo: Demo, annotation_id: int) -> list[Event]:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return list(
                s.scalars(
                    select(Event)
                    .where(Event.entity_type == "annotation", Event.entity_id == str(annotation_id))
                    .order_by(Event.seq)
                )
            )
    finally:
        engine.dispose()


# -- 1. annotators label through the queue's rules ------------------------------------------


def test_annotators_submit_only_through_the_queue(api: TestClient, demo: Demo) -> None:
    h = bearer(make_token(demo, ROLE_USERS["annotator"], "annotator"))
    me = user_id(demo, ROLE_USERS["annotator"])
    url = _annotations_url(demo)
    item = _serve(api, demo, h)
    # an item the queue did not serve them
    other = _other_item(demo, item)
    r = api.post(url, json={"item_id": other, "value": "billing"}, headers=h)
    assert r.status_code == 409 and "not in your queue" in r.text
    # what only leads may set: each refused by name, nothing written
    for field, value in (
        ("submitted_at", "2099-01-01T00:00:00Z"),
        ("started_at", "2099-01-01T00:00:00Z"),
        ("annotator_id", me),
        ("external_key", "second-vote"),
        ("guideline_version", "9.9"),
    ):
        body = {"item_id": item, "value": "billing", field: value}
        r = api.post(url, json=body, headers=h)
        assert r.status_code == 422, (field, r.text)
        assert [d["field"] for d in r.json()["error"]["details"]] == [field]
    assert count_rows(demo.url, Annotation, item_id=item, annotator_id=me) == 0
    before = datetime.now(UTC)
    r = api.post(
        url, json={"item_id": item, "value": "billing", "active_seconds": 99_999}, headers=h
    )
    assert r.status_code == 201, r.text
    out = r.json()
    submitted = datetime.fromisoformat(out["submitted_at"])
    assert abs((submitted - before).total_seconds()) < 60  # the server's clock
    assert out["active_seconds"] < 60  # at most the time since the item was served
    assert out["source"] == "workbench"
    # one vote per item: a second submission, with or without a new key, is refused
    r = api.post(url, json={"item_id": item, "value": "refund"}, headers=h)
    assert r.status_code == 409
    assert count_rows(demo.url, Annotation, item_id=item, annotator_id=me) == 1
    (event,) = _events_of(demo, out["id"])
    assert event.action == "annotation.create" and event.after["path"] == "queue"


def test_leads_record_annotations_as_given_for_members_only(api: TestClient, demo: Demo) -> None:
    h = bearer(make_token(demo, ROLE_USERS["lead"], "lead"))
    url = _annotations_url(demo)
    annotator = user_id(demo, ROLE_USERS["annotator"])
    outsider = user_id(demo, ROLE_USERS["outsider"])
    item = _other_item(demo, 0)
    r = api.post(
        url,
        json={
            "item_id": item,
            "value": "billing",
            "annotator_id": annotator,
            "submitted_at": "2021-03-04T05:06:07Z",
            "active_seconds": 42,
            "external_key": "historical-1",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["submitted_at"].startswith("2021-03-04T05:06:07")
    assert r.json()["active_seconds"] == 42
    (event,) = _events_of(demo, r.json()["id"])
    assert event.actor == f"user:{ROLE_USERS['lead']}" and event.after["path"] == "import"
    # a user with no role in the project cannot be made its annotator
    r = api.post(
        url,
        json={"item_id": item, "value": "billing", "annotator_id": outsider},
        headers=h,
    )
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["annotator_id"]
    assert count_rows(demo.url, Annotation, annotator_id=outsider) == 0


def test_api_queue_skip(api: TestClient, demo: Demo) -> None:
    h = bearer(make_token(demo, ROLE_USERS["mentor"], "mentor"))
    item = _serve(api, demo, h)
    url = f"/api/v1/projects/{demo.project_id}/work/{item}/skip"
    assert api.post(url, json={"reason": ""}, headers=h).status_code == 422
    r = api.post(url, json={"reason": "the ticket is in a language I do not read"}, headers=h)
    assert r.status_code == 200 and r.json()["item_id"] == item
    assert api.post(url, json={"reason": "again"}, headers=h).status_code == 409
    assert _serve(api, demo, h) != item  # never offered to them again
    counts = api.get(f"/api/v1/projects/{demo.project_id}/work/status", headers=h)
    assert counts.status_code == 200 and counts.json()["skipped"] >= 1


# -- 10. outsiders, replays, caching, the API explorer ----------------------------------------


def test_outsiders_are_told_nothing_exists(clients: Clients, demo: Demo) -> None:
    outsider, _ = clients["outsider"]
    for existing, missing in (
        (f"/api/v1/projects/{demo.project_id}", "/api/v1/projects/999999"),
        (f"/api/v1/projects/{demo.project_id}/items", "/api/v1/projects/999999/items"),
        (f"/api/v1/audit-runs/{demo.open_run_id}", "/api/v1/audit-runs/999999"),
        (f"/projects/{demo.project_id}/work", "/projects/999999/work"),
    ):
        a, b = outsider.get(existing), outsider.get(missing)
        assert a.status_code == b.status_code == 404, existing
        ids = (str(demo.project_id), str(demo.open_run_id), "999999")
        norm = [re.sub("|".join(ids), "N", r.text) for r in (a, b)]
        assert norm[0] == norm[1], existing
    # a project addressed by a name (an upload's path, checked before its body) is never
    # looked up by name: an existing name answers as a missing one, with no suggestion
    for path in ("support-intent", "support-intents", "0", "99999999999"):
        r = outsider.post(f"/projects/{path}/imports", data={"format": "auto"})
        assert r.status_code == 404, (path, r.status_code)
        assert f"no project with id {path}" in r.text and "did you mean" not in r.text


def test_an_idempotent_replay_needs_a_valid_credential(api: TestClient, demo: Demo) -> None:
    token = make_token(demo, "intent-clf-bot", "model")
    h = {**bearer(token), "Idempotency-Key": "replay-after-revoke"}
    body = {"item_id": _other_item(demo, 0), "model_name": "replay-model", "value": "billing"}
    url = f"/api/v1/projects/{demo.project_id}/predictions"
    first = api.post(url, json=body, headers=h)
    assert first.status_code == 201, first.text
    again = api.post(url, json=body, headers=h)
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            token_id = s.scalar(
                select(ApiToken.id).where(ApiToken.token_hash == tokens.hash_token(token))
            )
            assert token_id is not None
            tokens.revoke_token(s, actor=OPERATOR, token_id=token_id)
    finally:
        engine.dispose()
    replay = api.post(url, json=body, headers=h)
    assert replay.status_code == 401
    assert replay.headers.get("idempotent-replayed") is None


def test_pages_and_downloads_are_not_cached(clients: Clients, demo: Demo) -> None:
    lead, _ = clients["lead"]
    for url in (
        f"/projects/{demo.project_id}",
        f"/projects/{demo.project_id}/exports/download?format=csv",
        f"/api/v1/projects/{demo.project_id}/export?format=csv",
        f"/api/v1/projects/{demo.project_id}/gold",
        "/account",
    ):
        r = lead.get(url)
        assert r.status_code == 200, url
        assert r.headers["cache-control"] == "no-store", url
    assert "no-store" not in lead.get("/static/app.css").headers.get("cache-control", "")


def test_the_api_explorer_has_a_strict_policy(clients: Clients) -> None:
    anonymous, _ = clients["anonymous"]
    r = anonymous.get("/docs")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    # no inline script: every <script> loads a file of the app
    assert re.findall(r"<script(?![^>]*\bsrc=)", r.text) == []
    assert anonymous.get("/static/swagger-init.js").status_code == 200


# -- 4. sign-in throttling cannot be dodged -----------------------------------------------


def _try(client: TestClient, username: str, password: str, **headers: str) -> int:
    csrf = csrf_of(client.get("/login").text)
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf, "next": "/"},
        headers=headers,
        follow_redirects=False,
    )
    return r.status_code


def test_the_throttle_counts_every_spelling_of_a_name(demo: Demo, tmp_path: Path) -> None:
    name = ROLE_USERS["auditor"]
    with TestClient(create_app(make_settings(demo.url, tmp_path))) as client:
        assert _try(client, f"  {name.upper()} ", "labelloop-demo") == 303  # one normal form
        client.cookies.clear()
        for _ in range(5):
            assert _try(client, name, "wrong-password") == 200
        for spelling in (name, f" {name} ", name.upper(), f"\u3000{name}"):
            assert _try(client, spelling, "labelloop-demo") == 429, spelling


def test_forwarded_for_is_believed_only_from_trusted_proxies(demo: Demo, tmp_path: Path) -> None:
    settings = make_settings(demo.url, tmp_path)
    name = ROLE_USERS["adjudicator"]
    # no trusted proxy: a client cannot pick a fresh address per attempt
    with TestClient(create_app(settings), client=("127.0.0.1", 5000)) as client:
        for n in range(5):
            assert _try(client, name, "wrong", **{"X-Forwarded-For": f"203.0.113.{n}"}) == 200
        assert _try(client, name, "wrong", **{"X-Forwarded-For": "203.0.113.99"}) == 429
    # behind a trusted proxy, each forwarded client is counted on its own
    settings = make_settings(demo.url, tmp_path)
    settings.trusted_proxies = "10.0.0.0/8"
    with TestClient(create_app(settings), client=("10.1.2.3", 5000)) as client:
        for _ in range(5):
            assert _try(client, name, "wrong", **{"X-Forwarded-For": "198.51.100.7"}) == 200
        assert _try(client, name, "wrong", **{"X-Forwarded-For": "198.51.100.7"}) == 429
        # the right-most untrusted hop is the client: a forged left part changes nothing
        spoofed = "1.2.3.4, 198.51.100.7"
        assert _try(client, name, "wrong", **{"X-Forwarded-For": spoofed}) == 429
        assert _try(client, name, "wrong", **{"X-Forwarded-For": "198.51.100.8"}) == 200


def test_a_burst_of_sign_ins_checks_at_most_the_limit(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempts are counted as they start, so 30 simultaneous wrong passwords for one
    name check at most 5 passwords; the rest get 429 (the throttle, or the password
    gate's short queue), and none waits on a server thread for long."""
    from concurrent.futures import ThreadPoolExecutor

    from labelloop.accounts import service as accounts

    checks = []
    real = accounts.authenticate

    def counted(*args: object, **kwargs: object) -> object:
        checks.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(accounts, "authenticate", counted)
    name = ROLE_USERS["mentor"]
    with TestClient(create_app(make_settings(demo.url, tmp_path))) as client:
        csrf = csrf_of(client.get("/login").text)
        form = {"username": name, "password": "wrong", "csrf_token": csrf, "next": "/"}

        def attempt(_: int) -> int:
            return client.post("/login", data=form, follow_redirects=False).status_code

        with ThreadPoolExecutor(max_workers=30) as pool:
            answers = list(pool.map(attempt, range(30)))
    assert len(checks) <= 5, len(checks)
    assert answers.count(200) == len(checks) and answers.count(429) == 30 - len(checks)
