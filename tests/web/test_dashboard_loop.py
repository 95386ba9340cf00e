"""The lead's overview shows the feedback loop (notes sent and acknowledged, latency,
the error-type Pareto, the before/after effect with intervals) and SLA attainment; an
annotator sees none of it.

It runs on a small project of its own in the demo database (:func:`loop_project`, the
hand-built figures of :mod:`tests.analytics.loop_data`), so the numbers are exact
whatever the other tests add to the demo project.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.accounts import service as accounts
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from tests.analytics.loop_data import SCHEMA, add_deadlines, add_feedback
from tests.web.conftest import OPERATOR, ROLE_USERS, Demo

Clients = dict[str, tuple[TestClient, str | None]]
RECIPIENTS = (ROLE_USERS["annotator"], "james.okafor")


def loop_project(demo: Demo) -> int:
    """A new project led by the demo lead, with the two demo annotators of
    :data:`RECIPIENTS` as its annotators and the loop's notes and deadlines; its id."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = projects.create_project(
                s,
                actor=OPERATOR,
                name=f"loop-{uuid.uuid4().hex[:8]}",
                schema=LabelSchema.from_dict(SCHEMA, source="test"),
            )
            grants = [(ROLE_USERS["lead"], Role.LEAD)] + [(u, Role.ANNOTATOR) for u in RECIPIENTS]
            for username, role in grants:
                accounts.grant(
                    s, actor=OPERATOR, username=username, project_id=project.id, role=role
                )
            ids = [s.scalar(select(User.id).where(User.username == u)) for u in RECIPIENTS]
            assert ids[0] is not None and ids[1] is not None
            add_feedback(s, project, ids[0], ids[1])
            add_deadlines(s, project, base_id=900_000_000 + project.id * 10)
            return project.id
    finally:
        engine.dispose()


def chart_spec(html: str, chart_id: str) -> dict[str, Any]:
    block = re.search(rf'id="chart-data-{chart_id}">(.*?)</script>', html, re.S)
    assert block, chart_id
    spec: dict[str, Any] = json.loads(block.group(1))
    return spec


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(2)).split())


def test_lead_sees_feedback_and_sla(clients: Clients, demo: Demo) -> None:
    pid = loop_project(demo)
    lead, _ = clients["lead"]
    r = lead.get(f"/projects/{pid}")
    assert r.status_code == 200, r.text
    html = r.text
    assert _text(html, "feedback-figures") == (
        "3 notes sent 2 acknowledged 66.7% acknowledgement rate"
    )
    latency = chart_spec(html, "fb-latency")
    assert [s["data"] for s in latency["series"]] == [[20.0, 3.0], [28.0, 3.8]]
    pareto = chart_spec(html, "fb-pareto")
    assert pareto["labels"] == ["billing → refund", "other → billing"]
    assert [s["data"] for s in pareto["series"]] == [[4, 1], [80.0, 100.0]]
    effect = chart_spec(html, "fb-effect")
    assert effect["labels"] == ["boundary_case"]
    assert [s["data"] for s in effect["series"]] == [[40.0], [10.0]]
    assert all(len(s["whiskers"]) == 2 for s in effect["series"])
    sla = chart_spec(html, "sla")
    assert sla["labels"] == ["adjudication cases"] and sla["series"][0]["data"] == [50.0]
    for heading in ("h-feedback", "h-fb-latency", "h-fb-pareto", "h-fb-effect", "h-sla"):
        assert f'id="{heading}"' in html, heading
    # the tables beside the charts carry the same numbers
    assert "<td>billing → refund</td><td>4</td><td>2</td><td>80.0%</td>" in html


def test_annotator_sees_none_of_it(clients: Clients, demo: Demo) -> None:
    pid = loop_project(demo)
    annotator, _ = clients["annotator"]
    r = annotator.get(f"/projects/{pid}")
    assert r.status_code == 403
    for marker in ('id="h-feedback"', 'id="h-sla"', "chart-data-", "SLA attainment"):
        assert marker not in r.text, marker


def test_the_demo_overview_has_both_sections(clients: Clients, demo: Demo) -> None:
    lead, _ = clients["lead"]
    html = lead.get(f"/projects/{demo.project_id}").text
    assert 'id="h-feedback"' in html and 'id="h-sla"' in html
