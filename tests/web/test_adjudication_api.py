"""The adjudication API on the demo: list, open, show and rule cases (the rationale
refused with its field named and nothing written; a case ruled once), the adjudicated
label in exports, the inbox of those who differed, settings and amendments."""

from __future__ import annotations

import csv
import io
from contextlib import nullcontext

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from labelloop.adjudication.models import Ruling
from labelloop.escalation.models import Notification
from labelloop.trail.models import Event
from tests.web.conftest import Demo, bearer, count_rows, make_token


@pytest.fixture(autouse=True)
def _app_started(clients: dict[str, tuple[TestClient, str | None]]) -> None:
    """The app's lifespan runs once, for ``clients``; these tests share its engine (a
    ``with TestClient(...)`` here would start it again and orphan the engine before)."""


CASE_KEYS = {"id", "item", "reason", "priority", "status", "opened_at", "due_at", "level"}
WHY = "The customer wants the duplicate charge reversed: money back, so refund (R4)."


def _headers(demo: Demo, username: str, role: str) -> dict[str, str]:
    return bearer(make_token(demo, username, role))


def test_cases_by_role(demo: Demo, demo_app: FastAPI) -> None:
    api = f"/api/v1/projects/{demo.project_id}"
    with nullcontext(TestClient(demo_app)) as c:
        r = c.get(f"{api}/cases", headers=_headers(demo, "demo.adjudicator", "adjudicator"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["counts"]["open"] >= 1 and body["cases"]
        assert set(body["cases"][0]) >= CASE_KEYS
        priorities = [case["priority"] for case in body["cases"]]
        assert priorities == sorted(priorities, reverse=True)
        assert c.get(f"{api}/cases", headers=_headers(demo, "demo.lead", "lead")).status_code == 200
        for user, role in (("demo.auditor", "auditor"), ("lucas.martin", "annotator")):
            assert c.get(f"{api}/cases", headers=_headers(demo, user, role)).status_code == 403
        case_id = body["cases"][0]["id"]
        shown = c.get(f"/api/v1/cases/{case_id}", headers=_headers(demo, "demo.lead", "lead"))
        assert shown.status_code == 200
        assert {"votes", "prediction", "rules", "similar", "ruling"} <= set(shown.json())


def test_ruling_needs_a_rationale_and_happens_once(demo: Demo, demo_app: FastAPI) -> None:
    judge = _headers(demo, "demo.adjudicator", "adjudicator")
    api = f"/api/v1/projects/{demo.project_id}"
    with nullcontext(TestClient(demo_app)) as c:
        case = c.get(f"{api}/cases", headers=judge).json()["cases"][-1]
        before = (count_rows(demo.url, Ruling), count_rows(demo.url, Event))
        r = c.post(
            f"/api/v1/cases/{case['id']}/ruling",
            json={"label": "refund", "rationale": ""},
            headers=judge,
        )
        assert r.status_code == 422, r.text
        fields = [d["field"] for d in r.json()["error"]["details"]]
        assert fields == ["rationale"]
        assert (count_rows(demo.url, Ruling), count_rows(demo.url, Event)) == before
        ok = {"label": "refund", "rationale": WHY, "rules": ["R4"], "notable": True}
        r = c.post(f"/api/v1/cases/{case['id']}/ruling", json=ok, headers=judge)
        assert r.status_code == 201, r.text
        assert r.json()["label"] == "refund" and r.json()["rules"] == ["R4"]
        again = c.post(f"/api/v1/cases/{case['id']}/ruling", json=ok, headers=judge)
        assert again.status_code == 409
        assert count_rows(demo.url, Ruling, case_id=case["id"]) == 1
        # the model service reads the adjudicated label in the export
        model = _headers(demo, "intent-clf-bot", "model")
        export = c.get(f"{api}/export", params={"format": "csv"}, headers=model)
        assert export.status_code == 200, export.text
        rows = list(csv.DictReader(io.StringIO(export.text)))
        ruled = {row["adjudicated"] for row in rows if row["item_id"] == case["item"]}
        assert ruled == {"refund"}


def test_the_inbox_tells_who_differed(demo: Demo, demo_app: FastAPI) -> None:
    differed = count_rows(demo.url, Notification, kind="ruling.differs")
    assert differed > 0  # the demo's rulings told the annotators who chose otherwise
    with nullcontext(TestClient(demo_app)) as c:
        for user in ("lucas.martin", "maria.lopez", "demo.lead"):
            role = {"lucas.martin": "annotator", "maria.lopez": "mentor"}.get(user, "lead")
            headers = _headers(demo, user, role)
            inbox = c.get("/api/v1/notifications", headers=headers)
            assert inbox.status_code == 200
            body = inbox.json()
            if body["notifications"]:
                first = body["notifications"][0]["id"]
                r = c.post("/api/v1/notifications/read", json={"ids": [first]}, headers=headers)
                assert r.status_code == 200 and r.json()["marked"] in (0, 1)
                after = c.get("/api/v1/notifications", headers=headers).json()
                assert after["unread"] <= body["unread"]


def test_settings_and_amendments(demo: Demo, demo_app: FastAPI) -> None:
    api = f"/api/v1/projects/{demo.project_id}"
    lead, judge = (
        _headers(demo, "demo.lead", "lead"),
        _headers(demo, "demo.adjudicator", "adjudicator"),
    )
    with nullcontext(TestClient(demo_app)) as c:
        r = c.get(f"{api}/adjudication/settings", headers=judge)
        assert r.status_code == 200 and r.json()["rationale_min"] >= 1
        r = c.patch(f"{api}/adjudication/settings", json={"sla_hours": 24}, headers=judge)
        assert r.status_code == 403
        r = c.patch(f"{api}/adjudication/settings", json={"sla_hours": 0}, headers=lead)
        assert r.status_code == 422
        r = c.patch(f"{api}/adjudication/settings", json={"sla_hours": 48}, headers=lead)
        assert r.status_code == 200 and r.json()["sla_hours"] == 48
        r = c.get(f"{api}/guidelines/amendments", params={"status": "all"}, headers=lead)
        assert r.status_code == 200
        for a in r.json()["amendments"]:  # the demo's proposals went into 1.1
            assert a["status"] == "accepted" and a["rule"] == "R4"
        ann = _headers(demo, "lucas.martin", "annotator")
        assert c.get(f"{api}/guidelines/amendments", headers=ann).status_code == 403


def test_open_by_hand(demo: Demo, demo_app: FastAPI) -> None:
    api = f"/api/v1/projects/{demo.project_id}"
    auditor = _headers(demo, "demo.auditor", "auditor")
    with nullcontext(TestClient(demo_app)) as c:
        r = c.post(f"{api}/cases", json={"item": "no-such-item", "note": "x"}, headers=auditor)
        assert r.status_code == 404
        r = c.post(f"{api}/cases", json={"item": "tkt-00002", "note": ""}, headers=auditor)
        assert r.status_code == 422
        r = c.post(
            f"{api}/cases",
            json={"item": "tkt-00002", "note": "shipping or refund?"},
            headers=auditor,
        )
        assert r.status_code in (201, 409), r.text
        if r.status_code == 201:
            assert r.json()["reason"] == "manual" and set(r.json()) >= CASE_KEYS
        ann = _headers(demo, "lucas.martin", "annotator")
        r = c.post(f"{api}/cases", json={"item": "tkt-00002", "note": "why?"}, headers=ann)
        assert r.status_code == 403
