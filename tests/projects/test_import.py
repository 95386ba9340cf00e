"""Import service: idempotency, updates with trail events, all-or-nothing refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

import labelloop.models  # noqa: F401  (registers every table for the row counts)
from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.errors import Conflict, ImportFailed, ValidationFailed
from labelloop.formats import AnnotationRecord, GoldRecord, ItemRecord, Location
from labelloop.projects.importer import MAX_ISSUES, UNKNOWN_ANNOTATOR, import_file, import_records
from labelloop.projects.models import Annotation, GoldLabel, ImportBatch, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.projects.service import create_project
from labelloop.store import Base
from labelloop.trail.models import Event

ACTOR = Actor.local("test")
SCHEMA = {
    "task_type": "single",
    "labels": ["billing", "refund", "other"],
    "rules": [{"when": {"active_seconds_below": 2}, "flag": "too_fast"}],
}
HEADER = (
    "item_id,annotator,label,started_at,submitted_at,active_seconds,segment_language,text,gold\n"
)
ROWS = [
    "t1,alice,billing,2026-01-01T10:00:00Z,2026-01-01T10:00:30Z,30,en,my bill is wrong,billing",
    "t1,bob,refund,2026-01-01T11:00:00Z,2026-01-01T11:00:20Z,20,en,my bill is wrong,billing",
    "t2,alice,other,2026-01-02T10:00:00Z,2026-01-02T10:00:01Z,1,de,hallo,",
    "t2,carol,other,,,,de,hallo,",
]


def write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def row_counts(session: Session) -> dict[str, int]:
    """Rows in every table (the whole database, not just one project)."""
    return {
        t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
        for t in Base.metadata.sorted_tables
    }


@pytest.fixture
def project(session: Session) -> Project:
    return create_project(
        session, actor=ACTOR, name="tickets", schema=LabelSchema.from_dict(SCHEMA)
    )


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    return write(tmp_path / "labels.csv", ROWS)


def test_import_writes_rows_one_event_and_a_batch(
    session: Session, project: Project, csv_file: Path
) -> None:
    before = row_counts(session)
    summary = import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    assert (summary.items_created, summary.annotations_created, summary.gold_created) == (2, 4, 1)
    assert summary.annotators == 3
    assert summary.warnings == {"too_fast": 1}
    after = row_counts(session)
    assert after["annotations"] - before["annotations"] == 4
    assert after["import_batches"] - before["import_batches"] == 1
    events = session.scalars(select(Event).where(Event.seq > 1).order_by(Event.seq)).all()
    imports = [e for e in events if e.action == "import.file"]
    assert len(imports) == 1
    assert (
        imports[0].after["sha256"] == summary.sha256
        and imports[0].after["annotations_created"] == 4
    )
    # no event per created row; new accounts and the roles they get are events
    assert {e.action for e in events} == {"import.file", "user.create", "membership.grant"}
    flagged = session.scalars(select(Annotation.flags).where(Annotation.active_seconds == 1)).one()
    assert [f["code"] for f in flagged] == ["too_fast"]
    item = session.scalars(select(Item).where(Item.external_id == "t1")).one()
    assert item.segments == {"language": "en"} and item.payload == {"text": "my bill is wrong"}
    assert trail.service.verify(session).ok


def test_reimporting_the_same_file_changes_nothing(
    session: Session, project: Project, csv_file: Path
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    before = row_counts(session)
    again = import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    assert not again.changed
    assert (again.annotations_unchanged, again.items_unchanged, again.annotations_created) == (
        4,
        2,
        0,
    )
    after = row_counts(session)
    assert after == {**before, "events": before["events"] + 1}  # only the import.file event
    last = session.scalars(select(Event).order_by(Event.seq.desc()).limit(1)).one()
    assert last.action == "import.file" and last.after["noop"] is True and last.entity_id is None
    assert trail.service.verify(session).ok


def test_changed_annotation_is_updated_with_before_and_after(
    session: Session, project: Project, csv_file: Path, tmp_path: Path
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    changed = write(
        tmp_path / "labels-v2.csv", [ROWS[0], ROWS[1].replace(",refund,", ",billing,"), *ROWS[2:]]
    )
    before = row_counts(session)
    summary = import_file(session, actor=ACTOR, path=changed, project="tickets")
    assert (
        summary.annotations_updated,
        summary.annotations_unchanged,
        summary.annotations_created,
    ) == (1, 3, 0)
    after = row_counts(session)
    assert after["annotations"] == before["annotations"]
    assert after["events"] == before["events"] + 2  # annotation.update + import.file
    update = session.scalars(select(Event).where(Event.action == "annotation.update")).one()
    assert update.before == {"value": "refund"}
    assert update.after["value"] == "billing" and update.after["item"] == "t1"
    bob = session.scalars(select(User.id).where(User.username == "bob")).one()
    assert (
        session.scalars(select(Annotation.value).where(Annotation.annotator_id == bob)).one()
        == "billing"
    )
    assert trail.service.verify(session).ok


def test_missing_annotator_becomes_the_placeholder(
    session: Session, project: Project, tmp_path: Path
) -> None:
    path = write(tmp_path / "anon.csv", ["t9,,billing,,,,,x,"])
    import_file(session, actor=ACTOR, path=path, project="tickets")
    name = session.scalar(
        select(User.username).join(Annotation, Annotation.annotator_id == User.id)
    )
    assert name == UNKNOWN_ANNOTATOR


def test_create_refuses_an_existing_project(
    session: Session, project: Project, csv_file: Path
) -> None:
    with pytest.raises(Conflict):
        import_file(session, actor=ACTOR, path=csv_file, project="tickets", create=True)


# -- refusals: nothing written, every problem named --------------------------------------


def _cut(path: Path, out: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


BROKEN: dict[str, tuple[Any, str]] = {
    "truncated JSON": (
        lambda fx, tmp: _cut(
            fx / "label_studio" / "tasks_annotations_predictions.json", tmp / "cut.json"
        ),
        "truncated",
    ),
    "invalid XML": (
        lambda fx, tmp: _cut(
            fx / "cvat" / "comparing-data-markup_annotations.xml", tmp / "cut.xml"
        ),
        "invalid XML",
    ),
    "unknown label": (
        lambda fx, tmp: write(tmp / "unknown.csv", [*ROWS, "t3,dave,bogus,,,,en,new,"]),
        "unknown label 'bogus'",
    ),
    "duplicate annotation ids": (
        lambda fx, tmp: write(
            tmp / "dupe.csv",
            ["t1,alice,billing,a1", "t2,bob,refund,a1"],
            header="item_id,annotator,label,annotation_id\n",
        ),
        "duplicate annotation id 'a1'",
    ),
    "duplicate task ids": (
        lambda fx, tmp: _json(
            tmp / "dupe.json",
            [{"id": 7, "data": {"text": "a"}}, {"id": 7, "data": {"text": "b"}}],
        ),
        "duplicate task id '7'",
    ),
    "duplicate annotation": (
        lambda fx, tmp: write(tmp / "twice.csv", [ROWS[0], ROWS[0].replace(",30,", ",31,")]),
        "duplicate annotation",
    ),
    "empty file": (lambda fx, tmp: _bytes(tmp / "empty.csv", b""), "file is empty"),
    "wrong encoding": (
        lambda fx, tmp: _bytes(
            tmp / "latin1.csv", (HEADER + "t1,Andr\xe9,billing,,,,,caf\xe9,\n").encode("latin-1")
        ),
        "not UTF-8",
    ),
}


def _json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_is_refused_and_nothing_is_written(
    session: Session,
    project: Project,
    csv_file: Path,
    shared_fixtures: Path,
    tmp_path: Path,
    case: str,
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")  # the database is not empty
    make, message = BROKEN[case]
    path = make(shared_fixtures, tmp_path)
    before = row_counts(session)
    with pytest.raises(ImportFailed) as info:
        import_file(session, actor=ACTOR, path=path, project="tickets")
    problems = [str(i) for i in info.value.issues]
    assert any(message in p for p in problems), problems
    assert all(p.startswith(str(path)) or p.startswith(path.name) for p in problems), problems
    assert "nothing was written" in str(info.value)
    assert row_counts(session) == before
    assert trail.service.verify(session).ok


def test_every_problem_is_collected_first_50_shown(
    session: Session, project: Project, tmp_path: Path
) -> None:
    path = write(tmp_path / "many.csv", [f"t{i},ann{i},nope{i},,,,,x,billing" for i in range(70)])
    before = row_counts(session)
    with pytest.raises(ImportFailed) as info:
        import_file(session, actor=ACTOR, path=path, project="tickets")
    assert info.value.total == 70 and len(info.value.issues) == MAX_ISSUES
    first = str(info.value.issues[0])
    assert "many.csv" in first and "line 2" in first and "unknown label 'nope0'" in first
    assert row_counts(session) == before


def test_error_after_a_written_batch_rolls_everything_back(
    session: Session, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelloop.projects import importer

    monkeypatch.setattr(importer, "BATCH_SIZE", 3)
    rows = [f"t{i},ann{i % 4},billing,,,,,x," for i in range(20)] + ["t99,zed,bogus,,,,,x,"]
    path = write(tmp_path / "late.csv", rows)
    before = row_counts(session)
    with pytest.raises(ImportFailed) as info:
        import_file(session, actor=ACTOR, path=path, project="tickets")
    assert info.value.total == 1 and "line 22" in str(info.value.issues[0])
    assert row_counts(session) == before
    assert trail.service.verify(session).ok


# -- items are keyed per project -------------------------------------------------------


def test_annotation_for_an_item_of_another_project_is_refused(
    session: Session, project: Project, csv_file: Path
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    create_project(session, actor=ACTOR, name="other", schema=LabelSchema.from_dict(SCHEMA))
    before = row_counts(session)
    records = [
        AnnotationRecord("t1", "zoe", "billing", "single", location=Location("api", record=0))
    ]
    with pytest.raises(ImportFailed) as info:
        import_records(
            session,
            actor=ACTOR,
            project="other",
            records=records,
            source="api",
            filename="api",
            sha256="0" * 64,
        )
    message = str(info.value.issues[0])
    assert "item 't1'" in message and "belongs to project 'tickets'" in message
    assert row_counts(session) == before


def test_same_item_ids_in_another_project_get_their_own_items(
    session: Session, project: Project, csv_file: Path
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    tickets_annotations = session.scalar(select(func.count()).select_from(Annotation))
    other = create_project(session, actor=ACTOR, name="other", schema=LabelSchema.from_dict(SCHEMA))
    summary = import_file(session, actor=ACTOR, path=csv_file, project="other")
    assert summary.items_created == 2 and summary.annotations_created == 4
    joined = session.execute(
        select(Annotation.project_id, Item.project_id).join(Item, Item.id == Annotation.item_id)
    ).all()
    assert all(a == i for a, i in joined)
    assert (
        session.scalar(
            select(func.count()).select_from(Annotation).where(Annotation.project_id == project.id)
        )
        == tickets_annotations
    )
    assert (
        session.scalar(select(func.count()).select_from(Item).where(Item.project_id == other.id))
        == 2
    )


def test_records_with_duplicates_name_both_locations(session: Session, project: Project) -> None:
    records = [
        ItemRecord("a", {"text": "one"}, location=Location("mem", record=0)),
        ItemRecord("a", {"text": "two"}, location=Location("mem", record=1)),
        AnnotationRecord("a", "ann", "billing", "single", location=Location("mem", record=2)),
        AnnotationRecord("a", "ann", "refund", "single", location=Location("mem", record=3)),
        GoldRecord("a", "billing", "single", location=Location("mem", record=4)),
        GoldRecord("a", "refund", "single", location=Location("mem", record=5)),
    ]
    with pytest.raises(ImportFailed) as info:
        import_records(
            session,
            actor=ACTOR,
            project="tickets",
            records=records,
            source="api",
            filename="mem",
            sha256="",
        )
    problems = [str(i) for i in info.value.issues]
    assert len(problems) == 3, problems
    assert "record 1" in problems[0] and "different content (first at record 0)" in problems[0]
    assert (
        "record 3" in problems[1]
        and "duplicate annotation" in problems[1]
        and "record 2" in problems[1]
    )
    assert (
        "record 5" in problems[2]
        and "conflicting gold" in problems[2]
        and "record 4" in problems[2]
    )


def test_wrong_task_type_is_refused(session: Session, project: Project, tmp_path: Path) -> None:
    path = write(
        tmp_path / "multi.csv",
        ['t1,alice,"[""billing"", ""refund""]"'],
        header="item_id,annotator,label\n",
    )
    with pytest.raises(ImportFailed) as info:
        import_file(session, actor=ACTOR, path=path, project="tickets", format="csv")
    assert "expected one label" in str(info.value.issues[0])


def test_gold_update_has_its_own_event(
    session: Session, project: Project, csv_file: Path, tmp_path: Path
) -> None:
    import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    changed = write(
        tmp_path / "gold-v2.csv",
        [
            ROWS[0].removesuffix("billing") + "refund",
            ROWS[1].removesuffix("billing") + "refund",
            *ROWS[2:],
        ],
    )
    summary = import_file(session, actor=ACTOR, path=changed, project="tickets")
    assert summary.gold_updated == 1
    event = session.scalars(select(Event).where(Event.action == "gold.update")).one()
    assert event.before["value"] == "billing" and event.after["value"] == "refund"
    assert session.scalars(select(GoldLabel.value)).one() == "refund"


def test_import_batches_record_the_file(session: Session, project: Project, csv_file: Path) -> None:
    summary = import_file(session, actor=ACTOR, path=csv_file, project="tickets")
    batch = session.scalars(select(ImportBatch)).one()
    assert (batch.filename, batch.sha256, batch.format) == ("labels.csv", summary.sha256, "csv")
    assert batch.counts["annotations_created"] == 4
    assert session.execute(text("select count(*) from import_batches")).scalar() == 1


def test_a_lead_cannot_import_existing_accounts_into_the_project(
    session: Session, project: Project, tmp_path: Path
) -> None:
    """A file naming an existing account with no annotating role in the project (an
    outsider, an administrator, someone of another project) is refused for a lead:
    an upload must not widen who may see the project. The operator (CLI) may."""
    from labelloop.accounts.service import create_user, grant

    create_user(session, actor=ACTOR, username="someone.else")
    lead_user = create_user(session, actor=ACTOR, username="the.lead")
    grant(session, actor=ACTOR, username="the.lead", project_id=project.id, role=Role.LEAD)
    lead = Actor.for_user(lead_user.id, "the.lead")
    path = tmp_path / "a.csv"
    path.write_text("item_id,annotator,label\nx1,someone.else,billing\nx2,new.person,billing\n")
    with pytest.raises(ValidationFailed, match=r"someone\.else"):
        import_file(session, actor=lead, path=path, project="tickets")
    summary = import_file(session, actor=ACTOR, path=path, project="tickets")
    assert summary.annotations_created == 2
    granted = session.scalars(select(Event).where(Event.action == "membership.grant")).all()
    assert {e.after["username"] for e in granted} >= {"someone.else", "new.person"}
