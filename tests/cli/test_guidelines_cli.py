"""`labelloop guidelines import|publish|show|export|history|diff` on a fresh database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from labelloop.accounts.actor import Actor
from labelloop.cli import app
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
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
    for sub in ("import", "publish", "show", "export", "history", "diff"):
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
