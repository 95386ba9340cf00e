"""Export service: long form and Label Studio JSON, round trips through the importer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.errors import ConfigurationError
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
