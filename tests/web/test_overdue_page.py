"""The lead's overdue page and the escalation API: what waits (late first), the paths
form (a wrong level is refused with 422, named, and what was typed kept; a good one is
saved and shown; the default comes back), and the same through the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from labelloop.escalation.models import Deadline
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from tests.web.conftest import Demo, bearer, make_token

Clients = dict[str, tuple[TestClient, str | None]]


@pytest.fixture
def late_deadline(demo: Demo) -> Iterator[int]:
    """A deadline of the demo project two hours past due (removed afterwards)."""
    engine = make_engine(demo.url)
    factory = make_session_factory(engine)
    now = utcnow()
    with session_scope(factory) as s:
        d = Deadline(
            project_id=demo.project_id,
            subject="flag",
            subject_id=987_654,
            title="Item late-one flagged as uncertain",
            link=f"/projects/{demo.project_id}/cases",
            path=["auditor", "lead"],
            slas=[60, "5bd"],
            level=1,
            started_at=now - timedelta(hours=5),
            due_at=now - timedelta(hours=2),
        )
        s.add(d)
        s.flush()
        did = d.id
    try:
        yield did
    finally:
        with session_scope(factory) as s:
            s.query(Deadline).filter(Deadline.id == did).delete()
        engine.dispose()


def test_the_lead_sees_what_is_late(clients: Clients, demo: Demo, late_deadline: int) -> None:
    lead, _ = clients["lead"]
    page = lead.get(f"/projects/{demo.project_id}/overdue")
    assert page.status_code == 200
    late = page.text.split('id="overdue"', 1)[1].split("</table>", 1)[0]
    assert "Item late-one flagged as uncertain" in late and "2 h ago" in late
    assert "lead <span" in late and "auditor:1h → lead:5bd" in late
    annotator, _ = clients["annotator"]
    assert annotator.get(f"/projects/{demo.project_id}/overdue").status_code == 403
    token = make_token(demo, "demo.lead", "lead")
    r = lead.get(f"/api/v1/projects/{demo.project_id}/escalation/overdue", headers=bearer(token))
    assert r.status_code == 200
    (row,) = [d for d in r.json()["deadlines"] if d["id"] == late_deadline]
    assert row["owner"] == "lead" and 119 <= row["overdue_minutes"] <= 121


def test_the_paths_form(clients: Clients, demo: Demo) -> None:
    lead, csrf = clients["lead"]
    assert csrf is not None
    url = f"/projects/{demo.project_id}/escalation/paths"
    try:
        bad = lead.post(
            url, data={"csrf_token": csrf, "subject": "flag", "levels": "auditor:24h, boss:1h"}
        )
        assert bad.status_code == 422
        assert (
            "unknown role &#39;boss&#39;" in bad.text and 'value="auditor:24h, boss:1h"' in bad.text
        )
        ok = lead.post(
            url,
            data={"csrf_token": csrf, "subject": "flag", "levels": "auditor:4h, lead:2bd"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        page = lead.get(ok.headers["location"]).text
        assert 'value="auditor:4h, lead:2bd"' in page
    finally:
        lead.post(url, data={"csrf_token": csrf, "subject": "flag", "levels": "", "reset": "1"})
    assert (
        'value="adjudicator:24h, lead:48h, owner:5bd"'
        in lead.get(f"/projects/{demo.project_id}/overdue").text
    )


def test_the_paths_api(clients: Clients, demo: Demo) -> None:
    anonymous, _ = clients["anonymous"]
    lead = bearer(make_token(demo, "demo.lead", "lead"))
    url = f"/api/v1/projects/{demo.project_id}/escalation/paths"
    r = anonymous.put(f"{url}/audit_run", json={"levels": "auditor:30m, lead:1d"}, headers=lead)
    assert r.status_code == 200 and r.json() == {
        "levels": "auditor:30m, lead:24h",
        "default": False,
    }
    bad = anonymous.put(f"{url}/audit_run", json={"levels": "auditor:0m"}, headers=lead)
    assert bad.status_code == 422 and "levels[1]" in bad.text
    assert anonymous.put(f"{url}/nothing", json={"levels": None}, headers=lead).status_code == 422
    back = anonymous.put(f"{url}/audit_run", json={"levels": None}, headers=lead)
    assert back.json()["default"] is True
    auditor = bearer(make_token(demo, "demo.auditor", "auditor"))
    assert anonymous.get(url, headers=auditor).json()["audit_run"]["default"] is True
    assert (
        anonymous.put(f"{url}/case", json={"levels": "lead:1h"}, headers=auditor).status_code == 403
    )
