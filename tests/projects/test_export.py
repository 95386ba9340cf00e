"""Export service: long form and Label Studio JSON, round trips through the importer."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.errors import ConfigurationError
from labelloop.formats import AnnotationRecord, read
from labelloop.projects.exporter import export_project
from labelloop.projects.importer import import_file
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.projects.service import create_project, get_project
from labelloop.trail.models import Event
from tests.projects.test_import import ROWS, SCHEMA, row_counts, write

ACTOR = Actor.local("test")


def annotations(session: Session, project: str) -> set[tuple[Any, ...]]:
    pid = get_project(session, project).id
    rows = session.execute(
        select(
            Item.external_id,
            User.username,
            Annotation.value,
            Annotation.attributes,
            Annotation.started_at,
            Annotation.submitted_at,
            Annotation.active_seconds,
        )
        .join(Item, Item.id == Annotation.item_id)
        .join(User, User.id == Annotation.annotator_id)
        .where(Annotation.project_id == pid)
    )
    return {(r[0], r[1], _freeze(r[2]), _freeze(r[3]), r[4], r[5], r[6]) for r in rows}


def gold(session: Session, project: str) -> set[tuple[Any, ...]]:
    pid = get_project(session, project).id
    rows = session.execute(
        select(Item.external_id, GoldLabel.value)
        .join(Item, Item.id == GoldLabel.item_id)
        .where(GoldLabel.project_id == pid)
    )
    return {(r[0], _freeze(r[1])) for r in rows}


def predictions(session: Session, project: str) -> set[tuple[Any, ...]]:
    pid = get_project(session, project).id
    rows = session.execute(
        select(
            Item.external_id,
            Prediction.model_name,
            Prediction.model_version,
            Prediction.value,
            Prediction.score,
        )
        .join(Item, Item.id == Prediction.item_id)
        .where(Prediction.project_id == pid)
    )
    return {(r[0], r[1], r[2], _freeze(r[3]), r[4]) for r in rows}


def items(session: Session, project: str) -> set[tuple[Any, ...]]:
    pid = get_project(session, project).id
    rows = session.execute(
        select(Item.external_id, Item.payload, Item.segments).where(Item.project_id == pid)
    )
    return {(r[0], _freeze(r[1]), _freeze(r[2])) for r in rows}


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@pytest.mark.parametrize(
    "name",
    [
        "three_tasks_two_gts.json",
        "tasks_annotations_predictions.json",
        "project-14-at-2025-06-25-13-18-72190ffe.json",
        "humor_dataset_2_annotations.json",
        "previous_export.json",
    ],
)
def test_label_studio_round_trip_gives_the_same_annotations(
    session: Session, shared_fixtures: Path, tmp_path: Path, name: str
) -> None:
    import_file(
        session,
        actor=ACTOR,
        path=shared_fixtures / "label_studio" / name,
        project="orig",
        create=True,
    )
    out = tmp_path / "export.json"
    summary = export_project(session, actor=ACTOR, project="orig", format="label-studio", path=out)
    assert summary.rows == len(items(session, "orig"))
    import_file(session, actor=ACTOR, path=out, project="copy", create=True)
    assert annotations(session, "copy") == annotations(session, "orig")
    assert gold(session, "copy") == gold(session, "orig")
    assert predictions(session, "copy") == predictions(session, "orig")
    assert items(session, "copy") == items(session, "orig")
    orig, copy = (
        get_project(session, "orig").label_schema,
        get_project(session, "copy").label_schema,
    )
    assert copy["task_type"] == orig["task_type"]
    assert sorted(map(str, copy.get("labels", []))) == sorted(map(str, orig.get("labels", [])))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_long_form_round_trip(session: Session, tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip(
            "pyarrow.parquet", reason="pyarrow does not import here", exc_type=ImportError
        )
    schema = LabelSchema.from_dict(SCHEMA)
    create_project(session, actor=ACTOR, name="orig", schema=schema)
    rows = [*ROWS, "t3,,,,,,fr,no labels yet,refund"]  # an item with gold and no annotation
    import_file(session, actor=ACTOR, path=write(tmp_path / "in.csv", rows), project="orig")
    out = tmp_path / f"export.{fmt}"
    summary = export_project(session, actor=ACTOR, project="orig", format=fmt, path=out)
    assert (summary.items, summary.annotations, summary.gold, summary.rows) == (3, 4, 2, 5)
    create_project(session, actor=ACTOR, name="copy", schema=schema)
    again = import_file(session, actor=ACTOR, path=out, project="copy")
    assert again.annotations_created == 4
    assert annotations(session, "copy") == annotations(session, "orig")
    assert gold(session, "copy") == gold(session, "orig")
    assert items(session, "copy") == items(session, "orig")
    flags = session.scalars(select(Annotation.flags).where(Annotation.active_seconds == 1)).all()
    assert all(f and f[0]["code"] == "too_fast" for f in flags) and len(flags) == 2


def test_export_is_recorded_in_the_trail_and_changes_nothing_else(
    session: Session, tmp_path: Path
) -> None:
    create_project(session, actor=ACTOR, name="orig", schema=LabelSchema.from_dict(SCHEMA))
    import_file(session, actor=ACTOR, path=write(tmp_path / "in.csv", ROWS), project="orig")
    before = row_counts(session)
    export_project(session, actor=ACTOR, project="orig", format="csv", path=tmp_path / "out.csv")
    assert row_counts(session) == {**before, "events": before["events"] + 1}
    event = session.scalars(select(Event).order_by(Event.seq.desc()).limit(1)).one()
    assert (event.action, event.actor, event.entity_type) == ("export.file", ACTOR.name, "project")
    assert event.after["format"] == "csv" and event.after["annotations"] == 4
    assert trail.service.verify(session).ok


def test_export_refuses_unknown_format_and_missing_directory(
    session: Session, tmp_path: Path
) -> None:
    project: Project = create_project(
        session, actor=ACTOR, name="orig", schema=LabelSchema.from_dict(SCHEMA)
    )
    with pytest.raises(ConfigurationError, match="unknown export format"):
        export_project(session, actor=ACTOR, project=project, format="xml", path=tmp_path / "x")
    with pytest.raises(ConfigurationError, match="does not exist"):
        export_project(
            session, actor=ACTOR, project=project, format="csv", path=tmp_path / "no" / "x.csv"
        )


# -- spreadsheet formulas in CSV ------------------------------------------------------------
#: One item per formula trigger (= + - @ tab CR), in every text column the export writes,
#: plus text that must stay as it is: plain numbers and a typed quote.
HOSTILE = [
    {"item_id": "=1+1", "annotator": "=alice", "label": "=SUM(A1:A2)",
     "text": '=HYPERLINK("http://evil.example","x")', "segment_source": "+src",
     "tags": "@tag|plain", "gold": "=SUM(A1:A2)", "payload": {"url": "=x"}},
    {"item_id": "+i2", "annotator": "+bob", "label": "+cmd", "text": "\t=1+1",
     "segment_source": "-seg", "tags": "-t"},
    {"item_id": "-i3", "annotator": "-carol", "label": "-neg", "text": "\r=1+1",
     "segment_source": "@s", "gold": "-neg"},
    {"item_id": "@i4", "annotator": "@dave", "label": "@at", "text": "@SUM(1)"},
    {"item_id": "i5", "annotator": "erin", "label": "'=typed", "text": "-5",
     "segment_source": "-1.5"},
    {"item_id": "i6", "annotator": "frank", "label": "plain", "text": "'-1"},
]  # fmt: skip
HOSTILE_SCHEMA = {
    "task_type": "single",
    "labels": ["=SUM(A1:A2)", "+cmd", "-neg", "@at", "'=typed", "plain"],
}
#: The text columns of the long form.
TEXT_CELLS = ("item_id", "annotator", "label", "gold", "text", "segment_source", "tags")
#: ... and what the default CSV export holds in them for HOSTILE.
ESCAPED = [
    ("'=1+1", "'=alice", "'=SUM(A1:A2)", "'=SUM(A1:A2)", '\'=HYPERLINK("http://evil.example","x")',
     "'+src", "'@tag|plain"),
    ("'+i2", "'+bob", "'+cmd", "", "'\t=1+1", "'-seg", "'-t"),
    ("'-i3", "'-carol", "'-neg", "'-neg", "'\r=1+1", "'@s", ""),
    ("'@i4", "'@dave", "'@at", "", "'@SUM(1)", "", ""),
    ("i5", "erin", "''=typed", "", "-5", "-1.5", ""),  # plain numbers stay numbers
    ("i6", "frank", "plain", "", "'-1", "", ""),  # a typed quote before a number stays
]  # fmt: skip


def _hostile_project(session: Session, tmp_path: Path, name: str = "hostile") -> None:
    path = tmp_path / f"{name}.jsonl"  # JSONL: the values reach the database as typed
    path.write_text("".join(json.dumps(r) + "\n" for r in HOSTILE), encoding="utf-8")
    create_project(session, actor=ACTOR, name=name, schema=LabelSchema.from_dict(HOSTILE_SCHEMA))
    assert import_file(session, actor=ACTOR, path=path, project=name).annotations_created == 6


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_export_escapes_cells_a_spreadsheet_would_run(session: Session, tmp_path: Path) -> None:
    _hostile_project(session, tmp_path)
    out = tmp_path / "out.csv"
    summary = export_project(session, actor=ACTOR, project="hostile", format="csv", path=out)
    assert not summary.raw
    rows = _csv_rows(out)
    assert [tuple(row[c] for c in TEXT_CELLS) for row in rows] == ESCAPED
    assert all(row["payload"].startswith("{") for row in rows)  # JSON is never a formula
    event = session.scalars(select(Event).order_by(Event.seq.desc()).limit(1)).one()
    assert event.after["format"] == "csv" and event.after["raw"] is False


def test_raw_csv_export_writes_cells_as_stored(session: Session, tmp_path: Path) -> None:
    _hostile_project(session, tmp_path)
    out = tmp_path / "raw.csv"
    summary = export_project(
        session, actor=ACTOR, project="hostile", format="csv", path=out, raw=True
    )
    assert summary.raw and summary.as_dict()["raw"] is True
    assert [tuple(row[c] for c in TEXT_CELLS) for row in _csv_rows(out)] == [
        tuple(str(typed.get(c, "")) for c in TEXT_CELLS) for typed in HOSTILE
    ]
    event = session.scalars(select(Event).order_by(Event.seq.desc()).limit(1)).one()
    assert event.after["raw"] is True
    # the reader takes ' before = + - @ for the escape: a raw file is exact except for
    # text that starts that way (the typed "'=typed" reads as "=typed")
    labels = [r.value for r in read(out) if isinstance(r, AnnotationRecord)]
    assert labels == [r["label"] for r in HOSTILE[:4]] + ["=typed", "plain"]


def test_default_csv_export_of_formula_text_reimports_the_same(
    session: Session, tmp_path: Path
) -> None:
    _hostile_project(session, tmp_path, "orig")
    out = tmp_path / "out.csv"
    export_project(session, actor=ACTOR, project="orig", format="csv", path=out)
    create_project(session, actor=ACTOR, name="copy", schema=LabelSchema.from_dict(HOSTILE_SCHEMA))
    again = import_file(session, actor=ACTOR, path=out, project="copy")
    assert again.annotations_created == len(HOSTILE)
    assert annotations(session, "copy") == annotations(session, "orig")
    assert gold(session, "copy") == gold(session, "orig")
    assert items(session, "copy") == items(session, "orig")
    tags = session.execute(
        select(Item.external_id, Item.tags).join(Project).where(Project.name == "copy")
    ).all()
    assert dict(tags)["=1+1"] == ["@tag", "plain"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "label-studio"])
def test_other_formats_are_never_escaped(session: Session, tmp_path: Path, fmt: str) -> None:
    _hostile_project(session, tmp_path)
    out = tmp_path / f"out.{fmt}"
    export_project(session, actor=ACTOR, project="hostile", format=fmt, path=out)
    event = session.scalars(select(Event).order_by(Event.seq.desc()).limit(1)).one()
    assert "raw" not in event.after
    if fmt == "parquet":
        import pyarrow.parquet as pq

        names = pq.read_table(out).column("annotator").to_pylist()
    elif fmt == "jsonl":
        lines = out.read_text(encoding="utf-8").splitlines()
        names = [json.loads(line)["annotator"] for line in lines]
    else:
        tasks = json.loads(out.read_text(encoding="utf-8"))
        names = [a["completed_by"]["email"] for t in tasks for a in t["annotations"]]
    assert sorted(names) == sorted(r["annotator"] for r in HOSTILE)


def test_ordinal_ratings_stay_numbers_in_csv(session: Session, tmp_path: Path) -> None:
    schema = LabelSchema.from_dict(
        {"task_type": "ordinal", "scale": {"min": -2, "max": 2, "step": 1}}
    )
    create_project(session, actor=ACTOR, name="ratings", schema=schema)
    path = tmp_path / "ratings.jsonl"
    ratings = [("a", "ann", -1), ("a", "bob", -2), ("b", "ann", 2), ("b", "bob", 0)]
    path.write_text(
        "".join(
            json.dumps({"item_id": i, "annotator": u, "label": v}) + "\n" for i, u, v in ratings
        ),
        encoding="utf-8",
    )
    import_file(session, actor=ACTOR, path=path, project="ratings")
    out = tmp_path / "ratings.csv"
    export_project(session, actor=ACTOR, project="ratings", format="csv", path=out)
    assert [(r["annotator"], r["label"]) for r in _csv_rows(out)] == [
        (u, str(v)) for _i, u, v in ratings
    ]
    create_project(session, actor=ACTOR, name="copy", schema=schema)
    import_file(session, actor=ACTOR, path=out, project="copy")
    assert annotations(session, "copy") == annotations(session, "ratings")
