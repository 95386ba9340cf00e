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
        canvases = p.page.query_selector_all("canvas[data-chart]")
        # six with the guideline-version chart (the demo has two), then the feedback and
        # SLA charts that have data (what other tests wrote decides which)
        assert len(canvases) >= 6
        p.page.wait_for_function(
            "(n) => window.labelloopCharts && Object.keys(window.labelloopCharts).length === n",
            arg=len(canvases),
        )
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


def test_lead_sees_the_feedback_loop_and_it_fits_a_phone(
    browser: Any, server: str, demo: Demo, backend: str
) -> None:
    """The feedback and SLA charts of a small project of known figures draw (the effect
    and SLA bars with their interval whiskers), and the overview fits 360 px."""
    from tests.web.test_dashboard_loop import loop_project

    pid = loop_project(demo)
    p = Page(browser, server)
    try:
        p.login("demo.lead")
        p.page.goto(f"{server}/projects/{pid}")
        charts = ["fb-latency", "fb-pareto", "fb-effect", "sla"]
        p.page.wait_for_function(
            "(ids) => window.labelloopCharts && ids.every((id) => window.labelloopCharts[id])",
            arg=charts,
        )
        for chart in charts:
            canvas = p.page.locator(f"canvas[data-chart='{chart}']")
            assert canvas.evaluate(CANVAS_FILLED) > 500, chart
        whiskers = p.page.evaluate(
            "(id) => window.labelloopCharts[id].data.datasets.map((d) => d.whiskers[1][0])",
            "fb-effect",
        )
        assert len(whiskers) == 2 and all(w > 0 for w in whiskers)
        p.shot("lead-feedback-loop", backend)
        p.page.set_viewport_size({"width": 360, "height": 800})
        for path in (f"/projects/{pid}", f"/projects/{demo.project_id}"):
            p.page.goto(server + path)
            width = p.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 362, (path, width)
        p.shot("phone-lead-overview", backend)
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


def test_lead_creates_a_policy_runs_it_and_sees_import_errors(
    browser: Any, server: str, demo: Demo, backend: str
) -> None:
    import uuid

    p = Page(browser, server)
    try:
        p.login("demo.lead")
        p.page.goto(f"{server}/projects/{demo.project_id}")
        p.page.click("text=audit policies")
        p.page.wait_for_selector("#new-policy")
        name = f"browser-{uuid.uuid4().hex[:6]}"
        form = p.page.locator("#new-policy")
        form.locator("input[name=name]").fill(name)
        form.locator("input[name=cadence]").fill("every monday")
        form.locator("input[name=sample_size]").fill("five")
        form.locator("button[type=submit]").click()
        p.page.wait_for_selector("#err-sample_size")
        assert "whole number" in p.page.inner_text("#err-sample_size")
        form.locator("input[name=sample_size]").fill("5")
        form.locator("button[type=submit]").click()
        p.page.wait_for_selector("#err-cadence")
        assert "cron" in p.page.inner_text("#err-cadence")
        p.shot("lead-policy-invalid", backend)
        form.locator("input[name=cadence]").fill("0 6 * * MON")
        form.locator("select[name=window]").select_option("last_days")
        form.locator("input[name=window_days]").fill("3660")
        form.locator("input[name=strata]").fill("annotator")
        form.locator("input[name=sample_size]").fill("5")
        form.locator("input[name=min_per_stratum]").fill("0")
        form.locator("input[name=reviewers]").fill("demo.auditor, demo.adjudicator")
        form.locator("input[name=double_review_fraction]").fill("0")
        form.locator("button[type=submit]").click()
        row = p.page.locator("#policies tr", has_text=name)
        row.wait_for()
        assert "0 6 * * MON" in row.inner_text()
        p.shot("lead-policies", backend)
        row.locator("button:text('Run now')").click()
        p.page.wait_for_url(re.compile(r".*/audits/runs/\d+$"))
        assert name in p.page.locator("h1").inner_text()
        assert "5 / " in p.page.inner_text("dl.facts")
        p.shot("lead-run-now", backend)

        p.page.goto(f"{server}/projects/{demo.project_id}/imports")
        rows = "\n".join(f"brw-{n},lucas.martin,not-an-intent,text {n}" for n in range(55))
        p.page.set_input_files(
            "input[name=file]",
            files=[
                {
                    "name": "broken.csv",
                    "mimeType": "text/csv",
                    "buffer": ("item_id,annotator,label,text\n" + rows + "\n").encode(),
                }
            ],
        )
        p.page.click("#upload button[type=submit]")
        p.page.wait_for_selector("#problems")
        assert p.page.locator("#problems tbody tr").count() == 50
        assert "5 more (55 problems in all)" in p.page.inner_text("#more-problems")
        p.shot("lead-import-errors", backend)

        p.page.goto(f"{server}/projects/{demo.project_id}/exports")
        p.page.select_option("#export select[name=format]", "jsonl")
        with p.page.expect_download() as info:
            p.page.click("#export button[type=submit]")
        download = info.value
        assert re.fullmatch(r"support-intents-\d{8}-\d{6}\.jsonl", download.suggested_filename)
        assert Path(download.path()).read_text(encoding="utf-8").count("\n") >= 300
        p.shot("lead-exports", backend)
        # the console reports the 422 document itself; nothing else
        assert all(re.search(r"status of 422", e) for e in p.errors), p.errors
    finally:
        p.close()
