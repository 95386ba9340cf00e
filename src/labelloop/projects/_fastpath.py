"""Columnar fast path for long-form CSV/TSV/Parquet imports with a simple mapping.

The record path (:mod:`labelloop.projects.importer`) turns every row into Python
records; this path reads the file in Arrow batches (``pyarrow.csv.open_csv`` /
``ParquetFile.iter_batches``, every column as text), works on whole columns and writes
with ``executemany`` (SQLite) or one ``COPY`` per batch (PostgreSQL).

It is *optimistic*: it handles only files that import cleanly and change nothing that
already exists. Anything else -- a mapping it does not cover, a cell the record path
would reject or read in a special way, a duplicate, a clock warning, an existing row
whose content changed -- raises :class:`Fallback`; the caller then rolls back the
SAVEPOINT this path wrote under and runs the record path, so error messages, updates
and their trail events are exactly the record path's. Every decision that could differ
between the two (stripping, empty cells, label checks, timestamps, numbers) is either
computed once per distinct value with the record path's own functions, or done by
Arrow only on cells matching a strict pattern that both read identically, with the
record path's function as the per-cell fallback.

Eligible: task type ``single`` with no rules and no required annotation attributes,
not ``--create``; columns item/annotator/label plus optional started_at, submitted_at,
active_seconds, text and segment columns; none of annotation_id, gold, payload,
attributes, guideline_version, tags present or mapped; no payload/metadata columns, no
``fieldnames``.

PostgreSQL checks foreign keys with one trigger query per inserted row and key, which
costs more than the rest of the load. When :func:`fk_bypass_refusal` allows it (the role
may set ``session_replication_role``; the two tables have exactly the foreign keys listed
in :data:`FOREIGN_KEYS` and no other triggers or rules), this path checks those keys
itself with a few set-based queries per batch -- locking the referenced rows
``FOR KEY SHARE`` as the triggers would -- and runs each ``COPY`` with
``session_replication_role = replica`` set for that statement only (transaction-local,
restored right after). Otherwise the triggers do the checks. Each batch's annotations
``COPY`` runs on a worker thread while the next batch is read and checked; the connection
is used by one thread at a time (the main thread waits for the COPY before its next
statement).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from labelloop.formats._common import parse_datetime, parse_seconds
from labelloop.formats.records import SchemaHints

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray
    from sqlalchemy.orm import Session

    from labelloop.accounts.actor import Actor
    from labelloop.formats.tabular import TabularOptions
    from labelloop.projects.models import Project
    from labelloop.projects.schemas import LabelSchema

__all__ = ["FOREIGN_KEYS", "Fallback", "FastResult", "eligible", "fk_bypass_refusal", "run"]

_log = logging.getLogger(__name__)

#: Bytes of CSV per Arrow batch (about 25,000 rows of a typical long-form file).
CSV_BLOCK_BYTES = 4 << 20
#: SQLite: imports of at least this many rows (estimated) rebuild the annotations
#: table's secondary indexes after loading instead of updating them row by row.
REBUILD_INDEXES_MIN_ROWS = 200_000
#: Rows per Parquet batch.
PARQUET_BATCH_ROWS = 32768
#: Options that must be unset (or name a column absent from the file).
_UNSUPPORTED = (
    "annotation_id",
    "gold",
    "payload_column",
    "attributes_column",
    "guideline_version",
    "tag_column",
)
_ISO_TZ = re.compile(
    r"^(1\d{3}|[2-8]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
).pattern
_ISO_NAIVE = re.compile(
    r"^(1\d{3}|[2-8]\d{3})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?$"
).pattern
_DECIMAL = r"^\d{1,15}(\.\d{1,15})?$"
#: PostgreSQL: the foreign keys of the tables this path loads, as (table, column,
#: referenced table, referenced column) -- exactly the ones it checks itself when it
#: loads with the per-row triggers off. Any other foreign key keeps the triggers on.
FOREIGN_KEYS = frozenset(
    {
        ("annotations", "project_id", "projects", "id"),
        ("annotations", "item_id", "items", "id"),
        ("annotations", "annotator_id", "users", "id"),
        ("items", "project_id", "projects", "id"),
    }
)
#: ``LABELLOOP_IMPORT_FK_BYPASS=0`` keeps PostgreSQL's per-row foreign-key triggers on.
FK_BYPASS = os.environ.get("LABELLOOP_IMPORT_FK_BYPASS", "1") not in ("0", "false", "no")


class Fallback(Exception):
    """The file needs the record path (the reason is for logs and tests)."""


@dataclass
class FastResult:
    """What the fast path did; the importer turns it into an ``ImportSummary``."""

    items_created: int = 0
    items_unchanged: int = 0
    annotations_created: int = 0
    annotations_unchanged: int = 0
    annotators: int = 0
    records: int = 0
    batches: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    item: str
    annotator: str
    label: str
    started: str | None
    submitted: str | None
    active: str | None
    text: str | None
    segments: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> list[str]:
        cols = [self.item, self.annotator, self.label]
        for c in (self.started, self.submitted, self.active, self.text):
            if c is not None:
                cols.append(c)
        cols.extend(c for c, _n in self.segments)
        return list(dict.fromkeys(cols))


def eligible(fmt: str, options: TabularOptions | None, schema: LabelSchema) -> bool:
    """Whether the file's mapping and the schema allow the fast path at all."""
    from labelloop.formats.tabular import TabularOptions

    o = options or TabularOptions()
    if fmt not in ("csv", "parquet"):
        return False
    if schema.task_type != "single" or schema.rules:
        return False
    if any(a.required and schema.attribute_scope(a) == "annotation" for a in schema.attributes):
        return False
    if o.task_type not in (None, "single"):
        return False
    if o.annotator is None or o.label is None:
        return False
    return not (o.payload_columns or o.metadata_columns or o.fieldnames is not None)


def _plan(header: Sequence[str], file: str, options: TabularOptions) -> _Plan:
    from labelloop.formats.tabular import _LongForm

    form = _LongForm(file, options, SchemaHints())
    if form.resolve(header, 1):
        raise Fallback("column mapping problems")
    c = form.columns
    for name in _UNSUPPORTED:
        if c.get(name) is not None:
            raise Fallback(f"column {c[name]!r} ({name}) needs the record path")
    if len({name for _c, name in form.segments}) != len(form.segments):
        raise Fallback("two columns give the same segment")
    item, annotator, label = c["item"], c["annotator"], c["label"]
    if item is None or annotator is None or label is None:
        raise Fallback("item, annotator and label columns are needed")
    return _Plan(
        item=item,
        annotator=annotator,
        label=label,
        started=c["started_at"],
        submitted=c["submitted_at"],
        active=c["active_seconds"],
        text=c.get("text"),
        segments=tuple(form.segments),
    )


# -- reading -----------------------------------------------------------------------------


def _csv_batches(path: Path, options: TabularOptions) -> tuple[_Plan, Iterator[pa.RecordBatch]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from labelloop.formats._common import is_empty_file
    from labelloop.formats.tabular import sniff_delimiter

    if is_empty_file(path):
        raise Fallback("empty file")
    try:
        with path.open(encoding="utf-8-sig", errors="strict", newline="") as fh:
            first = fh.readline()
            delimiter = options.delimiter or sniff_delimiter(first)
            fh.seek(0)
            raw_header = next(csv.reader(fh, delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise Fallback(f"header: {exc}") from None
    if any(h[:1] == "'" for h in raw_header):
        raise Fallback("a header cell that may hold the spreadsheet-formula escape")
    header = [h.strip() for h in raw_header]
    if len(set(header)) != len(header) or len(delimiter) != 1:
        raise Fallback("duplicate column names or odd delimiter")
    plan = _plan(header, str(path), options)
    raw_of = dict(zip(header, raw_header, strict=True))
    wanted = [raw_of[c] for c in plan.columns]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=True),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char='"', double_quote=True, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in raw_header},
                include_columns=wanted,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError) as exc:
        raise Fallback(f"pyarrow cannot read the CSV: {exc}") from None
    if [n.strip() for n in reader.schema.names] != plan.columns:
        reader.close()
        raise Fallback("pyarrow reads the header differently")

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError) as exc:
                    raise Fallback(f"pyarrow: {exc}") from None
                # the record path reads '=x as =x (labelloop.formats.tabular.unescape_formula)
                if any(pc.any(pc.starts_with(col, "'")).as_py() for col in batch.columns):
                    raise Fallback("a cell that may hold the spreadsheet-formula escape")
                yield batch.rename_columns(plan.columns)
        finally:
            reader.close()

    return plan, batches()


def _parquet_batches(path: Path, options: TabularOptions) -> tuple[_Plan, Iterator[pa.RecordBatch]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise Fallback("empty file")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses
        raise Fallback(f"not readable: {exc}") from None
    names = list(parquet.schema_arrow.names)
    plan = _plan(names, str(path), options)
    for name in plan.columns:
        if parquet.schema_arrow.field(name).type not in (pa.string(), pa.large_string()):
            parquet.close()
            raise Fallback(f"column {name!r} is not text")

    def batches() -> Iterator[pa.RecordBatch]:
        with parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=plan.columns):
                arrays = [batch.column(n).cast(pa.string()).fill_null("") for n in plan.columns]
                yield pa.RecordBatch.from_arrays(arrays, names=plan.columns)

    return plan, batches()


# -- column helpers ------------------------------------------------------------------------


def _strings(arr: pa.Array) -> list[Any]:
    """A text column as a Python list (faster than ``to_pylist``)."""
    return list(arr.to_numpy(zero_copy_only=False).tolist())


#: Empty or only characters for which ``str.isspace()`` is true (the record path's
#: ``_empty``), as an RE2 pattern.
_BLANK = (
    r"^[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}]*$"
)
#: Characters ``json.dumps(..., ensure_ascii=False)`` escapes in a string.
_JSON_ESCAPED = r'[\x00-\x1f"\\]'


def _json_objects(fields: list[tuple[str, pa.Array]]) -> list[str]:
    """Per row, the JSON object of the non-empty cells of ``fields`` ((encoded key and
    colon, column) in key order), exactly as ``_canon`` writes it: vectorised when no
    cell needs escaping, else per row with the json module's own string encoder."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from labelloop.projects.importer import _encode_str as enc

    if not any(pc.any(pc.match_substring_regex(col, _JSON_ESCAPED)).as_py() for _k, col in fields):
        pieces = [
            pc.if_else(
                pc.match_substring_regex(col, _BLANK),
                "",
                pc.binary_join_element_wise(key + '"', col, '",', ""),
            )
            for key, col in fields
        ]
        joined = pc.binary_join_element_wise(*pieces, "") if len(pieces) > 1 else pieces[0]
        body = pc.utf8_rtrim(joined, characters=",")
        return _strings(pc.binary_join_element_wise("{", body, "}", pa.scalar("")))
    columns = [_strings(col) for _k, col in fields]
    keys = [k for k, _c in fields]
    return [
        "{"
        + ",".join(k + enc(v) for k, v in zip(keys, vals, strict=True) if v and not v.isspace())
        + "}"
        for vals in zip(*columns, strict=True)
    ]


def _empty(value: str) -> bool:
    return not value or value.isspace()


def _distinct(arr: pa.Array) -> tuple[NDArray[Any], list[str]]:
    """Dictionary-encode: per-row codes (first appearance order) and the distinct values."""
    import pyarrow.compute as pc

    enc = pc.dictionary_encode(arr)
    return enc.indices.to_numpy(zero_copy_only=False), enc.dictionary.to_pylist()


def _stamps(arr: pa.Array) -> pa.Array:
    """Timestamps (UTC, microseconds) as the record path reads them; empty -> null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    utc = pa.timestamp("us", tz="UTC")
    blank = pc.match_substring_regex(arr, r"^\s*$")
    if not pc.any(blank).as_py():
        try:
            if pc.all(pc.match_substring_regex(arr, _ISO_TZ)).as_py():
                return arr.cast(utc)
            if pc.all(pc.match_substring_regex(arr, _ISO_NAIVE)).as_py():
                return arr.cast(pa.timestamp("us")).cast(utc)
        except pa.ArrowException:
            pass  # e.g. 30 February: the record path says why
    out: list[datetime | None] = []
    for text in arr.to_pylist():
        if _empty(text):
            out.append(None)
            continue
        try:
            out.append(parse_datetime(text))
        except (ValueError, OverflowError):
            raise Fallback("a timestamp the record path rejects") from None
    return pa.array(out, type=utc)


def _seconds(arr: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.all(pc.match_substring_regex(arr, _DECIMAL)).as_py():
        return arr.cast(pa.float64())
    out: list[float | None] = []
    for text in arr.to_pylist():
        if _empty(text):
            out.append(None)
            continue
        try:
            out.append(parse_seconds(text))
        except ValueError:
            raise Fallback("active seconds the record path rejects") from None
    return pa.array(out, type=pa.float64())


def _sql_text(value: str) -> str:
    """A string as an SQL literal."""
    return "'" + value.replace("'", "''") + "'"


def _copy_text(value: str) -> str:
    """Escape a value for PostgreSQL's COPY text format."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


# -- PostgreSQL: foreign keys checked per batch ---------------------------------------------

_SCHEMA_QUERY = """
SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, f.attname,
       cardinality(c.conkey)
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1]
WHERE c.contype = 'f' AND c.conrelid IN ('annotations'::regclass, 'items'::regclass)
"""
_OTHER_TRIGGERS_QUERY = """
SELECT (SELECT count(*) FROM pg_trigger t
        WHERE t.tgrelid IN ('annotations'::regclass, 'items'::regclass)
          AND NOT (t.tgisinternal AND EXISTS (
              SELECT 1 FROM pg_constraint c WHERE c.oid = t.tgconstraint AND c.contype = 'f')))
     + (SELECT count(*) FROM pg_rewrite r
        WHERE r.ev_class IN ('annotations'::regclass, 'items'::regclass)
          AND r.rulename <> '_RETURN')
"""


def fk_bypass_refusal(session: Session) -> str | None:
    """PostgreSQL: why this import must leave the per-row foreign-key triggers on, or
    None when it may load with them off and check :data:`FOREIGN_KEYS` itself.

    Refused when switched off (``LABELLOOP_IMPORT_FK_BYPASS=0``), when ``items`` or
    ``annotations`` has a foreign key other than those, or any trigger or rule besides
    the foreign keys' own (``session_replication_role = replica`` would silence them),
    and when the role may not set ``session_replication_role`` (superusers may, and
    roles granted ``SET`` on it): tried once under a SAVEPOINT and set back.
    """
    from sqlalchemy.exc import DBAPIError

    if session.get_bind().dialect.name != "postgresql":
        return "not PostgreSQL"
    if not FK_BYPASS:
        return "switched off (LABELLOOP_IMPORT_FK_BYPASS)"
    conn = session.connection()
    found = conn.exec_driver_sql(_SCHEMA_QUERY).all()
    keys = {(str(t), str(c), str(rt), str(rc)) for t, c, rt, rc, n in found if n == 1}
    if keys != FOREIGN_KEYS or len(found) != len(FOREIGN_KEYS):
        return "the tables' foreign keys are not the ones this import checks"
    if conn.exec_driver_sql(_OTHER_TRIGGERS_QUERY).scalar():
        return "items or annotations has triggers or rules besides foreign keys"
    role = conn.exec_driver_sql("SELECT current_setting('session_replication_role')").scalar()
    savepoint = session.begin_nested()
    try:
        session.connection().exec_driver_sql(
            "SELECT set_config('session_replication_role', 'replica', true)"
        )
    except DBAPIError as exc:
        savepoint.rollback()
        return f"may not set session_replication_role ({exc.orig.__class__.__name__})"
    session.connection().exec_driver_sql(
        "SELECT set_config('session_replication_role', %(role)s, true)", {"role": role}
    )
    savepoint.commit()
    return None


# -- the import ------------------------------------------------------------------------------


class _Fast:
    def __init__(
        self,
        session: Session,
        *,
        actor: Actor,
        project: Project,
        schema: LabelSchema,
        plan: _Plan,
        source: str,
        progress: Callable[[int], None] | None,
    ) -> None:
        from labelloop.projects.importer import _pg_ts, _sqlite_ts
        from labelloop.projects.models import Item
        from labelloop.store.base import utcnow

        self.session = session
        self.actor = actor
        self.project = project
        self.plan = plan
        self.names = frozenset(schema.label_names)
        self.source = f"import:{source}"[:50]
        self.progress = progress
        self.pg = session.get_bind().dialect.name == "postgresql"
        now = utcnow()
        self.now: Any = _pg_ts(now) if self.pg else _sqlite_ts(now)
        self.had_items = (
            session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1))
            is not None
        )
        self.r = FastResult()
        self.item_index: dict[str, int] = {}  # external id -> global index
        self.item_db: list[int] = []  # global index -> items.id
        self.item_pre: list[bool] = []  # existed before this import
        self.annot_uid: dict[str, int] = {}  # annotator -> user id (0 = not created yet)
        self.pairs: set[int] = set()
        # PostgreSQL: load with the per-row foreign-key triggers off, checking the keys here
        self.fk_off = False
        self.replication_role = "origin"
        if self.pg:
            refusal = fk_bypass_refusal(session)
            if refusal is None:
                self._lock_project()
                self.fk_off = True
            else:
                _log.debug("import: foreign keys checked by triggers (%s)", refusal)
            self.r.extra["foreign_keys"] = "checked per batch" if self.fk_off else refusal
        # PostgreSQL: the annotations COPY runs on a worker thread (one at a time)
        self.worker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="labelloop-import")
            if self.pg
            else None
        )
        self.pending: Future[None] | None = None

    # PostgreSQL with the per-row foreign-key triggers off -------------------------------

    def _lock_project(self) -> None:
        """Lock the project row as the foreign-key triggers would (no one can delete it
        before this transaction ends), and note the replication role to restore."""
        conn = self.session.connection()
        self.replication_role = str(
            conn.exec_driver_sql("SELECT current_setting('session_replication_role')").scalar()
        )
        found = conn.exec_driver_sql(
            "SELECT id FROM projects WHERE id = %(p)s FOR KEY SHARE", {"p": self.project.id}
        ).first()
        if found is None:
            raise Fallback("the project is gone")

    def _lock_users(self, uids: list[int]) -> None:
        """Lock the annotators' user rows ``FOR KEY SHARE``: they exist and stay."""
        conn = self.session.connection()
        got = conn.exec_driver_sql(
            "SELECT count(*) FROM (SELECT 1 FROM users WHERE id = ANY(%(u)s) FOR KEY SHARE) AS t",
            {"u": uids},
        ).scalar()
        if got != len(set(uids)):
            raise Fallback("an annotator's account is gone")

    def _check_references(
        self, raw: Any, item_ids: NDArray[Any], uids: NDArray[Any], older: list[int]
    ) -> None:
        """A query or two per batch for what the triggers would check row by row: every
        item of the batch is in the project, every annotator exists; the items from
        before the import (``older``) are locked ``FOR KEY SHARE`` as the triggers would
        lock them. (Annotators were locked when resolved, the project at the start;
        items this import created are invisible to everyone else.)"""
        import numpy as np

        items, users = np.unique(item_ids).tolist(), np.unique(uids).tolist()
        # by primary key only: a project_id condition could be planned as a scan of the
        # project's items, which grows with every batch
        with raw.cursor() as cur:
            if older:
                cur.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM items WHERE id = ANY(%(i)s)"
                    " FOR KEY SHARE) AS t",
                    {"i": older},
                )
                locked = cur.fetchone()
                if locked is None or locked[0] != len(older):
                    raise Fallback("an item of the batch is gone")
            cur.execute(
                "SELECT count(*), count(*) FILTER (WHERE project_id = %(p)s),"
                " (SELECT count(*) FROM users WHERE id = ANY(%(u)s))"
                " FROM items WHERE id = ANY(%(i)s)",
                {"p": self.project.id, "i": items, "u": users},
            )
            got = cur.fetchone()
        if got is None or tuple(got) != (len(items), len(items), len(users)):
            raise Fallback("a foreign key of the batch does not resolve")

    def _copy(self, raw: Any, statement: str, data: bytes) -> None:
        """One ``COPY ... FROM STDIN`` of ``data`` on the psycopg connection ``raw``; with
        :attr:`fk_off`, under ``session_replication_role = replica`` for this statement
        only. (Should the COPY fail, the caller's SAVEPOINT rollback restores the role.)"""
        with raw.cursor() as cur:
            if self.fk_off:
                cur.execute("SELECT set_config('session_replication_role', 'replica', true)")
            with cur.copy(statement) as copy:
                copy.write(data)
            if self.fk_off:
                cur.execute(
                    "SELECT set_config('session_replication_role', %s, true)",
                    (self.replication_role,),
                )

    # one batch ---------------------------------------------------------------------------

    def batch(self, batch: pa.RecordBatch) -> None:
        import numpy as np

        n = batch.num_rows
        if n == 0:
            return
        p = self.plan
        # labels: one check per distinct value
        label_codes, label_raw = _distinct(batch.column(p.label))
        label_vals: list[str] = []
        for raw in label_raw:
            if _empty(raw):
                raise Fallback("a row without a label")
            text = raw.strip()
            if text[:1] in ("[", "{") or text not in self.names:
                raise Fallback("a label the record path reads or rejects")
            label_vals.append(text)
        # annotators (an empty cell is the "unknown" user: the record path's business)
        ann_codes, ann_raw = _distinct(batch.column(p.annotator))
        if any(_empty(a) for a in ann_raw):
            raise Fallback("a row without an annotator")
        ann_names = [a.strip() for a in ann_raw]
        # items
        item_codes, item_raw = _distinct(batch.column(p.item))
        item_ext: list[str] = []
        for raw in item_raw:
            if _empty(raw):
                raise Fallback("an empty item id")
            item_ext.append(raw.strip())
        # timestamps and seconds (vectorised; the record path's parser on odd cells)
        started = _stamps(batch.column(p.started)) if p.started else None
        submitted = _stamps(batch.column(p.submitted)) if p.submitted else None
        if started is not None and submitted is not None:
            import pyarrow.compute as pc

            if pc.any(pc.less(submitted, started)).as_py():
                raise Fallback("submitted before started (a clock warning)")
        active = _seconds(batch.column(p.active)) if p.active else None

        # duplicate (item, annotator) pairs, in the batch and across batches
        new_items = self._items(batch, item_codes, item_ext)
        item_g = np.fromiter(
            (self.item_index[e] for e in item_ext), dtype=np.int64, count=len(item_ext)
        )
        for name in ann_names:
            if name not in self.annot_uid:
                self.annot_uid[name] = 0
        if len(self.annot_uid) >= 1 << 24:
            raise Fallback("too many annotators for the pair keys")
        order = {name: i for i, name in enumerate(self.annot_uid)}
        ann_g = np.array([order[a] for a in ann_names], dtype=np.int64)
        row_items = item_g[item_codes]
        keys = (row_items << 24) | ann_g[ann_codes]
        before = len(self.pairs)
        self.pairs.update(keys.tolist())
        if len(self.pairs) - before != n:
            raise Fallback("a duplicate annotation")

        ext = self._pair_ids(item_ext, item_codes, ann_names, ann_codes)

        # write: items, users, then annotations (once the previous batch's COPY is done)
        self.drain()
        self._write_items(batch, new_items)
        self._users(set(ann_names))
        uid_by_code = np.array([self.annot_uid[a] for a in ann_names], dtype=np.int64)
        db_by_code = np.array([self.item_db[g] for g in item_g], dtype=np.int64)
        item_ids = db_by_code[item_codes]
        uids = uid_by_code[ann_codes]
        mask = None
        older: list[int] = []  # items from before the import that get new annotations
        pre_codes = [i for i, g in enumerate(item_g) if self.item_pre[g]]
        if pre_codes:
            pre_rows = np.isin(item_codes, np.array(pre_codes))
            mask = self._existing(
                item_ids,
                uids,
                ext,
                [label_vals[c] for c in label_codes.tolist()],
                started,
                submitted,
                active,
                pre_rows,
            )
            older = np.unique(item_ids[pre_rows & mask]).tolist()
        self._write_annotations(
            item_ids, uids, ext, label_codes, label_vals, started, submitted, active, mask, older
        )
        self.r.records += n + len(new_items)
        self.r.batches += 1
        if self.progress is not None:
            self.progress(self.r.records)

    def _items(
        self, batch: pa.RecordBatch, item_codes: NDArray[Any], item_ext: list[str]
    ) -> list[tuple[str, int]]:
        """Register the batch's items not seen earlier in the file: [(external id, row)]."""
        import numpy as np

        _u, first_rows = np.unique(item_codes, return_index=True)
        new: list[tuple[str, int]] = []
        index = self.item_index
        for code, ext in enumerate(item_ext):
            if ext not in index:
                index[ext] = len(self.item_db)
                self.item_db.append(0)
                self.item_pre.append(False)
                new.append((ext, int(first_rows[code])))
        return new

    def _write_items(self, batch: pa.RecordBatch, new: list[tuple[str, int]]) -> None:
        import pyarrow as pa

        from labelloop.projects.importer import _encode_str, _same

        if not new:
            return
        p, enc = self.plan, _encode_str
        take = pa.array([r for _e, r in new], type=pa.int64())
        exts = [e for e, _r in new]
        # item JSON as _canon gives it for these shapes (sorted keys, no spaces, not
        # ASCII-only): {"text": ...} and {segment: value, ...} without empty cells
        payloads = (
            _json_objects([('"text":', batch.column(p.text).take(take))])
            if p.text
            else ["{}"] * len(new)
        )
        segs = sorted((name, col) for col, name in p.segments)
        segments = (
            _json_objects([(enc(name) + ":", batch.column(col).take(take)) for name, col in segs])
            if segs
            else ["{}"] * len(new)
        )
        existing: dict[str, Any] = {}
        if self.had_items:
            from labelloop.projects.importer import existing_items

            existing = existing_items(self.session, self.project.id, exts)
        import json

        new_rows: list[tuple[str, str, str]] = []
        for ext, payload, segment in zip(exts, payloads, segments, strict=True):
            row = existing.get(ext) if existing else None
            if row is None:
                new_rows.append((ext, payload, segment))
                continue
            g = self.item_index[ext]
            self.item_db[g] = row.id
            self.item_pre[g] = True
            before = {
                "payload": row.payload,
                "metadata": row.metadata,
                "segments": row.segments,
                "tags": row.tags,
            }
            after = {
                "payload": json.loads(payload),
                "metadata": {},
                "segments": json.loads(segment),
                "tags": [],
            }
            if not _same(before, after):
                raise Fallback("an existing item changed")
            self.r.items_unchanged += 1
        self.r.items_created += len(new_rows)
        if new_rows:
            ids = self._item_ids(len(new_rows))
            for db_id, row in zip(ids, new_rows, strict=True):
                self.item_db[self.item_index[row[0]]] = db_id
            self._insert_items(ids, new_rows)

    def _item_ids(self, n: int) -> list[int]:
        """Ids for ``n`` new items, the ones the database would give them: the next
        values of the sequence (PostgreSQL), or max(id)+1... (SQLite: the rowid rule;
        this transaction holds the write lock)."""
        conn = self.session.connection()
        if self.pg:
            got = conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('items', 'id')) "
                "FROM generate_series(1, %(n)s)",
                {"n": n},
            )
            return sorted(int(v) for (v,) in got)
        top = conn.exec_driver_sql("SELECT max(id) FROM items").scalar()
        first = int(top or 0) + 1
        return list(range(first, first + n))

    def _insert_items(self, ids: list[int], rows: list[tuple[str, str, str]]) -> None:
        raw: Any = self.session.connection().connection.dbapi_connection
        names = "id, project_id, external_id, payload, metadata, segments, tags, created_at"
        pid, now = self.project.id, self.now
        if not self.pg:
            raw.executemany(
                f"INSERT INTO items ({names}) VALUES "
                f"(?, {int(pid)}, ?, ?, '{{}}', ?, '[]', {_sql_text(now)})",
                [
                    (i, ext, payload, segments)
                    for i, (ext, payload, segments) in zip(ids, rows, strict=True)
                ],
            )
            return
        stamp, esc = now.isoformat(" "), _copy_text
        text = "".join(
            f"{i}\t{pid}\t{esc(ext)}\t{esc(payload)}\t{{}}\t{esc(segments)}\t[]\t{stamp}\n"
            for i, (ext, payload, segments) in zip(ids, rows, strict=True)
        )
        self._copy(raw, f"COPY items ({names}) FROM STDIN", text.encode("utf-8"))

    def _users(self, names: set[str]) -> None:
        from labelloop.accounts.service import ensure_users

        todo = {n for n in names if self.annot_uid[n] == 0}
        if not todo:
            return
        ids = ensure_users(
            self.session, actor=self.actor, usernames=todo, project_id=self.project.id
        )
        for name, uid in ids.items():
            self.annot_uid[name] = uid
        if self.fk_off:
            self._lock_users(list(ids.values()))

    @staticmethod
    def _pair_ids(
        item_ext: list[str], item_codes: NDArray[Any], ann_names: list[str], ann_codes: NDArray[Any]
    ) -> list[str]:
        """``formats._common.pair_id`` per row (item, annotator)."""
        blake = hashlib.blake2b
        items = [e.encode("utf-8") for e in item_ext]
        suffix = [f"\x1f{a}".encode() for a in ann_names]
        return [
            "h:" + blake(items[i] + suffix[a], digest_size=10).hexdigest()
            for i, a in zip(item_codes.tolist(), ann_codes.tolist(), strict=True)
        ]

    def _existing(
        self,
        item_ids: NDArray[Any],
        uids: NDArray[Any],
        ext: list[str],
        values: list[str],
        started: pa.Array | None,
        submitted: pa.Array | None,
        active: pa.Array | None,
        pre: NDArray[Any],
    ) -> NDArray[Any]:
        """Rows of items that existed before: those already stored must be unchanged
        (else :class:`Fallback`); returns the mask of rows to insert."""
        import numpy as np

        from labelloop.projects.importer import _IN_CHUNK, _ann_t, _chunks, _same

        found: dict[tuple[int, int, str], Any] = {}
        for chunk in _chunks(sorted(set(item_ids[pre].tolist())), _IN_CHUNK):
            for row in self.session.execute(select(_ann_t).where(_ann_t.c.item_id.in_(chunk))):
                found[(row.item_id, row.annotator_id, row.external_key)] = row
        insert = np.ones(len(ext), dtype=bool)
        if not found:
            return insert
        s_list = started.to_pylist() if started is not None else None
        e_list = submitted.to_pylist() if submitted is not None else None
        a_list = active.to_pylist() if active is not None else None
        for i in np.flatnonzero(pre).tolist():
            stored = found.get((int(item_ids[i]), int(uids[i]), ext[i]))
            if stored is None:
                continue
            fields = {
                "value": values[i],
                "attributes": {},
                "started_at": s_list[i] if s_list is not None else None,
                "submitted_at": e_list[i] if e_list is not None else None,
                "active_seconds": a_list[i] if a_list is not None else None,
                "guideline_version": None,
                "flags": [],
            }
            before = {k: getattr(stored, k) for k in fields}
            if not _same(before, fields):
                raise Fallback("an existing annotation changed")
            insert[i] = False
            self.r.annotations_unchanged += 1
        return insert

    def _write_annotations(
        self,
        item_ids: NDArray[Any],
        uids: NDArray[Any],
        ext: list[str],
        label_codes: NDArray[Any],
        label_vals: list[str],
        started: pa.Array | None,
        submitted: pa.Array | None,
        active: pa.Array | None,
        mask: NDArray[Any] | None,
        older: list[int],
    ) -> None:
        import numpy as np
        import pyarrow as pa

        from labelloop.projects.importer import _ANN_COLUMNS, _encode_str

        if mask is not None:
            keep = np.flatnonzero(mask)
            if len(keep) == 0:
                return
            idx = pa.array(keep)
            item_ids, uids, label_codes = item_ids[keep], uids[keep], label_codes[keep]
            ext = [ext[i] for i in keep.tolist()]
            started = started.take(idx) if started is not None else None
            submitted = submitted.take(idx) if submitted is not None else None
            active = active.take(idx) if active is not None else None
        n = len(ext)
        self.r.annotations_created += n
        json_vals = [_encode_str(v) for v in label_vals]
        pid = self.project.id
        raw: Any = self.session.connection().connection.dbapi_connection
        names = ", ".join(_ANN_COLUMNS)
        if not self.pg:

            def stamps(a: pa.Array | None) -> Any:
                if a is None:
                    return repeat(None, n)
                return _strings(a.cast(pa.timestamp("us")).cast(pa.string()))

            # constant columns as SQL literals: fewer parameters to bind per row
            rows = zip(
                item_ids.tolist(),
                uids.tolist(),
                ext,
                np.array(json_vals, dtype=object)[label_codes].tolist(),
                stamps(started),
                stamps(submitted),
                (active.to_pylist() if active.null_count else active.to_numpy().tolist())
                if active is not None
                else repeat(None, n),
                strict=False,
            )
            values = (
                f"{int(pid)}, ?, ?, ?, ?, '{{}}', ?, ?, ?, NULL, {_sql_text(self.source)}, "
                f"'[]', {_sql_text(self.now)}, {_sql_text(self.now)}"
            )
            raw.executemany(f"INSERT INTO annotations ({names}) VALUES ({values})", rows)
            return
        args = (n, item_ids, uids, ext, label_codes, json_vals, started, submitted, active)

        def load() -> None:
            data = self._copy_payload(*args)
            if self.fk_off:
                self._check_references(raw, item_ids, uids, older)
            self._copy(raw, f"COPY annotations ({names}) FROM STDIN", data)

        # the server's work overlaps reading and checking the next batch (the connection
        # is not used elsewhere until :meth:`drain`)
        assert self.pending is None and self.worker is not None
        self.pending = self.worker.submit(load)

    def drain(self) -> None:
        """Wait for the annotations COPY in flight (PostgreSQL); raises what it raised."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Wait for any COPY still in flight and stop the worker thread. Its error, if
        any, is dropped: :meth:`drain` raised it already, or another error is on its way
        and the caller rolls the SAVEPOINT back either way."""
        pending, self.pending = self.pending, None
        if pending is not None:
            wait([pending])
        if self.worker is not None:
            self.worker.shutdown(wait=True)

    def _copy_payload(
        self,
        n: int,
        item_ids: NDArray[Any],
        uids: NDArray[Any],
        ext: list[str],
        label_codes: NDArray[Any],
        json_vals: list[str],
        started: pa.Array | None,
        submitted: pa.Array | None,
        active: pa.Array | None,
    ) -> bytes:
        """The batch as COPY text, built column-wise by Arrow."""
        import pyarrow as pa
        import pyarrow.compute as pc

        null = "\\N"

        def stamps(a: pa.Array | None) -> Any:
            if a is None:
                return null
            text = a.cast(pa.timestamp("us")).cast(pa.string())
            return pc.fill_null(pc.binary_join_element_wise(text, "+00", ""), null)

        values = pa.DictionaryArray.from_arrays(
            pa.array(label_codes, type=pa.int32()),
            pa.array([_copy_text(v) for v in json_vals]),
        ).cast(pa.string())
        now = self.now.isoformat(" ") + "\n"
        cols: list[Any] = [
            str(self.project.id),
            pa.array(item_ids).cast(pa.string()),
            pa.array(uids).cast(pa.string()),
            pa.array([_copy_text(e) for e in ext], type=pa.string()),
            values,
            "{}",
            stamps(started),
            stamps(submitted),
            pc.fill_null(active.cast(pa.string()), null) if active is not None else null,
            null,
            _copy_text(self.source),
            "[]",
            self.now.isoformat(" "),
            now,
        ]
        lines = pc.binary_join_element_wise(*cols, "\t")
        if lines.null_count:
            raise Fallback("internal: a null in the COPY text")
        import numpy as np

        _validity, offsets_buf, data = lines.buffers()
        offsets = np.frombuffer(offsets_buf, dtype=np.int32)[lines.offset : lines.offset + n + 1]
        payload: bytes = data.to_pybytes()[int(offsets[0]) : int(offsets[-1])]
        return payload


def _estimate_rows(path: Path, fmt: str, first_batch: int) -> int:
    """Rows in the file, estimated from the first batch (CSV) or read (Parquet)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return int(first_batch * max(1.0, path.stat().st_size / CSV_BLOCK_BYTES))


def _drop_indexes(session: Session, rows: int) -> list[str]:
    """SQLite, large imports: drop the annotations table's secondary indexes for the
    load and return the statements that recreate them (run before the import ends, in
    the same transaction, so the schema is unchanged whatever happens). Building an
    index once from sorted keys is much cheaper than a million random B-tree inserts;
    done only when the import adds at least as many rows as the table holds, so the
    rebuild costs no more than the inserts it saves."""
    if rows < REBUILD_INDEXES_MIN_ROWS:
        return []
    conn = session.connection()
    held = conn.exec_driver_sql("SELECT max(id) FROM annotations").scalar() or 0
    if int(held) > rows:
        return []
    found = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'annotations' AND sql IS NOT NULL ORDER BY name"
    ).all()
    for name, _sql in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _name, sql in found]


def run(
    session: Session,
    *,
    actor: Actor,
    path: Path,
    fmt: str,
    options: TabularOptions,
    project: Project,
    schema: LabelSchema,
    source: str,
    progress: Callable[[int], None] | None,
) -> FastResult:
    """Import ``path`` the columnar way, or raise :class:`Fallback` (the caller rolls
    back what was written and uses the record path)."""
    from labelloop.guidelines.timeline import timeline

    if timeline(session, project.id).numbers:
        raise Fallback("the project has guideline versions to stamp on each annotation")
    plan, batches = _csv_batches(path, options) if fmt == "csv" else _parquet_batches(path, options)
    fast = _Fast(
        session,
        actor=actor,
        project=project,
        schema=schema,
        plan=plan,
        source=source,
        progress=progress,
    )
    rebuild: list[str] = []
    try:
        for batch in batches:
            if fast.r.batches == 0 and not fast.pg:
                rebuild = _drop_indexes(session, _estimate_rows(path, fmt, batch.num_rows))
            fast.batch(batch)
        fast.drain()
        for sql in rebuild:
            session.connection().exec_driver_sql(sql)
    finally:
        fast.close()
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if fast.r.records == 0:
        raise Fallback("no rows")
    fast.r.annotators = len(fast.annot_uid)
    return fast.r
