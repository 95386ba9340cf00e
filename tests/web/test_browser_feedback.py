"""Feedback in headless Chromium: the lead reviews drafts on the notes page, sends two
with **Send selected** (one is refused for its missing rule reference, fixed on the draft
page and sent from there); the annotator sees the banner in the workbench, opens the
note, is refused a disagreement without a reason, agrees, and opens My quality (its
chart drawn). Every feedback page fits a phone's width (360 px). Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from labelloop.feedback import lifecycle
from labelloop.store import make_engine, make_session_factory, session_scope
from tests.web.conftest import OPERATOR, ROLE_USERS, Demo
from tests.web.test_browser import CANVAS_FILLED, Page, browser, server  # noqa: F401  (fixtures)
from tests.web.test_feedback_pages import read_guideline, write_draft

ANNOTATOR = ROLE_USERS["annotator"]


def _status(url: str, note_id: int) -> str:
    from labelloop.feedback.models import FeedbackNote

    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            note = s.get(FeedbackNote, note_id)
            assert note is not None
            return note.status
    finally:
        engine.dispose()


def _strip_rules(url: str, note_id: int) -> None:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            lifecycle.edit(s, actor=OPERATOR, note_id=note_id, changes={"rule_refs": []})
    finally:
        engine.dispose()


def _banner_count(p: Page) -> int:
    if not p.page.is_visible("#wb-notes"):
        return 0
    match = re.match(r"(\d+) new note", p.page.inner_text("#wb-notes-link"))
    assert match
    return int(match.group(1))


def test_lead_sends_and_annotator_acknowledges(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    backend: str,
) -> None:
    pid = demo.project_id
    ready = write_draft(demo, template="attention_slip", rules=())
    lacking = write_draft(demo)
    _strip_rules(demo.url, lacking)

    # the lead: overview -> notes page -> tick two drafts -> Send selected
    p = Page(browser, server)
    try:
        p.login("demo.lead")
        p.page.goto(f"{server}/projects/{pid}")
        p.page.click("#feedback-link")
        p.page.wait_for_selector("#send-form")
        assert p.page.is_visible(".fb-select-all")  # the script shows "select all"
        for note_id in (ready, lacking):
            box = f"input[name=ids][value='{note_id}']"
            p.page.focus(box)
            p.page.keyboard.press("Space")
            assert p.page.is_checked(box)
        p.shot("feedback-drafts", backend)
        p.page.click("#send-selected")
        p.page.wait_for_selector(f"#refused-{lacking}")
        assert "Sent 1 note" in p.page.inner_text("#notice")
        assert "rule refs" in p.page.inner_text(f"#refused-{lacking}")
        assert _status(demo.url, ready) == "sent" and _status(demo.url, lacking) == "draft"
        p.shot("feedback-refused", backend)

        # the draft page: add the rule with the keyboard, Save and send
        p.page.click(f"#edit-{lacking}")
        p.page.wait_for_selector("#draft-form")
        p.page.fill("#f-rule_refs", "R4")
        p.page.click("#draft-send")
        p.page.wait_for_selector("#flash")
        assert f"Note {lacking} sent." in p.page.inner_text("#flash")
        assert _status(demo.url, lacking) == "sent"
        assert all(re.search(r"status of 422", e) for e in p.errors), p.errors  # the refusal
    finally:
        p.close()

    # the annotator: the banner in the workbench, the note, agree, My quality
    read_guideline(demo, ANNOTATOR)
    p = Page(browser, server)
    try:
        p.login(ANNOTATOR)
        p.page.goto(f"{server}/projects/{pid}/work")
        p.page.wait_for_selector("#wb-notes")
        before = _banner_count(p)
        assert before >= 2
        p.shot("feedback-workbench-banner", backend)
        p.page.click("#wb-notes-link")
        p.page.wait_for_selector("#mine")
        p.page.click(f"#mine-{lacking} a")
        p.page.wait_for_selector("#ack-form")
        assert "R4" in p.page.inner_text("#note-rules")
        assert p.page.locator(".fb-item").count() == 2
        p.shot("feedback-note", backend)

        # disagreeing needs a reason: the server says so, nothing is written
        p.page.click("#disagree")
        p.page.wait_for_selector("#err-reason")
        assert "reason" in p.page.inner_text("#err-reason")
        assert _status(demo.url, lacking) == "sent"
        assert p.page.evaluate("document.activeElement.id") == "reason"  # focus on the field
        p.page.click("#agree")
        p.page.wait_for_selector("#response")
        assert "agreed" in p.page.inner_text("#flash")
        assert _status(demo.url, lacking) == "acknowledged"

        p.page.goto(f"{server}/projects/{pid}/work")
        assert _banner_count(p) == before - 1

        # My quality, from the notes page
        p.page.goto(f"{server}/projects/{pid}/feedback")
        p.page.click("#quality-link")
        p.page.wait_for_selector("#accuracy")
        assert "%" in p.page.inner_text("#acc-reference .fb-rate")
        assert p.page.locator("#histogram li.mine").count() == 1
        # poll from here: wait_for_function evaluates a string in the page, which the
        # app's Content-Security-Policy (no 'unsafe-eval') forbids
        deadline = time.monotonic() + 10
        while not p.page.evaluate(
            "!!(window.labelloopCharts && window.labelloopCharts['my-weekly-accuracy'])"
        ):
            assert time.monotonic() < deadline, "the weekly accuracy chart was not drawn"
            time.sleep(0.05)
        canvas = p.page.query_selector("canvas[data-chart='my-weekly-accuracy']")
        assert canvas is not None and canvas.evaluate(CANVAS_FILLED) > 100
        p.shot("feedback-my-quality", backend)
        assert all(re.search(r"status of 422", e) for e in p.errors), p.errors  # the refusal
    finally:
        p.close()


def test_feedback_pages_fit_a_phone(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    backend: str,
) -> None:
    pid = demo.project_id
    sent = write_draft(demo, send=True)
    draft = write_draft(demo)
    read_guideline(demo, ANNOTATOR)
    pages = {
        "demo.lead": [
            f"/projects/{pid}/feedback",
            f"/projects/{pid}/feedback/drafts/{draft}",
            f"/feedback/{sent}",
            f"/projects/{pid}/quality?user={ANNOTATOR}",
        ],
        ANNOTATOR: [
            f"/projects/{pid}/feedback",
            f"/feedback/{sent}",
            f"/projects/{pid}/quality",
        ],
    }
    for user, paths in pages.items():
        p = Page(browser, server)
        try:
            p.login(user)
            p.page.set_viewport_size({"width": 360, "height": 800})
            for path in paths:
                r = p.page.goto(server + path)
                assert r is not None and r.status == 200, (user, path)
                width = p.page.evaluate("document.documentElement.scrollWidth")
                assert width <= 362, (user, path, width)
                name = re.sub(r"[^a-z]+", "-", path.lower()).strip("-")
                p.shot(f"phone-{user.split('.')[0]}-{name}", backend)
            if user == ANNOTATOR:  # the banner fits too (the workbench is not ours here)
                p.page.goto(f"{server}/projects/{pid}/work")
                box = p.page.locator("#wb-notes").bounding_box()
                assert box is not None and box["x"] + box["width"] <= 362, box
            assert p.errors == [], p.errors
        finally:
            p.close()
