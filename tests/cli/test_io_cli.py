"""`labelloop import` and `labelloop export` against a fresh database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import labelloop.models  # noqa: F401  (registers every table)
from labelloop import trail
from labelloop.cli import app
from labelloop.store import Base, make_engine
from tests.projects.test_import_fixtures import expect_label_studio, expect_long

runner = CliRunner()


def run(url: str, *args: str | Path) -> Result:
    return runner.invoke(app, [*map(str, args), "--database-url", url])


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[tuple[str, Engine]]:
    """The URL and an engine for looking at what the commands committed."""
    engine = make_engine(fresh_database_url)
    yield fresh_database_url, engine
    engine.dispose()


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table, in a transaction closed again so the CLI can write."""
    with Session(engine) as session:
        counts = {
            t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }
        session.rollback()
    return counts


def test_help() -> None:
    for cmd in ("import", "export"):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0, result.output
        assert "--database-url" in result.output
    assert "--item-col" in runner.invoke(app, ["import", "--help"]).output


def test_import_create_prints_schema_then_reimport_changes_nothing(
    db: tuple[str, Engine], shared_fixtures: Path
) -> None:
    url, engine = db
    path = shared_fixtures / "label_studio" / "three_tasks_two_gts.json"
    result = run(url, "import", path, "--project", "cars", "--create")
    assert result.exit_code == 0, result.output
    assert "created project cars with this inferred label schema" in result.stdout
    assert "task_type: spans" in result.stdout
    assert "labelloop project schema cars --edit FILE" in result.stdout
    before = row_counts(engine)
    expected = expect_label_studio(path)
    assert (
        before["items"],
        before["annotations"],
        before["gold_labels"],
        before["predictions"],
    ) == (
        expected.items,
        expected.annotations,
        expected.gold,
        expected.predictions,
    )
    again = run(url, "import", path, "--project", "cars")
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.stdout
    assert row_counts(engine) == {**before, "events": before["events"] + 1}
    assert run(url, "trail", "verify").exit_code == 0


def test_crowdsourcing_tsv_with_column_flags(db: tuple[str, Engine], shared_fixtures: Path) -> None:
    url, _engine = db
    path = shared_fixtures / "crowdsourcing" / "snow2008_wsd.standardized.tsv"
    result = run(
        url, "import", path, "-p", "wsd", "--create", "--json", "--format", "csv",
        "--item-col", "orig_id", "--annotator-col", "!amt_worker_ids", "--label-col", "response",
        "--annotation-id-col", "", "--task-type", "single",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    expected = expect_long(path, "orig_id", "!amt_worker_ids", "response", "gold", None)
    assert (
        summary["items_created"],
        summary["annotations_created"],
        summary["annotators"],
        summary["gold"],
    ) == (
        expected.items,
        expected.annotations,
        expected.annotators,
        expected.gold,
    )
    assert "task_type: single" in summary["schema"]


def test_headerless_labels_then_gold_file(db: tuple[str, Engine], shared_fixtures: Path) -> None:
    url, engine = db
    labels = shared_fixtures / "crowdsourcing" / "AdultContent_labels.txt"
    gold = shared_fixtures / "crowdsourcing" / "AdultContent_gold.txt"
    first = run(
        url, "import", labels, "-p", "adult", "--create", "--format", "csv",
        "--fieldnames", "worker,object,label", "--item-col", "object", "--annotator-col", "worker",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    second = run(
        url, "import", gold, "-p", "adult", "--format", "csv", "--fieldnames", "object,gold",
        "--item-col", "object", "--annotator-col", "", "--label-col", "",
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    counts = row_counts(engine)
    assert (counts["items"], counts["annotations"], counts["gold_labels"]) == (5, 25, 2)


def test_refused_import_lists_problems_exits_1_and_writes_nothing(
    db: tuple[str, Engine], shared_fixtures: Path, tmp_path: Path
) -> None:
    url, engine = db
    ok = run(
        url,
        "import",
        shared_fixtures / "label_studio" / "humor_dataset_2_annotations.json",
        "-p",
        "humor",
        "--create",
    )
    assert ok.exit_code == 0, ok.output
    before = row_counts(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "item_id,annotator,label\n" + "".join(f"x{i},a,nope{i}\n" for i in range(60)),
        encoding="utf-8",
    )
    result = run(url, "import", bad, "-p", "humor")
    assert result.exit_code == 1
    assert "import refused, 60 problems found; nothing was written" in result.stderr
    assert f"{bad}, line 2, record 0, field value: unknown label 'nope0'" in result.stderr
    assert "... and 10 more problems" in result.stderr
    assert result.stderr.count("unknown label") == 50
    assert row_counts(engine) == before
    with Session(engine) as session:
        assert trail.service.verify(session).ok


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "-p", "x"], "missing.csv: no such file"),
        (["{fixture}", "-p", "nope"], "no project named 'nope'"),
    ],
)
def test_import_errors(
    db: tuple[str, Engine], shared_fixtures: Path, args: list[str], message: str
) -> None:
    url, _ = db
    fixture = str(shared_fixtures / "label_studio" / "humor_dataset_2_annotations.json")
    result = run(url, "import", *[a.replace("{fixture}", fixture) for a in args])
    assert result.exit_code == 1, result.output
    assert message in result.stderr


def test_bad_format_is_a_usage_error(db: tuple[str, Engine], tmp_path: Path) -> None:
    url, _ = db
    result = run(url, "import", tmp_path / "x.csv", "-p", "x", "--format", "excel")
    assert result.exit_code == 2


def test_dry_run_writes_nothing(db: tuple[str, Engine], shared_fixtures: Path) -> None:
    url, engine = db
    before = row_counts(engine)
    path = shared_fixtures / "label_studio" / "tasks_annotations_predictions.json"
    result = run(url, "import", path, "-p", "dry", "--create", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing written" in result.stdout
    assert row_counts(engine) == before


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "label-studio"])
def test_export_writes_the_file(
    db: tuple[str, Engine], shared_fixtures: Path, tmp_path: Path, fmt: str
) -> None:
    url, _ = db
    path = shared_fixtures / "label_studio" / "tasks_annotations_predictions.json"
    assert run(url, "import", path, "-p", "tasks", "--create").exit_code == 0
    out = tmp_path / f"export.{fmt}"
    result = run(url, "export", "--project", "tasks", "--format", fmt, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 0
    assert "exported tasks" in result.stdout
    again = run(
        url,
        "import",
        out,
        "-p",
        "tasks-copy",
        "--create",
        "--json",
        *(["--format", fmt] if fmt != "label-studio" else []),
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["annotations_created"] == expect_label_studio(path).annotations


def test_csv_export_is_safe_for_spreadsheets_and_raw_on_request(
    db: tuple[str, Engine], tmp_path: Path
) -> None:
    """Text starting with = + - @ tab or CR gets a leading ' in CSV (numbers do not);
    --raw writes it as stored; the escaped file re-imports to the same labels."""
    url, _ = db
    rows = [
        {"item_id": "=1+1", "annotator": "=alice", "label": "=SUM(A1:A2)", "text": "\t=cmd",
         "segment_lang": "en"},
        {"item_id": "+i2", "annotator": "+bob", "label": "+cmd", "text": "\r=cmd",
         "segment_lang": "en"},
        {"item_id": "-i3", "annotator": "-carol", "label": "-neg", "text": "-5",
         "segment_lang": "en"},
        {"item_id": "@i4", "annotator": "@dave", "label": "@at", "text": "x",
         "segment_lang": "-x"},
    ]  # fmt: skip
    source = tmp_path / "hostile.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run(url, "import", source, "-p", "hostile", "--create").exit_code == 0

    def cells(path: Path) -> list[list[str]]:
        with path.open(encoding="utf-8", newline="") as fh:
            table = list(csv.DictReader(fh))
        return [
            [r["item_id"], r["annotator"], r["label"], r["text"], r["segment_lang"]] for r in table
        ]

    escaped, raw = tmp_path / "escaped.csv", tmp_path / "raw.csv"
    result = run(url, "export", "-p", "hostile", "-o", escaped, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["raw"] is False
    assert cells(escaped) == [
        ["'=1+1", "'=alice", "'=SUM(A1:A2)", "'\t=cmd", "en"],
        ["'+i2", "'+bob", "'+cmd", "'\r=cmd", "en"],
        ["'-i3", "'-carol", "'-neg", "-5", "en"],  # a plain number stays a number
        ["'@i4", "'@dave", "'@at", "x", "'-x"],
    ]
    result = run(url, "export", "-p", "hostile", "-o", raw, "--raw", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert cells(raw) == [
        [r["item_id"], r["annotator"], r["label"], r["text"], r["segment_lang"]] for r in rows
    ]
    again = run(url, "import", escaped, "-p", "hostile-copy", "--create", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["annotations_created"] == len(rows)
    copy = tmp_path / "copy.csv"
    assert run(url, "export", "-p", "hostile-copy", "-o", copy, "--raw").exit_code == 0
    assert cells(copy) == cells(raw)


def test_export_help_explains_the_escape() -> None:
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--raw" in result.output and "formula" in result.output
