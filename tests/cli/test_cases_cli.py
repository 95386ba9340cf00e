"""`labelloop cases detect|list|show|rule|open|settings|digest` and `labelloop guidelines
amendments|accept|reject` on a small demo."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from labelloop.accounts.actor import Actor
from labelloop.adjudication.models import Ruling
from labelloop.cli import app
from labelloop.demo.builder import build_demo
from labelloop.store import make_engine, make_session_factory, session_scope

runner = CliRunner()
KEYS = {"id", "item", "reason", "priority", "status", "opened_at", "due_at", "level"}
WHY = "Money back for a charge the customer disputes is a refund under R4."


def run(url: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--database-url", url])


@pytest.fixture
def url(fresh_database_url: str) -> str:
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            build_demo(s, actor=Actor.local("test"), seed=7, n_items=200)
    finally:
        engine.dispose()
    return fresh_database_url


def _rulings(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return int(s.scalar(select(func.count(Ruling.id))) or 0)
    finally:
        engine.dispose()


def _open_cases(url: str) -> list[dict[str, Any]]:
    r = run(url, "cases", "list", "--project", "support-intents", "--json")
    assert r.exit_code == 0, r.output
    cases: list[dict[str, Any]] = json.loads(r.output)
    return cases


def test_list_show_and_rule(url: str) -> None:
    cases = _open_cases(url)
    assert cases and all(set(c) >= KEYS for c in cases)
    assert {c["status"] for c in cases} == {"open"} and cases[0]["level"] == "adjudicator"
    case = cases[0]["id"]
    shown = run(url, "cases", "show", str(case))
    assert shown.exit_code == 0 and f"case {case}" in shown.output
    before = _rulings(url)
    refused = run(url, "cases", "rule", str(case), "--label", "refund", "--rationale", "  ")
    assert refused.exit_code == 1 and "rationale" in refused.output
    short = run(url, "cases", "rule", str(case), "--label", "refund", "--rationale", "R4")
    assert short.exit_code == 1 and "at least 20 characters" in short.output
    assert _rulings(url) == before
    ok = run(
        url,
        "cases",
        "rule",
        str(case),
        "--label",
        "refund",
        "--rationale",
        WHY,
        "--rule",
        "R4",
        "--amend",
        "Disputed charges are refunds.",
        "--as",
        "demo.adjudicator",
        "--json",
    )
    assert ok.exit_code == 0, ok.output
    ruling = json.loads(ok.output)
    assert (ruling["label"], ruling["rules"], ruling["adjudicator"]) == (
        "refund",
        ["R4"],
        "user:demo.adjudicator",
    )
    again = run(url, "cases", "rule", str(case), "--label", "billing", "--rationale", WHY)
    assert again.exit_code == 1 and "already ruled" in again.output
    assert case not in [c["id"] for c in _open_cases(url)]
    proposed = run(url, "guidelines", "amendments", "--project", "support-intents", "--json")
    assert proposed.exit_code == 0
    mine = [a for a in json.loads(proposed.output) if a["ruling_id"] == ruling["id"]]
    assert [a["kind"] for a in mine] == ["text"]
    accepted = run(url, "guidelines", "accept", str(mine[0]["id"]), "--project", "support-intents")
    assert accepted.exit_code == 0, accepted.output
    draft = run(url, "guidelines", "show", "--project", "support-intents", "--version", "draft")
    assert "Disputed charges are refunds." in draft.output


def test_roles_are_checked_when_acting_as_a_user(url: str) -> None:
    case = _open_cases(url)[0]["id"]
    r = run(
        url,
        "cases",
        "rule",
        str(case),
        "--label",
        "refund",
        "--rationale",
        WHY,
        "--as",
        "lucas.martin",
    )
    assert r.exit_code == 1 and "may not adjudicate" in r.output
    r = run(url, "cases", "list", "--project", "support-intents", "--as", "nobody")
    assert r.exit_code == 1 and "no active user" in r.output


def test_detect_open_settings_and_digest(url: str) -> None:
    again = run(url, "cases", "detect", "--project", "support-intents", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["opened"] == 0
    r = run(
        url,
        "cases",
        "open",
        "--project",
        "support-intents",
        "--item",
        "tkt-00001",
        "--note",
        "is this shipping?",
    )
    assert r.exit_code in (0, 1), r.output  # 1: the item already has an open case
    r = run(url, "cases", "settings", "--project", "support-intents", "--rationale-min", "0")
    assert r.exit_code == 1 and "rationale_min" in r.output
    r = run(
        url,
        "cases",
        "settings",
        "--project",
        "support-intents",
        "--rationale-min",
        "5",
        "--anonymous",
        "--json",
    )
    assert r.exit_code == 0 and json.loads(r.output)["anonymous"] is True
    shown = run(url, "cases", "show", str(_open_cases(url)[0]["id"]))
    assert "(anonymous)" in shown.output
    assert run(url, "cases", "digest", "--project", "support-intents").exit_code == 0
