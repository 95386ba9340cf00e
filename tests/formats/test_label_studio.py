"""Label Studio JSON export: every fixture, values, broken files and the round trip."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.formats import (
    AnnotationRecord,
    GoldRecord,
    ItemRecord,
    PredictionRecord,
    read,
    write_label_studio,
)
from labelloop.formats.records import Record

from .conftest import Summary, comparable

# file: (items, annotators, annotations, gold, predictions, skipped), counted by hand
LS_COUNTS = {
    "csv_test.json": (2, 1, 2, 0, 2, 0),
    "csv_test2.json": (1, 1, 1, 0, 0, 0),
    "humor_dataset_2_annotations.json": (2, 1, 2, 1, 0, 0),
    "ls_data.json": (4, 1, 4, 0, 0, 4),  # predictions given only as ids
    "previous_export.json": (1, 1, 1, 0, 0, 0),
    "previous_export_unknown_completed_by.json": (1, 1, 1, 0, 0, 0),
    "project-14-at-2025-06-25-13-18-72190ffe.json": (1, 1, 1, 0, 0, 0),
    "tasks_annotations_predictions.json": (6, 1, 4, 0, 3, 0),  # annotator None
    "text_with_2_predictions.json": (1, 0, 0, 0, 2, 0),
    "three_tasks_two_gts.json": (3, 1, 3, 2, 3, 0),  # annotator None
}
LS_TASK_TYPES = {
    "csv_test.json": "spans",
    "csv_test2.json": "single",
    "humor_dataset_2_annotations.json": "single",
    "ls_data.json": "text",
    "previous_export.json": "single",
    "previous_export_unknown_completed_by.json": "single",
    "project-14-at-2025-06-25-13-18-72190ffe.json": "spans",
    "tasks_annotations_predictions.json": "single",
    "text_with_2_predictions.json": "single",
    "three_tasks_two_gts.json": "spans",
}


def test_every_label_studio_fixture_is_listed(shared_fixtures: Path) -> None:
    assert {p.name for p in (shared_fixtures / "label_studio").glob("*.json")} == set(LS_COUNTS)


@pytest.mark.parametrize("name", sorted(LS_COUNTS))
def test_label_studio_fixture_counts(
    shared_fixtures: Path, summarize: Callable[..., Summary], name: str
) -> None:
    path = shared_fixtures / "label_studio" / name
    out = summarize(path)
    assert out.issues == []
    assert out.counts() == LS_COUNTS[name]
    assert out.hints.task_type == LS_TASK_TYPES[name]
    # the same result when the format is named explicitly
    assert summarize(path, format="label-studio").counts() == LS_COUNTS[name]


def test_previous_export_single_object_values(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "label_studio" / "previous_export.json")
    (item,) = out.items
    assert item.external_id == "1234"
    assert item.payload == {"image": "https://pytest.labelstud.io/mypets.jpg"}
    (ann,) = out.annotations
    assert ann.annotator == "annotator_from_past@project.com"
    assert ann.external_id == "5678"
    assert ann.value == "Cat"
    assert ann.task_type == "single"
    assert ann.active_seconds == pytest.approx(346193.271)
    assert ann.started_at == datetime(2021, 7, 6, 6, 6, 25, 927570, tzinfo=UTC)
    assert ann.submitted_at == datetime(2021, 7, 6, 6, 44, 8, 446371, tzinfo=UTC)
    assert out.hints.labels == ["Cat"]


def test_completed_by_forms(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    folder = shared_fixtures / "label_studio"
    assert (
        summarize(folder / "previous_export_unknown_completed_by.json").annotations[0].annotator
        == "99999"
    )
    assert summarize(folder / "humor_dataset_2_annotations.json").annotators == {
        "test_suites_user@heartex.com"
    }
    assert summarize(folder / "ls_data.json").annotators == {"1"}
    assert summarize(folder / "tasks_annotations_predictions.json").annotators == {None}


def test_ground_truth_becomes_gold(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "label_studio" / "humor_dataset_2_annotations.json")
    (gold,) = out.golds
    assert gold.value == "Not Humor"
    assert gold.item_external_id == out.items[0].external_id
    assert gold.source == "label-studio ground_truth"


def test_tasks_without_ids_get_stable_content_ids(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    path = shared_fixtures / "label_studio" / "tasks_annotations_predictions.json"
    first, second = summarize(path), summarize(path)
    ids = [i.external_id for i in first.items]
    assert ids == [i.external_id for i in second.items]
    assert len(set(ids)) == 6 and all(i.startswith("h:") for i in ids)
    assert [a.external_id for a in first.annotations] == [a.external_id for a in second.annotations]
    assert (
        len({a.external_id for a in first.annotations}) == 4
    )  # two identical annotations stay distinct
    # tasks without a data wrapper: the task itself is the payload
    assert {"text": "zzz"} in [i.payload for i in first.items]
    assert sorted(a.active_seconds or 0 for a in first.annotations) == [0, 3.0, 3.0, 5.0]
    versions = sorted(str(p.model_version) for p in first.predictions)
    assert versions == ["None", "model_version_A", "model_version_A"]
    assert first.hints.labels == ["class_A", "class_TESTING", "class_PREDICTIONS_TESTING"]


def test_two_predictions_from_two_model_versions(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "label_studio" / "text_with_2_predictions.json")
    assert [(p.model_name, p.model_version, p.value) for p in out.predictions] == [
        ("label-studio", "model_version_A", "class_A"),
        ("label-studio", "model_version_B", "class_B"),
    ]


def test_rectangles_are_boxes_in_percent(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "label_studio" / "three_tasks_two_gts.json")
    first = out.annotations[0].value
    assert first == [
        {
            "shape": "box",
            "points": [80.62, 24.26, 83.74, 27.86],
            "frame": 0,
            "label": "Car",
        }
    ]
    assert len(out.annotations[2].value) == 3
    prediction = out.predictions[0]
    assert prediction.model_version == "model 0"
    assert prediction.score == pytest.approx(0.7212843313260696)
    assert prediction.value[0]["score"] == pytest.approx(0.23053804129850775)
    assert len(out.golds) == 2


def test_text_spans_with_cyrillic_offsets(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(
        shared_fixtures / "label_studio" / "project-14-at-2025-06-25-13-18-72190ffe.json"
    )
    (ann,) = out.annotations
    text = out.items[0].payload["text"]
    assert len(ann.value) == 7
    assert [s["start"] for s in ann.value] == sorted(s["start"] for s in ann.value)
    for span in ann.value:
        assert text[span["start"] : span["end"]] == span["text"]
    assert ann.value[3] == {"start": 116, "end": 129, "text": "Илоном Маском", "label": "PERSON"}
    assert out.hints.labels == ["ORG", "PERSON", "LOC", "PRODUCT"]
    assert ann.active_seconds == pytest.approx(197.235)


def test_textarea_is_text(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    out = summarize(shared_fixtures / "label_studio" / "ls_data.json")
    assert out.annotations[3].value == "The capital of France is Paris."
    assert out.annotations[3].task_type == "text"
    assert set(out.skipped_reasons) == {"prediction given only as an id (no result in the export)"}


def test_choice_with_control_characters(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "label_studio" / "csv_test2.json")
    assert out.annotations[0].value == 'Yes " "" \n \t \t а б в \n'


def _write(tmp_path: Path, name: str, document: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_cancelled_multi_rating_and_secondary_controls(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    tasks = [
        {
            "id": 1,
            "data": {"text": "a"},
            "annotations": [
                {
                    "id": 10,
                    "completed_by": {"id": 5},
                    "result": [
                        {"type": "choices", "from_name": "topic", "value": {"choices": ["b", "a"]}},
                        {"type": "textarea", "from_name": "note", "value": {"text": ["hm"]}},
                        {"type": "rating", "from_name": "conf", "value": {"rating": 4}},
                    ],
                },
                {"id": 11, "completed_by": 6, "was_cancelled": True, "result": []},
                {
                    "id": 12,
                    "completed_by": 7,
                    "result": [
                        {"type": "choices", "from_name": "topic", "value": {"choices": ["c"]}}
                    ],
                },
                {
                    "id": 13,
                    "completed_by": 8,
                    "result": [{"type": "relation", "from_id": "x", "to_id": "y"}],
                },
            ],
        }
    ]
    out = summarize(_write(tmp_path, "t.json", tasks))
    assert out.errors == []
    assert out.hints.task_type == "multi"
    assert [a.value for a in out.annotations] == [["a", "b"], ["c"]]
    assert out.annotations[0].annotator == "5"
    assert out.annotations[0].attributes == {"note": "hm", "conf": 4}
    assert out.skipped_reasons == {
        "cancelled annotation (was_cancelled)": 1,
        "unsupported Label Studio result type 'relation'": 1,
        "annotation without a 'topic' result": 1,
    }
    assert out.hints.attributes == {"note": ["hm"], "conf": ["4"]}


def test_truncated_json(
    tmp_path: Path, summarize: Callable[..., Summary], shared_fixtures: Path
) -> None:
    text = (shared_fixtures / "label_studio" / "previous_export.json").read_text(encoding="utf-8")
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    out = summarize(path)
    (issue,) = out.issues
    assert out.items == []
    assert "truncated" in issue.reason
    assert issue.location.file == str(path)
    assert issue.location.line is not None and issue.location.line > 10


def test_invalid_json_mid_file_names_line_and_column(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '[\n  {"data": {"text": "a"}},\n  {"data": {"text": "b"}} oops\n]\n', encoding="utf-8"
    )
    (issue,) = summarize(path).issues
    assert issue.location.line == 3
    assert issue.reason == "invalid JSON: Expecting ',' delimiter at line 3, column 27"


def test_empty_file(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    out = summarize(path)
    assert [(str(i.location), i.reason) for i in out.issues] == [(str(path), "file is empty")]


def test_latin1_bytes_report_offset_and_line(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = tmp_path / "latin1.json"
    body = '[\n{"data": {"text": "café"}}\n]\n'.encode("latin-1")
    path.write_bytes(body)
    (issue,) = summarize(path).issues
    offset = body.index(b"\xe9")
    assert issue.location.line == 2
    assert (
        f"byte offset {offset}" in issue.reason
        and "not UTF-8" in issue.reason
        and "0xe9" in issue.reason
    )


def test_unknown_structure(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    (issue,) = summarize(_write(tmp_path, "n.json", 42)).issues
    assert (
        issue.reason == "expected a list of Label Studio tasks or one task object, found a number"
    )
    out = summarize(
        _write(tmp_path, "m.json", [{"data": "x"}, "nope", {"data": {"t": 1}, "annotations": {}}])
    )
    assert [(i.location.record, i.location.field, i.reason) for i in out.issues] == [
        (0, "data", "task data must be an object, found a string"),
        (1, None, "expected a task object, found a string"),
        (2, "annotations", "must be a list, found an object"),
    ]
    assert len(out.items) == 1


def test_duplicate_task_and_annotation_ids(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    ann = {"id": 7, "result": [{"type": "choices", "from_name": "c", "value": {"choices": ["x"]}}]}
    tasks = [
        {"id": 1, "data": {"t": "a"}, "annotations": [ann]},
        {"id": 2, "data": {"t": "b"}, "annotations": [ann, ann]},
        {"id": 1, "data": {"t": "c"}},
    ]
    out = summarize(_write(tmp_path, "dup.json", tasks))
    assert [(i.location.record, i.location.field, i.reason) for i in out.errors] == [
        (
            1,
            "annotations[1].id",
            "duplicate annotation id '7': also at record 1, field annotations[0]",
        ),
        (2, "id", "duplicate task id '1': also at record 0"),
    ]


def test_bad_timestamp_and_lead_time(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    tasks = [
        {
            "id": 1,
            "data": {"t": "a"},
            "annotations": [
                {
                    "id": 3,
                    "created_at": "yesterday",
                    "lead_time": -4,
                    "result": [{"type": "choices", "from_name": "c", "value": {"choices": ["x"]}}],
                }
            ],
        }
    ]
    out = summarize(_write(tmp_path, "ts.json", tasks))
    assert [(str(i.location), i.reason) for i in out.issues] == [
        (
            f"{tmp_path / 'ts.json'}, record 0, field annotations[0].created_at",
            "'yesterday' is not an ISO 8601 timestamp (e.g. 2024-05-01T12:30:00Z)",
        ),
        (
            f"{tmp_path / 'ts.json'}, record 0, field annotations[0].lead_time",
            "expected a non-negative number of seconds, found -4",
        ),
    ]
    assert out.annotations == []


@pytest.mark.parametrize("name", sorted(LS_COUNTS))
def test_round_trip(shared_fixtures: Path, tmp_path: Path, name: str) -> None:
    first = [r for r in read(shared_fixtures / "label_studio" / name)]
    out = tmp_path / "export.json"
    write_label_studio(first, out)
    again = list(read(out))
    assert comparable(again) == comparable(first)
    # exporting the re-import gives the identical file
    out2 = tmp_path / "export2.json"
    write_label_studio(again, out2)
    assert out2.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def test_round_trip_of_gold_only_segments_and_rows(tmp_path: Path) -> None:
    records: list[Record] = [
        ItemRecord("x1", {"text": "hi"}, {"k": 1}, {"lang": "en"}, ("edge-case",)),
        AnnotationRecord(
            "x1",
            "ann@example.com",
            "spam",
            "single",
            external_id="a1",
            started_at=datetime(2024, 1, 1, tzinfo=UTC),
            active_seconds=2.5,
        ),
        GoldRecord("x1", "ham", "single", rationale="policy 3.2", source="adjudication"),
        PredictionRecord(
            "x1", "clf", "v2", "spam", "single", probabilities={"spam": 0.8, "ham": 0.2}, score=0.8
        ),
    ]
    path = tmp_path / "g.json"
    write_label_studio(records, path)
    assert comparable(list(read(path))) == comparable(records)
    rows = [
        {
            "item_id": "r1",
            "annotator": "u1",
            "label": "a",
            "text": "one",
            "gold": "a",
            "segment_lang": "de",
        },
        {"item_id": "r1", "annotator": "u2", "label": "b"},
    ]
    write_label_studio(rows, tmp_path / "rows.json")
    got = list(read(tmp_path / "rows.json"))
    assert [type(r).__name__ for r in got] == [
        "ItemRecord",
        "AnnotationRecord",
        "GoldRecord",
        "AnnotationRecord",
    ]
    assert got[0] == ItemRecord(
        "r1", {"text": "one"}, segments={"lang": "de"}, location=got[0].location
    )


@settings(max_examples=300, deadline=None)
@given(
    x1=st.floats(-1e4, 1e5, allow_nan=False),
    y1=st.floats(-1e4, 1e5, allow_nan=False),
    dx=st.floats(0, 1e5, allow_nan=False),
    dy=st.floats(0, 1e5, allow_nan=False),
)
def test_box_corners_survive_the_round_trip(x1: float, y1: float, dx: float, dy: float) -> None:
    """Boxes are written as x/y/width/height; corners (10 decimals) come back exactly."""
    points = [x1, y1, round(x1 + dx, 10), round(y1 + dy, 10)]
    region = {"label": "car", "shape": "box", "points": points, "frame": 0}
    records: list[Record] = [
        ItemRecord("1", {}),
        AnnotationRecord("1", "a", [region], "spans", external_id="9"),
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.json"
        write_label_studio(records, path)
        (again,) = [r for r in read(path) if isinstance(r, AnnotationRecord)]
    assert again.value == [region]
