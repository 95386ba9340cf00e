"""Guidelines on the web: the lead edits and publishes in the pages, the API writes and
reads versions, and the queue holds an annotator's next item until they acknowledge a
new version (in headless Chromium: they see what changed, acknowledge, get an item).

Everything happens in a project of its own (``gl-tickets``), so publishing here never
gates the shared demo project's other tests.
"""

from __future__ import annotations

from contextlib import nullcontext
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
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn
from tests.guidelines._data import EXAMPLE, INTENT
from tests.web.conftest import OPERATOR, Demo, bearer, login, make_token
from tests.web.test_browser import Page, browser, server  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _app_started(clients: dict[str, tuple[TestClient, str | None]]) -> None:
    """The app's lifespan runs once, for ``clients``; these tests share its engine (a
    ``with TestClient(...)`` here would start it again and orphan the engine before)."""


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
    with nullcontext(TestClient(demo_app)) as c:
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
    with nullcontext(TestClient(demo_app)) as c:
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
    with nullcontext(TestClient(demo_app)) as c:
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


# -- the re-check list ------------------------------------------------------------------

AUDITOR = "gl.auditor"


def _old_work(gl: Gl, note: str) -> tuple[str, str, dict[str, int]]:
    """Three annotations made under the current version (refund, billing, technical),
    then a new version changing R1 (refund, billing): (old, new, ids by label)."""
    engine = make_engine(gl.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = s.get(Project, gl.project_id)
            assert project is not None
            old = guidelines.get_version(s, actor=OPERATOR, project=project).number
            annotator = _user(s, ANNOTATOR)
            ids = {}
            for n, label in enumerate(("refund", "billing", "technical"), start=31):
                item = s.scalar(
                    select(Item).where(
                        Item.project_id == project.id, Item.external_id == f"ticket-{n:04d}"
                    )
                )
                assert item is not None
                row = Annotation(
                    project_id=project.id,
                    item_id=item.id,
                    annotator_id=annotator.id,
                    external_key=f"{note}-{label}",
                    value=label,
                    source="test",
                    guideline_version=old,
                )
                s.add(row)
                s.flush()
                ids[label] = row.id
    finally:
        engine.dispose()
    return old, _publish_next(gl, note), ids


def _grant_auditor(gl: Gl) -> None:
    engine = make_engine(gl.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            _user(s, AUDITOR)
            accounts.grant(
                s, actor=OPERATOR, username=AUDITOR, project_id=gl.project_id, role=Role.AUDITOR
            )
    finally:
        engine.dispose()


def test_api_recheck_lists_and_sends(demo: Demo, demo_app: FastAPI, gl: Gl) -> None:
    old, new, ids = _old_work(gl, "API re-check: duplicate charges")
    lead = bearer(make_token(demo, LEAD, "lead", gl.project_id))
    ann = bearer(make_token(demo, ANNOTATOR, "annotator", gl.project_id))
    api = f"/api/v1/projects/{gl.project_id}/guidelines/recheck"
    span = {"from": old, "to": new}
    with nullcontext(TestClient(demo_app)) as c:
        assert c.get(api, params=span, headers=ann).status_code == 403
        r = c.get(api, params={**span, "limit": 1000}, headers=lead)
        assert r.status_code == 200, r.text
        data = r.json()
        assert (data["from"], data["to"]) == (old, new)
        assert [(x["id"], x["change"]) for x in data["rules"]] == [("R1", "changed")]
        listed = {a["id"]: a for a in data["annotations"]}
        assert ids["refund"] in listed and ids["billing"] in listed
        assert ids["technical"] not in listed
        assert listed[ids["refund"]]["reason"] == "rule_label"
        assert listed[ids["refund"]]["rules"] == ["R1"]
        assert data["total"] == len(listed) and data["truncated"] is False
        r = c.get(api, params={"rule": "R9"}, headers=lead)
        assert r.status_code == 404
        r = c.get(api, params={"from": new, "to": old}, headers=lead)
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "from"
        body = {**span, "rule": "R1", "sample": 2}
        assert c.post(api, json=body, headers=ann).status_code == 403
        r = c.post(api, json=body, headers=lead)
        assert r.status_code == 422 and "reviewer pool is empty" in r.text
        _grant_auditor(gl)
        r = c.post(api, json=body, headers=lead)
        assert r.status_code == 201, r.text
        sent = r.json()
        assert sent["created"] and sent["sample"] == 2 and sent["population"] == data["total"]
        assert sent["policy"] == f"Re-check R1 ({old} → {new})"
        again = c.post(api, json=body, headers=lead)
        assert again.status_code == 200 and again.json()["run_id"] == sent["run_id"]
        run = c.get(f"/api/v1/audit-runs/{sent['run_id']}", headers=lead).json()
        assert (run["status"], run["sample_size"]) == ("open", 2)


def test_diff_page_shows_the_recheck_and_sends_it(demo_app: FastAPI, gl: Gl) -> None:
    old, new, _ = _old_work(gl, "Page re-check: refunds of fees")
    _grant_auditor(gl)
    page = f"/projects/{gl.project_id}/guidelines/diff?from={old}&to={new}"
    with nullcontext(TestClient(demo_app)) as c:
        login(c, ANNOTATOR)
        r = c.get(page)
        assert r.status_code == 200 and 'id="recheck"' not in r.text
    with nullcontext(TestClient(demo_app)) as c:
        csrf = login(c, LEAD)
        r = c.get(page)
        assert r.status_code == 200 and 'id="recheck"' in r.text
        assert 'id="recheck-form"' in r.text and "Send to review" in r.text
        form = {"csrf_token": csrf, "from": old, "to": new, "rule": "R1", "sample": "1"}
        url = f"/projects/{gl.project_id}/guidelines/recheck"
        r = c.post(url, data={k: v for k, v in form.items() if k != "csrf_token"})
        assert r.status_code == 403  # no CSRF token
        r = c.post(url, data=form | {"from": new, "to": old}, follow_redirects=False)
        assert r.status_code == 422 and 'id="recheck-error"' in r.text
        assert f"version {new} is not older than {old}" in r.text
        r = c.post(url, data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/audits/runs/")
        run = c.get(r.headers["location"])
        assert run.status_code == 200 and f"Re-check R1 ({old} → {new})" in run.text


def test_browser_recheck_fits_a_phone_and_sends(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    gl: Gl,
    backend: str,
) -> None:
    old, new, _ = _old_work(gl, "Browser re-check: chargebacks")
    _grant_auditor(gl)
    p = Page(browser, server)
    try:
        p.login(LEAD)
        p.page.set_viewport_size({"width": 360, "height": 800})
        r = p.page.goto(f"{server}/projects/{gl.project_id}/guidelines/diff?from={old}&to={new}")
        assert r is not None and r.status == 200
        assert p.page.evaluate("document.documentElement.scrollWidth") <= 362
        assert "may be affected by this change" in p.page.inner_text("#recheck")
        p.shot("guideline-recheck", backend)
        p.page.select_option("#recheck-form select[name=rule]", "R1")
        p.page.fill("#recheck-form input[name=sample]", "1")
        p.page.click("#recheck-form button[type=submit]")
        p.page.wait_for_url("**/audits/runs/*")
        assert f"Re-check R1 ({old} → {new})" in p.page.inner_text("main")
        assert not p.errors, p.errors
    finally:
        p.close()
