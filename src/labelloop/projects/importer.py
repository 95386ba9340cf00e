"""Bulk import of annotation files into a project: streaming, all-or-nothing, idempotent.

How an import works
-------------------
* One pass over the reader's records, in batches of :data:`BATCH_SIZE`. Each record is
  checked against the project's label schema (one compiled validator for the whole
  file); every problem is collected with its file, line or record index and field.
* Writes happen batch by batch inside one SAVEPOINT of the caller's transaction, with
  bulk statements on the session's connection (``executemany`` on SQLite; ``COPY`` and
  multi-row ``INSERT ... RETURNING`` on PostgreSQL), never one ORM object per row. Existing rows are looked up per batch by their natural keys, and
  only for items that existed before the import (rows of items created by this import
  cannot exist yet).
* At the first problem the importer stops writing but keeps reading, so the user sees
  every problem at once (:class:`~labelloop.errors.ImportFailed` carries the first
  :data:`MAX_ISSUES` and the total). The SAVEPOINT is then rolled back: nothing from
  the file stays, whatever the caller does next.
* Memory stays bounded: per item and per annotation key the importer keeps a few
  integers (for duplicate detection), never the records themselves.

Keys and idempotency
--------------------
Items are keyed per project by their external id, annotations by (item, annotator,
external annotation id or ""), gold labels by item, predictions by (item, model name,
model version). Re-importing the same file writes nothing and records exactly one
``import.file`` event (with zero created/updated counts and ``"noop": true``) so the
trail still shows who imported what and when; no ``import_batches`` row is added for
such a no-op import. A row whose content changed is updated in place, with its own
``<entity>.update`` trail event holding before and after.

Annotations without an annotator are stored under the placeholder user
:data:`UNKNOWN_ANNOTATOR` ("unknown").
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.accounts.service import ensure_users
from labelloop.errors import Conflict, ImportFailed, ValidationFailed
from labelloop.formats.records import (
    AnnotationRecord,
    FormatIssue,
    GoldRecord,
    ItemRecord,
    Location,
    PredictionRecord,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)
from labelloop.guidelines.timeline import timeline as guideline_timeline
from labelloop.identifiers import problem
from labelloop.projects.models import Annotation, GoldLabel, ImportBatch, Item, Prediction, Project
from labelloop.store.base import utcnow

if TYPE_CHECKING:
    from labelloop.formats import TabularOptions
    from labelloop.projects.schemas import LabelSchema

__all__ = [
    "BATCH_SIZE",
    "MAX_ISSUES",
    "UNKNOWN_ANNOTATOR",
    "ImportSummary",
    "file_sha256",
    "import_file",
    "import_records",
]

#: Records per batch: one lookup query and one bulk insert per table per batch.
BATCH_SIZE = 5000
#: Problems reported in full; the rest are counted.
MAX_ISSUES = 50
#: Username given to annotations whose file names no annotator.
UNKNOWN_ANNOTATOR = "unknown"
#: Item payloads kept for validating spans of items defined in earlier batches.
_PAYLOAD_CACHE = 4096
#: SQLite page cache (KiB) for the importing connection.
_SQLITE_CACHE_KIB = 65536
#: Formats read through the long-form (column-mapped) reader.
_TABULAR = frozenset({"csv", "jsonl", "parquet"})
#: Keys per ``IN (...)`` lookup.
_IN_CHUNK = 900
#: Try the columnar fast path (:mod:`labelloop.projects._fastpath`) for long-form
#: CSV/TSV/Parquet files with a simple mapping; it falls back to the record path for
#: anything it does not cover. ``LABELLOOP_IMPORT_FASTPATH=0`` turns it off.
FAST_PATH = os.environ.get("LABELLOOP_IMPORT_FASTPATH", "1") not in ("0", "false", "no")

ProgressFn = Callable[[int], None]
_log = logging.getLogger(__name__)

_items_t = cast(Table, Item.__table__)
_ann_t = cast(Table, Annotation.__table__)
_gold_t = cast(Table, GoldLabel.__table__)
_pred_t = cast(Table, Prediction.__table__)


@dataclass(frozen=True)
class ImportSummary:
    """What an import did. Counts are rows created/updated/left unchanged; ``gold`` and
    ``predictions`` count those records in the file; ``skipped`` counts records the
    reader deliberately left out, by reason; ``warnings`` counts stored flags by code."""

    project: str
    project_id: int
    format: str
    filename: str
    sha256: str
    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    annotations_created: int = 0
    annotations_updated: int = 0
    annotations_unchanged: int = 0
    gold: int = 0
    gold_created: int = 0
    gold_updated: int = 0
    predictions: int = 0
    predictions_created: int = 0
    predictions_updated: int = 0
    annotators: int = 0
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    notices: tuple[str, ...] = ()
    created_project: bool = False
    schema_yaml: str | None = None
    dry_run: bool = False

    @property
    def annotations(self) -> int:
        return self.annotations_created + self.annotations_updated + self.annotations_unchanged

    @property
    def changed(self) -> bool:
        """True when the import wrote anything (besides its trail event)."""
        return bool(
            self.created_project
            or self.items_created
            or self.items_updated
            or self.annotations_created
            or self.annotations_updated
            or self.gold_created
            or self.gold_updated
            or self.predictions_created
            or self.predictions_updated
        )

    def counts(self) -> dict[str, Any]:
        """The counts recorded on the ``import.file`` event and the import batch."""
        return {
            "items_created": self.items_created,
            "items_updated": self.items_updated,
            "items_unchanged": self.items_unchanged,
            "annotations_created": self.annotations_created,
            "annotations_updated": self.annotations_updated,
            "annotations_unchanged": self.annotations_unchanged,
            "gold": self.gold,
            "gold_created": self.gold_created,
            "gold_updated": self.gold_updated,
            "predictions": self.predictions,
            "predictions_created": self.predictions_created,
            "predictions_updated": self.predictions_updated,
            "annotators": self.annotators,
            "records": self.records,
            "skipped": dict(self.skipped),
            "warnings": dict(self.warnings),
        }

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "project": self.project,
            "project_id": self.project_id,
            "format": self.format,
            "filename": self.filename,
            "sha256": self.sha256,
            "created_project": self.created_project,
            "dry_run": self.dry_run,
            **self.counts(),
            "notices": list(self.notices),
        }
        if self.schema_yaml is not None:
            out["schema"] = self.schema_yaml
        return out


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- public entry points ----------------------------------------------------------------


def import_file(
    session: Session,
    *,
    actor: Actor,
    path: Path | str,
    project: str,
    format: str = "auto",
    create: bool = False,
    options: TabularOptions | None = None,
    progress: ProgressFn | None = None,
) -> ImportSummary:
    """Import one file into ``project`` (name or id); all or nothing.

    With ``create`` the project must not exist: the file is read once to infer a label
    schema from what the reader saw (:func:`~labelloop.projects.schemas.infer_schema`),
    the project is created with it, and the file is then imported; the summary's
    ``schema_yaml`` holds the inferred schema for the user to review. Raises
    :class:`ImportFailed` listing every problem (nothing is written),
    :class:`NotFound` for an unknown project, :class:`Conflict` when ``create`` names
    an existing one.
    """
    from labelloop import formats

    path = Path(path)
    if not path.is_file():
        raise ImportFailed(
            f"{path}: no such file", [FormatIssue(Location(str(path)), "no such file")]
        )
    fmt = format
    if fmt == "auto":
        try:
            fmt = formats.detect(path)
        except ValueError as exc:  # FormatError: the format cannot be told
            raise ImportFailed(f"{path}: cannot import", [str(exc)]) from None
    sha = file_sha256(path)

    def read(hints: SchemaHints | None) -> Iterator[Record | FormatIssue]:
        try:
            yield from formats.read(path, format=fmt, options=options, hints=hints)
        except ValueError as exc:  # FormatError raised before the first record
            yield FormatIssue(Location(str(path)), str(exc))

    if not create and fmt in _TABULAR and (options is None or options.task_type is None):
        # read label cells as the project's task type ("1" stays a label in a single project)
        from labelloop.formats import TabularOptions
        from labelloop.projects.service import get_project

        task_type = get_project(session, project).task_type
        options = dataclasses.replace(
            options or TabularOptions(), task_type=cast(TaskType, task_type)
        )

    nested = session.begin_nested()
    try:
        schema_yaml: str | None = None
        if create:
            from labelloop.projects.schemas import infer_schema
            from labelloop.projects.service import create_project

            if _project_exists(session, project):
                raise Conflict(
                    f"project {project!r} already exists; import without --create to add to it"
                )
            hints = SchemaHints()
            issues = _Issues()
            for rec in read(hints):
                if isinstance(rec, FormatIssue) and rec.severity == "error":
                    issues.add(rec)
            issues.raise_if_any(path.name)
            try:
                schema = infer_schema(hints)
            except ValidationFailed as exc:
                problems = [
                    FormatIssue(Location(str(path)), f"cannot infer a label schema: {v}")
                    for v in exc.violations
                ] or [FormatIssue(Location(str(path)), str(exc))]
                raise ImportFailed(f"{path.name}: import refused; {exc}", problems) from None
            create_project(session, actor=actor, name=project, schema=schema)
            schema_yaml = schema.to_yaml()
        summary = None
        if not create and FAST_PATH and fmt in ("csv", "parquet"):
            summary = _try_fast(
                session,
                actor=actor,
                project=project,
                path=path,
                fmt=fmt,
                options=options,
                sha256=sha,
                progress=progress,
            )
        if summary is None:
            summary = _run(
                session,
                actor=actor,
                project=project,
                records=read(None),
                source=fmt,
                filename=path.name,
                sha256=sha,
                progress=progress,
            )
    except BaseException:
        if nested.is_active:
            nested.rollback()
        raise
    nested.commit()
    if create:
        summary = dataclasses.replace(summary, created_project=True, schema_yaml=schema_yaml)
    return summary


def import_records(
    session: Session,
    *,
    actor: Actor,
    project: str,
    records: Iterable[Record | FormatIssue],
    source: str,
    filename: str,
    sha256: str,
    progress: ProgressFn | None = None,
) -> ImportSummary:
    """Import a stream of records (from a reader, or built in code as the demo does)
    into an existing project; same rules and guarantees as :func:`import_file`.

    ``source`` names the format or producer (stored as ``import:<source>`` on
    annotations and as the batch's format); ``filename`` and ``sha256`` identify the
    input in messages, the import batch and the ``import.file`` event.
    """
    nested = session.begin_nested()
    try:
        summary = _run(
            session,
            actor=actor,
            project=project,
            records=records,
            source=source,
            filename=filename,
            sha256=sha256,
            progress=progress,
        )
    except BaseException:
        if nested.is_active:
            nested.rollback()
        raise
    nested.commit()
    return summary


# -- internals ------------------------------------------------------------------------


def _project_exists(session: Session, name: str) -> bool:
    return session.scalar(select(Project.id).where(Project.name == name)) is not None


class _Issues:
    """Collects problems: keeps the first :data:`MAX_ISSUES`, counts all."""

    def __init__(self) -> None:
        self.first: list[FormatIssue] = []
        self.total = 0

    def add(self, issue: FormatIssue) -> None:
        self.total += 1
        if len(self.first) < MAX_ISSUES:
            self.first.append(issue)

    def raise_if_any(self, filename: str) -> None:
        if self.total:
            noun = "problem" if self.total == 1 else "problems"
            raise ImportFailed(
                f"{filename}: import refused, {self.total} {noun} found; nothing was written",
                self.first,
                self.total,
            )


def _loc_code(loc: Location | None, index: int) -> int:
    """A compact location for duplicate bookkeeping: the line, else -(record+1)."""
    if loc is not None and loc.line is not None:
        return loc.line
    if loc is not None and loc.record is not None:
        return -(loc.record + 1)
    return -(index + 1)


def _loc_text(code: int) -> str:
    """The text of a :func:`_loc_code`."""
    return f"line {code}" if code >= 0 else f"record {-code - 1}"


def _where(rec: Record, index: int, filename: str, field_path: str | None = None) -> Location:
    loc = rec.location
    if loc is None:
        return Location(filename, record=index, field=field_path)
    if field_path:
        base = loc.field
        full = f"{base}.{field_path}" if base and not field_path.startswith(base) else field_path
        return Location(loc.file, loc.line, loc.record, full)
    return loc


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _item_texts(rec: ItemRecord) -> tuple[str, str, str, str]:
    """The item's payload, metadata, segments and tags as canonical JSON text: stored
    as they are, and hashed to spot an item repeated with different content."""
    return (
        _canon(rec.payload) if rec.payload else "{}",
        _canon(rec.metadata) if rec.metadata else "{}",
        _canon(rec.segments) if rec.segments else "{}",
        _canon(list(rec.tags)) if rec.tags else "[]",
    )


@dataclass
class _Counts:
    items_created: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    ann_created: int = 0
    ann_updated: int = 0
    ann_unchanged: int = 0
    gold: int = 0
    gold_created: int = 0
    gold_updated: int = 0
    gold_unchanged: int = 0
    preds: int = 0
    preds_created: int = 0
    preds_updated: int = 0
    preds_unchanged: int = 0
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)


_Pending = tuple[AnnotationRecord | GoldRecord | PredictionRecord, int]


class _Run:
    """State of one import; see the module docstring."""

    def __init__(
        self,
        session: Session,
        *,
        actor: Actor,
        project: Project,
        schema: LabelSchema,
        source: str,
        filename: str,
        progress: ProgressFn | None,
    ) -> None:
        from labelloop.projects.validation import compile_validator, validate_value

        self.session = session
        self.actor = actor
        self.project = project
        self.schema = schema
        self.validate = compile_validator(schema)
        self.validate_value = validate_value
        self.source = source
        self.ann_source = f"import:{source}"[:50]
        self.filename = filename
        self.progress = progress
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.ts: Callable[[datetime | None], Any] = _pg_ts if self.pg else _sqlite_ts
        if not self.pg:
            # a bigger page cache for this connection keeps index inserts off the disk
            session.connection().exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        self.now = utcnow()
        # the guideline version in force when each annotation was made (at import time
        # for one without a submission time), unless the file names it
        self.guideline_at = guideline_timeline(session, project.id).at
        self.issues = _Issues()
        self.notices: list[str] = []
        self.c = _Counts()
        # items: external id -> index; per index the db id (0 = not written) and flags
        self.item_index: dict[str, int] = {}
        self.item_db: list[int] = []
        self.item_pre: list[bool] = []  # existed before this import
        self.item_def: dict[int, tuple[int, int]] = {}  # idx -> (signature, loc code)
        self.payloads: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.project_had_items = (
            session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1))
            is not None
        )
        # annotators: name -> index; per index the user id (0 = not resolved yet)
        self.annot_index: dict[str, int] = {}
        self.annot_uid: list[int] = []
        # duplicate detection
        self.ann_seen: dict[Any, int] = {}
        self.gold_seen: dict[int, tuple[int, int]] = {}  # idx -> (value signature, loc)
        self.pred_seen: dict[tuple[int, str, str], tuple[int, int]] = {}
        # the current batch
        self.batch_items: list[tuple[ItemRecord, int, tuple[str, str, str, str]]] = []
        self.batch_refs: list[_Pending] = []
        self.deferred: list[_Pending] = []

    # -- reading ------------------------------------------------------------------------

    def restore(self) -> None:
        """Give the connection back its default page cache (SQLite)."""
        if not self.pg:
            with contextlib.suppress(Exception):
                self.session.connection().exec_driver_sql("PRAGMA cache_size=-2000")

    @property
    def writing(self) -> bool:
        return self.issues.total == 0

    def error(self, loc: Location, reason: str) -> None:
        self.issues.add(FormatIssue(loc, reason))

    def feed(self, rec: Record | FormatIssue, index: int) -> None:
        if isinstance(rec, FormatIssue):
            if rec.severity == "error":
                self.issues.add(rec)
            else:
                self.c.warnings["format"] += 1
                if len(self.notices) < MAX_ISSUES:
                    self.notices.append(str(rec))
            return
        if isinstance(rec, ItemRecord):
            self._feed_item(rec, index)
        elif isinstance(rec, SkippedRecord):
            self.c.skipped[rec.reason] += 1
        elif isinstance(rec, AnnotationRecord | GoldRecord | PredictionRecord):
            self.batch_refs.append((rec, index))

    def _feed_item(self, rec: ItemRecord, index: int) -> None:
        loc = _loc_code(rec.location, index)
        texts = _item_texts(rec)
        sig = hash(texts)
        idx = self.item_index.get(rec.external_id)
        if idx is not None and idx in self.item_def:
            first_sig, first_loc = self.item_def[idx]
            if first_sig != sig:
                self.error(
                    _where(rec, index, self.filename),
                    f"item {rec.external_id!r} appears again with different content "
                    f"(first at {_loc_text(first_loc)})",
                )
            return
        if idx is None:
            idx = self._new_item_index(rec.external_id)
        self.item_def[idx] = (sig, loc)
        self.batch_items.append((rec, idx, texts))

    def _new_item_index(self, external_id: str, db_id: int = 0, pre: bool = False) -> int:
        idx = len(self.item_db)
        self.item_index[external_id] = idx
        self.item_db.append(db_id)
        self.item_pre.append(pre)
        return idx

    def _annotator_index(self, name: str) -> int:
        idx = self.annot_index.get(name)
        if idx is None:
            idx = len(self.annot_uid)
            self.annot_index[name] = idx
            self.annot_uid.append(0)
        return idx

    # -- batches --------------------------------------------------------------------------

    def flush(self, *, final: bool = False) -> None:
        batch_payloads: dict[int, dict[str, Any]] = {}
        self._flush_items(batch_payloads)
        refs = self.batch_refs
        self.batch_refs = []
        if final:
            refs = self.deferred + refs
            self.deferred = []
        self._resolve_refs(refs, final=final)
        anns: list[tuple[AnnotationRecord, int]] = []
        golds: list[tuple[GoldRecord, int]] = []
        preds: list[tuple[PredictionRecord, int]] = []
        known, deferred = self.item_index, self.deferred
        for pair in refs:
            rec = pair[0]
            if rec.item_external_id not in known:
                deferred.append(pair)
            elif rec.__class__ is AnnotationRecord:
                anns.append(pair)  # type: ignore[arg-type]
            elif rec.__class__ is GoldRecord:
                golds.append(pair)  # type: ignore[arg-type]
            else:
                preds.append(pair)  # type: ignore[arg-type]
        if anns:
            self._annotations(anns, batch_payloads)
        if golds:
            self._golds(golds)
        if preds:
            self._predictions(preds)
        if self.progress is not None:
            self.progress(self.c.records)

    def _remember_payload(self, idx: int, payload: dict[str, Any]) -> None:
        self.payloads[idx] = payload
        self.payloads.move_to_end(idx)
        while len(self.payloads) > _PAYLOAD_CACHE:
            self.payloads.popitem(last=False)

    def _flush_items(self, batch_payloads: dict[int, dict[str, Any]]) -> None:
        batch = self.batch_items
        self.batch_items = []
        if not batch:
            return
        for rec, idx, _loc in batch:
            batch_payloads[idx] = rec.payload
            self._remember_payload(idx, rec.payload)
        existing: dict[str, Any] = {}
        if self.project_had_items:
            existing = existing_items(
                self.session, self.project.id, [rec.external_id for rec, _i, _l in batch]
            )
        new_rows: list[tuple[Any, ...]] = []
        new_ids: dict[str, int] = {}
        now, pid = self.ts(self.now), self.project.id
        for rec, idx, texts in batch:
            row = existing.get(rec.external_id)
            if row is None:
                new_ids[rec.external_id] = idx
                new_rows.append((pid, rec.external_id, *texts, now))
                continue
            self.item_db[idx] = row.id
            self.item_pre[idx] = True
            before = {
                "payload": row.payload,
                "metadata": row.metadata,
                "segments": row.segments,
                "tags": row.tags,
            }
            after = {
                "payload": rec.payload,
                "metadata": rec.metadata,
                "segments": dict(rec.segments),
                "tags": list(rec.tags),
            }
            if _same(before, after):
                self.c.items_unchanged += 1
                continue
            self.c.items_updated += 1
            if self.writing:
                self.session.execute(
                    update(_items_t)
                    .where(_items_t.c.id == row.id)
                    .values(
                        payload=rec.payload,
                        metadata=rec.metadata,
                        segments=rec.segments,
                        tags=list(rec.tags),
                    )
                )
                trail.service.append(
                    self.session,
                    actor=self.actor.name,
                    action="item.update",
                    entity_type="item",
                    entity_id=row.id,
                    project_id=self.project.id,
                    before={"external_id": rec.external_id, **before},
                    after={"external_id": rec.external_id, **after},
                )
        self.c.items_created += len(new_rows)
        if new_rows and self.writing:
            for db_id, ext in _insert_items(self.session, new_rows, pg=self.pg):
                self.item_db[new_ids[ext]] = db_id

    def _resolve_refs(self, refs: list[_Pending], *, final: bool) -> None:
        """Find items referenced by records but not defined in the file so far: in the
        project (looked up by key), else defer them to the end of the file; at the end,
        what is still unknown is an error (naming another project that has the id)."""
        unknown = sorted(
            {r.item_external_id for r, _ in refs if r.item_external_id not in self.item_index}
        )
        if not unknown:
            return
        if self.project_had_items:
            for chunk in _chunks(unknown, _IN_CHUNK):
                rows = self.session.execute(
                    select(_items_t.c.id, _items_t.c.external_id, _items_t.c.payload).where(
                        _items_t.c.project_id == self.project.id, _items_t.c.external_id.in_(chunk)
                    )
                )
                for row in rows:
                    idx = self._new_item_index(row.external_id, row.id, pre=True)
                    self._remember_payload(idx, row.payload)
        if not final:
            return
        missing = [e for e in unknown if e not in self.item_index]
        if not missing:
            return
        elsewhere: dict[str, str] = {}
        for chunk in _chunks(missing, _IN_CHUNK):
            owners = self.session.execute(
                select(_items_t.c.external_id, Project.name)
                .join(Project, Project.id == _items_t.c.project_id)
                .where(_items_t.c.external_id.in_(chunk), _items_t.c.project_id != self.project.id)
            )
            for ext, pname in owners.tuples():
                elsewhere.setdefault(ext, pname)
        missing_set = set(missing)
        for rec, index in refs:
            ext = rec.item_external_id
            if ext not in missing_set:
                continue
            kind = {
                AnnotationRecord: "annotation",
                GoldRecord: "gold label",
                PredictionRecord: "prediction",
            }[type(rec)]
            if ext in elsewhere:
                reason = (
                    f"{kind} for item {ext!r}, which belongs to project {elsewhere[ext]!r}, not to "
                    f"{self.project.name!r}; items are keyed per project, so it cannot attach to it "
                    "(import the item into this project first, or import into that project)"
                )
            else:
                reason = (
                    f"{kind} for unknown item {ext!r}: the file does not define it and project "
                    f"{self.project.name!r} has no such item"
                )
            self.error(_where(rec, index, self.filename, "item"), reason)

    def _payload_of(self, idx: int, batch_payloads: dict[int, dict[str, Any]]) -> dict[str, Any]:
        payload = batch_payloads.get(idx)
        if payload is None:
            payload = self.payloads.get(idx)
        if payload is None and self.item_db[idx]:
            payload = self.session.scalar(
                select(_items_t.c.payload).where(_items_t.c.id == self.item_db[idx])
            )
            self._remember_payload(idx, payload or {})
        return payload or {}

    def _resolve_annotators(self, names: Iterable[str]) -> None:
        new = {n for n in names if self.annot_uid[self.annot_index[n]] == 0}
        if not new or not self.writing:
            return
        ids = ensure_users(
            self.session, actor=self.actor, usernames=new, project_id=self.project.id
        )
        for name, uid in ids.items():
            self.annot_uid[self.annot_index[name]] = uid

    def _annotations(
        self, batch: list[tuple[AnnotationRecord, int]], payloads: dict[int, dict[str, Any]]
    ) -> None:
        schema_type = self.schema.task_type
        valid: list[tuple[AnnotationRecord, int, int, int, list[dict[str, Any]]]] = []
        names: set[str] = set()
        item_index, annot_index, seen = self.item_index, self.annot_index, self.ann_seen
        validate, payload_of = self.validate, self._payload_of
        # payloads matter only for span offsets; skip the look-ups otherwise
        need_payload = schema_type == "spans"
        no_flags: list[dict[str, Any]] = []
        for rec, index in batch:
            idx = item_index[rec.item_external_id]
            name = rec.annotator or UNKNOWN_ANNOTATOR
            aidx = annot_index.get(name)
            if aidx is None:
                why = problem(name)
                if why is not None:
                    self.error(
                        _where(rec, index, self.filename, "annotator"), f"annotator {name!r} {why}"
                    )
                    continue
                aidx = self._annotator_index(name)
            ext = rec.external_id
            key: Any = (idx << 24) | aidx if not ext else (idx, aidx, ext)
            loc = rec.location
            code = loc.line if loc is not None and loc.line is not None else _loc_code(loc, index)
            first = seen.get(key)
            if first is not None:
                self.error(
                    _where(rec, index, self.filename),
                    f"duplicate annotation: item {rec.item_external_id!r}, annotator {name!r}"
                    + (f", annotation id {ext!r}" if ext else "")
                    + f" also at {_loc_text(first)}",
                )
                continue
            seen[key] = code
            if rec.task_type != schema_type:
                self.error(
                    _where(rec, index, self.filename, "value"),
                    f"a {rec.task_type} label, but project {self.project.name!r} "
                    f"is a {schema_type} project",
                )
                continue
            violations = validate(
                rec.value,
                attributes=rec.attributes,
                payload=payload_of(idx, payloads) if need_payload else None,
                active_seconds=rec.active_seconds,
                started_at=rec.started_at,
                submitted_at=rec.submitted_at,
            )
            flags = no_flags
            if violations:
                flags = []
                bad = False
                for v in violations:
                    if v.severity == "error":
                        bad = True
                        self.error(_where(rec, index, self.filename, v.field or "value"), v.message)
                    else:
                        flags.append(v.as_flag())
                if bad:
                    continue
            names.add(name)
            valid.append((rec, idx, aidx, code, flags))
        if not self.writing:
            return
        self._resolve_annotators(names)
        existing: dict[tuple[int, int, str], Any] = {}
        pre_ids = sorted({self.item_db[idx] for _r, idx, _a, _l, _f in valid if self.item_pre[idx]})
        for chunk in _chunks(pre_ids, _IN_CHUNK):
            rows = self.session.execute(select(_ann_t).where(_ann_t.c.item_id.in_(chunk)))
            for found in rows:
                existing[(found.item_id, found.annotator_id, found.external_key)] = found
        new_rows: list[tuple[Any, ...]] = []
        jv, ts, now = _json_text, self.ts, self.ts(self.now)
        pid, src = self.project.id, self.ann_source
        item_db, annot_uid, enc, sqlite = self.item_db, self.annot_uid, _encode_str, not self.pg
        append = new_rows.append
        for rec, idx, aidx, _loc, flags in valid:
            if flags:
                for f in flags:
                    self.c.warnings[f["code"]] += 1
            item_id, uid, ext = item_db[idx], annot_uid[aidx], rec.external_id or ""
            row = existing.get((item_id, uid, ext)) if existing else None
            if row is None:
                # inline fast paths of _json_text and _sqlite_ts for the common shapes
                value, started, submitted = rec.value, rec.started_at, rec.submitted_at
                append(
                    (
                        pid,
                        item_id,
                        uid,
                        ext,
                        enc(value) if value.__class__ is str else jv(value),
                        jv(rec.attributes) if rec.attributes else "{}",
                        started.isoformat(" ", "microseconds")[:26]
                        if sqlite and started is not None and started.tzinfo is UTC
                        else ts(started),
                        submitted.isoformat(" ", "microseconds")[:26]
                        if sqlite and submitted is not None and submitted.tzinfo is UTC
                        else ts(submitted),
                        rec.active_seconds,
                        rec.guideline_version or self.guideline_at(submitted or self.now),
                        src,
                        jv(flags) if flags else "[]",
                        now,
                        now,
                    )
                )
                continue
            fields = {
                "value": rec.value,
                "attributes": rec.attributes,
                "started_at": rec.started_at,
                "submitted_at": rec.submitted_at,
                "active_seconds": rec.active_seconds,
                # a file that names no version keeps the one stamped before
                "guideline_version": rec.guideline_version
                or row.guideline_version
                or self.guideline_at(rec.submitted_at or self.now),
                "flags": flags,
            }
            before = {k: getattr(row, k) for k in fields}
            if _same(before, fields):
                self.c.ann_unchanged += 1
                continue
            self.c.ann_updated += 1
            self.session.execute(
                update(_ann_t).where(_ann_t.c.id == row.id).values(**fields, updated_at=self.now)
            )
            changed = [k for k in fields if not _same(before[k], fields[k])]
            trail.service.append(
                self.session,
                actor=self.actor.name,
                action="annotation.update",
                entity_type="annotation",
                entity_id=row.id,
                project_id=self.project.id,
                before={k: before[k] for k in changed},
                after={
                    "item": rec.item_external_id,
                    "source": self.ann_source,
                    **{k: fields[k] for k in changed},
                },
            )
        self.c.ann_created += len(new_rows)
        _bulk_insert(self.session, _ann_t, _ANN_COLUMNS, new_rows, pg=self.pg)

    def _golds(self, batch: list[tuple[GoldRecord, int]]) -> None:
        valid: list[tuple[GoldRecord, int]] = []
        for rec, index in batch:
            idx = self.item_index[rec.item_external_id]
            sig = hash(_canon(rec.value))
            first = self.gold_seen.get(idx)
            if first is not None:
                if first[0] != sig:
                    self.error(
                        _where(rec, index, self.filename),
                        f"conflicting gold labels for item {rec.item_external_id!r} (also at {_loc_text(first[1])})",
                    )
                continue
            self.gold_seen[idx] = (sig, _loc_code(rec.location, index))
            self.c.gold += 1
            if not self._value_ok(rec, index, "gold", idx):
                continue
            valid.append((rec, idx))
        if not self.writing:
            return
        existing = self._existing(_gold_t, [idx for _r, idx in valid])
        new_rows = []
        for rec, idx in valid:
            item_id = self.item_db[idx]
            source = (rec.source or f"import:{self.source}")[:100]
            fields = {"value": rec.value, "rationale": rec.rationale, "source": source}
            row = existing.get((item_id,))
            if row is None:
                new_rows.append(
                    {
                        "project_id": self.project.id,
                        "item_id": item_id,
                        **fields,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                )
                continue
            before = {k: getattr(row, k) for k in fields}
            if _same(before, fields):
                self.c.gold_unchanged += 1
                continue
            self.c.gold_updated += 1
            self.session.execute(
                update(_gold_t).where(_gold_t.c.id == row.id).values(**fields, updated_at=self.now)
            )
            trail.service.append(
                self.session,
                actor=self.actor.name,
                action="gold.update",
                entity_type="gold_label",
                entity_id=row.id,
                project_id=self.project.id,
                before=before,
                after={"item": rec.item_external_id, **fields},
            )
        self.c.gold_created += len(new_rows)
        cols = ("project_id", "item_id", "value", "rationale", "source", "created_at", "updated_at")
        _bulk_insert(
            self.session, _gold_t, cols, _serialise(new_rows, cols, {"value"}, self.ts), pg=self.pg
        )

    def _predictions(self, batch: list[tuple[PredictionRecord, int]]) -> None:
        valid: list[tuple[PredictionRecord, int]] = []
        for rec, index in batch:
            idx = self.item_index[rec.item_external_id]
            key = (idx, rec.model_name, rec.model_version or "")
            sig = hash(_canon([rec.value, rec.probabilities, rec.score]))
            first = self.pred_seen.get(key)
            if first is not None:
                if first[0] != sig:
                    self.error(
                        _where(rec, index, self.filename),
                        f"conflicting predictions of model {rec.model_name!r} version "
                        f"{rec.model_version or ''!r} for item {rec.item_external_id!r} "
                        f"(also at {_loc_text(first[1])})",
                    )
                continue
            self.pred_seen[key] = (sig, _loc_code(rec.location, index))
            self.c.preds += 1
            if rec.value is not None and not self._value_ok(rec, index, "prediction", idx):
                continue
            valid.append((rec, idx))
        if not self.writing:
            return
        existing = self._existing(_pred_t, [idx for _r, idx in valid])
        new_rows = []
        for rec, idx in valid:
            item_id = self.item_db[idx]
            version = rec.model_version or ""
            fields = {"value": rec.value, "probabilities": rec.probabilities, "score": rec.score}
            row = existing.get((item_id, rec.model_name, version))
            if row is None:
                new_rows.append(
                    {
                        "project_id": self.project.id,
                        "item_id": item_id,
                        "model_name": rec.model_name,
                        "model_version": version,
                        **fields,
                        "created_at": self.now,
                    }
                )
                continue
            before = {k: getattr(row, k) for k in fields}
            if _same(before, fields):
                self.c.preds_unchanged += 1
                continue
            self.c.preds_updated += 1
            self.session.execute(update(_pred_t).where(_pred_t.c.id == row.id).values(**fields))
            trail.service.append(
                self.session,
                actor=self.actor.name,
                action="prediction.update",
                entity_type="prediction",
                entity_id=row.id,
                project_id=self.project.id,
                before=before,
                after={
                    "item": rec.item_external_id,
                    "model_name": rec.model_name,
                    "model_version": version,
                    **fields,
                },
            )
        self.c.preds_created += len(new_rows)
        cols = (
            "project_id",
            "item_id",
            "model_name",
            "model_version",
            "value",
            "probabilities",
            "score",
            "created_at",
        )
        rows = _serialise(new_rows, cols, {"value", "probabilities"}, self.ts)
        _bulk_insert(self.session, _pred_t, cols, rows, pg=self.pg)

    def _value_ok(
        self, rec: GoldRecord | PredictionRecord, index: int, kind: str, idx: int
    ) -> bool:
        if rec.task_type != self.schema.task_type:
            self.error(
                _where(rec, index, self.filename, "label"),
                f"a {rec.task_type} {kind}, but project {self.project.name!r} is a {self.schema.task_type} project",
            )
            return False
        ok = True
        payload = self._payload_of(idx, {}) if self.schema.task_type == "spans" else None
        for v in self.validate_value(self.schema, rec.value, "value", payload=payload):
            if v.severity == "error":
                ok = False
                self.error(_where(rec, index, self.filename, v.field or "label"), v.message)
        return ok

    def _existing(self, table: Table, idxs: Sequence[int]) -> dict[tuple[Any, ...], Any]:
        """Rows of ``table`` for items that existed before the import, by natural key."""
        pre = sorted({self.item_db[i] for i in idxs if self.item_pre[i]})
        out: dict[tuple[Any, ...], Any] = {}
        for chunk in _chunks(pre, _IN_CHUNK):
            for row in self.session.execute(select(table).where(table.c.item_id.in_(chunk))):
                key = (
                    (row.item_id,)
                    if table is _gold_t
                    else (row.item_id, row.model_name, row.model_version)
                )
                out[key] = row
        return out


def _same(a: Any, b: Any) -> bool:
    """Equality as stored: JSON round trip (tuples become lists, datetimes compared as such)."""
    if a == b:
        return True
    return bool(_canon(a) == _canon(b))


def existing_items(
    session: Session, project_id: int, external_ids: Sequence[str]
) -> dict[str, Any]:
    """The project's stored items among ``external_ids``, by external id (id, payload,
    metadata, segments, tags: what an import compares a record with)."""
    found: dict[str, Any] = {}
    for chunk in _chunks(external_ids, _IN_CHUNK):
        rows = session.execute(
            select(
                _items_t.c.id,
                _items_t.c.external_id,
                _items_t.c.payload,
                _items_t.c.metadata,
                _items_t.c.segments,
                _items_t.c.tags,
            ).where(_items_t.c.project_id == project_id, _items_t.c.external_id.in_(chunk))
        )
        for row in rows:
            found[row.external_id] = row
    return found


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_ITEM_COLUMNS = (
    "project_id",
    "external_id",
    "payload",
    "metadata",
    "segments",
    "tags",
    "created_at",
)
_ANN_COLUMNS = (
    "project_id",
    "item_id",
    "annotator_id",
    "external_key",
    "value",
    "attributes",
    "started_at",
    "submitted_at",
    "active_seconds",
    "guideline_version",
    "source",
    "flags",
    "created_at",
    "updated_at",
)
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _json_text(value: Any) -> str | None:
    """JSON text for a JSON column (SQL NULL for None), with fast paths for labels."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        return _encode_str(value)
    if (cls is dict or cls is list) and not value:
        return "{}" if cls is dict else "[]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _sqlite_ts(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite (UTC, no offset, microseconds)."""
    if value is None:
        return None
    tz = value.tzinfo
    if tz is not None and tz is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _pg_ts(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]], *, pg: bool
) -> None:
    """Insert rows of already-serialised values (JSON as text, timestamps via
    :func:`_sqlite_ts`/:func:`_pg_ts`) on the session's connection, inside its transaction:
    ``COPY`` on PostgreSQL (psycopg), ``executemany`` on SQLite."""
    if not rows:
        return
    raw: Any = session.connection().connection.dbapi_connection
    names = ", ".join(columns)
    if pg:
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    raw.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)


def _insert_items(
    session: Session, rows: list[tuple[Any, ...]], *, pg: bool
) -> Iterator[tuple[int, str]]:
    """Insert serialised item rows; yields (id, external_id) of each.

    PostgreSQL: multi-row ``INSERT ... RETURNING`` (a look-up right after a bulk load
    would be planned on stale statistics as a sequential scan). SQLite: ``executemany``,
    then the ids by key through the (project_id, external_id) unique index.
    """
    names = ", ".join(_ITEM_COLUMNS)
    if pg:
        raw: Any = session.connection().connection.dbapi_connection
        one = "(" + ", ".join("%s" for _ in _ITEM_COLUMNS) + ")"
        with raw.cursor() as cur:
            for chunk in _chunks(rows, 1000):
                values = ", ".join(one for _ in chunk)
                params = [v for row in chunk for v in row]
                cur.execute(
                    f"INSERT INTO items ({names}) VALUES {values} RETURNING id, external_id", params
                )
                yield from cur.fetchall()
        return
    _bulk_insert(session, _items_t, _ITEM_COLUMNS, rows, pg=False)
    project_id = rows[0][0]
    for chunk in _chunks([row[1] for row in rows], _IN_CHUNK):
        got = session.execute(
            select(_items_t.c.id, _items_t.c.external_id).where(
                _items_t.c.project_id == project_id, _items_t.c.external_id.in_(chunk)
            )
        )
        yield from got.tuples()


def _serialise(
    rows: list[dict[str, Any]], columns: Sequence[str], json_columns: set[str], ts: Any
) -> list[tuple[Any, ...]]:
    out = []
    for row in rows:
        out.append(
            tuple(
                _json_text(row[c])
                if c in json_columns
                else (ts(row[c]) if isinstance(row[c], datetime) else row[c])
                for c in columns
            )
        )
    return out


def _run(
    session: Session,
    *,
    actor: Actor,
    project: str,
    records: Iterable[Record | FormatIssue],
    source: str,
    filename: str,
    sha256: str,
    progress: ProgressFn | None,
) -> ImportSummary:
    from labelloop.projects.service import get_project, schema_of

    proj = get_project(session, project)
    require(session, actor, Permission.DATA_IMPORT, project_id=proj.id)
    schema = schema_of(proj)
    run = _Run(
        session,
        actor=actor,
        project=proj,
        schema=schema,
        source=source,
        filename=filename,
        progress=progress,
    )
    try:
        refs, feed = run.batch_refs, run.feed
        count = 0
        for count, rec in enumerate(records, start=1):
            cls = rec.__class__
            if cls is AnnotationRecord or cls is GoldRecord or cls is PredictionRecord:
                refs.append((rec, count - 1))  # type: ignore[arg-type]
            else:
                feed(rec, count - 1)
            if count % BATCH_SIZE == 0:
                run.c.records = count
                run.flush()
                refs = run.batch_refs
        run.c.records = count
        run.flush(final=True)
        c = run.c
        if c.records == 0 and not run.issues.total:
            run.error(Location(filename), "the file holds no items or annotations")
    finally:
        run.restore()
    run.issues.raise_if_any(filename)
    summary = ImportSummary(
        project=proj.name,
        project_id=proj.id,
        format=source,
        filename=filename,
        sha256=sha256,
        items_created=c.items_created,
        items_updated=c.items_updated,
        items_unchanged=c.items_unchanged,
        annotations_created=c.ann_created,
        annotations_updated=c.ann_updated,
        annotations_unchanged=c.ann_unchanged,
        gold=c.gold,
        gold_created=c.gold_created,
        gold_updated=c.gold_updated,
        predictions=c.preds,
        predictions_created=c.preds_created,
        predictions_updated=c.preds_updated,
        annotators=len(run.annot_index),
        records=c.records,
        skipped=dict(c.skipped),
        warnings=dict(c.warnings),
        notices=tuple(run.notices),
    )
    _record_import(session, actor=actor, project=proj, summary=summary)
    return summary


def _record_import(
    session: Session, *, actor: Actor, project: Project, summary: ImportSummary
) -> None:
    """The import batch (when anything changed) and the ``import.file`` event."""
    proj, filename, sha256, source = project, summary.filename, summary.sha256, summary.format
    counts = summary.counts()
    batch_id: int | None = None
    if summary.changed:
        batch = ImportBatch(
            project_id=proj.id,
            filename=filename[:500],
            sha256=sha256,
            format=source[:20],
            counts=counts,
            actor=actor.name,
        )
        session.add(batch)
        session.flush()
        batch_id = batch.id
    trail.service.append(
        session,
        actor=actor.name,
        action="import.file",
        entity_type="import_batch",
        entity_id=batch_id,
        project_id=proj.id,
        after={
            "filename": filename,
            "sha256": sha256,
            "format": source,
            "noop": not summary.changed,
            **counts,
        },
    )


def _try_fast(
    session: Session,
    *,
    actor: Actor,
    project: str,
    path: Path,
    fmt: str,
    options: TabularOptions | None,
    sha256: str,
    progress: ProgressFn | None,
) -> ImportSummary | None:
    """The columnar fast path under its own SAVEPOINT; None when the file needs the
    record path (what the fast path wrote is rolled back)."""
    from labelloop.formats import TabularOptions
    from labelloop.projects import _fastpath
    from labelloop.projects.service import get_project, schema_of

    proj = get_project(session, project)
    require(session, actor, Permission.DATA_IMPORT, project_id=proj.id)
    schema = schema_of(proj)
    if not _fastpath.eligible(fmt, options, schema):
        return None
    pg = session.get_bind().dialect.name == "postgresql"
    savepoint = session.begin_nested()
    try:
        if not pg:
            session.connection().exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
        try:
            got = _fastpath.run(
                session,
                actor=actor,
                path=path,
                fmt=fmt,
                options=options or TabularOptions(),
                project=proj,
                schema=schema,
                source=fmt,
                progress=progress,
            )
        finally:
            if not pg:
                with contextlib.suppress(Exception):
                    session.connection().exec_driver_sql("PRAGMA cache_size=-2000")
    except _fastpath.Fallback as exc:
        savepoint.rollback()
        _log.debug("import of %s: record path (%s)", path.name, exc)
        return None
    except Exception:
        # whatever went wrong (a database error, a bug), the record path decides what
        # the user sees, exactly as without the fast path
        if savepoint.is_active:
            savepoint.rollback()
        _log.warning(
            "import of %s: fast path failed; using the record path", path.name, exc_info=True
        )
        return None
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    summary = ImportSummary(
        project=proj.name,
        project_id=proj.id,
        format=fmt,
        filename=path.name,
        sha256=sha256,
        items_created=got.items_created,
        items_unchanged=got.items_unchanged,
        annotations_created=got.annotations_created,
        annotations_unchanged=got.annotations_unchanged,
        annotators=got.annotators,
        records=got.records,
    )
    _record_import(session, actor=actor, project=proj, summary=summary)
    savepoint.commit()
    return summary
