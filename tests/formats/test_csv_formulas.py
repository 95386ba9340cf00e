"""CSV cells that spreadsheets would run as formulas: escaped by the writer, read back
exactly by the reader; numbers, JSON cells, JSONL and raw CSV untouched."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelloop.formats import AnnotationRecord, ItemRecord, TabularOptions, read, write_long
from labelloop.formats.tabular import FORMULA_TRIGGERS, escape_formula, unescape_formula

#: OWASP "CSV Injection": the first characters that start a formula.
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]
HOSTILE = [f"{t}cmd|' /C calc'!A0" for t in TRIGGERS] + ["=1+1", "-2+3", "@SUM(A1)", "+x", "-"]
NUMBERS = ["-1", "+1", "-2.5", "+.5", "-1e5", "-3E-2", "0", "12"]
TEXT_COLUMNS = ("annotator", "label", "text", "segment_source", "tags")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower().lstrip("+-") not in ("inf", "nan", "infinity")


def test_triggers_are_owasps() -> None:
    assert set(TRIGGERS) == FORMULA_TRIGGERS


@pytest.mark.parametrize("text", HOSTILE)
def test_text_starting_with_a_trigger_gets_a_quote(text: str) -> None:
    assert escape_formula(text) == "'" + text
    assert unescape_formula("'" + text) == text


@pytest.mark.parametrize("text", [*NUMBERS, "plain", "", "a=b", " =1+1", "'", "''x", "'-1"])
def test_numbers_and_harmless_text_are_unchanged(text: str) -> None:
    assert escape_formula(text) == text
    assert unescape_formula(text) == text


def test_a_typed_quote_before_a_trigger_survives_the_round_trip() -> None:
    assert escape_formula("'=x") == "''=x"
    assert unescape_formula("''=x") == "'=x"
    assert unescape_formula("'=x") == "=x"


@given(st.text(alphabet=st.sampled_from("'=+-@\t\r 0123456789.eExa|"), max_size=8) | st.text())
def test_unescape_inverts_escape_and_only_numbers_start_with_a_trigger(text: str) -> None:
    escaped = escape_formula(text)
    assert unescape_formula(escaped) == text
    assert escaped[:1] not in FORMULA_TRIGGERS or _is_number(escaped)


def _rows() -> list[dict[str, Any]]:
    hostile = [
        {
            "item_id": f"item-{n}",
            "annotator": f"{t}user",
            "label": f"{t}label",
            "text": f'{t}HYPERLINK("http://x")',
            "segment_source": f"{t}src",
            "tags": f"{t}tag|b",
            "active_seconds": 1.5,
            "attributes": {"note": f"{t}x"},
        }
        for n, t in enumerate(TRIGGERS)
    ]
    numbers = {
        "item_id": "numbers",
        "annotator": "ann",
        "label": -1,
        "text": "-5",
        "segment_source": "-1.5",
        "tags": None,
        "active_seconds": 0.0,
        "attributes": None,
    }
    return [*hostile, numbers]


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_writer_escapes_text_cells_and_keeps_numbers(tmp_path: Path) -> None:
    rows = _rows()
    path = tmp_path / "out.csv"
    write_long(rows, path, "csv")
    table = _table(path)
    for row, cells in zip(rows, table, strict=True):
        for column in TEXT_COLUMNS:
            value = row[column]
            if isinstance(value, str) and value[:1] in FORMULA_TRIGGERS and not _is_number(value):
                assert cells[column] == "'" + value, column
        if row["attributes"]:
            assert cells["attributes"] == json.dumps(row["attributes"])  # JSON as it is
    assert table[-1]["label"] == "-1"  # numbers stay numbers, also in text columns
    assert (table[-1]["text"], table[-1]["segment_source"]) == ("-5", "-1.5")
    every_cell = [c for cells in table for c in cells.values()]
    assert all(c[:1] not in FORMULA_TRIGGERS or _is_number(c) for c in every_cell)


def test_raw_csv_and_jsonl_are_written_as_they_are(tmp_path: Path) -> None:
    rows = _rows()
    write_long(rows, tmp_path / "raw.csv", "csv", escape_formulas=False)
    for row, cells in zip(rows, _table(tmp_path / "raw.csv"), strict=True):
        for column in TEXT_COLUMNS:
            assert cells[column] == ("" if row[column] is None else str(row[column]))
    write_long(rows, tmp_path / "out.jsonl", "jsonl")
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["annotator"] for line in lines] == [r["annotator"] for r in rows]


def test_header_cells_are_escaped_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_long([{"item_id": "i", "annotator": "a", "label": "x", "=note": "y"}], path, "csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == "item_id,annotator,label,'=note"
    items = [r for r in read(path, options=TabularOptions(payload_columns=("=note",)))]
    assert [r.payload for r in items if isinstance(r, ItemRecord)] == [{"=note": "y"}]


@pytest.mark.parametrize("escape", [True, False], ids=["escaped", "raw"])
def test_escaped_and_raw_csv_read_back_the_same(tmp_path: Path, escape: bool) -> None:
    rows = [r for r in _rows() if r["item_id"] != "numbers"]
    path = tmp_path / "out.csv"
    write_long(rows, path, "csv", escape_formulas=escape)
    records = list(read(path))
    annotations = [r for r in records if isinstance(r, AnnotationRecord)]
    items = [r for r in records if isinstance(r, ItemRecord)]
    # the reader trims annotators and labels (so a leading tab or CR goes either way)
    assert [(a.annotator, a.value) for a in annotations] == [
        (r["annotator"].strip(), r["label"].strip()) for r in rows
    ]
    assert [i.payload["text"] for i in items] == [r["text"] for r in rows]
    assert [i.segments for i in items] == [{"source": r["segment_source"]} for r in rows]
