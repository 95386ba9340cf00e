"""Feedback pages: a note for its recipient and for leads (items side by side, rule
links into the guideline, replies), acknowledging it (agree; disagree without a reason
is a 422 naming it with nothing written; with one, a case), the lead's notes page
(bulk sending with refusals shown per draft, writing and editing drafts), the workbench
banner, "My quality" against a direct computation on a small project, and who may see
what.

Everything runs in the shared demo project (plus one small project of its own for the
quality figures); each test writes the notes it needs, so the tests do not depend on
one another or on the drafts the demo's audit runs left.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.adjudication.models import Case
from labelloop.audits.models import AuditAssignment, AuditReview, AuditRun, AuditUnit
from labelloop.demo.builder import DEMO_PASSWORD
from labelloop.feedback import lifecycle, quality
from labelloop.feedback.models import FeedbackNote, FeedbackReply
from labelloop.guidelines import service as guidelines
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.models import Event
from tests.web.conftest import OPERATOR, ROLE_USERS, Demo, login

Clients = dict[str, tuple[TestClient, str | None]]

ANNOTATOR = ROLE_USERS["annotator"]  # lucas.martin, a simulated annotator with labels
OTHER = "james.okafor"  # another simulated annotator (no login)


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


def _client(clients: Clients, role: str) -> tuple[TestClient, str]:
    client, csrf = clients[role]
    assert csrf is not None
    return client, csrf


def _project(s: Session, demo: Demo) -> Project:
    project = s.get(Project, demo.project_id)
    assert project is not None
    return project


def _uid(s: Session, username: str) -> int:
    uid = s.scalar(select(User.id).where(User.username == username))
    assert uid is not None
    return uid


def _items_of(s: Session, project: Project, username: str, n: int) -> list[str]:
    """External ids of ``n`` items the user labeled."""
    rows = s.scalars(
        select(Item.external_id)
        .join(Annotation, Annotation.item_id == Item.id)
        .where(Item.project_id == project.id, Annotation.annotator_id == _uid(s, username))
        .order_by(Item.id)
        .limit(n)
    ).all()
    assert len(rows) == n
    return list(rows)


def write_draft(
    demo: Demo,
    recipient: str = ANNOTATOR,
    *,
    template: str = "guideline_misread",
    rules: tuple[str, ...] = ("R4",),
    items: int = 2,
    send: bool = False,
) -> int:
    """A note written by the operator (a draft, or sent when ``send``); its id."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = _project(s, demo)
            fields = {"what_to_change": "Money back is a refund (R4)."}
            if template == "positive":
                fields = {"what_was_right": "Careful reading of the ticket."}
            note = lifecycle.create(
                s,
                actor=OPERATOR,
                project=project,
                new=lifecycle.NewNote(
                    recipient=recipient,
                    template=template,
                    message="Three of your refund tickets were labeled billing.",
                    items=tuple(_items_of(s, project, recipient, items)),
                    fields=fields,
                    rule_refs=rules,
                ),
            )
            if send:
                result = lifecycle.send(s, actor=OPERATOR, project=project, note_ids=[note.id])
                assert result.sent == [note.id]
            return note.id
    finally:
        engine.dispose()


def _note(db: Any, note_id: int) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        note = s.get(FeedbackNote, note_id)
        assert note is not None
        return {
            "status": note.status,
            "response": note.response,
            "reason": note.response_reason,
            "case_id": note.case_id,
            "item_id": note.items[0].item_id if note.items else None,
            "rule_refs": list(note.rule_refs),
            "message": note.message,
            "severity": note.severity,
            "fields": dict(note.fields),
        }

    result: dict[str, Any] = db(read)
    return result


def _count(db: Any, model: type, **where: Any) -> int:
    def read(s: Session) -> int:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int(s.scalar(stmt) or 0)

    result: int = db(read)
    return result


def _text(html: str, element_id: str) -> str:
    """The text of the element with this id (up to its tag's first closing tag)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return re.sub(r"<[^>]+>", "", match.group(2))


# -- who sees what -----------------------------------------------------------------------


def test_pages_render_for_the_right_roles(clients: Clients, demo: Demo) -> None:
    pid = demo.project_id
    sent = write_draft(demo, send=True)
    draft = write_draft(demo)
    expected = {
        f"/feedback/{sent}": {
            "annotator": 200,
            "lead": 200,
            "admin": 200,
            "mentor": 404,  # another's note answers as no note at all
            "auditor": 404,
            "outsider": 404,
        },
        f"/feedback/{draft}": {"lead": 200, "annotator": 404},
        f"/projects/{pid}/feedback": {
            "annotator": 200,
            "lead": 200,
            "mentor": 200,
            "outsider": 404,
        },
        f"/projects/{pid}/feedback/drafts/{draft}": {"lead": 200, "annotator": 403, "mentor": 403},
        f"/projects/{pid}/quality": {"annotator": 200, "mentor": 200, "lead": 200, "outsider": 404},
        f"/projects/{pid}/quality?user={ANNOTATOR}": {
            "annotator": 200,
            "lead": 200,
            "mentor": 200,
            "auditor": 200,
            "model": 403,
        },
        f"/projects/{pid}/quality?user=demo.mentor-nobody": {"lead": 404, "annotator": 403},
    }
    for path, by_role in expected.items():
        for role, status in by_role.items():
            client, _ = _client(clients, role)
            r = client.get(path, follow_redirects=False)
            assert r.status_code == status, (role, path, r.text[:300])

    annotator, _ = _client(clients, "annotator")
    page = annotator.get(f"/projects/{pid}/feedback").text
    assert 'id="mine"' in page and f'href="/feedback/{sent}"' in page
    assert 'id="drafts"' not in page and 'id="write-form"' not in page  # leads only
    lead, _ = _client(clients, "lead")
    page = lead.get(f"/projects/{pid}/feedback").text
    assert (
        f'id="draft-{draft}"' in page and 'id="write-form"' in page and 'id="send-selected"' in page
    )
    assert f'id="sent-{sent}"' in page

    # the pages annotators see link the notes page and My quality; the lead's overview
    # links the notes page
    projects_page = annotator.get("/").text
    assert f'href="/projects/{pid}/feedback"' in projects_page
    assert f'href="/projects/{pid}/quality"' in projects_page
    assert 'id="feedback-link"' in lead.get(f"/projects/{pid}").text


def test_an_annotator_cannot_see_anothers_note_or_quality(
    clients: Clients, demo: Demo, db: Any
) -> None:
    pid = demo.project_id
    theirs = write_draft(demo, OTHER, send=True)
    annotator, csrf = _client(clients, "annotator")
    assert annotator.get(f"/feedback/{theirs}").status_code == 404  # as if there were none
    r = annotator.post(
        f"/feedback/{theirs}/acknowledge", data={"response": "agree", "csrf_token": csrf}
    )
    assert r.status_code == 404
    r = annotator.post(f"/feedback/{theirs}/reply", data={"body": "mine?", "csrf_token": csrf})
    assert r.status_code == 404
    assert _note(db, theirs)["status"] == "sent"
    assert _count(db, FeedbackReply, note_id=theirs) == 0
    assert annotator.get(f"/projects/{pid}/quality?user={OTHER}").status_code == 403
    assert annotator.get(f"/projects/{pid}/feedback/drafts/{theirs}").status_code == 403
    # their own draft is not theirs to read until it is sent
    draft = write_draft(demo)
    assert annotator.get(f"/feedback/{draft}").status_code == 404
    # and the notes page lists only their own
    page = annotator.get(f"/projects/{pid}/feedback").text
    assert f'href="/feedback/{theirs}"' not in page


# -- the note and its acknowledgement ------------------------------------------------------


def test_the_recipient_reads_and_agrees(clients: Clients, demo: Demo, db: Any) -> None:
    note_id = write_draft(demo, send=True)
    annotator, csrf = _client(clients, "annotator")
    page = annotator.get(f"/feedback/{note_id}").text
    assert "Guideline misread" in _text(page, "note-title")
    assert f'href="/projects/{demo.project_id}/guidelines#rule-R4"' in page
    assert page.count('class="fb-item') == 2  # both items, each with both labels
    assert page.count('class="fb-given"') == 2 and page.count('class="fb-reference"') == 2
    assert 'id="agree"' in page and 'id="disagree"' in page and 'id="resolve"' not in page

    r = annotator.post(
        f"/feedback/{note_id}/acknowledge",
        data={"response": "agree", "reason": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/feedback/{note_id}"
    state = _note(db, note_id)
    assert state["status"] == "acknowledged" and state["response"] == "agree"
    page = annotator.get(f"/feedback/{note_id}").text
    assert "you agreed" in _text(page, "flash")
    assert 'id="ack-form"' not in page and "Agreed" in _text(page, "response-text")
    # twice is a conflict, shown on the page as it is now
    r = annotator.post(
        f"/feedback/{note_id}/acknowledge", data={"response": "agree", "csrf_token": csrf}
    )
    assert r.status_code == 409 and "acknowledged" in _text(r.text, "notice")

    # a reply, then the lead resolves it
    r = annotator.post(f"/feedback/{note_id}/reply", data={"body": " ", "csrf_token": csrf})
    assert r.status_code == 422 and "reply" in _text(r.text, "err-body")
    r = annotator.post(
        f"/feedback/{note_id}/reply",
        data={"body": "Thanks, R4 is clear now.", "csrf_token": csrf},
    )
    assert r.status_code == 200 and "Thanks, R4 is clear now." in r.text
    lead, lead_csrf = _client(clients, "lead")
    page = lead.get(f"/feedback/{note_id}").text
    assert 'id="resolve"' in page and "Thanks, R4 is clear now." in page
    r = lead.post(f"/feedback/{note_id}/resolve", data={"csrf_token": lead_csrf})
    assert r.status_code == 200 and _note(db, note_id)["status"] == "resolved"


def test_disagreeing_needs_a_reason_and_opens_a_case(clients: Clients, demo: Demo, db: Any) -> None:
    note_id = write_draft(demo, send=True)
    annotator, csrf = _client(clients, "annotator")
    events = _count(db, Event, action="feedback.acknowledge")
    cases = _count(db, Case)
    r = annotator.post(
        f"/feedback/{note_id}/acknowledge",
        data={"response": "disagree", "reason": "   ", "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert "reason" in _text(r.text, "err-reason")
    assert 'aria-invalid="true"' in r.text and 'id="ack-form"' in r.text
    state = _note(db, note_id)  # nothing written
    assert state["status"] == "sent" and state["response"] is None and state["case_id"] is None
    assert _count(db, Event, action="feedback.acknowledge") == events
    assert _count(db, Case) == cases

    why = "The customer asks for the money back, which R4 calls a refund."
    r = annotator.post(
        f"/feedback/{note_id}/acknowledge",
        data={"response": "disagree", "reason": why, "csrf_token": csrf},
    )
    assert r.status_code == 200
    state = _note(db, note_id)
    assert state["status"] == "acknowledged" and state["response"] == "disagree"
    assert state["reason"] == why and state["case_id"] is not None

    def case_of(s: Session) -> tuple[int, str]:
        case = s.get(Case, state["case_id"])
        assert case is not None
        return case.item_id, case.status

    assert db(case_of) == (state["item_id"], "open")
    assert f"case {state['case_id']}" in _text(r.text, "flash")
    assert f"case {state['case_id']} was opened" in r.text.replace("\n", " ")
    assert why in r.text


# -- the lead's notes page -------------------------------------------------------------------


def test_a_lead_sends_drafts_in_bulk_and_sees_refusals(
    clients: Clients, demo: Demo, db: Any
) -> None:
    pid = demo.project_id
    ready = [write_draft(demo, template="attention_slip", rules=()) for _ in range(2)]
    lacking = write_draft(demo)  # a misread without its rule reference cannot go out

    def strip_rules(s: Session) -> None:
        lifecycle.edit(s, actor=OPERATOR, note_id=lacking, changes={"rule_refs": []})

    db(strip_rules)
    lead, csrf = _client(clients, "lead")
    page = lead.get(f"/projects/{pid}/feedback").text
    assert "rule refs" in _text(page, f"needs-{lacking}")

    r = lead.post(
        f"/projects/{pid}/feedback/send",
        data={"ids": [str(i) for i in (*ready, lacking)], "csrf_token": csrf},
    )
    assert r.status_code == 422
    assert "Sent 2 notes" in _text(r.text, "notice")
    refusal = _text(r.text, f"refused-{lacking}")
    assert "rule refs" in refusal and "guideline misread" in refusal
    assert re.search(rf'name="ids" value="{lacking}" checked', r.text)  # still ticked
    assert [_note(db, i)["status"] for i in ready] == ["sent", "sent"]
    assert _note(db, lacking)["status"] == "draft"

    # nothing ticked, or a note sent already
    r = lead.post(f"/projects/{pid}/feedback/send", data={"csrf_token": csrf})
    assert r.status_code == 422 and "Select at least one" in _text(r.text, "send-error")
    r = lead.post(f"/projects/{pid}/feedback/send", data={"ids": str(ready[0]), "csrf_token": csrf})
    assert r.status_code == 422 and "already sent" in _text(r.text, f"refused-{ready[0]}")

    # the lead adds the rule on the draft page and sends it from there
    r = lead.post(
        f"/projects/{pid}/feedback/drafts/{lacking}",
        data={
            "template": "guideline_misread",
            "severity": "high",
            "message": "Read R4 again before the next batch.",
            "rule_refs": "R4",
            "what_to_change": "Money back is a refund.",
            "then": "send",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    state = _note(db, lacking)
    assert state["status"] == "sent" and state["rule_refs"] == ["R4"]
    assert state["severity"] == "high"
    # everything sent: back to the list with a message
    more = write_draft(demo, template="attention_slip", rules=())
    r = lead.post(
        f"/projects/{pid}/feedback/send",
        data={"ids": str(more), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Sent 1 note" in _text(lead.get(r.headers["location"]).text, "flash")


def test_a_lead_writes_and_edits_a_draft(clients: Clients, demo: Demo, db: Any) -> None:
    pid = demo.project_id
    lead, csrf = _client(clients, "lead")
    before = _count(db, FeedbackNote)
    form = {
        "recipient": ANNOTATOR,
        "template": "boundary_case",
        "severity": "medium",
        "message": "Refund vs billing: see R4.",
        "rule_refs": "R4, R99",
        "items": "no-such-ticket",
        "csrf_token": csrf,
    }
    r = lead.post(f"/projects/{pid}/feedback", data=form)
    assert r.status_code == 422
    assert "what to change" in _text(r.text, "err-what_to_change")  # the template's field
    assert "R99" in _text(r.text, "err-rule_refs")
    assert "no-such-ticket" in _text(r.text, "err-items")
    assert 'id="write-details" open' in r.text and "Refund vs billing: see R4." in r.text
    assert _count(db, FeedbackNote) == before  # nothing written

    def items(s: Session) -> list[str]:
        return _items_of(s, _project(s, demo), ANNOTATOR, 2)

    form |= {
        "rule_refs": "R4",
        "items": " ".join(db(items)),
        "what_to_change": "A duplicate charge to reverse is a refund.",
    }
    r = lead.post(f"/projects/{pid}/feedback", data=form, follow_redirects=False)
    assert r.status_code == 303
    note_id = int(r.headers["location"].rsplit("#draft-", 1)[1])
    assert _note(db, note_id)["status"] == "draft"
    assert f"Draft {note_id} written" in _text(lead.get(r.headers["location"]).text, "flash")

    page = lead.get(f"/projects/{pid}/feedback/drafts/{note_id}").text
    assert 'value="R4"' in page and "A duplicate charge to reverse is a refund." in page
    edit = {
        "template": "boundary_case",
        "severity": "urgent",
        "message": "x" * 10_001,
        "rule_refs": "R4",
        "what_to_change": "Refund.",
        "csrf_token": csrf,
    }
    r = lead.post(f"/projects/{pid}/feedback/drafts/{note_id}", data=edit)
    assert r.status_code == 422
    assert "severity" in _text(r.text, "err-severity") and "10000" in _text(r.text, "err-message")
    assert _note(db, note_id)["message"] == "Refund vs billing: see R4."  # unchanged
    edit |= {"severity": "low", "message": "Shorter.", "what_to_change": ""}
    r = lead.post(f"/projects/{pid}/feedback/drafts/{note_id}", data=edit, follow_redirects=False)
    assert r.status_code == 303  # saved: a draft may lack fields until it is sent
    state = _note(db, note_id)
    assert state["message"] == "Shorter." and state["severity"] == "low" and state["fields"] == {}
    assert "what to change" in _text(lead.get(r.headers["location"]).text, "flash")
    r = lead.post(f"/projects/{pid}/feedback/drafts/{note_id}", data=edit | {"then": "send"})
    assert r.status_code == 422 and "what to change" in _text(r.text, "err-what_to_change")
    assert _note(db, note_id)["status"] == "draft"
    # a sent note is no longer a draft to edit
    sent = write_draft(demo, send=True)
    r = lead.get(f"/projects/{pid}/feedback/drafts/{sent}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/feedback/{sent}"
    assert lead.post(f"/projects/{pid}/feedback/drafts/{sent}", data=edit).status_code == 409


# -- the workbench banner ------------------------------------------------------------------


def read_guideline(demo: Demo, username: str) -> None:
    """Acknowledge the current guideline for ``username`` (the workbench waits for it)."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = _project(s, demo)
            me = Actor.for_user(_uid(s, username), username)
            pending = guidelines.pending(s, actor=me, project=project)
            if pending is not None:
                guidelines.acknowledge(s, actor=me, project=project, number=pending.version.number)
    finally:
        engine.dispose()


def test_the_workbench_shows_new_notes(clients: Clients, demo: Demo, db: Any) -> None:
    read_guideline(demo, ANNOTATOR)
    annotator, csrf = _client(clients, "annotator")
    pid = demo.project_id

    def unread(s: Session) -> list[int]:
        return list(
            s.scalars(
                select(FeedbackNote.id).where(
                    FeedbackNote.recipient_id == _uid(s, ANNOTATOR),
                    FeedbackNote.project_id == pid,
                    FeedbackNote.status == "sent",
                )
            )
        )

    for note_id in db(unread):  # earlier tests' notes: acknowledge them first
        annotator.post(
            f"/feedback/{note_id}/acknowledge", data={"response": "agree", "csrf_token": csrf}
        )
    assert 'id="wb-notes"' not in annotator.get(f"/projects/{pid}/work").text
    write_draft(demo, send=True)
    write_draft(demo, template="positive", rules=(), send=True)
    page = annotator.get(f"/projects/{pid}/work").text
    assert "2 new notes" in _text(page, "wb-notes-link")
    assert f'href="/projects/{pid}/feedback" id="wb-notes-link"' in page
    page = annotator.get(f"/projects/{pid}/feedback").text
    assert "2 new" in _text(page, "mine-unread") and page.count("fb-row unacked") == 2


# -- My quality ------------------------------------------------------------------------------

SMALL = "fb-quality-small"
ME = "fbq.me"
PEERS = ("fbq.p1", "fbq.p2", "fbq.p3", "fbq.p4", "fbq.p5")
N_ITEMS = 12
WEEK_ONE = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday: ISO week 2026-W10
#: item -> gold label (items 0-5 have gold), for the others every peer agrees
GOLD = {0: "a", 1: "b", 2: "c", 3: "a", 4: "b", 5: "c"}
PEER_LABEL = {6: "a", 7: "a", 8: "b", 9: "b", 10: "c", 11: "c"}
#: my labels: wrong on items 1 and 4 (gold) and 7, 9, 10 (consensus)
MINE = {
    0: "a",
    1: "a",
    2: "c",
    3: "a",
    4: "c",
    5: "c",
    6: "a",
    7: "b",
    8: "b",
    9: "a",
    10: "a",
    11: "c",
}
#: each peer errs on this many gold items (0-based: the first k gold items get "c"/"a")
PEER_ERRORS = {"fbq.p1": 0, "fbq.p2": 1, "fbq.p3": 2, "fbq.p4": 3, "fbq.p5": 1}


def _peer_label(peer: str, item: int) -> str:
    if item in GOLD:
        gold = GOLD[item]
        wrong = item < PEER_ERRORS[peer]
        return ("c" if gold != "c" else "a") if wrong else gold
    return PEER_LABEL[item]


def _label_of(user: str, item: int) -> str:
    return MINE[item] if user == ME else _peer_label(user, item)


def _submitted(item: int, user_index: int) -> datetime:
    week = 0 if item < 6 else 1
    return WEEK_ONE + timedelta(days=7 * week, hours=item, minutes=user_index)


@pytest.fixture(scope="module")
def small(demo: Demo) -> int:
    """A small project: six annotators (one who signs in) label twelve items, six of
    them with gold labels, over two ISO weeks."""
    engine = make_engine(demo.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            found = s.scalar(select(Project.id).where(Project.name == SMALL))
            if found is not None:
                return int(found)
            project = projects.create_project(
                s,
                actor=OPERATOR,
                name=SMALL,
                schema=LabelSchema.from_dict({"task_type": "single", "labels": ["a", "b", "c"]}),
            )
            users = {}
            for name in (ME, *PEERS):
                user = accounts.create_user(s, actor=OPERATOR, username=name)
                users[name] = user.id
                accounts.grant(
                    s, actor=OPERATOR, username=name, project_id=project.id, role=Role.ANNOTATOR
                )
            me = s.scalar(select(User).where(User.username == ME))
            assert me is not None
            me.password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(
                DEMO_PASSWORD
            )
            for i in range(N_ITEMS):
                item = projects.add_item(
                    s,
                    actor=OPERATOR,
                    project=project,
                    external_id=f"q-{i}",
                    payload={"text": f"t{i}"},
                )
                for j, name in enumerate((ME, *PEERS)):
                    projects.submit_annotation(
                        s,
                        actor=OPERATOR,
                        project=project,
                        item_id=item.id,
                        annotator_id=users[name],
                        value=_label_of(name, i),
                        submitted_at=_submitted(i, j),
                        external_key=f"q-{i}-{name}",
                    )
                if i in GOLD:
                    projects.set_gold(
                        s, actor=OPERATOR, project=project, item_id=item.id, value=GOLD[i]
                    )
            return project.id
    finally:
        engine.dispose()


def _direct(user: str) -> dict[str, Any]:
    """The figures computed by hand from the tables above."""
    from statsmodels.stats.proportion import proportion_confint

    def share(correct: int, n: int) -> dict[str, Any]:
        lo, hi = proportion_confint(correct, n, method="wilson")
        return {"correct": correct, "n": n, "rate": correct / n, "ci": [lo, hi]}

    reference = {i: GOLD.get(i, PEER_LABEL.get(i)) for i in range(N_ITEMS)}
    everyone = (ME, *PEERS)
    right = {u: sum(_label_of(u, i) == reference[i] for i in range(N_ITEMS)) for u in everyone}
    mine = [(_label_of(user, i), reference[i]) for i in range(N_ITEMS)]
    on_gold = [i for i in range(N_ITEMS) if i in GOLD]
    accuracy = {u: right[u] / N_ITEMS for u in everyone}
    below = sum(a < accuracy[user] for a in accuracy.values())
    level = sum(a == accuracy[user] for a in accuracy.values())
    bins = Counter(min(int(a * 20 + 1e-9), 19) for a in accuracy.values())
    wrong = Counter((g, r) for g, r in mine if g != r)
    of = Counter(r for _, r in mine)
    return {
        "gold": share(sum(_label_of(user, i) == GOLD[i] for i in on_gold), len(on_gold)),
        "reference": share(right[user], N_ITEMS),
        "weeks": [
            {
                "week": "2026-W10",
                "start": "2026-03-02",
                **share(sum(g == r for g, r in mine[:6]), 6),
            },
            {
                "week": "2026-W11",
                "start": "2026-03-09",
                **share(sum(g == r for g, r in mine[6:]), 6),
            },
        ],
        "confusions": sorted(
            (
                {"given": g, "reference": r, "count": c, "of": of[r], "share": c / of[r]}
                for (g, r), c in wrong.items()
            ),
            key=lambda c: (-c["count"], c["given"], c["reference"]),
        ),
        "percentile": 100 * (below + 0.5 * level) / len(everyone),
        "bins": {b: n for b, n in bins.items()},
        "accuracy": accuracy[user],
    }


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return abs(a - b) <= 1e-9
    return bool(a == b)


def test_my_quality_equals_a_direct_computation(
    small: int, demo_app: FastAPI, demo: Demo, db: Any, clients: Clients
) -> None:
    direct = _direct(ME)

    def figures(s: Session) -> dict[str, Any]:
        project = s.get(Project, small)
        assert project is not None
        me = Actor.for_user(_uid(s, ME), ME)
        return quality.my_quality(s, actor=me, project=project)

    got = db(figures)
    assert got["user"] == {"username": ME, "display_name": None, "self": True}
    assert got["labels"] == N_ITEMS
    for key in ("gold", "reference", "weeks"):
        assert _close(got[key], direct[key]), (key, got[key], direct[key])
    assert _close(
        sorted(got["confusions"], key=lambda c: (-c["count"], c["given"], c["reference"])),
        direct["confusions"],
    )
    assert got["audit"] == {"correct": 0, "n": 0, "rate": None, "ci": None, "unsure": 0}
    team = got["team"]
    assert team["annotators"] == 6 and abs(team["percentile"] - direct["percentile"]) <= 1e-9
    assert abs(team["accuracy"] - direct["accuracy"]) <= 1e-12
    assert {b["lo"]: b["count"] for b in team["bins"] if b["count"]} == {
        k / 20: n for k, n in direct["bins"].items()
    }
    assert [b for b in team["bins"] if b["mine"]] == [
        b for b in team["bins"] if abs(b["lo"] - int(direct["accuracy"] * 20) / 20) < 1e-9
    ]

    # the page shows the same numbers, and no one else's name
    client = TestClient(demo_app)
    login(client, ME)
    page = client.get(f"/projects/{small}/quality").text
    gold = direct["gold"]
    assert f"{gold['rate'] * 100:.1f}%" in _text(page, "acc-gold")
    assert f"{gold['correct']} of {gold['n']}" in page
    lo, hi = direct["reference"]["ci"]
    assert f"95% CI {lo * 100:.1f}–{hi * 100:.1f}%" in page
    assert "2026-W10" in page and "2026-W11" in page
    assert f"{direct['percentile']:.0f}%" in page
    assert not any(peer in page for peer in PEERS)
    assert 'id="member-form"' not in page  # annotators see only their own

    # an administrator (or the project's lead, reviewers, mentors) picks a member; an
    # annotator may not
    admin, _ = _client(clients, "admin")
    page = admin.get(f"/projects/{small}/quality?user={ME}").text
    assert "Quality of fbq.me" in page and 'id="member-form"' in page
    assert client.get(f"/projects/{small}/quality?user={PEERS[0]}").status_code == 403


def test_audit_accuracy_counts_closed_runs_first_reviews(demo: Demo, db: Any) -> None:
    def both(s: Session) -> tuple[dict[str, Any], Counter[str]]:
        project = _project(s, demo)
        uid = _uid(s, ANNOTATOR)
        figures = quality.my_quality(s, actor=OPERATOR, project=project, username=ANNOTATOR)
        verdicts: Counter[str] = Counter()
        for run in s.scalars(select(AuditRun).where(AuditRun.project_id == project.id)):
            if run.status != "closed":
                continue
            for unit in s.scalars(select(AuditUnit).where(AuditUnit.run_id == run.id)):
                if unit.annotator_id != uid:
                    continue
                reviews = [
                    r
                    for r in s.scalars(select(AuditReview).where(AuditReview.unit_id == unit.id))
                    if not s.get(AuditAssignment, r.assignment_id).double  # type: ignore[union-attr]
                ]
                if reviews:
                    verdicts[min(reviews, key=lambda r: r.id).verdict] += 1
        return figures["audit"], verdicts

    audit, verdicts = db(both)
    judged = verdicts["correct"] + verdicts["incorrect"]
    assert judged > 0
    assert audit["n"] == judged and audit["correct"] == verdicts["correct"]
    assert audit["unsure"] == verdicts["unsure"]
    assert abs(audit["rate"] - verdicts["correct"] / judged) <= 1e-12
