"""Every annotation export in ``../shared/fixtures`` imports with the right counts.

Expected counts are computed here straight from the files (plain ``json``, ``csv`` and
ElementTree), independently of the readers, and compared with the rows the import wrote.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.formats import TabularOptions
from labelloop.projects.importer import UNKNOWN_ANNOTATOR, import_file
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project

ACTOR = Actor.local("test")


@dataclass(frozen=True)
class Counts:
    items: int
    annotators: int
    annotations: int
    gold: int
    predictions: int


def stored(session: Session, project: str) -> Counts:
    pid = session.scalar(select(Project.id).where(Project.name == project))

    def count(*cols: Any, model: Any) -> int:
        return int(
            session.scalar(
                select(func.count(*cols)).select_from(model).where(model.project_id == pid)
            )
            or 0
        )

    return Counts(
        items=count(model=Item),
        annotators=int(
            session.scalar(
                select(func.count(func.distinct(Annotation.annotator_id))).where(
                    Annotation.project_id == pid
                )
            )
            or 0
        ),
        annotations=count(model=Annotation),
        gold=count(model=GoldLabel),
        predictions=count(model=Prediction),
    )


# -- expected counts, read straight from the files --------------------------------------


def _ls_annotator(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("email") or value.get("id"))
    return UNKNOWN_ANNOTATOR if value is None else str(value)


def expect_label_studio(path: Path) -> Counts:
    doc = json.loads(path.read_text(encoding="utf-8"))
    tasks = doc if isinstance(doc, list) else [doc]
    anns = [
        a
        for t in tasks
        for a in t.get("annotations", [])
        if not a.get("was_cancelled") and a.get("result")
    ]
    gold_items = {
        i
        for i, t in enumerate(tasks)
        for a in t.get("annotations", [])
        if a.get("ground_truth") and a.get("result")
    }
    preds = [
        p
        for t in tasks
        for p in t.get("predictions", [])
        if isinstance(p, dict) and p.get("result")
    ]
    return Counts(
        len(tasks),
        len({_ls_annotator(a.get("completed_by")) for a in anns}),
        len(anns),
        len(gold_items),
        len(preds),
    )


_SHAPES = {"box", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton", "tag"}


def expect_cvat(path: Path) -> Counts:
    root = ET.parse(path).getroot()
    images = root.findall("image")
    labeled = [im for im in images if any(el.tag in _SHAPES and el.get("label") for el in im)]
    return Counts(len(images), 1 if labeled else 0, len(labeled), 0, 0)


def expect_doccano(path: Path) -> Counts:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return Counts(len({r["id"] for r in rows}), len({r["user"] for r in rows}), len(rows), 0, 0)
    docs = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    users: set[str] = set()
    annotations = 0
    for doc in docs:
        if "annotations" in doc:
            by = {str(a.get("user", UNKNOWN_ANNOTATOR)) for a in doc["annotations"]}
            users |= by
            annotations += len(by)
        elif doc.get("labels") or doc.get("label"):
            users.add(UNKNOWN_ANNOTATOR)
            annotations += 1
    return Counts(len(docs), len(users), annotations, 0, 0)


def expect_prodigy(path: Path) -> Counts:
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    latest: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:  # a later answer by the same annotator to the same task supersedes
        latest[(row.get("_task_hash"), row.get("_annotator_id"))] = row
    kept = [
        r
        for r in latest.values()
        if r["answer"] != "ignore"
        and not (r.get("_view_id") == "choice" and (r["answer"] != "accept" or not r.get("accept")))
    ]
    annotators = {r.get("_annotator_id") or UNKNOWN_ANNOTATOR for r in kept}
    return Counts(len({r["_input_hash"] for r in rows}), len(annotators), len(kept), 0, 0)


def expect_long(
    path: Path,
    item: str,
    annotator: str,
    label: str,
    gold: str | None,
    fieldnames: list[str] | None,
) -> Counts:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, fieldnames=fieldnames, delimiter="\t")
        rows = list(reader)
    labeled = [r for r in rows if r[label].strip()]
    gold_items = {r[item] for r in rows if gold and r.get(gold, "").strip()}
    return Counts(
        len({r[item] for r in rows}),
        len({r[annotator] for r in labeled}),
        len(labeled),
        len(gold_items),
        0,
    )


# -- the fixtures -----------------------------------------------------------------------

LABEL_STUDIO = [
    "csv_test.json",
    "csv_test2.json",
    "humor_dataset_2_annotations.json",
    "ls_data.json",
    "previous_export.json",
    "previous_export_unknown_completed_by.json",
    "project-14-at-2025-06-25-13-18-72190ffe.json",
    "tasks_annotations_predictions.json",
    "text_with_2_predictions.json",
    "three_tasks_two_gts.json",
]
CVAT = [
    "comparing-data-markup_annotations.xml",
    "datumaro_export_project_annotations.xml",
    "datumaro_for_images_train.xml",
]
DOCCANO = [
    "doccano-transformer_classification.csv",
    "doccano-transformer_classification.jsonl",
    "doccano-transformer_labeling.jsonl",
    "doccano-transformer_labeling_text_label.jsonl",
    "doccano_export_sequence_labeling_example.jsonl",
    "doccano_export_text_classification_example.jsonl",
]
PRODIGY = [
    "emerson_annotated_text.jsonl",
    "prodigy-hf_fashion-train.jsonl",
    "prodigy-hf_textcat-binary.jsonl",
    "prodigy-hf_textcat-multi.jsonl",
    "pydata-ams-2023.jsonl",
]
EXPECT = {
    "label_studio": expect_label_studio,
    "cvat": expect_cvat,
    "doccano": expect_doccano,
    "prodigy": expect_prodigy,
}


def _check(session: Session, path: Path, project: str, expected: Counts, **kwargs: Any) -> None:
    summary = import_file(session, actor=ACTOR, path=path, project=project, create=True, **kwargs)
    assert stored(session, project) == expected
    assert summary.annotations_created == expected.annotations
    assert summary.items_created == expected.items
    assert summary.annotators == expected.annotators
    assert summary.gold == expected.gold
    assert summary.predictions == expected.predictions
    assert summary.schema_yaml and "task_type:" in summary.schema_yaml
    assert trail.service.verify(session).ok


#: Known failures, each with its reason (strict: they fail the run once fixed).
XFAIL: dict[str, str] = {}


def _cases() -> list[Any]:
    cases = []
    for tool, names in (
        ("label_studio", LABEL_STUDIO),
        ("cvat", CVAT),
        ("doccano", DOCCANO),
        ("prodigy", PRODIGY),
    ):
        for name in names:
            marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
            cases.append(pytest.param(tool, name, id=name, marks=marks))
    return cases


@pytest.mark.parametrize(("tool", "name"), _cases())
def test_tool_export_imports_with_right_counts(
    session: Session, shared_fixtures: Path, tool: str, name: str
) -> None:
    path = shared_fixtures / tool / name
    _check(session, path, "fixture", EXPECT[tool](path))


SNOW = {
    "snow2008_anger.standardized.tsv": "ordinal",
    "snow2008_wordsim.standardized.tsv": "ordinal",
    "snow2008_wsd.standardized.tsv": "single",
    "snow2008_rte.standardized.tsv": "single",
    "snow2008_temp.standardized.tsv": "single",
}


@pytest.mark.parametrize("name", sorted(SNOW))
def test_crowdsourcing_tsv_imports_through_column_mapping(
    session: Session, shared_fixtures: Path, name: str
) -> None:
    path = shared_fixtures / "crowdsourcing" / name
    options = TabularOptions(
        item="orig_id",
        annotator="!amt_worker_ids",
        label="response",
        annotation_id=None,  # AMT assignment ids repeat across the items of one HIT
        gold="gold",
        task_type=SNOW[name],  # type: ignore[arg-type]
    )
    expected = expect_long(path, "orig_id", "!amt_worker_ids", "response", "gold", None)
    _check(session, path, "snow", expected, format="csv", options=options)


def test_get_another_label_toy_set_with_separate_gold(
    session: Session, shared_fixtures: Path
) -> None:
    labels = shared_fixtures / "crowdsourcing" / "AdultContent_labels.txt"
    gold = shared_fixtures / "crowdsourcing" / "AdultContent_gold.txt"
    options = TabularOptions(
        item="object", annotator="worker", label="label", fieldnames=["worker", "object", "label"]
    )
    expected = expect_long(labels, "object", "worker", "label", None, ["worker", "object", "label"])
    _check(session, labels, "adult", expected, format="csv", options=options)

    gold_options = TabularOptions(
        item="object", annotator=None, label=None, gold="gold", fieldnames=["object", "gold"]
    )
    summary = import_file(
        session, actor=ACTOR, path=gold, project="adult", format="csv", options=gold_options
    )
    n_gold = len([line for line in gold.read_text().splitlines() if line.strip()])
    assert (summary.gold_created, summary.items_created, summary.items_unchanged) == (
        n_gold,
        0,
        n_gold,
    )
    assert stored(session, "adult") == Counts(
        expected.items, expected.annotators, expected.annotations, n_gold, 0
    )


def test_cvat_video_tracks_are_refused_with_a_reason(
    session: Session, shared_fixtures: Path
) -> None:
    from labelloop.errors import ImportFailed

    with pytest.raises(ImportFailed) as info:
        import_file(
            session,
            actor=ACTOR,
            path=shared_fixtures / "cvat" / "datumaro_for_video_annotations.xml",
            project="video",
            create=True,
        )
    assert any("CVAT for video" in str(i) for i in info.value.issues)
    assert session.scalar(select(Project.id).where(Project.name == "video")) is None


def test_label_studio_csv_export_without_label_column_imports_items(
    session: Session, shared_fixtures: Path
) -> None:
    """The converter's CSV of csv_test2.json lost its label column: items only."""
    path = shared_fixtures / "label_studio" / "csv_test2_result.csv"
    options = TabularOptions(item="id", annotator=None, label=None)
    with path.open(encoding="utf-8", newline="") as fh:
        n_rows = len(list(csv.DictReader(fh, delimiter="\t")))
    from labelloop.projects.schemas import LabelSchema
    from labelloop.projects.service import create_project

    create_project(
        session, actor=ACTOR, name="ls-csv", schema=LabelSchema.from_dict({"task_type": "text"})
    )
    summary = import_file(
        session, actor=ACTOR, path=path, project="ls-csv", format="csv", options=options
    )
    assert summary.items_created == n_rows
    assert stored(session, "ls-csv") == Counts(n_rows, 0, 0, 0, 0)
