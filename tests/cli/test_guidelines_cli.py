"""`labelloop guidelines import|publish|show|export|history|diff|recheck` on a fresh
database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select
from typer.testing import CliRunner

from labelloop.accounts.actor import Actor
from labelloop.audits.models import AuditPolicy
from labelloop.cli import app
from labelloop.guidelines import service as guidelines
from labelloop.projects import service as projects
from labelloop.projects.models import Item
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from tests import factories
from tests.guidelines._data import EXAMPLE

runner = CliRunner()
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "examples" / "intent.yaml"


def run(url: str, *args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args), "--database-url", url])


@pytest.fixture
def url(fresh_database_url: str) -> str:
    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            schema = LabelSchema.from_yaml(SCHEMA.read_text(encoding="utf-8"))
            p = projects.create_project(s, actor=Actor.local(), name="intents", schema=schema)
            for n in range(1, 21):
                projects.add_item(
                    s,
                    actor=Actor.local(),
                    project=p,
                    external_id=f"ticket-{n:04d}",
                    payload={"text": f"ticket {n}"},
                )
    finally:
        engine.dispose()
    return fresh_database_url


def test_help_for_every_command() -> None:
    for sub in ("import", "publish", "show", "export", "history", "diff", "recheck"):
        result = runner.invoke(app, ["guidelines", sub, "--help"])
        assert result.exit_code == 0, result.output
        assert "--database-url" in result.stdout and "--project" in result.stdout


def test_import_publish_edit_diff(url: str, tmp_path: Path) -> None:
    r = run(url, "guidelines", "import", EXAMPLE, "--project", "intents")
    assert r.exit_code == 0, r.output
    assert "3 rules, 2 exemplars" in r.stdout
    r = run(url, "guidelines", "publish", "--project", "intents", "--note", "first")
    assert r.exit_code == 0 and "published guideline 1.0" in r.stdout
    exported = tmp_path / "g.yaml"
    r = run(url, "guidelines", "export", "--project", "intents", "--format", "yaml", "-o", exported)
    assert r.exit_code == 0, r.output
    text = exported.read_text(encoding="utf-8").replace("Refund or billing", "Refund, or billing")
    exported.write_text(text, encoding="utf-8")
    assert run(url, "guidelines", "import", exported, "--project", "intents").exit_code == 0
    r = run(url, "guidelines", "publish", "--project", "intents", "--note", "retitle R1")
    assert "published guideline 1.1" in r.stdout
    r = run(url, "guidelines", "diff", "--project", "intents", "1.0", "1.1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["from"], d["to"], d["added"], d["removed"]) == ("1.0", "1.1", [], [])
    assert [(c["id"], c["fields"]) for c in d["changed"]] == [("R1", ["title"])]
    r = run(url, "guidelines", "history", "--project", "intents", "--json")
    assert [v["version"] for v in json.loads(r.stdout)] == ["1.1", "1.0"]
    r = run(url, "guidelines", "show", "--project", "intents", "--version", "1.0", "--json")
    assert json.loads(r.stdout)["rules"][0]["title"] == "Refund or billing"
    r = run(url, "guidelines", "show", "--project", "intents")
    assert r.exit_code == 0 and "Refund, or billing" in r.stdout


def test_bad_files_and_commands_exit_1(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: T\n---\n## R1: A\n## R1: again\n", encoding="utf-8")
    r = run(url, "guidelines", "import", bad, "--project", "intents")
    assert r.exit_code == 1 and "rule id 'R1' is also rules[0]" in r.output
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        "title: T\nrules:\n  - {id: R1, title: A, labels: [nope]}\n", encoding="utf-8"
    )
    r = run(url, "guidelines", "import", missing, "--project", "intents")
    assert r.exit_code == 1 and "rules[0].labels[0]: no label 'nope'" in r.output
    r = run(url, "guidelines", "publish", "--project", "intents", "--note", "x")
    assert r.exit_code == 1 and "no guideline draft" in r.output
    r = run(url, "guidelines", "show", "--project", "intents", "--version", "latest")
    assert r.exit_code == 1 and "not a version number" in r.output


def _two_versions_and_work(url: str) -> None:
    """1.0 and 1.1 (R1 clarified) of the example, and four annotations: refund and
    billing made under 1.0 (to re-check), technical under 1.0 and refund under 1.1
    (not)."""
    assert run(url, "guidelines", "import", EXAMPLE, "--project", "intents").exit_code == 0
    assert run(url, "guidelines", "publish", "--project", "intents", "--note", "v1").exit_code == 0
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = projects.get_project(s, "intents")
            doc = guidelines.draft_document(s, actor=Actor.local(), project=project)
            r1 = doc.rules[0].model_copy(update={"text": doc.rules[0].text + " Even twice."})
            doc = doc.model_copy(update={"rules": (r1, *doc.rules[1:])})
            guidelines.save_draft(s, actor=Actor.local(), project=project, doc=doc)
            guidelines.publish(s, actor=Actor.local(), project=project, note="clarify R1")
            factories.bind(s)
            try:
                for n, label, version in (
                    (1, "refund", "1.0"),
                    (2, "billing", "1.0"),
                    (5, "technical", "1.0"),
                    (6, "refund", "1.1"),
                ):
                    item = s.scalar(select(Item).where(Item.external_id == f"ticket-{n:04d}"))
                    factories.AnnotationFactory(item=item, value=label, guideline_version=version)
            finally:
                factories.bind(None)
    finally:
        engine.dispose()


def _policies(url: str) -> int:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            return int(s.scalar(select(func.count()).select_from(AuditPolicy)) or 0)
    finally:
        engine.dispose()


def test_recheck_lists_and_sends(url: str) -> None:
    _two_versions_and_work(url)
    r = run(url, "guidelines", "recheck", "--project", "intents", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert (data["from"], data["to"], data["total"]) == ("1.0", "1.1", 2)
    assert [(c["id"], c["change"], c["annotations"]) for c in data["rules"]] == [
        ("R1", "changed", 2)
    ]
    assert [a["label"] for a in data["annotations"]] == ["billing", "refund"]  # newest first
    r = run(url, "guidelines", "recheck", "--project", "intents", "--from", "1.0", "--to", "1.1")
    assert r.exit_code == 0, r.output
    assert "2 annotations made before 1.1 to re-check" in r.stdout and "ticket-0002" in r.stdout
    r = run(url, "guidelines", "recheck", "--project", "intents", "--sample", "5")
    assert r.exit_code == 1 and "--sample goes with --send" in r.output
    r = run(url, "guidelines", "recheck", "--project", "intents", "--send")
    assert r.exit_code == 1 and "reviewer pool is empty" in r.output
    assert _policies(url) == 0  # nothing of the refused send was kept
    assert run(url, "user", "create", "ana", "--no-login").exit_code == 0
    r = run(url, "user", "grant", "ana", "--project", "intents", "--role", "auditor")
    assert r.exit_code == 0, r.output
    args = ("guidelines", "recheck", "--project", "intents", "--send", "--sample", "1")
    r = run(url, *args, "--json")
    assert r.exit_code == 0, r.output
    sent = json.loads(r.stdout)["sent"]
    assert (sent["created"], sent["population"], sent["sample"]) == (True, 2, 1)
    assert sent["policy"] == "Re-check 1.0 → 1.1"
    r = run(url, *args)
    assert r.exit_code == 0 and f"already sent as audit run {sent['run']}" in r.stdout
    r = run(url, "audit", "queue", str(sent["run"]), "--reviewer", "ana", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1, r.output
    r = run(url, "guidelines", "recheck", "--project", "intents", "--rule", "R9")
    assert r.exit_code == 1 and "rule R9 is in neither version 1.0 nor 1.1" in r.output
