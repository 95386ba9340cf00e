"""Adjudication in headless Chromium: the adjudicator opens the queue, opens the top case,
picks a label with a number key, writes the rationale (``r``), rules with Ctrl+Enter and
lands on the next case; ``?`` shows the keys and ``n`` skips. Every adjudication page
fits a phone's width (360 px) without scrolling sideways. Screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from labelloop.adjudication.models import Ruling
from labelloop.store import make_engine, make_session_factory, session_scope
from tests.web.conftest import Demo
from tests.web.test_adjudication_pages import open_fresh_case
from tests.web.test_browser import Page, browser, server  # noqa: F401  (fixtures)

WHY = "Money back for a charge the customer disputes is a refund under R4."


def _ruled(url: str, case_id: int) -> Any:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return s.scalar(select(Ruling.value).where(Ruling.case_id == case_id))
    finally:
        engine.dispose()


def _case_id(p: Page) -> int:
    return int(p.page.get_attribute("#case", "data-case") or 0)


def test_adjudicator_rules_with_the_keyboard(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    backend: str,
) -> None:
    for _ in range(3):  # the queue has a next case after the one ruled
        open_fresh_case(demo, "browser test: refund or billing?")
    p = Page(browser, server)
    try:
        p.login("demo.adjudicator")
        p.page.click(f"a.cases-link[href='/projects/{demo.project_id}/cases']")
        p.page.wait_for_selector("#cases")
        p.shot("adjudication-queue", backend)
        p.page.click("#cases tbody tr:first-child td a")
        p.page.wait_for_selector("#rule-form")
        case_id = _case_id(p)
        p.shot("adjudication-case", backend)

        # ? shows the keys, Escape hides them
        p.page.keyboard.press("?")
        assert p.page.is_visible("#key-help")
        p.page.keyboard.press("Escape")
        assert not p.page.is_visible("#key-help")

        # 2 picks the second label, r focuses the rationale
        label = p.page.get_attribute("input[name=label][data-key='2']", "value")
        p.page.keyboard.press("2")
        assert p.page.is_checked("input[name=label][data-key='2']")
        p.page.keyboard.press("r")
        p.page.wait_for_selector("#rationale:focus")
        p.page.keyboard.type(WHY)
        assert "of at least" in p.page.inner_text("#rationale-count")
        p.page.keyboard.press("Control+Enter")
        p.page.wait_for_function(
            "(prev) => { const c = document.getElementById('case'); return c && c.dataset.case !== String(prev); }",
            arg=case_id,
        )
        assert f"Case {case_id} ruled: {label}." in p.page.inner_text("#flash")
        assert _ruled(demo.url, case_id) == label
        landed = _case_id(p)
        assert landed != case_id and p.page.is_visible("#rule-form")

        # n skips to another open case without ruling this one
        p.page.keyboard.press("n")
        p.page.wait_for_function(
            "(prev) => { const c = document.getElementById('case'); return c && c.dataset.case !== String(prev); }",
            arg=landed,
        )
        assert _ruled(demo.url, landed) is None
        # the ruled case shows its ruling
        p.page.goto(f"{server}/cases/{case_id}")
        assert WHY in p.page.inner_text("#ruling")
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_adjudication_pages_fit_a_phone(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    backend: str,
) -> None:
    case_id = open_fresh_case(demo, "a long note " + "x" * 300)
    pid = demo.project_id
    pages = {
        "demo.adjudicator": [
            f"/projects/{pid}/cases",
            f"/projects/{pid}/cases?status=all",
            f"/cases/{case_id}",
            f"/projects/{pid}/rulings",
            f"/projects/{pid}/rulings?notable=1",
            "/inbox",
        ],
        "demo.lead": [
            f"/projects/{pid}/adjudication/settings",
            f"/projects/{pid}/guidelines/draft",
        ],
        "demo.auditor": [f"/projects/{pid}/cases/open"],
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
                p.shot("phone-" + re.sub(r"[^a-z]+", "-", path.lower()).strip("-"), backend)
            assert p.errors == [], p.errors
        finally:
            p.close()
