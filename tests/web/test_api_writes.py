"""API writes: items (one or a batch, idempotent on external id), audit policies
(create, patch), run now, close, and the export download."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from labelloop.accounts import tokens
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.audits.models import AuditPolicy
from labelloop.projects.models import Item
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from tests.web.conftest import ROLE_USERS, Demo, count_rows


@pytest.fixture(scope="module")
def bearer(demo: Demo) -> dict[str, dict[str, str]]:
    """An Authorization header per project role."""
    engine = make_engine(demo.url)
    out = {}
    try:
        with session_scope(make_session_factory(engine)) as s:
            for role in ("lead", "auditor", "annotator", "model"):
                token = tokens.create_token(
                    s,
                    actor=Actor.local("test"),
                    username=ROLE_USERS[role],
                    project_id=demo.project_id,
                    role=Role(role),
                ).plaintext
                out[role] = {"Authorization": f"Bearer {token}"}
    finally:
        engine.dispose()
    return out


@pytest.fixture
def api(fresh_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fresh_app) as c:
        yield c


# --------------------------------------------------------------------------- items
def test_create_items_one_and_batch_idempotent(
    api: TestClient, demo: Demo, bearer: dict[str, dict[str, str]]
) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    tag = uuid.uuid4().hex[:8]
    one = {
        "external_id": f"api-{tag}-1",
        "payload": {"text": "where is my parcel"},
        "metadata": {"channel": "chat"},
        "segments": {"language": "en"},
        "tags": ["edge-case", "edge-case"],
    }
    before = count_rows(demo.url, Item)
    r = api.post(url, json=one, headers=bearer["lead"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 1 and body["existing"] == 0
    item = body["items"][0]
    assert item["external_id"] == one["external_id"] and item["tags"] == ["edge-case"]
    assert item["segments"] == {"language": "en"} and item["metadata"] == {"channel": "chat"}
    assert count_rows(demo.url, Event, action="item.create", entity_id=str(item["id"])) == 1
    # the same item again: found, nothing written
    r = api.post(url, json=one, headers=bearer["lead"])
    assert r.status_code == 200 and r.json()["existing"] == 1
    assert r.json()["items"][0]["id"] == item["id"]
    # a batch mixing the existing item and new ones
    batch = {
        "items": [
            one,
            {"external_id": f"api-{tag}-2", "payload": {"text": "refund"}},
            {"external_id": f"api-{tag}-3", "payload": {"text": "login fails"}},
        ]
    }
    r = api.post(url, json=batch, headers=bearer["lead"])
    assert r.status_code == 201 and (r.json()["created"], r.json()["existing"]) == (2, 1)
    assert [i["external_id"] for i in r.json()["items"]] == [
        f"api-{tag}-1",
        f"api-{tag}-2",
        f"api-{tag}-3",
    ]
    assert count_rows(demo.url, Item) == before + 3
    # listed by the read API
    r = api.get(url, params={"external_id": f"api-{tag}-2"}, headers=bearer["annotator"])
    assert [i["external_id"] for i in r.json()["items"]] == [f"api-{tag}-2"]


def test_create_items_errors(
    api: TestClient, demo: Demo, bearer: dict[str, dict[str, str]]
) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    tag = uuid.uuid4().hex[:8]
    before = count_rows(demo.url, Item)
    bad = {
        "items": [
            {"external_id": f"api-{tag}-a", "payload": {"text": "a"}},
            {"external_id": "", "payload": {"text": "b"}},
            {"external_id": f"api-{tag}-a", "payload": {"text": "c"}},
            {"external_id": f"api-{tag}-d", "payload": {}, "segments": {"x": [1]}},
        ]
    }
    r = api.post(url, json=bad, headers=bearer["lead"])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_failed"
    assert [d["field"] for d in err["details"]] == [
        "items.1.external_id",
        "items.2.external_id",
        "items.3.segments.x",
    ]
    # request-shape errors carry field paths too
    r = api.post(url, json={"items": [{"payload": "text"}]}, headers=bearer["lead"])
    assert r.status_code == 422
    assert {"items.0.external_id", "items.0.payload"} <= {
        d["field"] for d in r.json()["error"]["details"]
    }
    # an existing external id with different content is a conflict; nothing is added
    existing = api.get(url, params={"limit": 1}, headers=bearer["lead"]).json()["items"][0]
    r = api.post(
        url,
        json={
            "items": [
                {"external_id": f"api-{tag}-new", "payload": {"text": "new"}},
                {"external_id": existing["external_id"], "payload": {"text": "changed"}},
            ]
        },
        headers=bearer["lead"],
    )
    assert r.status_code == 409 and "different payload" in r.json()["error"]["message"]
    assert count_rows(demo.url, Item) == before
    for role in ("annotator", "model", "auditor"):
        r = api.post(url, json={"external_id": "x", "payload": {}}, headers=bearer[role])
        assert r.status_code == 403, role


def test_items_idempotency_key_replays(
    api: TestClient, demo: Demo, bearer: dict[str, dict[str, str]]
) -> None:
    url = f"/api/v1/projects/{demo.project_id}/items"
    body = {"external_id": f"api-key-{uuid.uuid4().hex[:8]}", "payload": {"text": "k"}}
    h = {**bearer["lead"], "Idempotency-Key": uuid.uuid4().hex}
    first = api.post(url, json=body, headers=h)
    again = api.post(url, json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    other = api.post(url, json={**body, "payload": {"text": "other"}}, headers=h)
    assert other.status_code == 422


# ------------------------------------------------------------------------ policies
def test_policy_create_patch_run_close(
    api: TestClient, demo: Demo, bearer: dict[str, dict[str, str]]
) -> None:
    base = f"/api/v1/projects/{demo.project_id}/audit-policies"
    name = f"api-{uuid.uuid4().hex[:8]}"
    spec = {
        "cadence": "0 6 * * MON",
        "window": "last_days",
        "window_days": 3660,
        "strata": ["annotator"],
        "sample_size": 6,
        "min_per_stratum": 0,
        "reviewers": ["demo.auditor", "demo.adjudicator"],
        "double_review_fraction": 0,
    }
    r = api.post(base, json={"name": name, "spec": spec}, headers=bearer["lead"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["name"] == name and out["active"] and out["spec"]["sample_size"] == 6
    assert out["next_due"] is not None and out["last_run_id"] is None
    r = api.post(base, json={"name": name, "spec": spec}, headers=bearer["lead"])
    assert r.status_code == 409
    # invalid specs: 422 with field paths, nothing saved
    before = count_rows(demo.url, AuditPolicy)
    r = api.post(
        base,
        json={"name": "x", "spec": {**spec, "cadence": "weekly", "allocation": "random"}},
        headers=bearer["lead"],
    )
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert {"spec.cadence", "spec.allocation"} <= fields
    r = api.post(base, json={"name": "  "}, headers=bearer["lead"])
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "name"
    assert count_rows(demo.url, AuditPolicy) == before
    r = api.post(base, json={"name": "y", "spec": spec}, headers=bearer["auditor"])
    assert r.status_code == 403
    # an inactive policy is created inactive: one trail event, saying so
    events = count_rows(demo.url, Event, entity_type="audit_policy")
    r = api.post(
        base, json={"name": f"{name}-off", "spec": spec, "active": False}, headers=bearer["lead"]
    )
    assert r.status_code == 201 and not r.json()["active"] and r.json()["next_due"] is None
    assert count_rows(demo.url, Event, entity_type="audit_policy") == events + 1

    # patch: merged into the current settings, validated as a whole
    url = f"{base}/{name}"
    r = api.patch(url, json={"spec": {"sample_size": 8}}, headers=bearer["lead"])
    assert r.status_code == 200 and r.json()["spec"]["sample_size"] == 8
    assert r.json()["spec"]["strata"] == ["annotator"]
    r = api.patch(url, json={"spec": {"strata": ["colour"]}}, headers=bearer["lead"])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "spec.strata"
    r = api.patch(url, json={"active": False}, headers=bearer["lead"])
    assert r.status_code == 200 and not r.json()["active"] and r.json()["next_due"] is None
    assert api.get(url, headers=bearer["auditor"]).json()["spec"]["sample_size"] == 8

    # run now, then close
    r = api.post(f"{url}/runs", headers=bearer["lead"])
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["trigger"] == "manual" and run["status"] == "open" and run["sample_size"] == 8
    assert run["progress"]["assignments"] == 8
    assert api.get(url, headers=bearer["lead"]).json()["last_run_id"] == run["id"]
    close = f"/api/v1/audit-runs/{run['id']}/close"
    r = api.post(close, headers=bearer["lead"])
    assert r.status_code == 409 and "reviews outstanding" in r.json()["error"]["message"]
    assert api.post(close, json={}, headers=bearer["auditor"]).status_code == 403
    r = api.post(close, json={"allow_unreviewed": True}, headers=bearer["lead"])
    assert r.status_code == 200 and r.json()["status"] == "closed"
    report = api.get(f"/api/v1/audit-runs/{run['id']}/report", headers=bearer["lead"])
    assert report.status_code == 200 and "error_rate" in report.json()
    assert api.post(close, json={}, headers=bearer["lead"]).status_code == 409

    # a policy nothing passes: 422, no run
    r = api.post(
        base,
        json={"name": f"{name}-empty", "spec": {**spec, "population": {"tags": ["nope"]}}},
        headers=bearer["lead"],
    )
    assert r.status_code == 201
    r = api.post(f"{base}/{name}-empty/runs", headers=bearer["lead"])
    assert r.status_code == 422 and "nothing to audit" in r.json()["error"]["message"]


# -------------------------------------------------------------------------- export
def test_export_download(api: TestClient, demo: Demo, bearer: dict[str, dict[str, str]]) -> None:
    url = f"/api/v1/projects/{demo.project_id}/export"
    r = api.get(url, params={"format": "csv"}, headers=bearer["model"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) >= 300 and "gold" in rows[0]
    r = api.get(url, params={"format": "label-studio"}, headers=bearer["lead"])
    assert r.status_code == 200 and isinstance(json.loads(r.content), list)
    r = api.get(url, params={"format": "xml"}, headers=bearer["lead"])
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "format"
    assert api.get(url, headers=bearer["annotator"]).status_code == 403


def test_openapi_lists_the_writes(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/projects/{project_id}/items"]
    assert "post" in paths["/api/v1/projects/{project_id}/audit-policies"]
    assert "patch" in paths["/api/v1/projects/{project_id}/audit-policies/{policy}"]
    assert "post" in paths["/api/v1/projects/{project_id}/audit-policies/{policy}/runs"]
    assert "post" in paths["/api/v1/audit-runs/{run_id}/close"]
    assert "get" in paths["/api/v1/projects/{project_id}/export"]
