"""The workbench in headless Chromium: an annotator labels three items with hotkeys,
tries an invalid submission (the page's own check, then the server's 422) with nothing
saved, flags one as uncertain, skips one; spans are selected with the mouse; images
zoom and pan. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from labelloop.accounts.models import User
from labelloop.projects.models import Annotation
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.workbench.models import Skip
from tests.web.conftest import Demo
from tests.web.test_browser import Page, browser, server  # noqa: F401  (fixtures)
from tests.web.test_feedback_pages import read_guideline
from tests.web.test_workbench import (  # noqa: F401  (wb is a fixture)
    SPAN_TEXT,
    TESTER,
    Fixture,
    _ensure_project,
    wb,
)

ANNOTATOR = "lucas.martin"
IMAGES = {"task_type": "single", "labels": ["icon", "photo"]}


@pytest.fixture(scope="module")
def images(wb: Fixture) -> int:  # noqa: F811
    """A project of image items for the tester (the app's own icon, same origin)."""
    engine = make_engine(wb.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            payloads = [{"image": "/static/favicon.svg", "caption": f"image {i}"} for i in range(3)]
            return _ensure_project(s, "wb-images", IMAGES, payloads).id
    finally:
        engine.dispose()


def _query(url: str, stmt: Any) -> Any:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return s.execute(stmt).all()
    finally:
        engine.dispose()


def _annotations(url: str, username: str) -> int:
    (row,) = _query(
        url,
        select(func.count(Annotation.id))
        .join(User, User.id == Annotation.annotator_id)
        .where(User.username == username),
    )
    return int(row[0])


def _item(p: Page) -> int:
    return int(p.page.get_attribute("#workbench", "data-item") or 0)


def _wait_for_next(p: Page, previous: int) -> int:
    p.page.wait_for_function(
        "(prev) => { const w = document.getElementById('workbench'); return w && w.dataset.item !== String(prev); }",
        arg=previous,
    )
    return _item(p)


def test_annotator_labels_flags_and_skips(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    backend: str,
) -> None:
    p = Page(browser, server)
    try:
        p.login(ANNOTATOR)
        p.page.click(f"a[href='/projects/{demo.project_id}/work']")
        p.page.wait_for_selector("#wb-form")
        done_before = int(p.page.inner_text("#done-today"))
        saved_before = _annotations(demo.url, ANNOTATOR)
        p.shot("workbench-item", backend)

        # three items labeled with the label hotkeys and Enter
        item = _item(p)
        for n in range(3):
            p.page.mouse.move(200 + n, 300)  # activity counts toward active time
            p.page.keyboard.press(str(n + 1))
            assert p.page.is_checked(f"input[name=value][data-hotkey='{n + 1}']")
            p.page.keyboard.press("Enter")
            item = _wait_for_next(p, item)
            assert "Saved your label" in p.page.inner_text("#wb-flash")
        assert int(p.page.inner_text("#done-today")) == done_before + 3
        assert _annotations(demo.url, ANNOTATOR) == saved_before + 3
        rows = _query(
            demo.url,
            select(Annotation.source, Annotation.active_seconds)
            .join(User, User.id == Annotation.annotator_id)
            .where(User.username == ANNOTATOR, Annotation.source == "workbench"),
        )
        assert len(rows) >= 3 and all(r[1] is not None and r[1] >= 0 for r in rows)

        # an invalid submission: the page refuses it before sending...
        p.page.keyboard.press("Enter")
        p.page.wait_for_selector("#wb-client-errors:not([hidden])")
        assert "choose a label" in p.page.inner_text("#wb-client-errors")
        assert _item(p) == item
        p.shot("workbench-invalid-client", backend)
        # ...and when the page's check is bypassed, the server answers 422 with the field
        with p.page.expect_navigation() as nav:
            p.page.evaluate(
                """() => { const r = document.querySelector("input[name=value]");
                r.value = "not-a-label"; r.checked = true;
                HTMLFormElement.prototype.submit.call(document.getElementById("wb-form")); }"""
            )
        response = nav.value
        assert response is not None and response.status == 422
        errors = p.page.inner_text("#wb-errors")
        assert "value" in errors and "unknown label 'not-a-label'" in errors
        assert _item(p) == item
        assert _annotations(demo.url, ANNOTATOR) == saved_before + 3  # nothing saved
        p.shot("workbench-invalid-server", backend)

        # flag one as uncertain: F ticks the box and focuses the reason
        p.page.click("body", position={"x": 5, "y": 5})
        p.page.keyboard.press("f")
        assert p.page.is_checked("#wb-uncertain")
        p.page.keyboard.type("could be billing or refund")
        p.page.click("input[name=value][data-hotkey='2']")
        p.page.keyboard.press("Control+Enter")
        flagged = item
        item = _wait_for_next(p, item)
        (row,) = _query(
            demo.url,
            select(Annotation.flags)
            .join(User, User.id == Annotation.annotator_id)
            .where(User.username == ANNOTATOR, Annotation.item_id == flagged),
        )
        assert {
            "code": "uncertain",
            "field": "value",
            "message": "could be billing or refund",
            "source": "annotator",
        } in row[0]

        # the guidelines are one key (or click) away
        p.page.keyboard.press("g")
        assert p.page.get_attribute("#wb-guide", "open") is not None
        assert p.page.is_visible("#wb-guide dt")
        p.shot("workbench-guidelines", backend)
        p.page.keyboard.press("g")

        # skip with a reason
        p.page.keyboard.press("s")
        p.page.wait_for_selector("#wb-skip-reason:focus")
        p.page.keyboard.type("the ticket is in another language")
        p.page.keyboard.press("Enter")
        skipped = item
        _wait_for_next(p, item)
        assert "Skipped item" in p.page.inner_text("#wb-flash")
        (reason,) = _query(demo.url, select(Skip.reason).where(Skip.item_id == skipped))
        assert reason[0] == "the ticket is in another language"
        p.shot("workbench-after", backend)
        assert all(re.search(r"status of 422", e) for e in p.errors), p.errors
    finally:
        p.close()


def test_spans_are_selected_with_the_mouse(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    wb: Fixture,  # noqa: F811
    backend: str,
) -> None:
    p = Page(browser, server)
    try:
        p.login(TESTER)
        p.page.goto(f"{server}/projects/{wb.spans}/work")
        p.page.wait_for_selector("#wb-text")
        assert p.page.inner_text("#wb-text") == SPAN_TEXT

        def drag_select(start: int, end: int) -> None:
            box = p.page.evaluate(
                """([s, e]) => { const n = document.getElementById('wb-text').firstChild;
                const r = document.createRange(); r.setStart(n, s); r.setEnd(n, e);
                const b = r.getBoundingClientRect(); return [b.left, b.right, b.top + b.height / 2]; }""",
                [start, end],
            )
            left, right, middle = box
            p.page.mouse.move(left + 1, middle)
            p.page.mouse.down()
            p.page.mouse.move((left + right) / 2, middle, steps=4)
            p.page.mouse.move(right - 1, middle, steps=4)
            p.page.mouse.up()

        acme = SPAN_TEXT.index("Acme Corp")
        drag_select(acme, acme + len("Acme Corp"))
        p.page.click(".wb-span-label[data-label='ORG']")
        p.page.wait_for_selector(".wb-span q")
        assert p.page.inner_text(".wb-span q") == "Acme Corp"
        drag_select(0, len("Ana Lima"))
        p.page.keyboard.press("2")  # PERSON's key
        assert p.page.locator(".wb-span").count() == 2
        p.page.select_option(".wb-span:nth-child(2) select", "high")
        p.shot("workbench-spans", backend)
        item = _item(p)
        p.page.click("#wb-submit")
        _wait_for_next(p, item)
        (row,) = _query(
            wb.url,
            select(Annotation.value).where(
                Annotation.item_id == item, Annotation.annotator_id == wb.tester
            ),
        )
        assert row[0] == [
            {"start": 0, "end": 8, "label": "PERSON", "text": "Ana Lima"},
            {
                "start": acme,
                "end": acme + 9,
                "label": "ORG",
                "text": "Acme Corp",
                "attributes": {"confidence": "high"},
            },
        ]
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_images_zoom_and_pan(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    images: int,
    backend: str,
) -> None:
    p = Page(browser, server)
    try:
        p.login(TESTER)
        p.page.goto(f"{server}/projects/{images}/work")
        frame = p.page.wait_for_selector("#wb-image", timeout=5000)
        assert frame is not None
        p.page.wait_for_function("document.getElementById('wb-img').complete")
        box = frame.bounding_box()
        assert box is not None
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        p.page.mouse.move(cx, cy)
        p.page.mouse.wheel(0, -300)
        p.page.wait_for_function("document.getElementById('wb-zoom-level').textContent !== '100%'")
        zoomed = int(p.page.inner_text("#wb-zoom-level").rstrip("%"))
        assert zoomed > 100
        before = p.page.get_attribute("#wb-img", "style")
        p.page.mouse.down()
        p.page.mouse.move(cx - 80, cy - 40, steps=5)
        p.page.mouse.up()
        after = p.page.get_attribute("#wb-img", "style")
        assert before != after and "translate(" in (after or "")
        p.page.click("[data-zoom=reset]")
        assert p.page.inner_text("#wb-zoom-level") == "100%"
        p.shot("workbench-image", backend)
        assert p.errors == [], p.errors
    finally:
        p.close()


PHONE = {"width": 360, "height": 800}
OPEN_ALL = """() => { for (const d of document.querySelectorAll('#wb-skip, #wb-guide, .gl-rule'))
  d.open = true; }"""


@pytest.fixture(scope="module")
def wide(wb: Fixture) -> int:  # noqa: F811
    """A project whose item has a long unbroken text, a long link and long context."""
    engine = make_engine(wb.url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            payload = {
                "text": "Refund-request-" * 12 + " please",
                "link": "https://support.example.org/tickets/" + "a1b2c3d4" * 12,
            }
            return _ensure_project(s, "wb-wide", IMAGES, [payload]).id
    finally:
        engine.dispose()


def test_workbench_fits_a_phone(
    browser: Any,  # noqa: F811
    server: str,  # noqa: F811
    demo: Demo,
    wb: Fixture,  # noqa: F811
    images: int,
    wide: int,
    backend: str,
) -> None:
    """At 360 px nothing is wider than the screen, with the skip form and the
    guidelines open too: the demo's item, a long unbroken item, an image, spans."""
    read_guideline(demo, ANNOTATOR)
    pages = {
        ANNOTATOR: [f"/projects/{demo.project_id}/work"],
        TESTER: [f"/projects/{p}/work" for p in (wide, images, wb.spans, wb.single)],
    }
    for user, paths in pages.items():
        p = Page(browser, server)
        try:
            p.login(user)
            p.page.set_viewport_size(PHONE)
            for path in paths:
                r = p.page.goto(server + path)
                assert r is not None and r.status == 200, (user, path)
                p.page.wait_for_selector("#wb-form, #queue-done")
                width = p.page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], (user, path, width)
                p.page.evaluate(OPEN_ALL)
                width = p.page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], (user, path, "opened", width)
                p.shot("phone-workbench-" + path.split("/")[2], backend)
            assert p.errors == [], p.errors
        finally:
            p.close()
