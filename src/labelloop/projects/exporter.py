"""Export a project's labels: long form (CSV/JSONL/Parquet) or Label Studio JSON.

Rows are streamed from the database (``yield_per``) into the writers of
:mod:`labelloop.formats`, which write atomically (the file appears only when complete).

Long form has one row per annotation, plus one row (empty annotator and label) for each
item without annotations, so items and gold labels survive a round trip. Columns:
``item_id, annotator, label, annotation_id, started_at, submitted_at, active_seconds,
guideline_version, attributes, flags, gold, adjudicated, text`` then ``payload`` (JSON, only when some
item has payload fields besides ``text``), one ``segment_<name>`` column per segment
and ``tags`` (``|``-separated). These are the default column names of the long-form
reader, so an export re-imports without column flags.

Label Studio JSON has one task per item with its annotations, gold labels as
``ground_truth`` and model predictions (see :func:`labelloop.formats.write_label_studio`).

CSV is for spreadsheets too: by default a text cell that a spreadsheet would run as a
formula (it starts with ``=``, ``+``, ``-``, ``@``, tab or CR and is not a plain number)
is written with a leading ``'``, which the CSV reader removes again, so the export
still re-imports as it was. ``raw=True`` writes every cell as stored, for programs
other than LabelLoop. JSONL, Parquet and Label Studio JSON are always raw.

An export is a read, but it is recorded: one ``export.file`` trail event names who
exported which project, in which format, to which file name, with the counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.adjudication.models import Ruling
from labelloop.errors import ConfigurationError
from labelloop.formats.records import (
    AnnotationRecord,
    GoldRecord,
    ItemRecord,
    PredictionRecord,
    Record,
    TaskType,
)
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project

__all__ = ["EXPORT_FORMATS", "ExportFormat", "ExportSummary", "export_project"]

ExportFormat = Literal["csv", "jsonl", "parquet", "label-studio"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "parquet", "label-studio")
#: Rows fetched per round trip while streaming.
YIELD_PER = 2000

_items_t = cast(Table, Item.__table__)
_ann_t = cast(Table, Annotation.__table__)
_gold_t = cast(Table, GoldLabel.__table__)
_ruling_t = cast(Table, Ruling.__table__)
_pred_t = cast(Table, Prediction.__table__)
_users_t = cast(Table, User.__table__)


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    project: str
    format: str
    path: str
    items: int
    annotations: int
    gold: int
    predictions: int
    rows: int
    #: Whether a CSV was written without the spreadsheet-formula escape (always false
    #: for the other formats, which have no escape).
    raw: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "format": self.format,
            "path": self.path,
            "items": self.items,
            "annotations": self.annotations,
            "gold": self.gold,
            "predictions": self.predictions,
            "rows": self.rows,
            "raw": self.raw,
        }


def export_project(
    session: Session,
    *,
    actor: Actor,
    project: str | Project,
    format: str,
    path: Path | str,
    raw: bool = False,
) -> ExportSummary:
    """Write ``project`` (name, id or Project) to ``path`` in ``format`` and record an
    ``export.file`` trail event. CSV text cells that could run as spreadsheet formulas
    are escaped unless ``raw`` (other formats are always raw). Raises
    ConfigurationError for an unknown format or an unwritable path."""
    from labelloop.projects.service import get_project

    if format not in EXPORT_FORMATS:
        raise ConfigurationError(
            f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    proj = project if isinstance(project, Project) else get_project(session, project)
    require(session, actor, Permission.DATA_EXPORT, project_id=proj.id)
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"{path}: directory {path.parent} does not exist")
    counts = _counts(session, proj.id)
    if format == "label-studio":
        from labelloop.formats import write_label_studio

        rows = write_label_studio(_records(session, proj), path)
    else:
        from labelloop.formats import write_long

        columns, segments, with_payload = _long_columns(session, proj.id)
        rows = write_long(
            _long_rows(session, proj.id, segments, with_payload),
            path,
            format,
            columns=columns,
            escape_formulas=not raw,
        )
    summary = ExportSummary(
        project=proj.name,
        format=format,
        path=str(path),
        items=counts["items"],
        annotations=counts["annotations"],
        gold=counts["gold"],
        predictions=counts["predictions"],
        rows=rows,
        raw=raw and format == "csv",
    )
    trail.service.append(
        session,
        actor=actor.name,
        action="export.file",
        entity_type="project",
        entity_id=proj.id,
        project_id=proj.id,
        after={
            "format": format,
            "filename": path.name,
            **({"raw": raw} if format == "csv" else {}),
            **counts,
            "rows": rows,
        },
    )
    return summary


def _counts(session: Session, project_id: int) -> dict[str, int]:
    def count(table: Table) -> int:
        return int(
            session.scalar(
                select(func.count()).select_from(table).where(table.c.project_id == project_id)
            )
            or 0
        )

    return {
        "items": count(_items_t),
        "annotations": count(_ann_t),
        "gold": count(_gold_t),
        "predictions": count(_pred_t),
    }


# -- long form ------------------------------------------------------------------------------

_LONG_BASE = [
    "item_id",
    "annotator",
    "label",
    "annotation_id",
    "started_at",
    "submitted_at",
    "active_seconds",
    "guideline_version",
    "attributes",
    "flags",
    "gold",
    "adjudicated",
    "text",
]


def _long_columns(session: Session, project_id: int) -> tuple[list[str], list[str], bool]:
    """Header columns, segment names and whether a ``payload`` column is needed (one
    streamed pass over the items' segments and payload keys)."""
    segments: dict[str, None] = {}
    with_payload = False
    rows = session.execute(
        select(_items_t.c.segments, _items_t.c.payload)
        .where(_items_t.c.project_id == project_id)
        .order_by(_items_t.c.id)
        .execution_options(yield_per=YIELD_PER)
    )
    for seg, payload in rows:
        for key in seg or {}:
            segments.setdefault(str(key), None)
        if not with_payload and payload and set(payload) - {"text"}:
            with_payload = True
    names = list(segments)
    columns = [
        *_LONG_BASE,
        *(["payload"] if with_payload else []),
        *(f"segment_{s}" for s in names),
        "tags",
    ]
    return columns, names, with_payload


def _long_rows(
    session: Session, project_id: int, segments: list[str], with_payload: bool
) -> Iterator[dict[str, Any]]:
    a, i, u, g, r = _ann_t, _items_t, _users_t, _gold_t, _ruling_t
    # the newest ruling of each ruled item: its label is the item's adjudicated label
    newest = (
        select(r.c.item_id, func.max(r.c.id).label("ruling_id"))
        .where(r.c.project_id == project_id)
        .group_by(r.c.item_id)
        .subquery()
    )
    stmt = (
        select(
            i.c.external_id,
            i.c.payload,
            i.c.segments,
            i.c.tags,
            u.c.username,
            a.c.id.label("annotation_pk"),
            a.c.external_key,
            a.c.value,
            a.c.attributes,
            a.c.flags,
            a.c.started_at,
            a.c.submitted_at,
            a.c.active_seconds,
            a.c.guideline_version,
            g.c.value.label("gold"),
            r.c.value.label("adjudicated"),
        )
        .select_from(i)
        .outerjoin(a, a.c.item_id == i.c.id)
        .outerjoin(u, u.c.id == a.c.annotator_id)
        .outerjoin(g, g.c.item_id == i.c.id)
        .outerjoin(newest, newest.c.item_id == i.c.id)
        .outerjoin(r, r.c.id == newest.c.ruling_id)
        .where(i.c.project_id == project_id)
        .order_by(i.c.id, a.c.id)
        .execution_options(yield_per=YIELD_PER)
    )
    for row in session.execute(stmt):
        payload = row.payload or {}
        text = payload.get("text")
        has_ann = row.annotation_pk is not None
        out: dict[str, Any] = {
            "item_id": row.external_id,
            "annotator": row.username if has_ann else None,
            "label": row.value if has_ann else None,
            "annotation_id": row.external_key or None,
            "started_at": row.started_at,
            "submitted_at": row.submitted_at,
            "active_seconds": row.active_seconds,
            "guideline_version": row.guideline_version,
            "attributes": row.attributes or None,
            "flags": row.flags or None,
            "gold": row.gold,
            "adjudicated": row.adjudicated,
            "text": text if isinstance(text, str) else None,
        }
        if with_payload:
            out["payload"] = payload or None
        seg = row.segments or {}
        for name in segments:
            out[f"segment_{name}"] = seg.get(name)
        tags = row.tags or []
        out["tags"] = "|".join(str(t) for t in tags) if tags else None
        yield out


# -- Label Studio ---------------------------------------------------------------------------


def _records(session: Session, project: Project) -> Iterator[Record]:
    """Items with their annotations, gold label and predictions, item by item."""
    task_type = cast(TaskType, project.task_type)
    pid = project.id
    a, u, g, p, i = _ann_t, _users_t, _gold_t, _pred_t, _items_t
    anns = session.execute(
        select(
            a.c.item_id,
            u.c.username,
            a.c.external_key,
            a.c.value,
            a.c.attributes,
            a.c.started_at,
            a.c.submitted_at,
            a.c.active_seconds,
            a.c.guideline_version,
        )
        .join(u, u.c.id == a.c.annotator_id)
        .where(a.c.project_id == pid)
        .order_by(a.c.item_id, a.c.id)
        .execution_options(yield_per=YIELD_PER)
    )
    golds = session.execute(
        select(g.c.item_id, g.c.value, g.c.rationale, g.c.source)
        .where(g.c.project_id == pid)
        .order_by(g.c.item_id)
        .execution_options(yield_per=YIELD_PER)
    )
    preds = session.execute(
        select(
            p.c.item_id, p.c.model_name, p.c.model_version, p.c.value, p.c.probabilities, p.c.score
        )
        .where(p.c.project_id == pid)
        .order_by(p.c.item_id, p.c.id)
        .execution_options(yield_per=YIELD_PER)
    )
    ann_rows, gold_rows, pred_rows = _Peek(iter(anns)), _Peek(iter(golds)), _Peek(iter(preds))
    items = session.execute(
        select(i.c.id, i.c.external_id, i.c.payload, i.c.metadata, i.c.segments, i.c.tags)
        .where(i.c.project_id == pid)
        .order_by(i.c.id)
        .execution_options(yield_per=YIELD_PER)
    )
    for item in items:
        ext = item.external_id
        yield ItemRecord(
            ext,
            item.payload or {},
            item.metadata or {},
            item.segments or {},
            tuple(item.tags or ()),
        )
        for row in ann_rows.take(item.id):
            yield AnnotationRecord(
                ext,
                row.username,
                row.value,
                task_type,
                attributes=row.attributes or {},
                external_id=row.external_key or None,
                started_at=row.started_at,
                submitted_at=row.submitted_at,
                active_seconds=row.active_seconds,
                guideline_version=row.guideline_version,
            )
        for row in gold_rows.take(item.id):
            yield GoldRecord(ext, row.value, task_type, rationale=row.rationale, source=row.source)
        for row in pred_rows.take(item.id):
            yield PredictionRecord(
                ext,
                row.model_name,
                row.model_version or None,
                row.value,
                task_type,
                probabilities=row.probabilities,
                score=row.score,
            )


class _Peek:
    """Merge-join helper over a stream ordered by ``item_id``."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self.rows = rows
        self.head: Any = next(rows, None)

    def take(self, item_id: int) -> Iterator[Any]:
        while self.head is not None and self.head.item_id < item_id:
            self.head = next(self.rows, None)
        while self.head is not None and self.head.item_id == item_id:
            yield self.head
            self.head = next(self.rows, None)
