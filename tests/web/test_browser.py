"""Browser tests: Playwright driving Debian's chromium against a live uvicorn server.

Skipped (with the reason) only when ``/usr/bin/chromium`` is missing outside CI; under
``CI=true`` a missing browser is a failure. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import Demo, make_settings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing (required under CI=true)", pytrace=False)
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests",
        allow_module_level=True,
    )

playwright_sync = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from labelloop.web import create_app

    app = create_app(make_settings(demo.url, tmp_path_factory.mktemp("srv")))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A browser page that records console errors and failed requests."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def login(self, username: str, password: str = "labelloop-demo") -> None:
        self.page.goto(self.base + "/login")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.base + "/")

    def shot(self, name: str, backend: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}-{backend}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


CANVAS_FILLED = """(canvas) => {
  const ctx = canvas.getContext('2d');
  const {width, height} = canvas;
  if (!width || !height) return 0;
  const data = ctx.getImageData(0, 0, width, height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) painted++; }
  return painted;
}"""


def test_lead_dashboard_charts_render(browser: Any, server: str, demo: Demo, backend: str) -> None:
    p = Page(browser, server)
    try:
        p.login("demo.lead")
        p.page.goto(f"{server}/projects/{demo.project_id}")
        p.page.wait_for_function(
            "window.labelloopCharts && Object.keys(window.labelloopCharts).length === 4"
        )
        canvases = p.page.query_selector_all("canvas[data-chart]")
        assert len(canvases) == 4
        for canvas in canvases:
            painted = canvas.evaluate(CANVAS_FILLED)
            assert painted > 500, canvas.get_attribute("data-chart")
            points = p.page.evaluate(
                "(id) => window.labelloopCharts[id].data.datasets.reduce((n, d) => n + d.data.filter(v => v !== null).length, 0)",
                canvas.get_attribute("data-chart"),
            )
            assert points > 0
        assert p.page.locator("#scorecard tbody tr").count() >= 12
        p.shot("lead-overview", backend)
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_auditor_completes_reviews(browser: Any, server: str, demo: Demo, backend: str) -> None:
    p = Page(browser, server)
    try:
        p.login("demo.auditor")
        p.page.goto(f"{server}/audits/runs/{demo.open_run_id}")
        p.page.click("text=Open my review queue")
        p.page.wait_for_selector("#review-panel")
        remaining = int(p.page.inner_text("#remaining"))
        assert remaining >= 2
        assert "Label given" not in p.page.content()  # blind
        p.shot("auditor-queue", backend)
        for n in range(2):
            item = p.page.get_attribute(".review-item", "data-assignment")
            p.page.select_option("select[name=label]", index=1 + n)
            p.page.select_option("select[name=error_category]", index=1)
            p.page.select_option("select[name=severity]", "medium")
            p.page.fill("input[name=rule_ref]", "R4")
            p.page.fill("textarea[name=comment]", f"browser review {n}")
            p.page.click("button:text('Save review')")
            p.page.wait_for_function(
                "(a) => !document.querySelector(`.review-item[data-assignment='${a}']`)", arg=item
            )
            assert int(p.page.inner_text("#remaining")) == remaining - n - 1
        p.shot("auditor-after-reviews", backend)
        assert p.errors == [], p.errors
    finally:
        p.close()


def test_user_without_the_role_gets_403(
    browser: Any, server: str, demo: Demo, backend: str
) -> None:
    p = Page(browser, server)
    try:
        p.login("lucas.martin")
        response = p.page.goto(f"{server}/projects/{demo.project_id}")
        assert response is not None and response.status == 403
        assert p.page.locator("h1").inner_text() == "Not allowed"
        p.shot("annotator-403", backend)
        response = p.page.goto(f"{server}/admin/users")
        assert response is not None and response.status == 403
        # console errors for the 403 document itself are expected; nothing else
        assert all(re.search(r"status of 403", e) for e in p.errors), p.errors
    finally:
        p.close()


def test_api_docs_work_offline(browser: Any, server: str, backend: str) -> None:
    """/docs uses the vendored swagger-ui: every request stays on the server."""
    p = Page(browser, server)
    try:
        outside: list[str] = []
        p.page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(server) else None,
        )
        p.page.goto(f"{server}/docs")
        p.page.wait_for_selector(".swagger-ui .info .title")
        assert "LabelLoop" in p.page.inner_text(".swagger-ui .info .title")
        assert p.page.locator(".opblock").count() >= 10
        assert outside == [] and p.errors == [], (outside, p.errors)
        p.shot("api-docs", backend)
    finally:
        p.close()
