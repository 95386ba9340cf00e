"""Guidelines on the web: the lead edits and publishes in the pages, the API writes and
reads versions, and the queue holds an annotator's next item until they acknowledge a
new version (in headless Chromium: they see what changed, acknowledge, get an item).

Everything happens in a project of its own (``gl-tickets``), so publishing here never
gates the shared demo project's other tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.accounts import service as accounts
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.schemas import parse_document
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn
from tests.guidelines._data import EXAMPLE, INTENT
from tests.web.conftest import OPERATOR, Demo, bearer, login, make_token
from tests.web.test_browser import Page, browser, server  # noqa: F401  (fixtures)

LEAD, ANNOTATOR = "gl.lead", "gl.annotator"


@dataclass(frozen=True)
class Gl:
    url: str
    project_id: int


def _user(s: Any, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        user = accounts.create_user(s, actor=OPERATOR, username=username)
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
            DEMO_PASSWORD
        )
        s.flush()
    return user


@pytest.fixture(scope="module")
def gl(demo: Demo) -> Gl:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            found = s.scalar(select(Project).where(Project.name == "gl-tickets"))
            if found is not None:
                return Gl(demo.url, found.id)
            project = projects.create_project(
                s, actor=OPERATOR, name="gl-tickets", schema=LabelSchema.from_dict(INTENT)
            )
            for n in range(1, 41):
                projects.add_item(
                    s,
                    actor=OPERATOR,
                    project=project,
                    external_id=f"ticket-{n:04d}",
                    payload={"text": f"Ticket {n}: I was charged twice, please refund one."},
                )
            workbench.update_settings(
                s, actor=OPERATOR, project=project, change=SettingsIn(overlap=1, gold_rate=0.0)
            )
            for username, role in ((LEAD, Role.LEAD), (ANNOTATOR, Role.ANNOTATOR)):
                _user(s, username)
                accounts.grant(
                    s, actor=OPERATOR, username=username, project_id=project.id, role=role
                )
            return Gl(demo.url, project.id)
    finally:
        engine.dispose()


def _publish_next(gl: Gl, note: str) -> str:
    """Publish a new version through the service (the example, one rule's text changed)."""
    doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source="guideline.md")
    r1 = doc.rules[0].model_copy(update={"text": doc.rules[0].text + f"\n\n{note}."})
    doc = doc.model_copy(update={"rules": (r1, *doc.rules[1:])})
    engine = make_engine(gl.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = s.get(Project, gl.project_id)
            assert project is not None
            guidelines.save_draft(s, actor=OPERATOR, project=project, doc=doc)
            return guidelines.publish(s, actor=OPERATOR, project=project, note=note).number
    finally:
        engine.dispose()


def test_lead_edits_a_rule_and_publishes(demo_app: FastAPI, gl: Gl) -> None:
    _publish_next(gl, "a starting point")
    with TestClient(demo_app) as c:
        csrf = login(c, LEAD)
        base = f"/projects/{gl.project_id}/guidelines"
        form = c.get(f"{base}/draft/rules/new")
        assert form.status_code == 200
        bad = {
            "csrf_token": csrf,
            "id": "R9",
            "title": "Duplicate charges",
            "labels": "refund, shipping",
            "text": "A duplicate charge the customer wants back is **refund**.",
            "exemplars": "- {item: ticket-0003, kind: sideways, label: refund}",
        }
        r = c.post(f"{base}/draft/rules/new", data=bad)
        assert r.status_code == 422 and 'id="err-exemplars"' in r.text
        bad["exemplars"] = (
            "- {item: ticket-0003, kind: positive, label: refund, why: wants it back}"
        )
        r = c.post(f"{base}/draft/rules/new", data=bad)
        assert r.status_code == 422 and "no label &#39;shipping&#39;" in r.text
        good = bad | {"labels": "refund, billing"}
        r = c.post(f"{base}/draft/rules/new", data=good, follow_redirects=False)
        assert r.status_code == 303
        draft = c.get(f"{base}/draft")
        assert "R9" in draft.text and "Changes since" in draft.text
        r = c.post(f"{base}/publish", data={"csrf_token": csrf, "note": " "})
        assert r.status_code == 422 and 'id="err-note"' in r.text
        r = c.post(f"{base}/publish", data={"csrf_token": csrf, "note": "add R9"})
        assert r.status_code == 200 and "add R9" in r.text
        page = c.get(f"{base}?q=duplicate")
        assert 'id="rule-R9"' in page.text and 'id="rule-R2"' not in page.text
        assert "<strong>refund</strong>" in page.text  # Markdown rendered
        assert "wants it back" in page.text and "I was charged twice" in page.text
        assert "read by" in page.text  # how many acknowledged each version


def test_rule_text_cannot_script_the_page(demo_app: FastAPI, gl: Gl) -> None:
    with TestClient(demo_app) as c:
        csrf = login(c, LEAD)
        base = f"/projects/{gl.project_id}/guidelines"
        evil = {
            "csrf_token": csrf,
            "id": "R66",
            "title": "Links",
            "text": "<script>alert(1)</script> [click](javascript:alert(1))",
        }
        assert (
            c.post(f"{base}/draft/rules/new", data=evil, follow_redirects=False).status_code == 303
        )
        page = c.get(f"{base}/draft").text + c.get(f"{base}/draft/rules/R66").text
        assert "<script>alert(1)" not in page and 'href="javascript:' not in page
        r = c.post(f"{base}/draft/discard", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303


def test_api_versions_diff_and_the_acknowledgement_gate(
    demo: Demo, demo_app: FastAPI, gl: Gl
) -> None:
    lead = bearer(make_token(demo, LEAD, "lead", gl.project_id))
    ann = bearer(make_token(demo, ANNOTATOR, "annotator", gl.project_id))
    api = f"/api/v1/projects/{gl.project_id}"
    doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source="guideline.md").as_json()
    doc["rules"][1]["text"] += "\n\nQuoting an error message does not make it technical."
    with TestClient(demo_app) as c:
        before = c.get(f"{api}/guidelines", headers=ann).json()["version"]
        assert c.put(f"{api}/guidelines/draft", json=doc, headers=ann).status_code == 403
        r = c.put(f"{api}/guidelines/draft", json=doc, headers=lead)
        assert r.status_code == 200 and r.json()["version"] == "draft"
        r = c.post(f"{api}/guidelines/publish", json={"note": "R2: error messages"}, headers=lead)
        assert r.status_code == 201, r.text
        new = r.json()["version"]
        d = c.get(f"{api}/guidelines/diff", params={"from": before, "to": new}, headers=ann)
        assert d.status_code == 200
        assert set(d.json()) == {
            *("from", "to", "added", "removed", "changed"),
            *("title", "preamble_diff"),
        }
        assert "R2" in [ch["id"] for ch in d.json()["changed"]]
        r = c.post(f"{api}/work/next", json={}, headers=ann)
        assert r.status_code == 409 and r.json()["error"]["code"] == "guideline_unacknowledged"
        pending = c.get(f"{api}/guidelines/pending", headers=ann).json()
        assert pending["version"] == new
        r = c.post(f"{api}/guidelines/acknowledge", json={"version": new}, headers=ann)
        assert r.status_code == 200
        r = c.post(f"{api}/work/next", json={}, headers=ann)
        assert r.status_code == 200 and r.json()["item"] is not None
        item = r.json()["item"]["item_id"]
        r = c.post(f"{api}/annotations", json={"item_id": item, "value": "refund"}, headers=ann)
        assert r.status_code == 201
    engine = make_engine(gl.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            stamped = s.scalar(
                select(Annotation.guideline_version).where(Annotation.item_id == item)
            )
    finally:
        engine.dispose()
    assert stamped == new


def test_browser_acknowledgement_gate(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    gl: Gl,
    backend: str,
) -> None:
    version = _publish_next(gl, "Refunds of fees are refund too")
    p = Page(browser, server)
    try:
        p.login(ANNOTATOR)
        p.page.goto(f"{server}/projects/{gl.project_id}/work")
        p.page.wait_for_url(f"**/projects/{gl.project_id}/guidelines/read")
        assert "Refunds of fees are refund too" in p.page.inner_text("main")
        p.shot("guideline-ack", backend)
        p.page.click(f"text=I have read version {version}")
        p.page.wait_for_url(f"**/projects/{gl.project_id}/work")
        assert p.page.get_attribute("#workbench", "data-item")
        p.page.goto(f"{server}/projects/{gl.project_id}/guidelines")
        assert p.page.locator("#pending").count() == 0
        assert not p.errors, p.errors
    finally:
        p.close()
