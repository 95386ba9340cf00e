"""Long-form tables: one row per annotation (CSV/TSV, JSONL, Parquet), read and written
in a streaming way (memory grows only with the number of distinct items/annotations
kept for duplicate checks, never with the file).

CSV is also opened by spreadsheets, which run a cell starting with ``=``, ``+``, ``-``,
``@``, tab or CR as a formula (OWASP "CSV Injection"). The CSV writer therefore
escapes such text cells with a leading ``'`` (:func:`escape_formula`) unless asked for
raw cells, and the CSV reader removes exactly that escape (:func:`unescape_formula`),
so an escaped export reads back as what was stored.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from labelloop.formats._common import (
    as_str,
    describe,
    empty_file_issue,
    is_empty_file,
    iter_lines,
    pair_id,
    parse_datetime,
    parse_seconds,
)
from labelloop.formats.records import (
    TASK_TYPES,
    AnnotationRecord,
    FormatIssue,
    GoldRecord,
    ItemRecord,
    JSONValue,
    Location,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)

LongFormat = Literal["csv", "jsonl", "parquet"]
SEGMENT_PREFIXES = ("segment_", "segment.")
PARQUET_BATCH_ROWS = 8192
#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_ESCAPE_FIRST = FORMULA_TRIGGERS | {"'"}
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _formula_like(text: str) -> bool:
    """Whether ``text`` needs the ``'`` escape: it starts with a formula trigger and is
    not a plain number (``-1`` and ``+2.5`` stay numbers), or it starts with ``'``
    followed by such text (so :func:`unescape_formula` can tell an escape from a
    ``'`` that was typed)."""
    rest = text.lstrip("'")
    return rest[:1] in FORMULA_TRIGGERS and _PLAIN_NUMBER.fullmatch(rest) is None


def escape_formula(text: str) -> str:
    """``text`` made safe for a spreadsheet cell: prefixed with ``'`` when it could run
    as a formula (see :func:`_formula_like`), else unchanged. Reversed exactly by
    :func:`unescape_formula`."""
    if text[:1] not in _ESCAPE_FIRST:  # the common case, checked cheaply
        return text
    return "'" + text if _formula_like(text) else text


def unescape_formula(text: str) -> str:
    """The inverse of :func:`escape_formula`: drops the one leading ``'`` that it adds,
    and changes nothing else (``unescape_formula(escape_formula(s)) == s`` for every
    string)."""
    return text[1:] if text[:1] == "'" and _formula_like(text[1:]) else text


@dataclass(slots=True)
class TabularOptions:
    """Column mapping for long-form files (one row per annotation).

    ``item`` is required; ``annotator`` and ``label`` are required unless set to ``None``
    (``label=None`` reads items, and gold when mapped, without annotations). The other
    columns are optional: with their default names they are used when present; a name
    you set must exist. ``segment_columns=None`` takes every column prefixed ``segment_``
    or ``segment.`` (the prefix is dropped from the segment name). ``fieldnames`` names the
    columns of a CSV without a header row; ``delimiter=None`` sniffs it from the first line.
    """

    item: str = "item_id"
    annotator: str | None = "annotator"
    label: str | None = "label"
    started_at: str | None = "started_at"
    submitted_at: str | None = "submitted_at"
    active_seconds: str | None = "active_seconds"
    annotation_id: str | None = "annotation_id"
    gold: str | None = "gold"
    text: str | None = "text"
    payload_columns: Sequence[str] = ()
    segment_columns: Sequence[str] | None = None
    metadata_columns: Sequence[str] = ()
    tag_column: str | None = "tags"
    tag_separator: str = "|"
    task_type: TaskType | None = None
    multi_separator: str | None = None
    delimiter: str | None = None
    fieldnames: Sequence[str] | None = None
    payload_column: str | None = "payload"
    attributes_column: str | None = "attributes"
    guideline_version: str | None = "guideline_version"


_DEFAULTS = TabularOptions()
_OPTIONAL = (
    "started_at",
    "submitted_at",
    "active_seconds",
    "annotation_id",
    "gold",
    "text",
    "tag_column",
    "payload_column",
    "attributes_column",
    "guideline_version",
)


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (the task type is ordinal)") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _spans(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(s, dict) and isinstance(s.get("label"), str) for s in value
    ):
        raise ValueError("spans must be a JSON list of objects with a 'label'")
    return value


def infer_value(
    raw: object, task_type: str | None = None, separator: str | None = None
) -> tuple[JSONValue, TaskType]:
    """A cell -> (canonical value, task type). With ``task_type`` the cell is coerced to
    it; without, JSON lists become multi (or spans when they hold objects), numbers
    ordinal, and text single (split on ``separator`` into multi when it occurs)."""
    if isinstance(raw, str):
        text = raw.strip()
        if task_type == "single" and text[:1] not in ("[", "{"):
            return text, "single"
        if text[:1] in ("[", "{"):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError:
                raw = text
        else:
            raw = text
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}")
    if task_type == "single" or task_type == "text":
        if isinstance(raw, list | dict):
            raise ValueError(f"expected one label, found {describe(raw)}")
        return (str(raw).lower() if isinstance(raw, bool) else as_str(raw)), task_type
    if task_type == "multi":
        if isinstance(raw, list):
            return sorted({as_str(x) for x in raw}), "multi"
        if isinstance(raw, dict):
            raise ValueError("expected a list of labels, found an object")
        text = as_str(raw)
        parts = text.split(separator) if separator else [text]
        return sorted({p.strip() for p in parts if p.strip()}), "multi"
    if task_type == "ordinal":
        if isinstance(raw, bool | list | dict):
            raise ValueError(f"expected a number, found {describe(raw)}")
        return (raw if isinstance(raw, int | float) else _number(str(raw))), "ordinal"
    if task_type == "spans":
        return _spans(raw), "spans"
    # infer
    if isinstance(raw, list):
        if raw and all(isinstance(x, dict) for x in raw):
            return _spans(raw), "spans"
        if all(isinstance(x, str | int | float) for x in raw):
            return sorted({as_str(x) for x in raw}), "multi"
        raise ValueError("a label list must hold label names or span objects")
    if isinstance(raw, dict):
        raise ValueError("expected a label, found an object")
    if isinstance(raw, bool):
        return str(raw).lower(), "single"
    if isinstance(raw, int | float):
        return raw, "ordinal"
    text = str(raw)
    if separator and separator in text:
        return sorted({p.strip() for p in text.split(separator) if p.strip()}), "multi"
    return text, "single"


def _empty(value: object) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and (not value or value.isspace())


class _LongForm:
    """Turns row dicts into records, checking duplicates and type consistency."""

    def __init__(self, file: str, options: TabularOptions, hints: SchemaHints) -> None:
        self.file = file
        self.o = options
        self.hints = hints
        self.task_type: TaskType | None = options.task_type or hints.task_type
        if self.task_type is not None and hints.task_type is None:
            hints.task_type = self.task_type
        self.items: set[str] = set()
        # positions are kept as ints (the line, or the record for Parquet) to save memory
        self.golds: dict[str, tuple[JSONValue, int]] = {}
        self.annotation_ids: dict[str, int] = {}
        self.pairs: dict[int, int] = {}
        self.columns: dict[str, str | None] = {}
        self.segments: list[tuple[str, str]] = []
        self._new_gold: GoldRecord | None = None
        self.seen_labels: set[str] = set(hints.labels)
        self.type_column: str | None = None

    def resolve(
        self, header: Sequence[str], line: int | None, *, keep_defaults: bool = False
    ) -> list[FormatIssue]:
        """Map options to columns present in ``header``; issues for missing ones.
        ``keep_defaults`` maps absent optional columns under their default names too
        (JSONL objects may leave keys out)."""
        present = set(header)
        issues: list[FormatIssue] = []
        shown = ", ".join(repr(h) for h in header[:30]) + (", ..." if len(header) > 30 else "")
        for name in ("item", "annotator", "label"):
            column = getattr(self.o, name)
            if column is None:
                self.columns[name] = None
            elif column not in present:
                issues.append(
                    FormatIssue(
                        Location(self.file, line=line, field=column),
                        f"missing required column {column!r} (the {name} column); "
                        f"the file has {shown}; map it with the column options",
                    )
                )
            else:
                self.columns[name] = column
        for name in _OPTIONAL:
            column = getattr(self.o, name)
            if column is None:
                self.columns[name] = None
            elif column in present:
                self.columns[name] = column
            elif column == getattr(_DEFAULTS, name):
                self.columns[name] = column if keep_defaults else None
            else:
                issues.append(
                    FormatIssue(
                        Location(self.file, line=line, field=column),
                        f"column {column!r} (set for {name}) is not in the file; it has {shown}",
                    )
                )
        for column in [
            *self.o.payload_columns,
            *self.o.metadata_columns,
            *(self.o.segment_columns or []),
        ]:
            if column not in present:
                issues.append(
                    FormatIssue(
                        Location(self.file, line=line, field=column),
                        f"column {column!r} is not in the file; it has {shown}",
                    )
                )
        if self.o.task_type is None and "task_type" in present:
            self.type_column = "task_type"
        if self.o.segment_columns is None:
            self.segments = [
                (h, h[len(p) :]) for h in header for p in SEGMENT_PREFIXES if h.startswith(p)
            ]
        else:
            self.segments = [
                (h, next((h[len(p) :] for p in SEGMENT_PREFIXES if h.startswith(p)), h))
                for h in self.o.segment_columns
            ]
        return issues

    def _loc(self, line: int | None, record: int, column: str | None = None) -> Location:
        return Location(self.file, line=line, record=record, field=column)

    @staticmethod
    def _pos(line: int | None, record: int) -> int:
        return line if line is not None else -record - 1

    @staticmethod
    def _where(pos: int) -> str:
        return f"line {pos}" if pos >= 0 else f"record {-pos - 1}"

    def _coerce(
        self, raw: object, column: str, line: int | None, record: int
    ) -> tuple[JSONValue, TaskType] | FormatIssue:
        try:
            value, kind = infer_value(raw, self.task_type, self.o.multi_separator)
        except ValueError as exc:
            return FormatIssue(self._loc(line, record, column), str(exc))
        if self.task_type is None:
            self.task_type = kind
            if self.hints.task_type is None:
                self.hints.task_type = kind
        elif kind != self.task_type:
            return FormatIssue(
                self._loc(line, record, column),
                f"value {raw!r} reads as {kind} but earlier rows are {self.task_type}; "
                "set the task type explicitly",
            )
        return value, kind

    def _see(self, value: JSONValue, kind: TaskType) -> None:
        if kind == "single" or kind == "ordinal":
            labels = [value]
        elif kind == "multi":
            labels = value
        elif kind == "spans":
            labels = [span["label"] for span in value]
        else:
            return
        for label in labels:
            text = as_str(label)
            if text not in self.seen_labels:  # a set: hints.labels is a list
                self.seen_labels.add(text)
                self.hints.see_label(text)

    def row(
        self, row: dict[str, Any], line: int | None, record: int, out: list[Record | FormatIssue]
    ) -> None:
        """Append the records and issues of one row to ``out`` (a row with an error gives
        no annotation). A plain method, not a generator: it runs once per row."""
        c = self.columns
        item_col = c["item"]
        assert item_col is not None
        raw_item = row.get(item_col)
        if _empty(raw_item):
            out.append(FormatIssue(self._loc(line, record, item_col), "empty item id"))
            return
        item_id = raw_item.strip() if isinstance(raw_item, str) else as_str(raw_item)
        problems: list[FormatIssue] = []
        if self.task_type is None and self.type_column is not None:
            kind = row.get(self.type_column)
            if kind in TASK_TYPES:
                self.task_type = kind
                if self.hints.task_type is None:
                    self.hints.task_type = kind
            elif not _empty(kind):
                out.append(
                    FormatIssue(
                        self._loc(line, record, self.type_column),
                        f"unknown task type {kind!r}; use one of {', '.join(TASK_TYPES)}",
                    )
                )
                return
        started = submitted = None
        column = c["started_at"]
        if column is not None:
            started = self._stamp(row.get(column), column, line, record, problems)
        column = c["submitted_at"]
        if column is not None:
            submitted = self._stamp(row.get(column), column, line, record, problems)
        active: float | None = None
        column = c["active_seconds"]
        if column is not None and not _empty(row.get(column)):
            try:
                active = parse_seconds(row[column])
            except ValueError as exc:
                problems.append(FormatIssue(self._loc(line, record, column), str(exc)))

        if item_id not in self.items:
            self.items.add(item_id)
            out.append(self._item(item_id, row, line, record))

        gold_col = c["gold"]
        if gold_col is not None and not _empty(row.get(gold_col)):
            self._gold(item_id, row[gold_col], gold_col, line, record, problems)
            if self._new_gold is not None:
                out.append(self._new_gold)
                self._new_gold = None

        label_col = c["label"]
        if label_col is None:
            out.extend(problems)
            return
        annotator_col = c["annotator"]
        annotator: str | None = None
        if annotator_col is not None:
            raw_who = row.get(annotator_col)
            if not _empty(raw_who):
                annotator = raw_who.strip() if isinstance(raw_who, str) else as_str(raw_who)
        raw_label = row.get(label_col)
        if _empty(raw_label):
            out.extend(problems)
            if annotator is not None:
                out.append(SkippedRecord("row without a label", self._loc(line, record, label_col)))
            return
        got = self._coerce(raw_label, label_col, line, record)
        if isinstance(got, FormatIssue):
            problems.append(got)
        external_id: str | None = None
        aid_col = c["annotation_id"]
        if aid_col is not None and not _empty(row.get(aid_col)):
            external_id = as_str(row[aid_col]).strip()
            first = self.annotation_ids.get(external_id)
            if first is not None:
                problems.append(
                    FormatIssue(
                        self._loc(line, record, aid_col),
                        f"duplicate annotation id {external_id!r}: also at {self._where(first)}",
                    )
                )
            else:
                self.annotation_ids[external_id] = self._pos(line, record)
        else:
            key = hash((item_id, annotator))
            first = self.pairs.get(key)
            if first is not None:
                who = "the same annotator" if annotator is None else f"annotator {annotator!r}"
                problems.append(
                    FormatIssue(
                        self._loc(line, record, annotator_col or label_col),
                        f"duplicate annotation: {who} already labeled item {item_id!r} "
                        f"at {self._where(first)} "
                        "(add an annotation id column to keep both)",
                    )
                )
            else:
                self.pairs[key] = self._pos(line, record)
            external_id = pair_id(item_id, annotator)
        attributes: dict[str, Any] = {}
        column = c["attributes_column"]
        if column is not None and not _empty(row.get(column)):
            raw_attributes = _cell_json(row[column])
            if isinstance(raw_attributes, dict):
                attributes = raw_attributes
            else:
                problems.append(
                    FormatIssue(
                        self._loc(line, record, column),
                        "attributes must be a JSON object (or map no attributes column)",
                    )
                )
        version: str | None = None
        column = c["guideline_version"]
        if column is not None and not _empty(row.get(column)):
            version = (
                as_str(row[column]).strip() if isinstance(row[column], str) else as_str(row[column])
            )
        if problems:
            out.extend(problems)
            return
        assert not isinstance(got, FormatIssue)
        value, kind = got
        self._see(value, kind)
        out.append(
            AnnotationRecord(
                item_external_id=item_id,
                annotator=annotator,
                value=value,
                task_type=kind,
                external_id=external_id,
                started_at=started,
                submitted_at=submitted,
                active_seconds=active,
                attributes=attributes,
                guideline_version=version,
                location=Location(self.file, line, record),
            )
        )

    def _stamp(
        self, raw: object, column: str, line: int | None, record: int, problems: list[FormatIssue]
    ) -> datetime | None:
        if _empty(raw):
            return None
        try:
            if isinstance(raw, datetime):
                return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
            if isinstance(raw, date):
                raise ValueError(f"{raw!r} is a date without a time")
            return parse_datetime(raw)
        except ValueError as exc:
            problems.append(FormatIssue(self._loc(line, record, column), str(exc)))
            return None

    def _gold(
        self,
        item_id: str,
        raw: object,
        column: str,
        line: int | None,
        record: int,
        problems: list[FormatIssue],
    ) -> None:
        got = self._coerce(raw, column, line, record)
        if isinstance(got, FormatIssue):
            problems.append(got)
            return
        value, kind = got
        seen = self.golds.get(item_id)
        if seen is None:
            self.golds[item_id] = (value, self._pos(line, record))
            self._see(value, kind)
            self._new_gold = GoldRecord(
                item_id, value, kind, source="import", location=self._loc(line, record, column)
            )
        elif seen[0] != value:
            problems.append(
                FormatIssue(
                    self._loc(line, record, column),
                    f"gold label {value!r} for item {item_id!r} conflicts with {seen[0]!r} at {self._where(seen[1])}",
                )
            )

    def _item(self, item_id: str, row: dict[str, Any], line: int | None, record: int) -> ItemRecord:
        payload: dict[str, Any] = {}
        payload_col = self.columns.get("payload_column")
        if payload_col is not None and not _empty(row.get(payload_col)):
            whole = _cell_json(row[payload_col])
            if isinstance(whole, dict):
                payload.update(whole)
        text_col = self.columns.get("text")
        if text_col is not None and not _empty(row.get(text_col)):
            payload["text"] = row[text_col]
        for column in self.o.payload_columns:
            payload[column] = _cell_json(row.get(column))
        metadata = {
            column: _cell_json(row.get(column))
            for column in self.o.metadata_columns
            if not _empty(row.get(column))
        }
        segments = {
            name: as_str(row[col]) for col, name in self.segments if not _empty(row.get(col))
        }
        tags: tuple[str, ...] = ()
        tag_col = self.columns.get("tag_column")
        if tag_col is not None and not _empty(row.get(tag_col)):
            raw = _cell_json(row[tag_col])
            if isinstance(raw, list):
                tags = tuple(as_str(t) for t in raw)
            else:
                tags = tuple(
                    t.strip() for t in as_str(raw).split(self.o.tag_separator) if t.strip()
                )
        return ItemRecord(item_id, payload, metadata, segments, tags, self._loc(line, record))


def _cell_json(value: object) -> Any:
    """CSV cells holding JSON objects/lists are decoded; other values kept."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def sniff_delimiter(line: str) -> str:
    """The most frequent of tab, comma, semicolon and pipe outside quotes (comma on ties)."""
    counts = dict.fromkeys("\t,;|", 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def read_csv(
    path: Path, options: TabularOptions | None = None, hints: SchemaHints | None = None
) -> Iterator[Record | FormatIssue]:
    """Stream a long-form CSV/TSV (delimiter sniffed unless set). A cell escaped by
    :func:`escape_formula` (``'=x``) reads as the text it escapes (``=x``)."""
    options = options or TabularOptions()
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    if is_empty_file(path):
        yield empty_file_issue(path)
        return
    try:
        with path.open(encoding="utf-8-sig", errors="strict", newline="") as fh:
            yield from _read_csv_rows(fh, file, options, hints)
    except UnicodeDecodeError:
        # the text layer decodes in chunks: find the first bad byte and its line
        yield next(
            (e for e in iter_lines(path) if isinstance(e, FormatIssue)),
            FormatIssue(Location(file), "file is not UTF-8"),
        )


def _read_csv_rows(
    fh: Any, file: str, options: TabularOptions, hints: SchemaHints
) -> Iterator[Record | FormatIssue]:
    first = fh.readline()
    delimiter = options.delimiter or sniff_delimiter(first)
    fh.seek(0)
    reader = csv.reader(fh, delimiter=delimiter)
    form = _LongForm(file, options, hints)
    header: list[str]
    previous = 0
    if options.fieldnames is not None:
        header = list(options.fieldnames)
        header_line = None
    else:
        try:
            header = [unescape_formula(h).strip() for h in next(reader)]
        except csv.Error as exc:
            yield FormatIssue(Location(file, line=1), f"unreadable header row: {exc}")
            return
        except StopIteration:
            yield FormatIssue(Location(file), "file is empty")
            return
        previous = reader.line_num
        header_line = 1
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            yield FormatIssue(
                Location(file, line=1), f"duplicate column names in the header: {', '.join(dupes)}"
            )
            return
    issues = form.resolve(header, header_line)
    if issues:
        yield from issues
        return
    width = len(header)
    out: list[Record | FormatIssue] = []
    record = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = previous + 1
            previous = reader.line_num
            yield FormatIssue(Location(file, line=line, record=record), f"malformed CSV row: {exc}")
            record += 1
            if reader.line_num == line - 1:
                break
            continue
        line = previous + 1
        previous = reader.line_num
        if len(cells) != width:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            yield FormatIssue(
                Location(file, line=line, record=record),
                f"row has {len(cells)} fields but the header has {width} (delimiter {delimiter!r})",
            )
            record += 1
            continue
        cells = [unescape_formula(c) if c[:1] == "'" else c for c in cells]
        form.row(dict(zip(header, cells, strict=True)), line, record, out)
        yield from out
        out.clear()
        record += 1


def read_jsonl(
    path: Path, options: TabularOptions | None = None, hints: SchemaHints | None = None
) -> Iterator[Record | FormatIssue]:
    """Stream long-form JSON Lines: one object per line with the mapped keys."""
    options = options or TabularOptions()
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    if is_empty_file(path):
        yield empty_file_issue(path)
        return
    form = _LongForm(file, options, hints)
    resolved = False
    out: list[Record | FormatIssue] = []
    record = 0
    for entry in iter_lines(path):
        if isinstance(entry, FormatIssue):
            yield entry
            return
        line, text = entry
        if not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield FormatIssue(
                Location(file, line=line, record=record),
                f"invalid JSON: {exc.msg} at column {exc.colno}",
            )
            record += 1
            continue
        if not isinstance(obj, dict):
            yield FormatIssue(
                Location(file, line=line, record=record),
                f"expected a JSON object, found {describe(obj)}",
            )
            record += 1
            continue
        if not resolved:
            # keys may be left out of some objects: optional columns under their default
            # names are always mapped (a missing key reads as empty)
            issues = form.resolve(list(obj), line, keep_defaults=True)
            if issues:
                yield from issues
                return
            resolved = True
        missing = [
            col
            for col in (form.columns["item"], form.columns["label"])
            if col is not None and col not in obj
        ]
        if missing:
            yield FormatIssue(
                Location(file, line=line, record=record, field=missing[0]),
                f"missing key {missing[0]!r}",
            )
            record += 1
            continue
        form.row(obj, line, record, out)
        yield from out
        out.clear()
        record += 1


def read_parquet(
    path: Path, options: TabularOptions | None = None, hints: SchemaHints | None = None
) -> Iterator[Record | FormatIssue]:
    """Stream a long-form Parquet file batch by batch (pyarrow ``iter_batches``)."""
    options = options or TabularOptions()
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        yield FormatIssue(
            Location(file), f"reading Parquet needs pyarrow, which failed to import: {exc}"
        )
        return
    if path.stat().st_size == 0:
        yield empty_file_issue(path)
        return
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses
        yield FormatIssue(Location(file), f"not a readable Parquet file: {exc}")
        return
    form = _LongForm(file, options, hints)
    issues = form.resolve(list(parquet.schema_arrow.names), None)
    if issues:
        yield from issues
        return
    out: list[Record | FormatIssue] = []
    record = 0
    with parquet:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                form.row(row, None, record, out)
                yield from out
                out.clear()
                record += 1


# --------------------------------------------------------------------------- writer


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, tuple):
        return list(value)
    return value


def write_long(
    rows: Iterable[dict[str, Any]],
    path: Path,
    format: LongFormat = "csv",
    *,
    columns: Sequence[str] | None = None,
    escape_formulas: bool = True,
) -> int:
    """Write long-form rows (see ``docs/formats.md`` for the row shape); returns the row
    count. Columns are ``columns`` or the keys of the first row. Streaming (Parquet in
    batches) and atomic: the file appears only when complete.

    In CSV, text cells that a spreadsheet would run as a formula are escaped with
    :func:`escape_formula` unless ``escape_formulas`` is false; numbers, JSON cells,
    JSONL and Parquet are always written as they are."""
    if format not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"unknown long format {format!r}; use csv, jsonl or parquet")
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if format == "csv":
            count = _write_csv(rows, tmp, columns, escape_formulas)
        elif format == "jsonl":
            count = _write_jsonl(rows, tmp, columns)
        else:
            count = _write_parquet(rows, tmp, columns)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def _csv_cell(value: Any, escape: bool) -> str:
    """One CSV cell: numbers as they are, text escaped for spreadsheets when ``escape``."""
    text = _cell(value)
    if escape and text[:1] in _ESCAPE_FIRST and not isinstance(value, int | float):
        return escape_formula(text)
    return text


def _write_csv(
    rows: Iterable[dict[str, Any]], path: Path, columns: Sequence[str] | None, escape: bool
) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        header: list[str] | None = list(columns) if columns is not None else None
        for row in rows:
            if header is None:
                header = list(row)
            if count == 0:
                writer.writerow([_csv_cell(col, escape) for col in header])
            writer.writerow([_csv_cell(row.get(col), escape) for col in header])
            count += 1
        if count == 0 and header is not None:
            writer.writerow([_csv_cell(col, escape) for col in header])
    return count


def _write_jsonl(rows: Iterable[dict[str, Any]], path: Path, columns: Sequence[str] | None) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            keys = columns if columns is not None else list(row)
            fh.write(
                json.dumps(
                    {k: _json_ready(row.get(k)) for k in keys}, ensure_ascii=False, default=str
                )
            )
            fh.write("\n")
            count += 1
    return count


def _write_parquet(
    rows: Iterable[dict[str, Any]], path: Path, columns: Sequence[str] | None
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    count = 0
    writer: Any = None
    batch: list[dict[str, Any]] = []
    header: list[str] = list(columns) if columns is not None else []
    schema: Any = None

    def flush() -> None:
        nonlocal writer, schema
        if not batch:
            return
        table = pa.Table.from_pylist(batch, schema=schema)
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
        batch.clear()

    try:
        for row in rows:
            if not header:
                header = list(row)
            batch.append({k: _parquet_cell(k, row.get(k)) for k in header})
            count += 1
            if len(batch) >= PARQUET_BATCH_ROWS:
                flush()
        flush()
        if writer is None:
            empty = pa.schema([(name, pa.string()) for name in header])
            pq.write_table(empty.empty_table(), path)
    finally:
        if writer is not None:
            writer.close()
    return count


def _parquet_cell(key: str, value: Any) -> Any:
    """Labels, segment values and other non-scalar values as text, so each column has
    one type (segments are whatever each item says: a year in one, a name in another,
    or an integer beyond 64 bits)."""
    if key in ("label", "gold") or key.startswith("segment_"):
        return None if value is None else (_cell(value) if not isinstance(value, str) else value)
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return value


def long_row(
    annotation: AnnotationRecord,
    item: ItemRecord | None = None,
    gold: JSONValue | None = None,
) -> dict[str, Any]:
    """The long-form row for one annotation (see ``docs/formats.md``): what
    :func:`write_long` expects and the readers read back with default options."""
    row: dict[str, Any] = {
        "item_id": annotation.item_external_id,
        "annotator": annotation.annotator,
        "label": annotation.value,
        "task_type": annotation.task_type,
        "annotation_id": annotation.external_id,
        "started_at": annotation.started_at,
        "submitted_at": annotation.submitted_at,
        "active_seconds": annotation.active_seconds,
        "guideline_version": annotation.guideline_version,
        "attributes": annotation.attributes or None,
        "gold": gold,
    }
    if item is not None:
        text = item.payload.get("text")
        row["text"] = text if isinstance(text, str) else None
        rest = {k: v for k, v in item.payload.items() if k != "text" or not isinstance(v, str)}
        row["payload"] = rest or None
        for name, value in item.segments.items():
            row[f"segment_{name}"] = value
        row["tags"] = list(item.tags) if item.tags else None
    return row


def option_names() -> list[str]:
    """The :class:`TabularOptions` field names (for CLI flags)."""
    return [f.name for f in fields(TabularOptions)]


__all__ = [
    "FORMULA_TRIGGERS",
    "TabularOptions",
    "escape_formula",
    "infer_value",
    "long_row",
    "option_names",
    "read_csv",
    "read_jsonl",
    "read_parquet",
    "sniff_delimiter",
    "unescape_formula",
    "write_long",
]
