"""Format detection and the ``read`` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelloop.formats import FORMATS, FormatError, FormatIssue, detect, read


def test_formats_tuple() -> None:
    assert FORMATS == ("label-studio", "cvat", "prodigy", "doccano", "csv", "jsonl", "parquet")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", "[]", "label-studio"),
        ("a.xml", "<annotations/>", "cvat"),
        ("a.jsonl", '{"text": "x", "answer": "accept", "_input_hash": 1}\n', "prodigy"),
        ("a.jsonl", '{"text": "x", "label": ["a"]}\n', "doccano"),
        ("a.jsonl", '{"item_id": 1, "annotator": "a", "label": "x"}\n', "jsonl"),
        ("a.ndjson", '{"whatever": 1}\n', "jsonl"),
        ("a.tsv", "item_id\tannotator\tlabel\n", "csv"),
        ("a.csv", "annotation_approver,id,label,text,user\n", "doccano"),
        ("noext", "<?xml version='1.0'?><annotations/>", "cvat"),
        ("noext2", '[{"data": {}}]', "label-studio"),
        ("noext3", '{"text": "x", "label": [[0, 1, "A"]]}\n{"text": "y"}\n', "doccano"),
        ("a.parquet", "", "parquet"),
    ],
)
def test_detect(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert detect(path) == expected


def test_detect_refuses_unknown(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# hello\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"cannot tell the format from the extension '\.md'"):
        detect(path)
    (issue,) = list(read(path))
    assert isinstance(issue, FormatIssue) and "cannot tell the format" in issue.reason
    with pytest.raises(FormatError, match="file not found"):
        detect(tmp_path / "missing.json")
    with pytest.raises(FormatError, match="first line is not JSON"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text("nope\n", encoding="utf-8")
        detect(bad)


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="unknown format 'excel'"):
        list(read(tmp_path / "x.csv", format="excel"))
    (issue,) = list(read(tmp_path / "missing.csv"))
    assert isinstance(issue, FormatIssue) and issue.reason == "file not found"
