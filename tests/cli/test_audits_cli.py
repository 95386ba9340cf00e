"""`labelloop audit ...` and `labelloop worker` end to end on a committed demo database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labelloop.cli import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def demo_db(fresh_database_url: str, tmp_path: Path) -> str:
    _ok(
        "demo",
        "--items",
        "300",
        "--no-audits",
        "--reports-dir",
        str(tmp_path / "r"),
        "--database-url",
        fresh_database_url,
    )
    return fresh_database_url


def test_policy_run_review_close_report_trend(demo_db: str, tmp_path: Path) -> None:
    db = ("--database-url", demo_db)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "cadence: '0 6 * * MON'\nstrata: [annotator]\nsample_size: 12\nreviewers: [demo.auditor]\n"
        "double_review_fraction: 0\nwindow: last_days\nwindow_days: 120\n",
        encoding="utf-8",
    )
    _ok(
        "audit",
        "policy",
        "create",
        "weekly",
        "--project",
        "support-intents",
        "--file",
        str(policy),
        *db,
    )
    assert "cadence: 0 6 * * MON" in _ok(
        "audit", "policy", "show", "weekly", "--project", "support-intents", *db
    )
    out = _ok("audit", "run", "weekly", "--project", "support-intents", "--now", *db)
    assert "run 1 opened" in out and "sample 12" in out
    queue = json.loads(_ok("audit", "queue", "1", "--reviewer", "demo.auditor", "--json", *db))
    assert len(queue) == 12 and all(e["label"] is None and e["annotator"] is None for e in queue)
    for i, entry in enumerate(queue):
        args = [
            "audit",
            "review",
            str(entry["assignment_id"]),
            "--label",
            "refund" if i % 3 else "billing",
        ]
        args += [
            "--category",
            "guideline misread",
            "--severity",
            "high",
            "--comment",
            "see rule 4",
            *db,
        ]
        _ok(*args)
    # bad input: unknown category, a second review of the same assignment
    bad = runner.invoke(
        app, ["audit", "review", str(queue[0]["assignment_id"]), "--label", "refund", *db]
    )
    assert bad.exit_code == 1 and "already been reviewed" in bad.output
    _ok("audit", "close", "1", *db)
    md = _ok("audit", "report", "1", "--format", "md", *db)
    assert "Population error rate" in md
    out_file = tmp_path / "report.html"
    _ok("audit", "report", "1", "--format", "html", "-o", str(out_file), *db)
    assert out_file.read_text(encoding="utf-8").startswith("<!doctype html>")
    report = json.loads(_ok("audit", "report", "1", "--format", "json", *db))
    assert report["schema"] == "labelloop.audit-report/1" and report["reviews"]["judged"] == 12
    trend = json.loads(
        _ok("audit", "trend", "weekly", "--project", "support-intents", "--json", *db)
    )
    assert [r["run"] for r in trend] == [1]
    assert "1" in _ok("audit", "runs", "--project", "support-intents", *db)
    assert _ok("trail", "verify", *db)


def test_bad_input_is_refused_with_a_message(demo_db: str, tmp_path: Path) -> None:
    db = ("--database-url", demo_db)
    bad = runner.invoke(
        app,
        [
            "audit",
            "policy",
            "create",
            "p",
            "--project",
            "support-intents",
            "--cadence",
            "61 * * * *",
            *db,
        ],
    )
    assert bad.exit_code == 1 and "cadence" in bad.output
    empty = runner.invoke(
        app,
        ["audit", "policy", "create", "p", "--project", "support-intents", "--reviewers", "", *db],
    )
    assert empty.exit_code == 0, empty.output
    # the default pool (auditors and adjudicators) exists in the demo, so make the pool explicitly
    # hold only an annotator-free name that does not exist
    missing = runner.invoke(
        app,
        [
            "audit",
            "policy",
            "create",
            "q",
            "--project",
            "support-intents",
            "--reviewers",
            "ghost",
            *db,
        ],
    )
    assert missing.exit_code == 1 and "ghost" in missing.output
    not_closed = runner.invoke(app, ["audit", "report", "99", *db])
    assert not_closed.exit_code == 1 and "no audit run 99" in not_closed.output
    wrong_format = runner.invoke(app, ["audit", "report", "1", "--format", "pdf", *db])
    assert wrong_format.exit_code == 2


def test_worker_once_with_nothing_due(demo_db: str) -> None:
    assert "nothing due" in _ok("worker", "--once", "--database-url", demo_db)
