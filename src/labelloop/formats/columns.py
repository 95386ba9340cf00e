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
from labelloop.formats.tabular import unescape_formula

#: Names tried, in order, when a role's column is not given.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "item": ("item", "item_id", "unit", "object", "task_id", "orig_id", "id"),
    "annotator": (
        "annotator",
        "annotator_id",
        "worker",
        "worker_id",
        "rater",
        "coder",
        "user",
        "!amt_worker_ids",
    ),
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
    raise FormatError(
        f"{path}: unsupported file type {suffix or '(none)'}; use CSV, TSV, JSONL or Parquet"
    )


def _not_utf8(path: Path) -> FormatError:
    """The error for a file that is not UTF-8, naming the line and byte of the first bad byte."""
    data = path.read_bytes()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + start
        line = data.count(b"\n", 0, offset) + 1
        return FormatError(
            f"{path}, line {line}: not UTF-8 text (invalid byte 0x{data[offset]:02x} at byte "
            f"offset {offset}); re-save it as UTF-8 (it may be Latin-1 or Windows-1252)"
        )
    return FormatError(f"{path}: not UTF-8 text")


def _header(path: Path, kind: str, header: bool = True) -> tuple[list[str], str]:
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names), ""
    try:
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
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        delimiter = "\t" if "\t" in first else ","
    # LabelLoop's own CSV exports escape cells a spreadsheet would run as formulas
    names = [unescape_formula(n) for n in next(csv.reader([first], delimiter=delimiter))]
    if not header:  # columns are numbered from 1
        names = [str(i) for i in range(1, len(names) + 1)]
    return names, delimiter


def column_names(path: Path, *, header: bool = True) -> list[str]:
    """The column names of a long-form file (``"1"``, ``"2"``, ... when ``header=False``)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    kind = _kind(path)
    if not header and kind != "csv":
        raise FormatError(f"{path}: only CSV/TSV files can lack a header row")
    return _header(path, kind, header)[0]


def resolve_columns(
    available: Sequence[str], wanted: dict[str, str | None], path: Path
) -> dict[str, str]:
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
    path: Path,
    wanted: dict[str, str | None],
    *,
    text_roles: Sequence[str] = ("item", "annotator", "label"),
    header: bool = True,
    with_lines: bool = False,
) -> dict[str, list[Any]]:
    """Columns for each role, as lists; rows with an empty value in any role are errors.

    ``text_roles`` are read as strings (as written); other roles keep parsed types.
    ``header=False`` reads a CSV/TSV file without a header row; its columns are then
    named ``"1"``, ``"2"``, ... by position. ``with_lines=True`` adds a ``"_line"`` list:
    the 1-based source line of each row (CSV/JSONL), or its 0-based record index (Parquet),
    so callers that parse values further can name the line of a bad one.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    kind = _kind(path)
    if not header and kind != "csv":
        raise FormatError(f"{path}: only CSV/TSV files can lack a header row")
    available, delimiter = _header(path, kind, header)
    cols = resolve_columns(available, wanted, path)
    data: dict[str, list[Any]] = {role: [] for role in cols}
    where: list[int] = []  # source line of each row (CSV, JSONL)
    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=sorted(set(cols.values())))
        for role, name in cols.items():
            values = table.column(name).to_pylist()
            data[role] = [
                None if v is None else (str(v) if role in text_roles else v) for v in values
            ]
    elif kind == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise FormatError(f"{path}, line {lineno}: invalid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise FormatError(f"{path}, line {lineno}: expected a JSON object per line")
                where.append(lineno)
                for role, name in cols.items():
                    v = obj.get(name)
                    data[role].append(None if v is None else (str(v) if role in text_roles else v))
    else:
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=delimiter)
                if header:
                    next(reader)
                idx = {role: available.index(name) for role, name in cols.items()}
                lineno = reader.line_num
                for row in reader:
                    lineno, row_start = reader.line_num, lineno + 1
                    if not row or not any(field.strip() for field in row):
                        continue
                    where.append(row_start)
                    for role, i in idx.items():
                        if i >= len(row):
                            raise FormatError(
                                f"{path}, line {row_start}, field {cols[role]}: missing field "
                                f"(the row has {len(row)} fields)"
                            )
                        v = unescape_formula(row[i]).strip()
                        data[role].append(v if v != "" else None)
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except csv.Error as exc:
            raise FormatError(f"{path}, line {reader.line_num}: {exc}") from None
    for role, values in data.items():
        for row_no, v in enumerate(values):
            if v is None:
                at = f"line {where[row_no]}" if where else f"record {row_no}"
                raise FormatError(f"{path}, {at}, field {cols[role]}: empty {role}")
    if with_lines:
        n_rows = len(next(iter(data.values()))) if data else 0
        data["_line"] = where if where or kind != "parquet" else list(range(n_rows))
    return data
