"""`labelloop project create|list|show|schema` against a fresh database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from labelloop.cli import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def run(url: str, *args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args), "--database-url", url])


@pytest.fixture
def url(fresh_database_url: str) -> str:
    result = run(
        fresh_database_url,
        "project",
        "create",
        "intents",
        "--schema",
        EXAMPLES / "intent.yaml",
        "--description",
        "support tickets",
    )
    assert result.exit_code == 0, result.output
    assert "created project intents" in result.stdout
    return fresh_database_url


def test_help_for_every_command() -> None:
    for args in (
        ["project"],
        ["project", "create"],
        ["project", "list"],
        ["project", "show"],
        ["project", "schema"],
    ):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "--database-url" in result.stdout or args == ["project"]


def test_list_and_show_json(url: str) -> None:
    result = run(url, "project", "list", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "intents" and row["task_type"] == "single" and row["schema_version"] == 1
    assert row["counts"] == {
        "items": 0,
        "annotations": 0,
        "annotators": 0,
        "gold": 0,
        "predictions": 0,
        "flagged": 0,
    }

    result = run(url, "project", "show", "intents", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["description"] == "support tickets"
    assert shown["schema"]["labels"][0]["name"] == "billing"
    by_id = run(url, "project", "show", str(shown["id"]), "--json")
    assert json.loads(by_id.stdout)["name"] == "intents"


def test_list_and_show_tables(url: str) -> None:
    result = run(url, "project", "list")
    assert result.exit_code == 0, result.output
    assert "intents" in result.stdout
    result = run(url, "project", "show", "intents")
    assert result.exit_code == 0, result.output
    assert "schema version 1" in result.stdout and "task_type: single" in result.stdout


def test_schema_print_and_edit(url: str, tmp_path: Path) -> None:
    result = run(url, "project", "schema", "intents")
    assert result.exit_code == 0, result.output
    printed = result.stdout
    assert printed.startswith("task_type: single")
    # edit: the printed YAML plus a label, read back from a file
    edited = tmp_path / "edited.yaml"
    edited.write_text(printed.replace("labels:\n", "labels:\n- complaint\n", 1), encoding="utf-8")
    result = run(url, "project", "schema", "intents", "--edit", edited)
    assert result.exit_code == 0, result.output
    assert "updated to version 2" in result.stdout
    again = run(url, "project", "schema", "intents", "--edit", edited)
    assert "unchanged" in again.stdout
    shown = json.loads(run(url, "project", "show", "intents", "--json").stdout)
    assert shown["schema_version"] == 2 and shown["schema"]["labels"][0] == "complaint"
    verify = run(url, "trail", "verify")
    assert verify.exit_code == 0, verify.output


def test_bad_schema_file_is_refused_with_path(url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "task_type: single\nlabels: [a, a]\nrules: [{when: {label: b}, flag: x}]\n",
        encoding="utf-8",
    )
    result = run(url, "project", "create", "other", "--schema", bad)
    assert result.exit_code == 1
    assert f"{bad}: invalid label schema (2 problems)" in result.stderr
    assert "labels[1].name: duplicate label 'a'" in result.stderr
    assert "rules[0].when.label: unknown label 'b'" in result.stderr
    result = run(url, "project", "schema", "intents", "--edit", bad)
    assert result.exit_code == 1 and "labels[1].name" in result.stderr
    # nothing was written
    assert [p["name"] for p in json.loads(run(url, "project", "list", "--json").stdout)] == [
        "intents"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["project", "show", "intens"], "did you mean 'intents'", id="typo"),
        pytest.param(["project", "show", "999"], "no project with id 999", id="id"),
        pytest.param(
            ["project", "create", "intents", "--schema", str(EXAMPLES / "intent.yaml")],
            "already exists",
            id="dup",
        ),
        pytest.param(
            ["project", "create", "x", "--schema", "missing.yaml"],
            "missing.yaml: no such file",
            id="no-file",
        ),
        pytest.param(
            ["project", "create", "2024", "--schema", str(EXAMPLES / "intent.yaml")],
            "all digits",
            id="digits",
        ),
    ],
)
def test_errors_exit_1_on_stderr(url: str, args: list[str], message: str) -> None:
    result = run(url, *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_not_utf8_schema(url: str, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("task_type: single\nlabels: [café]\n".encode("latin-1"))
    result = run(url, "project", "create", "x", "--schema", path)
    assert result.exit_code == 1 and "not UTF-8" in result.stderr


def test_usage_errors_exit_2(fresh_database_url: str) -> None:
    result = run(fresh_database_url, "project", "create", "x")  # --schema missing
    assert result.exit_code == 2
    result = run(fresh_database_url, "project", "list", "--bogus")
    assert result.exit_code == 2


def test_refuses_schema_that_breaks_stored_annotations(url: str, tmp_path: Path) -> None:
    from labelloop.accounts.actor import Actor
    from labelloop.projects import service
    from labelloop.store import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        project = service.get_project(session, "intents")
        item = service.add_item(
            session,
            actor=Actor.local("test"),
            project=project,
            external_id="t1",
            payload={"text": "refund me"},
        )
        from labelloop.accounts.service import create_user

        user = create_user(session, actor=Actor.local("test"), username="ann")
        service.submit_annotation(
            session,
            actor=Actor.local("test"),
            project=project,
            item_id=item.id,
            annotator_id=user.id,
            value="refund",
            attributes={"urgency": "high"},
        )
    engine.dispose()
    narrower = tmp_path / "narrow.yaml"
    narrower.write_text("task_type: single\nlabels: [billing, other]\n", encoding="utf-8")
    result = run(url, "project", "schema", "intents", "--edit", narrower)
    assert result.exit_code == 1
    assert (
        "would make 1 stored record(s)" in result.stderr
        and "unknown label 'refund'" in result.stderr
    )
    result = run(url, "project", "schema", "intents", "--edit", narrower, "--force")
    assert result.exit_code == 0, result.output
    assert run(url, "trail", "verify").exit_code == 0
