"""Pure readers and writers for labeling-tool exports (no database, no web).

``read(path)`` streams typed records (:mod:`labelloop.formats.records`) and
:class:`FormatIssue` problems with their locations; ``detect(path)`` names the format.
Writers: :func:`write_label_studio` and :func:`write_long`. See ``docs/formats.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from labelloop.formats._common import FormatError
from labelloop.formats.label_studio import read_label_studio, write_label_studio
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
)
from labelloop.formats.tabular import (
    TabularOptions,
    long_row,
    read_csv,
    read_jsonl,
    read_parquet,
    sniff_delimiter,
    write_long,
)

FORMATS: tuple[str, ...] = ("label-studio", "cvat", "prodigy", "doccano", "csv", "jsonl", "parquet")

_PEEK_BYTES = 1 << 20
_PRODIGY_KEYS = frozenset(
    {"_input_hash", "_task_hash", "_view_id", "answer", "_annotator_id", "_session_id"}
)
_DOCCANO_LABEL_KEYS = frozenset({"label", "labels", "annotations", "entities", "cats"})
_DOCCANO_CSV = frozenset({"annotation_approver", "id", "label", "text"})
_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".tab", ".txt"})
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})


def _peek(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(_PEEK_BYTES)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.decode("utf-8", errors="replace")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _jsonl_kind(path: Path, line: str) -> str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"{path}: the first line is not JSON ({exc.msg}); cannot tell the format, pass it explicitly"
        ) from None
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: the first line is not a JSON object; cannot tell the format")
    keys = set(obj)
    if keys & _PRODIGY_KEYS:
        return "prodigy"
    if "item_id" in keys:
        return "jsonl"
    if "text" in keys and keys & _DOCCANO_LABEL_KEYS:
        return "doccano"
    return "jsonl"


def detect(path: Path) -> str:
    """Name the format of ``path`` (one of :data:`FORMATS`) from its extension and a peek
    at its content; raises :class:`FormatError` when it cannot tell."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    text = _peek(path)
    stripped = text.lstrip()
    if suffix == ".xml":
        return "cvat"
    if suffix == ".json":
        return "label-studio"
    if suffix in _JSONL_SUFFIXES:
        if not stripped:
            return "jsonl"
        return _jsonl_kind(path, _first_line(text))
    if suffix in _CSV_SUFFIXES:
        first = _first_line(text)
        header = {cell.strip().strip('"') for cell in first.split(sniff_delimiter(first))}
        return "doccano" if header >= _DOCCANO_CSV else "csv"
    if not stripped:
        raise FormatError(
            f"{path}: file is empty and its extension {suffix or '(none)'!r} names no format"
        )
    with path.open("rb") as fh:
        if fh.read(4) == b"PAR1":
            return "parquet"
    if stripped.startswith("<"):
        if "<annotations" in stripped[:4096]:
            return "cvat"
        raise FormatError(
            f"{path}: XML whose root is not <annotations>; only CVAT for images 1.1 XML is supported"
        )
    if stripped.startswith("["):
        return "label-studio"
    if stripped.startswith("{"):
        first = _first_line(text)
        try:
            json.loads(first)
        except json.JSONDecodeError:
            return "label-studio"
        return _jsonl_kind(path, first)
    raise FormatError(
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r} or the content; "
        f"pass one of: {', '.join(FORMATS)}"
    )


def read(
    path: Path,
    *,
    format: str = "auto",
    options: TabularOptions | None = None,
    hints: SchemaHints | None = None,
) -> Iterator[Record | FormatIssue]:
    """Stream the records of ``path``; problems come as :class:`FormatIssue` with their
    location and reading goes on where it can. ``hints`` is filled while reading.
    Raises :class:`FormatError` only for an unknown ``format`` name."""
    if format != "auto" and format not in FORMATS:
        raise FormatError(f"unknown format {format!r}; use auto or one of: {', '.join(FORMATS)}")
    path = Path(path)
    hints = hints if hints is not None else SchemaHints()
    if not path.is_file():
        yield FormatIssue(Location(str(path)), "file not found")
        return
    if format == "auto":
        try:
            format = detect(path)
        except FormatError as exc:
            yield FormatIssue(Location(str(path)), str(exc))
            return
    if format == "label-studio":
        yield from read_label_studio(path, hints)
    elif format == "cvat":
        from labelloop.formats.cvat import read_cvat

        yield from read_cvat(path, hints)
    elif format == "prodigy":
        from labelloop.formats.prodigy import read_prodigy

        yield from read_prodigy(path, hints)
    elif format == "doccano":
        from labelloop.formats.doccano import read_doccano

        yield from read_doccano(path, hints)
    elif format == "csv":
        yield from read_csv(path, options, hints)
    elif format == "jsonl":
        yield from read_jsonl(path, options, hints)
    else:
        yield from read_parquet(path, options, hints)


__all__ = [
    "FORMATS",
    "AnnotationRecord",
    "FormatError",
    "FormatIssue",
    "GoldRecord",
    "ItemRecord",
    "Location",
    "PredictionRecord",
    "Record",
    "SchemaHints",
    "SkippedRecord",
    "TabularOptions",
    "detect",
    "long_row",
    "read",
    "write_label_studio",
    "write_long",
]
