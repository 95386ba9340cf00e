"""Adjudication pages: the case queue and the case page for the roles that may read them,
a refused ruling (422, the rationale named, what was typed kept, nothing written), a
case ruled once only, opening a case by hand, the inbox, the settings form, and an
amendment from a ruling accepted on the guideline draft page.

Everything runs in the shared demo project; each test opens the cases it rules (on
items without an open case), so the tests do not depend on one another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.models import User
from labelloop.adjudication import service as adjudication
from labelloop.adjudication.models import OPEN, Case, Ruling
from labelloop.escalation import service as escalation
from labelloop.escalation.models import Notification
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.models import GuidelineAmendment
from labelloop.projects.models import Item, Project
from labelloop.store import make_engine, make_session_factory, session_scope
from tests.web.conftest import OPERATOR, ROLE_USERS, Demo, bearer, make_token

Clients = dict[str, tuple[TestClient, str | None]]

WHY = "The customer wants the duplicate charge reversed, which R4 calls a refund."


@pytest.fixture
def db(demo: Demo) -> Iterator[Any]:
    """A function that runs ``fn(session)`` in its own committed transaction."""
    engine = make_engine(demo.url)

    def run(fn: Any) -> Any:
        with session_scope(make_session_factory(engine)) as s:
            return fn(s)

    try:
        yield run
    finally:
        engine.dispose()


def open_fresh_case(demo: Demo, note: str = "refund or billing?") -> int:
    """Open a case by hand on an item of the demo project that has no open case."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = s.get(Project, demo.project_id)
            assert project is not None
            busy = select(Case.item_id).where(Case.status == OPEN)
            item_id = s.scalar(
                select(Item.id)
                .where(Item.project_id == project.id, Item.id.not_in(busy))
                .order_by(Item.id.desc())
                .limit(1)
            )
            assert item_id is not None
            case = adjudication.open_case(
                s, actor=OPERATOR, project=project, item=item_id, note=note
            )
            return case.id
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def access_case(demo: Demo) -> int:
    """A case of the demo project for the role × route table (tests/web/test_access.py)."""
    return open_fresh_case(demo, "kept for the access table")


def _client(clients: Clients, role: str) -> tuple[TestClient, str]:
    client, csrf = clients[role]
    assert csrf is not None
    return client, csrf


def _case(db: Any, case_id: int) -> tuple[str, int]:
    def read(s: Session) -> tuple[str, int]:
        case = s.get(Case, case_id)
        assert case is not None
        n = s.scalar(select(func.count(Ruling.id)).where(Ruling.case_id == case_id))
        return case.status, int(n or 0)

    result: tuple[str, int] = db(read)
    return result


def test_pages_render_for_the_right_roles(clients: Clients, demo: Demo) -> None:
    case_id = open_fresh_case(demo)
    pid = demo.project_id
    expected = {
        f"/projects/{pid}/cases": {"adjudicator": 200, "lead": 200, "auditor": 403},
        f"/cases/{case_id}": {"adjudicator": 200, "lead": 200, "annotator": 403},
        f"/projects/{pid}/cases/open": {"auditor": 200, "mentor": 200, "annotator": 403},
        f"/projects/{pid}/rulings": {"annotator": 200, "model": 200, "outsider": 404},
        f"/projects/{pid}/rulings?notable=1": {"annotator": 200, "auditor": 200},
        f"/projects/{pid}/adjudication/settings": {"lead": 200, "adjudicator": 403},
        "/inbox": {"annotator": 200, "outsider": 200},
    }
    for path, by_role in expected.items():
        for role, status in by_role.items():
            client, _ = _client(clients, role)
            r = client.get(path)
            assert r.status_code == status, (role, path, r.text[:300])
            if status == 200:
                assert 'href="/inbox"' in r.text  # the navigation's inbox link

    client, _ = _client(clients, "adjudicator")
    queue = client.get(f"/projects/{pid}/cases")
    assert 'id="detect-now"' in queue.text and f'href="/cases/{case_id}"' in queue.text
    page = client.get(f"/cases/{case_id}")
    assert 'id="rule-form"' in page.text and 'data-key="1"' in page.text
    assert "refund or billing?" in page.text  # the note it was opened with
    assert 'id="votes"' in page.text or "Nobody has labelled" in page.text
    assert "uncertainty × impact" in page.text
    listing = client.get("/")
    assert f'href="/projects/{pid}/cases"' in listing.text
    auditor, _ = _client(clients, "auditor")
    listing = auditor.get("/")
    assert f'href="/projects/{pid}/cases/open"' in listing.text
    assert f'href="/projects/{pid}/cases"' not in listing.text
    lead, _ = _client(clients, "lead")
    overview = lead.get(f"/projects/{pid}")
    assert 'id="cases-link"' in overview.text and "adjudication settings" in overview.text


def test_a_ruling_without_a_rationale_is_refused_and_writes_nothing(
    clients: Clients, demo: Demo, db: Any
) -> None:
    case_id = open_fresh_case(demo)
    client, csrf = _client(clients, "adjudicator")
    form = {
        "csrf_token": csrf,
        "label": "refund",
        "rationale": "   ",
        "rules": ["R4", "R99"],
        "amend": "Keep what I typed.",
        "amend_rule": "R4",
        "notable": "1",
    }
    r = client.post(f"/cases/{case_id}/rule", data=form, follow_redirects=False)
    assert r.status_code == 422, r.text[:500]
    assert 'id="err-rationale"' in r.text and "say why this label is right" in r.text
    assert 'id="err-rules"' in r.text and "R99" in r.text
    # what was typed and chosen is still there
    assert "Keep what I typed." in r.text
    assert re.search(r'value="refund"[^>]*checked', r.text)
    assert re.search(r'name="rules" value="R4" checked', r.text)
    assert re.search(r'name="notable" value="1" checked', r.text)
    assert _case(db, case_id) == ("open", 0)

    # no label chosen: the label is named too, and still nothing is written
    r = client.post(f"/cases/{case_id}/rule", data={"csrf_token": csrf, "rationale": "short"})
    assert r.status_code == 422
    assert 'id="err-label"' in r.text and "choose a label" in r.text
    assert "at least" in r.text and 'id="err-rationale"' in r.text
    assert _case(db, case_id) == ("open", 0)


def test_a_case_is_ruled_once(clients: Clients, demo: Demo, db: Any) -> None:
    case_id = open_fresh_case(demo)
    client, csrf = _client(clients, "adjudicator")
    form = {"csrf_token": csrf, "label": "refund", "rationale": WHY, "rules": "R4", "notable": "1"}
    r = client.post(f"/cases/{case_id}/rule", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    target = r.headers["location"]
    assert re.fullmatch(rf"/cases/\d+|/projects/{demo.project_id}/cases", target)
    assert target != f"/cases/{case_id}"
    landed = client.get(target)
    assert f"Case {case_id} ruled: refund." in landed.text
    assert _case(db, case_id) == ("ruled", 1)

    again = client.post(f"/cases/{case_id}/rule", data=form, follow_redirects=False)
    assert again.status_code == 409
    assert 'id="ruling"' in again.text and 'id="rule-form"' not in again.text
    assert _case(db, case_id) == ("ruled", 1)
    shown = client.get(f"/cases/{case_id}")
    assert 'id="ruling"' in shown.text and WHY in shown.text

    # the ruling's own page, for any member (annotators get notifications linking here;
    # they see the rulings on items they labelled and the notable ones)
    ruling_id = db(lambda s: s.scalar(select(Ruling.id).where(Ruling.case_id == case_id)))
    annotator, _ = _client(clients, "annotator")
    page = annotator.get(f"/projects/{demo.project_id}/rulings/{ruling_id}")
    assert page.status_code == 200, page.text[-1500:]
    assert WHY in page.text and 'id="item-text"' in page.text
    listing = annotator.get(f"/projects/{demo.project_id}/rulings")
    assert f"/projects/{demo.project_id}/rulings/{ruling_id}" in listing.text


def test_detect_now_and_the_next_case(clients: Clients, demo: Demo, db: Any) -> None:
    client, csrf = _client(clients, "adjudicator")
    r = client.post(
        f"/projects/{demo.project_id}/cases/detect",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert re.search(r"\d+ new cases?\b", page.text)
    assert 'id="flash"' in page.text

    def top(s: Session) -> int | None:
        project = s.get(Project, demo.project_id)
        found = adjudication.next_case(s, actor=OPERATOR, project=project)
        return None if found is None else found.case.id

    first = db(top)
    r = client.get(f"/projects/{demo.project_id}/cases/next", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{first}"
    # skipping walks down the queue instead of coming back to the top
    r = client.get(f"/projects/{demo.project_id}/cases/next?after={first}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] != f"/cases/{first}"
    for tab in ("open", "ruled", "all"):
        listed = client.get(f"/projects/{demo.project_id}/cases?status={tab}")
        assert listed.status_code == 200 and 'aria-current="page"' in listed.text
    assert client.get(f"/projects/{demo.project_id}/cases?status=closed").status_code == 422


def test_auditors_open_cases_by_hand(clients: Clients, demo: Demo, db: Any) -> None:
    auditor, csrf = _client(clients, "auditor")
    base = f"/projects/{demo.project_id}/cases/open"
    r = auditor.post(base, data={"csrf_token": csrf, "item": "no-such-ticket", "note": ""})
    assert r.status_code == 422
    assert 'id="err-item"' in r.text and 'id="err-note"' in r.text

    def free_item(s: Session) -> str:
        busy = select(Case.item_id).where(Case.status == OPEN)
        ext = s.scalar(
            select(Item.external_id)
            .where(Item.project_id == demo.project_id, Item.id.not_in(busy))
            .order_by(Item.id)
            .limit(1)
        )
        assert ext is not None
        return str(ext)

    ext = db(free_item)
    form = {"csrf_token": csrf, "item": ext, "note": "the customer mixes two asks"}
    r = auditor.post(base, data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == base
    assert "opened on item" in auditor.get(base).text
    opened = db(
        lambda s: s.scalar(
            select(Case.id)
            .join(Item, Item.id == Case.item_id)
            .where(Item.external_id == ext, Case.status == OPEN)
        )
    )
    assert opened is not None
    # a second case on the same item: 409, shown by the item field
    adjudicator, csrf2 = _client(clients, "adjudicator")
    again = adjudicator.post(
        f"/projects/{demo.project_id}/cases/open",
        data={"csrf_token": csrf2, "item": ext, "note": "again", "back": "queue"},
    )
    assert again.status_code == 409 and 'id="err-item"' in again.text
    assert 'id="detect-now"' in again.text  # the queue's form, sent from the queue
    annotator, csrf3 = _client(clients, "annotator")
    denied = annotator.post(base, data={"csrf_token": csrf3, "item": ext, "note": "x"})
    assert denied.status_code == 403


def _uid(s: Session, username: str) -> int:
    uid = s.scalar(select(User.id).where(User.username == username))
    assert uid is not None
    return int(uid)


def test_inbox_marks_read(clients: Clients, demo: Demo, db: Any) -> None:
    username = ROLE_USERS["annotator"]

    def notify(s: Session) -> list[int]:
        uid = _uid(s, username)
        for n in range(2):
            escalation.notify(
                s,
                user_ids=[uid],
                project_id=demo.project_id,
                kind="test.inbox",
                title=f"Inbox test {n}",
                body="line one\nline two",
                link=f"/projects/{demo.project_id}/rulings",
            )
        return list(
            s.scalars(
                select(Notification.id)
                .where(Notification.user_id == uid, Notification.kind == "test.inbox")
                .order_by(Notification.id.desc())
                .limit(2)
            )
        )

    second, first = db(notify)
    client, csrf = _client(clients, "annotator")
    page = client.get("/inbox")
    assert page.status_code == 200
    assert f'id="note-{first}"' in page.text and f'id="note-{second}"' in page.text
    assert re.search(rf'class="card note unread" id="note-{first}"', page.text)
    badge = re.search(r'id="inbox-unread">(\d+)<', page.text)
    assert badge is not None and int(badge.group(1)) >= 2

    r = client.post(f"/inbox/{first}/read", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    page = client.get("/inbox")
    assert re.search(rf'class="card note" id="note-{first}"', page.text)
    assert re.search(rf'class="card note unread" id="note-{second}"', page.text)

    # nobody marks another's notifications
    other, other_csrf = _client(clients, "lead")
    other.post(f"/inbox/{second}/read", data={"csrf_token": other_csrf})
    read_at = db(lambda s: s.get(Notification, second).read_at)
    assert read_at is None

    r = client.post("/inbox/read", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/inbox")
    assert "notification" in page.text and 'class="card note unread"' not in page.text
    assert 'id="inbox-unread"' not in page.text
    assert client.post("/inbox/read", data={}).status_code == 403  # no CSRF token


def test_lead_changes_the_adjudication_settings(clients: Clients, demo: Demo, db: Any) -> None:
    client, csrf = _client(clients, "lead")
    url = f"/projects/{demo.project_id}/adjudication/settings"

    def current(s: Session) -> dict[str, Any]:
        project = s.get(Project, demo.project_id)
        assert project is not None
        return adjudication.settings_json(adjudication.settings_of(s, project))

    before = db(current)
    page = client.get(url)
    assert page.status_code == 200 and 'name="rationale_min"' in page.text
    form = {k: str(v) for k, v in before.items() if k != "anonymous"}
    bad = form | {"csrf_token": csrf, "spread_min_votes": "many", "sla_hours": ""}
    r = client.post(url, data=bad)
    assert r.status_code == 422
    assert 'id="err-spread_min_votes"' in r.text and 'value="many"' in r.text
    assert 'id="err-sla_hours"' in r.text and "required" in r.text
    out_of_range = form | {"csrf_token": csrf, "posterior_below": "2", "rationale_min": "0"}
    r = client.post(url, data=out_of_range)
    assert r.status_code == 422
    assert 'id="err-posterior_below"' in r.text and "between 0 and 1" in r.text
    assert 'id="err-rationale_min"' in r.text and 'value="0"' in r.text
    assert db(current) == before

    changed = form | {"csrf_token": csrf, "sla_hours": "36", "anonymous": "1"}
    r = client.post(url, data=changed, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=1")
    try:
        after = db(current)
        assert after["sla_hours"] == 36 and after["anonymous"] is True
        # anonymous: the case page hides who chose which label
        case_id = open_fresh_case(demo)
        adjudicator, _ = _client(clients, "adjudicator")
        shown = adjudicator.get(f"/cases/{case_id}").text
        assert 'id="anonymous"' in shown or "Nobody has labelled" in shown
    finally:
        restore = {k: str(v) for k, v in before.items() if k != "anonymous"}
        restore |= {"csrf_token": csrf}
        if before["anonymous"]:
            restore["anonymous"] = "1"
        assert client.post(url, data=restore, follow_redirects=False).status_code == 303
    assert db(current) == before
    adjudicator, adj_csrf = _client(clients, "adjudicator")
    assert adjudicator.post(url, data=form | {"csrf_token": adj_csrf}).status_code == 403


def test_an_amendment_from_a_ruling_is_accepted_on_the_draft_page(
    clients: Clients, demo: Demo, db: Any
) -> None:
    case_id = open_fresh_case(demo)
    text = f"Amendment from case {case_id}: a disputed charge is a refund."
    adjudicator, csrf = _client(clients, "adjudicator")
    r = adjudicator.post(
        f"/cases/{case_id}/rule",
        data={
            "csrf_token": csrf,
            "label": "refund",
            "rationale": WHY,
            "amend": text,
            "amend_rule": "R4",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]

    def proposed(s: Session) -> tuple[int, str, list[str]]:
        a = s.scalar(select(GuidelineAmendment).where(GuidelineAmendment.text == text))
        assert a is not None
        ruling = s.scalar(select(Ruling).where(Ruling.case_id == case_id))
        assert ruling is not None
        return a.id, a.status, list(ruling.rule_refs)

    amendment_id, status, refs = db(proposed)
    assert status == "proposed" and refs == ["R4"]  # the rule to amend is referenced

    lead, lead_csrf = _client(clients, "lead")
    draft = lead.get(f"/projects/{demo.project_id}/guidelines/draft")
    assert 'id="amendments"' in draft.text and f'id="amendment-{amendment_id}"' in draft.text
    base = f"/projects/{demo.project_id}/guidelines/amendments/{amendment_id}"
    denied = adjudicator.post(f"{base}/accept", data={"csrf_token": csrf})
    assert denied.status_code == 403
    r = lead.post(f"{base}/accept", data={"csrf_token": lead_csrf}, follow_redirects=False)
    assert r.status_code == 303

    def r4(s: Session) -> tuple[str, str]:
        project = s.get(Project, demo.project_id)
        doc = guidelines.draft_document(s, actor=OPERATOR, project=project)
        a = s.get(GuidelineAmendment, amendment_id)
        assert a is not None
        return next(r.text for r in doc.rules if r.id == "R4"), a.status

    rule_text, status = db(r4)
    assert rule_text.endswith(text) and status == "accepted"
    after = lead.get(f"/projects/{demo.project_id}/guidelines/draft")
    assert f'id="amendment-{amendment_id}"' not in after.text
    again = lead.post(f"{base}/reject", data={"csrf_token": lead_csrf})
    assert again.status_code == 409  # already decided


def test_pages_take_no_api_tokens(clients: Clients, demo: Demo, access_case: int) -> None:
    anonymous, _ = clients["anonymous"]
    for role in ("lead", "model"):
        token = make_token(demo, ROLE_USERS[role], role)
        for path in (f"/projects/{demo.project_id}/cases", f"/cases/{access_case}", "/inbox"):
            r = anonymous.get(path, headers=bearer(token), follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
