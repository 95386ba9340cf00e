"""Pages through the test client: the dashboard's numbers, the review queue, 403 pages."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.projects.service import get_project
from labelloop.store import make_engine, make_session_factory, session_scope
from tests.web.conftest import Demo

Clients = dict[str, tuple[TestClient, str | None]]


def test_project_list_shows_links_per_role(clients: Clients, demo: Demo) -> None:
    lead, _ = clients["lead"]
    html = lead.get("/").text
    assert f'href="/projects/{demo.project_id}"' in html
    annotator, _ = clients["annotator"]
    html = annotator.get("/").text
    assert "support-intents" in html and f'href="/projects/{demo.project_id}"' not in html
    outsider, _ = clients["outsider"]
    assert "You hold no role" in outsider.get("/").text


def test_lead_overview_has_every_chart_with_data_and_a_table(clients: Clients, demo: Demo) -> None:
    lead, _ = clients["lead"]
    r = lead.get(f"/projects/{demo.project_id}")
    assert r.status_code == 200
    html = r.text
    for chart in ("volume", "agreement", "turnaround", "audit-trend", "categories"):
        block = re.search(
            rf'<script type="application/json" id="chart-data-{chart}">(.*?)</script>', html, re.S
        )
        assert block, chart
        spec = json.loads(block.group(1))
        assert spec["labels"], chart
        assert any(v is not None for s in spec["series"] for v in s["data"]), chart
    alpha = json.loads(
        re.search(r'id="chart-data-agreement">(.*?)</script>', html, re.S).group(1)  # type: ignore[union-attr]
    )
    low, high = alpha["series"][0]["band"]
    for lo, v, hi in zip(low, alpha["series"][0]["data"], high, strict=True):
        assert lo <= v <= hi and -1 <= v <= 1
    trend = json.loads(
        re.search(r'id="chart-data-audit-trend">(.*?)</script>', html, re.S).group(1)  # type: ignore[union-attr]
    )
    assert len(trend["labels"]) >= 2
    assert html.count('<table class="data"') >= 6  # a table beside each chart + scorecard
    scorecard = html[html.index('id="scorecard"') :]
    assert "lucas.martin" in scorecard
    assert scorecard.count("<tr>") >= 12  # header + the simulated team


def test_dashboard_shows_its_age_and_refreshes(clients: Clients, demo: Demo) -> None:
    lead, csrf = clients["lead"]
    assert csrf
    html = lead.get(f"/projects/{demo.project_id}").text
    assert 'id="freshness"' in html and "UTC" in html
    assert f'action="/projects/{demo.project_id}/dashboard/refresh"' in html
    r = lead.post(
        f"/projects/{demo.project_id}/dashboard/refresh",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/projects/{demo.project_id}"
    assert "Up to date." in lead.get(r.headers["location"]).text
    # CSRF is required; annotators may not refresh
    r = lead.post(f"/projects/{demo.project_id}/dashboard/refresh", data={})
    assert r.status_code == 403
    annotator, a_csrf = clients["annotator"]
    r = annotator.post(
        f"/projects/{demo.project_id}/dashboard/refresh", data={"csrf_token": a_csrf or ""}
    )
    assert r.status_code == 403


def test_run_pages_and_report(clients: Clients, demo: Demo) -> None:
    lead, _ = clients["lead"]
    html = lead.get(f"/audits/runs/{demo.closed_run_id}").text
    assert f'src="/audits/runs/{demo.closed_run_id}/report"' in html
    report = lead.get(f"/audits/runs/{demo.closed_run_id}/report")
    assert report.status_code == 200 and "Audit report" in report.text
    assert "style-src 'unsafe-inline'" in report.headers["content-security-policy"]
    auditor, _ = clients["auditor"]
    html = auditor.get(f"/audits/runs/{demo.closed_run_id}").text
    assert "report is for the project" in html and "<iframe" not in html
    runs = auditor.get(f"/projects/{demo.project_id}/audits").text
    assert f"/audits/runs/{demo.open_run_id}" in runs


def test_review_queue_is_blind_and_records_reviews(clients: Clients, demo: Demo) -> None:
    adjudicator, csrf = clients["adjudicator"]
    assert csrf
    url = f"/audits/runs/{demo.open_run_id}/queue"
    html = adjudicator.get(url).text
    assert "Blind review" in html and "Label given" not in html
    assignment = int(re.search(r'data-assignment="(\d+)"', html).group(1))  # type: ignore[union-attr]
    # incomplete: "unsure" is fine, but an unknown category is refused with the message
    r = adjudicator.post(
        f"{url}/{assignment}",
        data={
            "verdict": "correct",
            "label": "billing",
            "error_category": "made-up",
            "csrf_token": csrf,
        },
    )
    assert r.status_code == 422 and "unknown error category" in r.text
    r = adjudicator.post(
        f"{url}/{assignment}",
        data={"verdict": "unsure", "comment": "needs context", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert f'data-assignment="{assignment}"' not in adjudicator.get(url).text
    # reviewing it twice is a conflict; reviewing someone else's assignment is forbidden
    r = adjudicator.post(f"{url}/{assignment}", data={"verdict": "unsure", "csrf_token": csrf})
    assert r.status_code == 409
    r = adjudicator.post(
        f"{url}/{demo.auditor_assignment_ids[-1]}", data={"verdict": "unsure", "csrf_token": csrf}
    )
    assert r.status_code == 403


def test_htmx_review_returns_the_next_item(clients: Clients, demo: Demo) -> None:
    adjudicator, csrf = clients["adjudicator"]
    assert csrf
    url = f"/audits/runs/{demo.open_run_id}/queue"
    html = adjudicator.get(url).text
    assignment = int(re.search(r'data-assignment="(\d+)"', html).group(1))  # type: ignore[union-attr]
    r = adjudicator.post(
        f"{url}/{assignment}",
        data={"verdict": "correct", "label": "refund", "severity": "low"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<section id="review-panel"')
    assert f'data-assignment="{assignment}"' not in r.text


def test_forbidden_pages_are_403_pages(clients: Clients, demo: Demo) -> None:
    for who, url in (
        ("annotator", f"/projects/{demo.project_id}"),
        ("model", f"/projects/{demo.project_id}/audits"),
        ("auditor", "/admin/users"),
    ):
        client, _ = clients[who]
        r = client.get(url)
        assert r.status_code == 403, (who, url)
        assert "Not allowed" in r.text and 'data-code="forbidden"' in r.text
    admin, _ = clients["admin"]
    assert "demo.lead" in admin.get("/admin/users").text
    lead, _ = clients["lead"]
    assert lead.get("/projects/999999").status_code == 404
    # a caller with no role in a project is told it does not exist, as for a missing one
    outsider, _ = clients["outsider"]
    r = outsider.get(f"/audits/runs/{demo.open_run_id}/queue")
    assert r.status_code == 404 and f"no audit run {demo.open_run_id}" in r.text


def test_admin_creates_a_user(clients: Clients) -> None:
    admin, csrf = clients["admin"]
    r = admin.post(
        "/admin/users",
        data={"username": "new.person", "password": "a-good-password", "csrf_token": csrf or ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "new.person" in admin.get("/admin/users").text
    r = admin.post(
        "/admin/users",
        data={"username": "new.person", "password": "a-good-password", "csrf_token": csrf or ""},
    )
    assert r.status_code == 409


def test_lead_changes_the_labeling_queue_settings(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    from labelloop.trail.models import Event
    from labelloop.workbench import service as workbench

    lead, csrf = clients["lead"]
    url = f"/projects/{demo.project_id}/queue"
    page = lead.get(url)
    assert page.status_code == 200
    assert 'name="overlap"' in page.text and 'name="gold_rate"' in page.text
    engine = make_engine(demo.url)
    factory = make_session_factory(engine)

    def current() -> tuple[int, float, int]:
        with session_scope(factory) as s:
            st = workbench.get_settings(s, get_project(s, demo.project_id))
            return st.overlap, st.gold_rate, st.lease_minutes

    def events() -> int:
        with session_scope(factory) as s:
            return len(
                s.scalars(select(Event).where(Event.action == "workbench.settings.update")).all()
            )

    try:
        overlap, gold_rate, lease = current()
        before = events()
        form = {"overlap": "0", "gold_rate": "1.5", "lease_minutes": str(lease), "csrf_token": csrf}
        bad = lead.post(url, data=form)
        assert bad.status_code == 422
        assert 'id="err-overlap"' in bad.text and 'id="err-gold_rate"' in bad.text
        assert current() == (overlap, gold_rate, lease) and events() == before
        form |= {"overlap": str(overlap), "gold_rate": str(gold_rate), "lease_minutes": "45"}
        ok = lead.post(url, data=form, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == f"{url}?saved=1"
        assert current() == (overlap, gold_rate, 45) and events() == before + 1
        assert "Saved." in lead.get(ok.headers["location"]).text
        lead.post(url, data=form | {"lease_minutes": str(lease)})  # put it back
        assert current() == (overlap, gold_rate, lease)
    finally:
        engine.dispose()
