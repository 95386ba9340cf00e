"""The workbench pages through the app: the queue page, valid and invalid submissions
(422 with field messages, nothing saved), skips and uncertainty flags, spans, and the
page's CSP for item images.

Besides the demo project, the module adds two small projects to the shared demo
database (``wb-single`` with a required-attribute rule and an image item, ``wb-spans``
with region attributes) and one annotator, ``wb.tester``, who labels only there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelloop.accounts import service as accounts
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.workbench import service as workbench
from labelloop.workbench.models import Skip
from labelloop.workbench.schemas import SettingsIn
from tests.web.conftest import OPERATOR, Demo, count_rows, login

TESTER = "wb.tester"

SINGLE = {
    "task_type": "single",
    "description": "What does the customer want?",
    "labels": [
        {"name": "billing", "description": "invoices, charges, payment methods"},
        {"name": "refund", "description": "money back for an order", "hotkey": "r"},
        "other",
    ],
    "attributes": [{"name": "note", "type": "text"}],
    "rules": [{"when": {"label": "other"}, "require_attributes": ["note"]}],
}
SPANS = {
    "task_type": "spans",
    "labels": ["ORG", "PERSON"],
    "attributes": [{"name": "confidence", "type": "choice", "values": ["low", "high"]}],
}
SPAN_TEXT = "Ana Lima wrote to Acme Corp about her order."


@dataclass(frozen=True)
class Fixture:
    url: str
    single: int
    spans: int
    tester: int


def _ensure_project(session, name: str, schema: dict, payloads: list[dict]) -> Project:  # type: ignore[no-untyped-def]
    existing = session.scalar(select(Project).where(Project.name == name))
    if existing is not None:
        return existing
    project = projects.create_project(
        session, actor=OPERATOR, name=name, schema=LabelSchema.from_dict(schema)
    )
    for i, payload in enumerate(payloads):
        projects.add_item(
            session,
            actor=OPERATOR,
            project=project,
            external_id=f"{name}-{i}",
            payload=payload,
            metadata={"channel": "email", "received": f"2026-03-0{i + 1}"},
            segments={"language": "en"},
        )
    workbench.update_settings(
        session, actor=OPERATOR, project=project, change=SettingsIn(overlap=1, gold_rate=0.0)
    )
    accounts.grant(
        session, actor=OPERATOR, username=TESTER, project_id=project.id, role=Role.ANNOTATOR
    )
    return project


@pytest.fixture(scope="module")
def wb(demo: Demo) -> Fixture:
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            user = s.scalar(select(User).where(User.username == TESTER))
            if user is None:
                user = accounts.create_user(
                    s, actor=OPERATOR, username=TESTER, display_name="WB Tester"
                )
                user.password_hash = PasswordHasher(
                    time_cost=1, memory_cost=1024, parallelism=1
                ).hash(DEMO_PASSWORD)
                s.flush()
            single = _ensure_project(
                s,
                "wb-single",
                SINGLE,
                [{"text": "Please send me the invoice again.", "image": "/static/favicon.svg"}]
                + [{"text": f"Ticket {i}: where is my money?"} for i in range(7)],
            )
            spans = _ensure_project(s, "wb-spans", SPANS, [{"text": SPAN_TEXT}] * 4)
            return Fixture(demo.url, single.id, spans.id, user.id)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def tester(
    clients: dict[str, tuple[TestClient, str | None]], demo_app: FastAPI, wb: Fixture
) -> tuple[TestClient, str]:
    """The tester's client; it shares the app (and the engine its lifespan opened for
    ``clients``) instead of running the lifespan again."""
    c = TestClient(demo_app)
    return c, login(c, TESTER)


def _db(url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def _item_of(html: str) -> int:
    match = re.search(r'id="workbench" data-task="\w+" data-item="(\d+)"', html)
    assert match, "no item on the page"
    return int(match.group(1))


def test_annotator_sees_an_item_blind(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    client, _ = clients["annotator"]
    r = client.get(f"/projects/{demo.project_id}/work")
    assert r.status_code == 200, r.text[:300]
    item_id = _item_of(r.text)
    engine, factory = _db(demo.url)
    try:
        with session_scope(factory) as s:
            others = s.scalars(
                select(User.username)
                .join(Annotation, Annotation.annotator_id == User.id)
                .where(Annotation.item_id == item_id)
            ).all()
    finally:
        engine.dispose()
    for name in others:
        assert name not in r.text
    assert "intent-clf" not in r.text and "gold" not in r.text.lower()
    # controls, hotkeys and the guideline panel for the demo's single-label schema
    assert r.text.count('type="radio" name="value"') >= 5
    assert 'id="wb-guide"' in r.text and "<kbd>1</kbd>" in r.text
    assert 'id="wb-schema"' in r.text and "/static/workbench.js" in r.text
    again = client.get(f"/projects/{demo.project_id}/work")
    assert _item_of(again.text) == item_id  # reloading keeps the leased item


def test_roles_without_annotate_get_403(
    clients: dict[str, tuple[TestClient, str | None]], demo: Demo
) -> None:
    for who in ("auditor", "model"):
        client, _ = clients[who]
        assert client.get(f"/projects/{demo.project_id}/work").status_code == 403
    # someone with no role in the project is told it does not exist
    outsider, _ = clients["outsider"]
    assert outsider.get(f"/projects/{demo.project_id}/work").status_code == 404


def test_valid_submission_is_saved(tester: tuple[TestClient, str], wb: Fixture) -> None:
    client, csrf = tester
    page = client.get(f"/projects/{wb.single}/work")
    item_id = _item_of(page.text)
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}",
        data={"csrf_token": csrf, "value": "refund", "active_seconds": "4.5", "attr.note": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/projects/{wb.single}/work"
    engine, factory = _db(wb.url)
    try:
        with session_scope(factory) as s:
            (ann,) = s.scalars(
                select(Annotation).where(
                    Annotation.item_id == item_id, Annotation.annotator_id == wb.tester
                )
            ).all()
            assert (ann.value, ann.source, ann.attributes, ann.flags) == (
                "refund",
                "workbench",
                {},
                [],
            )
            assert ann.active_seconds is not None and 0 <= ann.active_seconds <= 4.5
            assert ann.started_at is not None and ann.submitted_at is not None
    finally:
        engine.dispose()
    after = client.get(f"/projects/{wb.single}/work")
    assert f"Saved your label for item #{item_id}." in after.text
    assert _item_of(after.text) != item_id


def test_invalid_submission_gets_422_with_field_messages_and_saves_nothing(
    tester: tuple[TestClient, str], wb: Fixture
) -> None:
    client, csrf = tester
    item_id = _item_of(client.get(f"/projects/{wb.single}/work").text)
    before = count_rows(wb.url, Annotation, annotator_id=wb.tester)
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}",
        data={"csrf_token": csrf, "value": "other", "uncertain_reason": "keep me"},
    )
    assert r.status_code == 422
    assert "<code>attributes.note</code>" in r.text
    assert (
        "attribute &#39;note&#39; is required when the label is &#39;other&#39; (rules[0])"
        in r.text
    )
    assert 'value="other" data-hotkey="2" checked' in r.text  # the form keeps what was entered
    assert 'value="keep me"' in r.text
    assert _item_of(r.text) == item_id
    r = client.post(f"/projects/{wb.single}/work/{item_id}", data={"csrf_token": csrf})
    assert r.status_code == 422 and "<code>value</code>: choose a label" in r.text
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}", data={"csrf_token": csrf, "value": "nonsense"}
    )
    assert r.status_code == 422 and "unknown label" in r.text
    assert count_rows(wb.url, Annotation, annotator_id=wb.tester) == before
    # fixed, it is saved
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}",
        data={"csrf_token": csrf, "value": "other", "attr.note": "a partnership offer"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert count_rows(wb.url, Annotation, annotator_id=wb.tester) == before + 1


def test_skip_and_flag_are_recorded(tester: tuple[TestClient, str], wb: Fixture) -> None:
    client, csrf = tester
    item_id = _item_of(client.get(f"/projects/{wb.single}/work").text)
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}/skip", data={"csrf_token": csrf, "reason": " "}
    )
    assert r.status_code == 422 and "<code>reason</code>: a reason is required" in r.text
    assert count_rows(wb.url, Skip, annotator_id=wb.tester) == 0
    r = client.post(
        f"/projects/{wb.single}/work/{item_id}/skip",
        data={"csrf_token": csrf, "reason": "the ticket is empty"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert count_rows(wb.url, Skip, annotator_id=wb.tester, item_id=item_id) == 1
    page = client.get(f"/projects/{wb.single}/work")
    assert f"Skipped item #{item_id}." in page.text
    flagged = _item_of(page.text)
    assert flagged != item_id
    r = client.post(
        f"/projects/{wb.single}/work/{flagged}",
        data={"csrf_token": csrf, "value": "billing", "uncertain": "1", "uncertain_reason": ""},
    )
    assert r.status_code == 422 and "<code>uncertain_reason</code>" in r.text
    r = client.post(
        f"/projects/{wb.single}/work/{flagged}",
        data={
            "csrf_token": csrf,
            "value": "billing",
            "uncertain": "1",
            "uncertain_reason": "could be a refund",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    engine, factory = _db(wb.url)
    try:
        with session_scope(factory) as s:
            ann = s.scalar(
                select(Annotation).where(
                    Annotation.item_id == flagged, Annotation.annotator_id == wb.tester
                )
            )
            assert ann is not None
            assert ann.flags == [
                {
                    "code": "uncertain",
                    "field": "value",
                    "message": "could be a refund",
                    "source": "annotator",
                }
            ]
    finally:
        engine.dispose()


def test_an_item_not_held_is_a_conflict(tester: tuple[TestClient, str], wb: Fixture) -> None:
    client, csrf = tester
    held = _item_of(client.get(f"/projects/{wb.single}/work").text)
    engine, factory = _db(wb.url)
    try:
        with session_scope(factory) as s:
            project = projects.get_project(s, wb.single)
            # any item of the project but the held one (whatever other tests did first)
            other = s.scalars(
                select(Item.id).where(Item.project_id == project.id, Item.id != held)
            ).first()
            assert other is not None
    finally:
        engine.dispose()
    r = client.post(
        f"/projects/{wb.single}/work/{other}", data={"csrf_token": csrf, "value": "billing"}
    )
    assert r.status_code == 409 and "not in your queue" in r.text
    assert _item_of(r.text) == held
    r = client.post(
        f"/projects/{wb.single}/work/999999999", data={"csrf_token": csrf, "value": "billing"}
    )
    assert r.status_code == 404


def test_guidelines_and_image(tester: tuple[TestClient, str], wb: Fixture) -> None:
    client, _ = tester
    page = client.get(f"/projects/{wb.single}/work").text
    assert "What does the customer want?" in page
    assert "invoices, charges, payment methods" in page
    assert "When the label is &#39;other&#39;: fill in note. This is required." in page
    assert "<kbd>r</kbd>" in page  # the schema's hotkey; the others get 1, 2
    assert 'name="attr.note"' in page


def test_item_images_from_another_host_are_allowed_by_the_csp(
    tester: tuple[TestClient, str], wb: Fixture
) -> None:
    from labelloop.web.pages.workbench import _csp_for
    from labelloop.workbench.schemas import WorkItem

    def item(payload: dict) -> WorkItem:  # type: ignore[type-arg]
        from labelloop.store.base import utcnow

        return WorkItem(1, payload, {}, {}, utcnow(), utcnow())

    csp = _csp_for(item({"image": "https://img.example.org/a/b.png?x=1"}))[
        "Content-Security-Policy"
    ]
    assert "img-src 'self' data: https://img.example.org;" in csp
    assert _csp_for(item({"image": "/static/favicon.svg"})) == {}
    assert _csp_for(item({"text": "no image"})) == {}
    assert item({"photo": "https://x.org/cat.JPG"}).image_url == "https://x.org/cat.JPG"
    assert item({"image": "javascript:alert(1)"}).image_url is None


def test_spans_are_submitted_as_json(tester: tuple[TestClient, str], wb: Fixture) -> None:
    client, csrf = tester
    page = client.get(f"/projects/{wb.spans}/work")
    assert 'class="secondary wb-span-label" data-label="ORG"' in page.text
    item_id = _item_of(page.text)
    bad = [
        {"start": 0, "end": 8, "label": "PERSON", "text": "Ana Lima"},
        {"start": 4, "end": 12, "label": "ORG"},
        {"start": 18, "end": 999, "label": "ORG"},
    ]
    r = client.post(
        f"/projects/{wb.spans}/work/{item_id}", data={"csrf_token": csrf, "spans": json.dumps(bad)}
    )
    assert r.status_code == 422
    assert "<code>value[1]</code>: overlaps value[0]" in r.text
    assert "<code>value[2].end</code>: end 999 is past the end of the text" in r.text
    r = client.post(
        f"/projects/{wb.spans}/work/{item_id}", data={"csrf_token": csrf, "spans": "[{"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.text
    good = [
        {"start": 0, "end": 8, "label": "PERSON", "text": "Ana Lima"},
        {
            "start": 18,
            "end": 27,
            "label": "ORG",
            "text": "Acme Corp",
            "attributes": {"confidence": "high"},
        },
    ]
    r = client.post(
        f"/projects/{wb.spans}/work/{item_id}",
        data={"csrf_token": csrf, "spans": json.dumps(good)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    engine, factory = _db(wb.url)
    try:
        with session_scope(factory) as s:
            ann = s.scalar(
                select(Annotation).where(
                    Annotation.item_id == item_id, Annotation.annotator_id == wb.tester
                )
            )
            assert ann is not None and ann.value == good
    finally:
        engine.dispose()
