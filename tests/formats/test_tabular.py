"""Long-form CSV/TSV/JSONL/Parquet: crowdsourcing fixtures, broken files, writers, streaming."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labelloop.formats import (
    AnnotationRecord,
    FormatIssue,
    TabularOptions,
    detect,
    long_row,
    read,
    write_long,
)

from .conftest import Summary

SNOW = TabularOptions(item="orig_id", annotator="!amt_worker_ids", label="response", gold="gold")
# file: (options, (items, annotators, annotations, gold, predictions, skipped)), counted with the csv module
CROWD_COUNTS: dict[str, tuple[TabularOptions, tuple[int, int, int, int, int, int], str]] = {
    "snow2008_anger.standardized.tsv": (
        TabularOptions(
            item="orig_id", annotator="!amt_worker_ids", label="response", task_type="ordinal"
        ),
        (100, 38, 1000, 100, 0, 0),
        "ordinal",
    ),
    "snow2008_wordsim.standardized.tsv": (
        TabularOptions(
            item="orig_id", annotator="!amt_worker_ids", label="response", task_type="ordinal"
        ),
        (30, 10, 300, 30, 0, 0),
        "ordinal",
    ),
    "snow2008_wsd.standardized.tsv": (SNOW, (177, 34, 1770, 177, 0, 0), "single"),
    "snow2008_rte.standardized.tsv": (SNOW, (800, 164, 8000, 800, 0, 0), "single"),
    "snow2008_temp.standardized.tsv": (SNOW, (462, 76, 4620, 462, 0, 0), "single"),
    "AdultContent_labels.txt": (
        TabularOptions(fieldnames=["annotator", "item_id", "label"]),
        (5, 5, 25, 0, 0, 0),
        "single",
    ),
    "AdultContent_gold.txt": (
        TabularOptions(fieldnames=["item_id", "gold"], annotator=None, label=None),
        (2, 0, 0, 2, 0, 0),
        "single",
    ),
}


def test_every_crowdsourcing_fixture_is_listed(shared_fixtures: Path) -> None:
    assert {p.name for p in (shared_fixtures / "crowdsourcing").iterdir()} == set(CROWD_COUNTS)


@pytest.mark.parametrize("name", sorted(CROWD_COUNTS))
def test_crowdsourcing_counts(
    shared_fixtures: Path, summarize: Callable[..., Summary], name: str
) -> None:
    options, counts, task_type = CROWD_COUNTS[name]
    path = shared_fixtures / "crowdsourcing" / name
    assert detect(path) == "csv"
    out = summarize(path, options=options)
    assert out.issues == []
    assert out.counts() == counts
    assert out.hints.task_type == task_type


def test_snow_values(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    options = CROWD_COUNTS["snow2008_anger.standardized.tsv"][0]
    out = summarize(
        shared_fixtures / "crowdsourcing" / "snow2008_anger.standardized.tsv", options=options
    )
    first = out.annotations[0]
    assert (first.item_external_id, first.annotator, first.value) == ("594", "A1AVJRFM6L0RN8", 25)
    assert first.location is not None and first.location.line == 2 and first.location.record == 0
    assert out.golds[0].value == 37
    wsd = summarize(
        shared_fixtures / "crowdsourcing" / "snow2008_wsd.standardized.tsv", options=SNOW
    )
    assert wsd.items[0].external_id == "5:0@35@wsj/23/wsj_2386@wsj@en@on"
    assert wsd.hints.labels == ["1", "3", "2"] or set(wsd.hints.labels) == {"1", "2", "3"}


def test_adult_content_gold(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    options = CROWD_COUNTS["AdultContent_gold.txt"][0]
    out = summarize(shared_fixtures / "crowdsourcing" / "AdultContent_gold.txt", options=options)
    assert [(g.item_external_id, g.value) for g in out.golds] == [
        ("url1", "notporn"),
        ("url2", "porn"),
    ]


def test_label_studio_converter_csv_is_tab_separated(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    path = shared_fixtures / "label_studio" / "csv_test2_result.csv"
    assert detect(path) == "csv"
    out = summarize(path)  # default mapping: item_id and label are not there
    assert [(i.location.line, i.location.field) for i in out.issues] == [
        (1, "item_id"),
        (1, "label"),
    ]
    assert out.issues[0].reason.startswith(
        "missing required column 'item_id' (the item column); the file has '_row_id'"
    )
    options = TabularOptions(
        item="id",
        label=None,
        started_at="created_at",
        submitted_at="updated_at",
        active_seconds="lead_time",
        payload_columns=["title", "writers"],
    )
    out = summarize(path, options=options)
    assert out.issues == []
    assert out.counts() == (1, 0, 0, 0, 0, 0)
    assert out.items[0].external_id == "4"
    assert out.items[0].payload["writers"][1]["name"] == "YI XIONG HUANG"


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_full_mapping_segments_tags_and_timestamps(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = _csv(
        tmp_path,
        "item_id;annotator;label;started_at;submitted_at;active_seconds;segment_lang;segment.region;tags;text;src\r\n"
        "i1;ann;a|b;2024-05-01T10:00:00+02:00;2024-05-01T08:00:05;5;en;eu;edge-case|new;hello;web\r\n"
        'i1;bob;"b";;;;en;eu;;hello;web\r\n',
    )
    out = summarize(path, options=TabularOptions(multi_separator="|", metadata_columns=["src"]))
    assert out.issues == []
    item = out.items[0]
    assert item.payload == {"text": "hello"}
    assert item.segments == {"lang": "en", "region": "eu"}
    assert item.tags == ("edge-case", "new")
    assert item.metadata == {"src": "web"}
    first, second = out.annotations
    assert first.value == ["a", "b"] and second.value == ["b"]
    assert first.started_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert first.submitted_at == datetime(2024, 5, 1, 8, 0, 5, tzinfo=UTC)
    assert first.active_seconds == 5.0
    assert out.hints.task_type == "multi" and out.hints.labels == ["a", "b"]


def test_missing_required_column(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = _csv(tmp_path, "item_id,worker,label\n1,a,x\n")
    (issue,) = summarize(path).issues
    assert str(issue.location) == f"{path}, line 1, field annotator"
    assert issue.reason == (
        "missing required column 'annotator' (the annotator column); the file has 'item_id', 'worker', 'label'; "
        "map it with the column options"
    )
    out = summarize(path, options=TabularOptions(annotator="worker", started_at="when"))
    assert [i.reason for i in out.issues] == [
        "column 'when' (set for started_at) is not in the file; it has 'item_id', 'worker', 'label'"
    ]
    assert summarize(path, options=TabularOptions(annotator="worker")).counts() == (
        1,
        1,
        1,
        0,
        0,
        0,
    )


def test_bad_timestamp_and_duration(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = _csv(
        tmp_path,
        "item_id,annotator,label,submitted_at,active_seconds\n"
        "1,a,x,2024-01-01T00:00:00Z,3\n"
        "2,a,x,01/02/2024 10:00,3\n"
        "3,a,x,,fast\n",
    )
    out = summarize(path)
    assert [
        (i.location.line, i.location.record, i.location.field, i.reason) for i in out.issues
    ] == [
        (
            3,
            1,
            "submitted_at",
            "'01/02/2024 10:00' is not an ISO 8601 timestamp (e.g. 2024-05-01T12:30:00Z)",
        ),
        (4, 2, "active_seconds", "expected a number of seconds, found 'fast'"),
    ]
    assert len(out.annotations) == 1


def test_duplicates_report_both_lines(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = _csv(tmp_path, "item_id,annotator,label\n1,a,x\n2,a,x\n1,a,y\n")
    (issue,) = summarize(path).issues
    assert (issue.location.line, issue.location.field) == (4, "annotator")
    assert issue.reason == (
        "duplicate annotation: annotator 'a' already labeled item '1' at line 2 "
        "(add an annotation id column to keep both)"
    )
    path = _csv(tmp_path, "item_id,annotator,label,annotation_id\n1,a,x,k1\n1,b,y,k1\n", "ids.csv")
    (issue,) = summarize(path).issues
    assert (issue.location.line, issue.location.field, issue.reason) == (
        3,
        "annotation_id",
        "duplicate annotation id 'k1': also at line 2",
    )
    path = _csv(tmp_path, "item_id,annotator,label,gold\n1,a,x,x\n1,b,y,y\n", "gold.csv")
    (issue,) = summarize(path).issues
    assert (issue.location.line, issue.reason) == (
        3,
        "gold label 'y' for item '1' conflicts with 'x' at line 2",
    )


def test_multiline_quoted_cells_keep_line_numbers(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = _csv(
        tmp_path, 'item_id,annotator,label,text\n1,a,x,"two\nlines"\n2,a,,t\n3,a,x,t,extra\n'
    )
    out = summarize(path)
    assert out.items[0].payload == {"text": "two\nlines"}
    assert [(s.location.line if s.location else None, s.reason) for s in out.skipped] == [
        (4, "row without a label")
    ]
    assert [(i.location.line, i.reason) for i in out.issues] == [
        (5, "row has 5 fields but the header has 4 (delimiter ',')")
    ]


def test_empty_file_and_header_only(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    (issue,) = summarize(_csv(tmp_path, "")).issues
    assert issue.reason == "file is empty"
    assert summarize(_csv(tmp_path, "item_id,annotator,label\n", "h.csv")).counts() == (
        0,
        0,
        0,
        0,
        0,
        0,
    )


def test_latin1_csv_stops_with_offset(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    body = "item_id,annotator,label\n1,a,x\n2,b,caf\u00e9\n3,c,x\n".encode("latin-1")
    path = tmp_path / "l.csv"
    path.write_bytes(body)
    out = summarize(path)
    (issue,) = out.issues  # fatal: the import is refused, whatever came before
    assert issue.location.line == 3
    offset = body.index(b"\xe9")
    assert f"at byte offset {offset} (line 3)" in issue.reason


def test_ordinal_rejects_text(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = _csv(tmp_path, "item_id,annotator,label\n1,a,4\n2,a,high\n")
    (issue,) = summarize(path, options=TabularOptions(task_type="ordinal")).issues
    assert (issue.location.line, issue.location.field) == (3, "label")
    assert issue.reason == "'high' is not a number (the task type is ordinal)"


def _rows() -> list[dict[str, object]]:
    return [
        {
            "item_id": "i1",
            "annotator": "a",
            "label": ["x", "y"],
            "started_at": datetime(2024, 1, 1, 9, tzinfo=UTC),
            "submitted_at": datetime(2024, 1, 1, 9, 0, 4, tzinfo=UTC),
            "active_seconds": 4.0,
            "annotation_id": "k1",
            "gold": ["x"],
            "segment_lang": "en",
            "text": 'hello, "world"\nbye',
        },
        {
            "item_id": "i2",
            "annotator": "b",
            "label": ["z"],
            "started_at": None,
            "submitted_at": None,
            "active_seconds": None,
            "annotation_id": "k2",
            "gold": None,
            "segment_lang": "de",
            "text": "ok",
        },
    ]


def _expected() -> list[tuple[object, ...]]:
    return [
        (
            "i1",
            "a",
            ["x", "y"],
            "multi",
            "k1",
            datetime(2024, 1, 1, 9, tzinfo=UTC),
            datetime(2024, 1, 1, 9, 0, 4, tzinfo=UTC),
            4.0,
        ),
        ("i2", "b", ["z"], "multi", "k2", None, None, None),
    ]


def _got(out: Summary) -> list[tuple[object, ...]]:
    return [
        (
            a.item_external_id,
            a.annotator,
            a.value,
            a.task_type,
            a.external_id,
            a.started_at,
            a.submitted_at,
            a.active_seconds,
        )
        for a in out.annotations
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_write_long_round_trip(tmp_path: Path, summarize: Callable[..., Summary], fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    assert write_long(_rows(), path, fmt) == 2  # type: ignore[arg-type]
    assert detect(path) == fmt
    out = summarize(path)
    assert out.issues == []
    assert _got(out) == _expected()
    assert [(g.item_external_id, g.value) for g in out.golds] == [("i1", ["x"])]
    assert [i.segments for i in out.items] == [{"lang": "en"}, {"lang": "de"}]
    assert out.items[0].payload == {"text": 'hello, "world"\nbye'}


def test_write_long_parquet_round_trip(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    pytest.importorskip("pyarrow.parquet", exc_type=ImportError)
    path = tmp_path / "out.parquet"
    rows = _rows() * 10000
    for n, row in enumerate(rows):
        rows[n] = {**row, "annotation_id": f"k{n}"}
    assert write_long(rows, path, "parquet") == 20000
    assert detect(path) == "parquet"
    out = summarize(path)
    assert out.issues == []
    assert len(out.annotations) == 20000 and len(out.items) == 2
    assert out.annotations[0].value == ["x", "y"]


def test_jsonl_long_form_native_values(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "l.jsonl"
    lines = [
        {"item_id": 1, "annotator": "a", "label": 3},
        {"item_id": 1, "annotator": "b", "label": 4.5},
        "not json",
        {"item_id": 2, "annotator": "b"},
        {"item_id": 2, "annotator": "c", "label": "x"},
    ]
    path.write_text(
        "\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n",
        encoding="utf-8",
    )
    out = summarize(path)
    assert [a.value for a in out.annotations] == [3, 4.5]
    assert [(i.location.line, i.reason) for i in out.issues] == [
        (3, "invalid JSON: Expecting value at column 1"),
        (4, "missing key 'label'"),
        (5, "'x' is not a number (the task type is ordinal)"),
    ]


@pytest.mark.slow
def test_streaming_200k_rows_bounded_memory(tmp_path: Path) -> None:
    """200,000 rows stream with a small, bounded peak (only the duplicate-check keys grow)."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("item_id,annotator,label\n")
        fh.writelines(f"item{n // 3},ann{n % 3},label{n % 7}\n" for n in range(200_000))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        annotations = 0
        for record in read(path):
            assert not isinstance(record, FormatIssue)
            if isinstance(record, AnnotationRecord):
                annotations += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert annotations == 200_000
    assert peak < 60 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"


def test_parquet_problems(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    pytest.importorskip("pyarrow.parquet", exc_type=ImportError)
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet")
    (issue,) = summarize(bad).issues
    assert issue.reason.startswith("not a readable Parquet file")
    path = tmp_path / "t.parquet"
    naive = datetime(2024, 1, 1, 12, 0)
    table = pa.table(
        {
            "item_id": ["1", "2"],
            "worker": ["a", "b"],
            "label": ["x", "y"],
            "submitted_at": [naive, naive],
        }
    )
    pq.write_table(table, path)
    (issue,) = summarize(path).issues
    assert (issue.location.line, issue.location.field) == (None, "annotator")
    out = summarize(path, options=TabularOptions(annotator="worker"))
    assert out.issues == []
    assert [a.submitted_at for a in out.annotations] == [naive.replace(tzinfo=UTC)] * 2
    assert [a.location.record for a in out.annotations if a.location] == [0, 1]


def test_jsonl_objects_may_leave_out_optional_keys(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text(
        '{"item_id": "a", "annotator": "u", "label": "x"}\n'
        '{"item_id": "b", "annotator": "u", "label": "y", "gold": "y", '
        '"submitted_at": "2024-02-03T04:05:06+01:00"}\n',
        encoding="utf-8",
    )
    out = summarize(path)
    assert out.issues == []
    assert [(g.item_external_id, g.value) for g in out.golds] == [("b", "y")]
    assert out.annotations[1].submitted_at == datetime(2024, 2, 3, 3, 5, 6, tzinfo=UTC)


LONG_SOURCES = [
    "label_studio/three_tasks_two_gts.json",
    "label_studio/project-14-at-2025-06-25-13-18-72190ffe.json",
    "label_studio/ls_data.json",
    "label_studio/humor_dataset_2_annotations.json",
    "prodigy/prodigy-hf_textcat-binary.jsonl",
    "cvat/datumaro_export_project_annotations.xml",
]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("name", LONG_SOURCES)
def test_long_rows_round_trip(
    shared_fixtures: Path, tmp_path: Path, summarize: Callable[..., Summary], name: str, fmt: str
) -> None:
    """Any import written as long-form rows reads back to the same annotations and gold."""
    if fmt == "parquet":
        pytest.importorskip("pyarrow.parquet", exc_type=ImportError)
    first = summarize(shared_fixtures / name)
    items = {i.external_id: i for i in first.items}
    golds = {g.item_external_id: g.value for g in first.golds}
    rows = [
        long_row(a, items[a.item_external_id], golds.get(a.item_external_id))
        for a in first.annotations
    ]
    path = tmp_path / f"long.{fmt}"
    write_long(rows, path, fmt)  # type: ignore[arg-type]
    again = summarize(path)
    assert again.issues == []
    assert [
        (
            a.item_external_id,
            a.annotator,
            a.external_id,
            a.value,
            a.task_type,
            a.started_at,
            a.submitted_at,
            a.active_seconds,
        )
        for a in again.annotations
    ] == [
        (
            a.item_external_id,
            a.annotator,
            a.external_id,
            a.value,
            a.task_type,
            a.started_at,
            a.submitted_at,
            a.active_seconds,
        )
        for a in first.annotations
    ]
    assert [(a.attributes, a.guideline_version) for a in again.annotations] == [
        (a.attributes, a.guideline_version) for a in first.annotations
    ]
    payloads = {i.external_id: i.payload for i in first.items}
    assert all(i.payload == payloads[i.external_id] for i in again.items)
    assert [(g.item_external_id, g.value) for g in again.golds] == [
        (g.item_external_id, g.value)
        for g in first.golds
        if g.item_external_id in {a.item_external_id for a in first.annotations}
    ]
