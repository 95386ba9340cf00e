"""doccano exports: JSONL (1.x per-user ``annotations``, merged ``labels``, current
``label``, ``entities``) and the 1.x CSV (``annotation_approver,id,label,text,user``).

JSONL is read in two streaming passes: the first decides single vs multi-label."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labelloop.formats._common import (
    as_str,
    describe,
    empty_file_issue,
    is_empty_file,
    iter_json_lines,
    stable_id,
)
from labelloop.formats.records import (
    AnnotationRecord,
    FormatIssue,
    ItemRecord,
    JSONValue,
    Location,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)
from labelloop.formats.tabular import TabularOptions, read_csv

#: the doccano 1.x CSV columns mapped onto the long-form reader
CSV_OPTIONS = TabularOptions(item="id", annotator="user", label="label", text="text")
_LABEL_KEYS = ("annotations", "entities", "labels", "label")
_NOT_PAYLOAD = frozenset(
    {"id", "annotations", "entities", "labels", "label", "meta", "annotation_approver", "relations"}
)


def read_doccano(path: Path, hints: SchemaHints | None = None) -> Iterator[Record | FormatIssue]:
    """Read a doccano JSONL export, or a doccano 1.x CSV (by the ``.csv`` extension)."""
    hints = hints if hints is not None else SchemaHints()
    if path.suffix.lower() in (".csv", ".tsv"):
        yield from read_csv(path, CSV_OPTIONS, hints)
        return
    if is_empty_file(path):
        yield empty_file_issue(path)
        return
    multi = hints.task_type == "multi" or _any_multi(path)
    file = str(path)
    items: dict[str, int] = {}
    task_type: TaskType | None = None
    for entry in iter_json_lines(path):
        if isinstance(entry, FormatIssue):
            yield entry
            continue
        line, record, doc = entry
        loc = Location(file, line=line, record=record)
        if not isinstance(doc, dict):
            yield FormatIssue(
                loc, f"expected a JSON object (a doccano document), found {describe(doc)}"
            )
            continue
        text = doc.get("text")
        payload = {k: v for k, v in doc.items() if k not in _NOT_PAYLOAD}
        raw_id = doc.get("id")
        item_id = (
            as_str(raw_id)
            if raw_id is not None and not isinstance(raw_id, bool)
            else stable_id(payload)
        )
        if item_id in items:
            yield FormatIssue(
                _at(loc, "id"), f"duplicate document id {item_id!r}: also at line {items[item_id]}"
            )
            continue
        items[item_id] = line
        meta = doc.get("meta")
        yield ItemRecord(
            item_id, payload, dict(meta) if isinstance(meta, dict) else {}, location=loc
        )
        key = next((k for k in _LABEL_KEYS if k in doc), None)
        if key is None:
            yield SkippedRecord("document without labels", loc)
            continue
        groups = _groups(doc[key], key, text, _at(loc, key))
        if isinstance(groups, FormatIssue):
            yield groups
            continue
        if not groups:
            yield SkippedRecord("document without labels", loc)
            continue
        for annotator, (kind, labels) in groups.items():
            value: JSONValue
            if kind == "spans":
                value = sorted(labels, key=lambda r: (r["start"], r["end"], r["label"]))
                got: TaskType = "spans"
            elif multi:
                value, got = sorted(set(labels)), "multi"
            elif len(set(labels)) > 1:
                yield FormatIssue(
                    _at(loc, key), f"{len(labels)} labels for one annotator in a single-label file"
                )
                continue
            else:
                value, got = labels[0], "single"
            if task_type is None:
                task_type = got
                if hints.task_type is None:
                    hints.task_type = got
            elif got != task_type:
                yield FormatIssue(
                    _at(loc, key), f"{got} labels but earlier documents are {task_type}"
                )
                continue
            for label in labels:
                hints.see_label(label["label"] if isinstance(label, dict) else str(label))
            yield AnnotationRecord(
                item_external_id=item_id,
                annotator=annotator,
                value=value,
                task_type=got,
                external_id=stable_id(item_id, annotator),
                location=loc,
            )


def _at(loc: Location, field_path: str) -> Location:
    return Location(loc.file, loc.line, loc.record, field_path)


def _any_multi(path: Path) -> bool:
    for entry in iter_json_lines(path):
        if isinstance(entry, FormatIssue) or not isinstance(entry[2], dict):
            continue
        doc = entry[2]
        key = next((k for k in _LABEL_KEYS if k in doc), None)
        if key is None:
            continue
        groups = _groups(doc[key], key, doc.get("text"), Location(str(path)))
        if isinstance(groups, dict) and any(
            kind != "spans" and len(set(labels)) > 1 for kind, labels in groups.values()
        ):
            return True
    return False


def _span(start: object, end: object, label: object, text: object) -> dict[str, Any] | None:
    if (
        not isinstance(start, int)
        or not isinstance(end, int)
        or isinstance(start, bool)
        or isinstance(end, bool)
    ):
        return None
    if label is None or isinstance(label, bool | list | dict):
        return None
    region: dict[str, Any] = {"start": start, "end": end, "label": as_str(label)}
    if isinstance(text, str):
        region["text"] = text[start:end]
    return region


def _groups(
    raw: object, key: str, text: object, loc: Location
) -> dict[str | None, tuple[str, list[Any]]] | FormatIssue:
    """Labels per annotator: ``{annotator: ("spans"|"labels", [...])}``."""
    if not isinstance(raw, list):
        return FormatIssue(loc, f"must be a list, found {describe(raw)}")
    groups: dict[str | None, tuple[str, list[Any]]] = {}
    for n, entry in enumerate(raw):
        where = Location(loc.file, loc.line, loc.record, f"{loc.field}[{n}]")
        annotator: str | None = None
        item: Any
        if isinstance(entry, dict):
            user = entry.get("user")
            annotator = None if user is None else as_str(user)
            if "start_offset" in entry:
                span = _span(
                    entry.get("start_offset"), entry.get("end_offset"), entry.get("label"), text
                )
                if span is None:
                    return FormatIssue(
                        where, "span needs integer start_offset/end_offset and a label"
                    )
                kind, item = "spans", span
            elif entry.get("label") is not None and not isinstance(
                entry.get("label"), list | dict | bool
            ):
                kind, item = "labels", as_str(entry["label"])
            else:
                return FormatIssue(where, "annotation needs a label")
        elif isinstance(entry, list) and len(entry) == 3:
            span = _span(entry[0], entry[1], entry[2], text)
            if span is None:
                return FormatIssue(where, "span must be [start, end, label] with integer offsets")
            kind, item = "spans", span
        elif isinstance(entry, str | int) and not isinstance(entry, bool):
            kind, item = "labels", as_str(entry)
        else:
            return FormatIssue(where, f"unrecognised doccano label {entry!r}")
        group = groups.setdefault(annotator, (kind, []))
        if group[0] != kind:
            return FormatIssue(where, "mixes span and classification labels in one document")
        group[1].append(item)
    return groups
