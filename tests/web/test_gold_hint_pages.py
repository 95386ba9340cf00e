"""Gold-miss hints through the app: three misses of hidden checks on the workbench page
leave every answer as it is for any item (no banner, no inbox badge, the note answers
404 to its recipient); once the hint's round is over it shows in the banner, on its page,
in the API and in the inbox, and none of them names a check item.

Runs in a small project of its own in the shared demo database (``wb-hidden-checks``:
hidden checks only), with its own annotator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from labelloop.accounts import service as accounts
from labelloop.accounts.roles import Role
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.escalation.models import Notification
from labelloop.feedback.models import FeedbackNote
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn
from tests.web.conftest import OPERATOR, Demo, login

NAME = "wb-hidden-checks"
USER = "wb.checker"
SCHEMA = {"task_type": "single", "labels": ["billing", "refund", "other"]}


@dataclass(frozen=True)
class Checks:
    url: str
    project_id: int
    items: dict[int, tuple[str, str]]  # id -> (external id, text)


def _run(url: str, fn: Any) -> Any:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return fn(s)
    finally:
        engine.dispose()


def _build(s: Any) -> tuple[int, dict[int, tuple[str, str]]]:
    user = accounts.create_user(s, actor=OPERATOR, username=USER, display_name="Checker")
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
        DEMO_PASSWORD
    )
    project = projects.create_project(
        s, actor=OPERATOR, name=NAME, schema=LabelSchema.from_dict(SCHEMA)
    )
    items = {}
    for i in range(4):
        text = f"Check ticket {i}: the invoice shows a double charge"
        item = projects.add_item(
            s, actor=OPERATOR, project=project, external_id=f"{NAME}-{i}", payload={"text": text}
        )
        projects.set_gold(s, actor=OPERATOR, project=project, item_id=item.id, value="billing")
        items[item.id] = (item.external_id, text)
    workbench.update_settings(
        s, actor=OPERATOR, project=project, change=SettingsIn(overlap=1, gold_rate=1.0)
    )
    accounts.grant(s, actor=OPERATOR, username=USER, project_id=project.id, role=Role.ANNOTATOR)
    return project.id, items


@pytest.fixture(scope="module")
def checks(demo: Demo) -> Checks:
    project_id, items = _run(demo.url, _build)
    return Checks(demo.url, project_id, items)


@pytest.fixture(scope="module")
def checker(
    clients: dict[str, tuple[TestClient, str | None]], demo_app: FastAPI, checks: Checks
) -> Iterator[tuple[TestClient, str]]:
    c = TestClient(demo_app)  # shares the app's engine (opened for ``clients``)
    yield c, login(c, USER)


def _item_of(html: str) -> int:
    match = re.search(r'id="workbench" data-task="\w+" data-item="(\d+)"', html)
    assert match, "no item on the page"
    return int(match.group(1))


def _badge(html: str) -> str | None:
    match = re.search(r'id="inbox-unread">([^<]*)<', html)
    return None if match is None else match.group(1)


def _secrets(checks: Checks) -> list[str]:
    """What would name a check item on a page or in JSON."""
    out = []
    for item_id, (external_id, text) in checks.items.items():
        out += [external_id, text, f"#{item_id}<", f"item #{item_id}", f"/items/{item_id}"]
        out += [f'"item_id": {item_id}', f'"item_id":{item_id}']
    return out


def test_hint_is_silent_at_submission_and_never_names_an_item(
    checker: tuple[TestClient, str], checks: Checks
) -> None:
    client, csrf = checker
    pid = checks.project_id
    work = f"/projects/{pid}/work"
    badge = _badge(client.get(work).text)
    for _ in range(3):
        page = client.get(work).text
        item_id = _item_of(page)
        assert item_id in checks.items and "gold" not in page.lower()
        r = client.post(
            f"{work}/{item_id}",
            data={"csrf_token": csrf, "value": "refund"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == work
        after = client.get(work).text
        assert "Saved your label for item" in after and "gold" not in after.lower()
        assert 'id="wb-notes"' not in after and _badge(after) == badge

    def hint(s: Any) -> tuple[int, Any]:
        (note,) = s.scalars(select(FeedbackNote).where(FeedbackNote.project_id == pid)).all()
        return note.id, note.sent_at

    note_id, sent_at = _run(checks.url, hint)
    assert sent_at > utcnow()  # written in the submission's transaction, sent for its round
    assert client.get(f"/feedback/{note_id}").status_code == 404
    mine = client.get(f"/api/v1/projects/{pid}/feedback/mine")
    assert mine.status_code == 200 and mine.json() == {"notes": [], "unread": 0}

    def round_over(s: Any) -> None:  # as if the round had passed
        past = utcnow() - timedelta(minutes=1)
        s.execute(update(FeedbackNote).where(FeedbackNote.id == note_id).values(sent_at=past))
        s.execute(
            update(Notification).where(Notification.subject_id == note_id).values(created_at=past)
        )

    _run(checks.url, round_over)
    page = client.get(work).text
    assert 'id="wb-notes"' in page and "1 new note" in page
    note_page = client.get(f"/feedback/{note_id}")
    assert note_page.status_code == 200
    assert "On 3 recent check items whose reference is ‘billing’" in note_page.text
    assert 'id="items"' not in note_page.text
    api = client.get(f"/api/v1/projects/{pid}/feedback/mine")
    (note,) = api.json()["notes"]
    assert note["items"] == [] and note["source"] == "gold" and api.json()["unread"] == 1
    inbox = client.get("/inbox").text
    assert f"/feedback/{note_id}" in inbox
    hidden = _secrets(checks)
    for where, text in {"page": note_page.text, "api": api.text, "inbox": inbox}.items():
        assert not [s for s in hidden if s in text], where
