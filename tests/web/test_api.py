"""The JSON API: tokens, error shapes, validation at entry, pagination, idempotency."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from labelloop.cli import app as cli
from labelloop.projects.models import Annotation, Item, Prediction
from tests.web.conftest import Demo, count_rows, user_id

runner = CliRunner()


def _token(demo: Demo, username: str, role: str) -> str:
    r = runner.invoke(
        cli,
        [
            "user", "token", "create", username,
            "--project", str(demo.project_id), "--role", role, "--name", "test",
            "--database-url", demo.url,
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("ll_")
    return token


@pytest.fixture
def api(fresh_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fresh_app) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_lifecycle_and_scope(api: TestClient, demo: Demo) -> None:
    token = _token(demo, "intent-clf-bot", "model")
    h = _bearer(token)
    me = api.get("/api/v1/me", headers=h).json()
    assert me["token_role"] == "model" and me["token_project_id"] == demo.project_id
    projects = api.get("/api/v1/projects", headers=h).json()
    assert [p["id"] for p in projects] == [demo.project_id]
    assert projects[0]["roles"] == ["model"]
    # the model role may read gold labels and push predictions, not annotate
    assert api.get(f"/api/v1/projects/{demo.project_id}/gold", headers=h).status_code == 200
    r = api.post(
        f"/api/v1/projects/{demo.project_id}/annotations",
        json={"item_id": 1, "value": "billing", "annotator_id": user_id(demo, "lucas.martin")},
        headers=h,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    # CSRF does not apply to bearer requests; the list shows no secret
    listing = runner.invoke(cli, ["user", "token", "list", "--json", "--database-url", demo.url])
    assert listing.exit_code == 0, listing.output
    rows = json.loads(listing.output)
    mine = next(r for r in rows if r["prefix"] == token[:10])
    assert token not in listing.output and mine["last_used_at"] is not None
    revoked = runner.invoke(
        cli, ["user", "token", "revoke", str(mine["id"]), "--database-url", demo.url]
    )
    assert revoked.exit_code == 0, revoked.output
    r = api.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_token_scope_is_one_role(api: TestClient, demo: Demo) -> None:
    """demo.admin is a global administrator, but a token carries one project role only;
    and a token cannot be made for a role the user does not hold."""
    bad = runner.invoke(
        cli,
        ["user", "token", "create", "demo.auditor", "--project", str(demo.project_id),
         "--role", "lead", "--database-url", demo.url],
    )  # fmt: skip
    assert bad.exit_code == 1 and "no lead role" in bad.output
    h = _bearer(_token(demo, "demo.auditor", "auditor"))
    assert api.get(f"/api/v1/projects/{demo.project_id}/audit-runs", headers=h).status_code == 200
    r = api.get(f"/api/v1/audit-runs/{demo.closed_run_id}/report", headers=h)
    assert r.status_code == 403


def test_bad_credentials(api: TestClient) -> None:
    for header in ("Bearer ll_not-a-token", "Basic dXNlcjpwdw==", "Bearer "):
        r = api.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert set(r.json()["error"]) == {"code", "message", "details"}


def test_annotation_validation_at_entry(api: TestClient, demo: Demo) -> None:
    h = _bearer(_token(demo, "lucas.martin", "annotator"))
    url = f"/api/v1/projects/{demo.project_id}/annotations"
    served = api.post(f"/api/v1/projects/{demo.project_id}/work/next", headers=h)
    assert served.status_code == 200, served.text
    item_id = served.json()["item"]["item_id"]
    before = count_rows(demo.url, Annotation)
    r = api.post(url, json={"item_id": item_id, "value": "not-a-label"}, headers=h)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_failed"
    assert [d["field"] for d in err["details"]] == ["value"]
    assert err["details"][0]["code"] and err["details"][0]["message"]
    # request-shape errors have the same shape, with the field path
    r = api.post(url, json={"value": "billing", "active_seconds": -1}, headers=h)
    assert r.status_code == 422
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"item_id", "active_seconds"}
    assert count_rows(demo.url, Annotation) == before  # nothing written
    r = api.post(
        url, json={"item_id": item_id, "value": "billing", "active_seconds": 0.5}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["value"] == "billing" and r.json()["source"] == "workbench"
    assert count_rows(demo.url, Annotation) == before + 1


def test_idempotency_key(api: TestClient, demo: Demo) -> None:
    h = _bearer(_token(demo, "intent-clf-bot", "model"))
    url = f"/api/v1/projects/{demo.project_id}/predictions"
    body = {
        "item_id": 2,
        "model_name": "web-test-model",
        "probabilities": {"billing": 0.7, "refund": 0.2},
    }
    first = api.post(url, json=body, headers={**h, "Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    assert first.json()["value"] == "billing"
    again = api.post(url, json=body, headers={**h, "Idempotency-Key": "k-1"})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count_rows(demo.url, Prediction, model_name="web-test-model") == 1
    other = api.post(url, json={**body, "item_id": 3}, headers={**h, "Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["error"]["message"]
    # a failed request is not remembered: the retry runs again
    bad = {**body, "item_id": 999_999_999}
    assert api.post(url, json=bad, headers={**h, "Idempotency-Key": "k-2"}).status_code == 404
    assert api.post(url, json=bad, headers={**h, "Idempotency-Key": "k-2"}).status_code == 404


def test_items_filters_and_cursor_pagination(api: TestClient, demo: Demo) -> None:
    h = _bearer(_token(demo, "demo.lead", "lead"))
    base = f"/api/v1/projects/{demo.project_id}/items"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 120}
        if cursor:
            params["cursor"] = cursor
        page = api.get(base, params=params, headers=h).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == count_rows(
        demo.url, Item, project_id=demo.project_id
    )
    tagged = api.get(base, params={"tag": "edge-case", "limit": 500}, headers=h).json()["items"]
    assert tagged and all("edge-case" in i["tags"] for i in tagged)
    english = api.get(base, params={"segment": "language=en", "limit": 500}, headers=h).json()[
        "items"
    ]
    assert english and all(i["segments"]["language"] == "en" for i in english)
    gold = api.get(base, params={"has_gold": "true", "limit": 500}, headers=h).json()["items"]
    assert 0 < len(gold) < len(seen)
    r = api.get(base, params={"cursor": "garbage!"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "cursor"
    r = api.get(base, params={"segment": "nokey"}, headers=h)
    assert r.status_code == 422


def test_annotators_cannot_see_gold(api: TestClient, demo: Demo) -> None:
    h = _bearer(_token(demo, "lucas.martin", "annotator"))
    base = f"/api/v1/projects/{demo.project_id}"
    assert api.get(f"{base}/gold", headers=h).status_code == 403
    assert api.get(f"{base}/items", params={"has_gold": "false"}, headers=h).status_code == 403


def test_not_found_and_conflict_shapes(api: TestClient, demo: Demo) -> None:
    h = _bearer(_token(demo, "demo.lead", "lead"))
    r = api.get("/api/v1/projects/999999", headers=h)
    assert r.status_code == 404
    assert r.json() == {
        "error": {"code": "not_found", "message": "no project with id 999999", "details": []}
    }
    r = api.get(f"/api/v1/audit-runs/{demo.open_run_id}/report", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    report = api.get(f"/api/v1/audit-runs/{demo.closed_run_id}/report", headers=h).json()
    assert report["run"]["id"] == demo.closed_run_id
    base = f"/api/v1/projects/{demo.project_id}"
    assert api.get(f"{base}/audit-policies/web-weekly", headers=h).json()["name"] == "web-weekly"
    trend = api.get(f"{base}/audit-policies/web-weekly/trend", headers=h).json()
    assert len(trend) == 2 and trend[1]["change"]["error_rate"] is not None
    assert api.get(f"{base}/audit-policies/nope", headers=h).status_code == 404
    runs = api.get(f"/api/v1/projects/{demo.project_id}/audit-runs", headers=h).json()
    assert {r["status"] for r in runs} == {"open", "closed"}
    gold = api.post(
        f"/api/v1/projects/{demo.project_id}/gold",
        json={"item_id": 5, "value": "refund", "rationale": "test"},
        headers=h,
    )
    assert gold.status_code == 201 and gold.json()["value"] == "refund"


def test_openapi_documents_the_api(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert "/api/v1/projects/{project_id}/annotations" in spec["paths"]
    assert not any(p.startswith("/audits") for p in spec["paths"])  # pages are not API
    docs = api.get("/docs")
    assert docs.status_code == 200 and "/static/vendor/swagger-ui-bundle.js" in docs.text
