"""Read a few named columns of a long-form file (CSV/TSV/JSONL/Parquet) into lists.

Used by ``labelloop stats``, which needs whole columns for array statistics rather than
records. CSV/TSV delimiters are sniffed; label columns are read as text unless a numeric
level is asked for, so labels keep their values as written ("01" stays "01").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelloop.formats._common import FormatError

#: Names tried, in order, when a role's column is not given.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "item": ("item", "item_id", "unit", "object", "task_id", "orig_id", "id"),
    "annotator": ("annotator", "annotator_id", "worker", "worker_id", "rater", "coder", "user", "!amt_worker_ids"),
    "label": ("label", "response", "rating", "value", "answer", "category"),
}


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".csv", ".tsv", ".txt", ".tab"}:
        return "csv"
    raise FormatError(f"{path}: unsupported file type {suffix or '(none)'}; use CSV, TSV, JSONL or Parquet")


def _header(path: Path, kind: str) -> tuple[list[str], str]:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names), ""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        if not first.strip():
            raise FormatError(f"{path}: file is empty")
        if kind == "jsonl":
            try:
                obj = json.loads(first)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{path}, line 1: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise FormatError(f"{path}, line 1: expected a JSON object per line")
            return list(obj), ""
        sample = first + fh.read(64 * 1024)
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        delimiter = "\t" if "\t" in first else ","
    return next(csv.reader([first], delimiter=delimiter)), delimiter


def resolve_columns(available: Sequence[str], wanted: dict[str, str | None], path: Path) -> dict[str, str]:
    """Map each role (item, annotator, label, ...) to a column, trying aliases when not given."""
    out: dict[str, str] = {}
    lowered = {c.lower(): c for c in available}
    for role, name in wanted.items():
        if name is not None:
            if name not in available:
                raise FormatError(
                    f"{path}: no column {name!r} (for --{role}); columns are: {', '.join(available)}"
                )
            out[role] = name
            continue
        for alias in COLUMN_ALIASES.get(role, ()):
            if alias in lowered:
                out[role] = lowered[alias]
                break
        else:
            raise FormatError(
                f"{path}: cannot tell which column holds the {role}; pass --{role} COLUMN "
                f"(columns are: {', '.join(available)})"
            )
    return out


def read_columns(
    path: Path, wanted: dict[str, str | None], *, text_roles: Sequence[str] = ("item", "annotator", "label")
) -> dict[str, list[Any]]:
    """Columns for each role, as lists; rows with an empty value in any role are errors.

    ``text_roles`` are read as strings (as written); other roles keep parsed types.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    kind = _kind(path)
    available, delimiter = _header(path, kind)
    cols = resolve_columns(available, wanted, path)
    data: dict[str, list[Any]] = {role: [] for role in cols}
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=sorted(set(cols.values())))
        for role, name in cols.items():
            values = table.column(name).to_pylist()
            data[role] = [None if v is None else (str(v) if role in text_roles else v) for v in values]
    elif kind == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"{path}, line {lineno}: invalid JSON ({exc.msg})") from None
                for role, name in cols.items():
                    v = obj.get(name)
                    data[role].append(None if v is None else (str(v) if role in text_roles else v))
    else:
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=delimiter)
                header = next(reader)
                idx = {role: header.index(name) for role, name in cols.items()}
                for lineno, row in enumerate(reader, start=2):
                    if not row:
                        continue
                    for role, i in idx.items():
                        if i >= len(row):
                            raise FormatError(f"{path}, line {lineno}: missing field {cols[role]!r}")
                        v = row[i].strip()
                        data[role].append(v if v != "" else None)
        except UnicodeDecodeError as exc:
            raise FormatError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    for role, values in data.items():
        for row_no, v in enumerate(values):
            if v is None:
                where = f"line {row_no + 2}" if kind == "csv" else f"record {row_no}"
                raise FormatError(f"{path}, {where}, field {cols[role]}: empty {role}")
    return data
