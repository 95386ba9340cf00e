"""Prodigy, doccano and CVAT: every fixture, decisions and broken files."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labelloop.formats import FormatIssue, detect, read, write_label_studio

from .conftest import Summary, comparable

# folder/file: (items, annotators, annotations, gold, predictions, skipped), counted by hand
COUNTS = {
    # 25 answers: accept 10, reject 12 (-> "not foo"), ignore 3 (skipped)
    "prodigy/prodigy-hf_textcat-binary.jsonl": (25, 1, 22, 0, 0, 3),
    # 25 answers: 17 with one option; skipped: 4 empty accept lists, 2 rejects, 2 ignores
    "prodigy/prodigy-hf_fashion-train.jsonl": (10, 1, 10, 0, 0, 0),
    "prodigy/prodigy-hf_textcat-multi.jsonl": (25, 1, 17, 0, 0, 8),
    "prodigy/emerson_annotated_text.jsonl": (30, 1, 30, 0, 0, 0),
    # 3372 answers on 117 texts by 42 annotators; 55 re-answers superseded, 277 ignores
    "prodigy/pydata-ams-2023.jsonl": (117, 42, 3040, 0, 0, 332),
    "doccano/doccano-transformer_classification.csv": (3, 1, 3, 0, 0, 0),
    "doccano/doccano-transformer_classification.jsonl": (3, 1, 3, 0, 0, 0),
    "doccano/doccano-transformer_labeling.jsonl": (2, 2, 3, 0, 0, 0),
    "doccano/doccano-transformer_labeling_text_label.jsonl": (2, 1, 2, 0, 0, 0),
    "doccano/doccano_export_sequence_labeling_example.jsonl": (3, 1, 3, 0, 0, 0),
    "doccano/doccano_export_text_classification_example.jsonl": (3, 1, 3, 0, 0, 0),
    "cvat/comparing-data-markup_annotations.xml": (14, 1, 14, 0, 0, 0),
    "cvat/datumaro_export_project_annotations.xml": (6, 1, 6, 0, 0, 0),
    # two shapes with an empty label are skipped
    "cvat/datumaro_for_images_train.xml": (2, 1, 2, 0, 0, 2),
}
FORMAT = {"prodigy": "prodigy", "doccano": "doccano", "cvat": "cvat"}
TASK_TYPE = {
    "prodigy/prodigy-hf_textcat-binary.jsonl": "single",
    "prodigy/prodigy-hf_fashion-train.jsonl": "spans",
    "prodigy/prodigy-hf_textcat-multi.jsonl": "single",
    "prodigy/emerson_annotated_text.jsonl": "single",
    "prodigy/pydata-ams-2023.jsonl": "single",
    "doccano/doccano-transformer_classification.csv": "single",
    "doccano/doccano-transformer_classification.jsonl": "single",
    "doccano/doccano-transformer_labeling.jsonl": "spans",
    "doccano/doccano-transformer_labeling_text_label.jsonl": "spans",
    "doccano/doccano_export_sequence_labeling_example.jsonl": "spans",
    "doccano/doccano_export_text_classification_example.jsonl": "single",
    "cvat/comparing-data-markup_annotations.xml": "spans",
    "cvat/datumaro_export_project_annotations.xml": "spans",
    "cvat/datumaro_for_images_train.xml": "spans",
}


def test_every_fixture_is_listed(shared_fixtures: Path) -> None:
    found = {
        f"{p.parent.name}/{p.name}"
        for folder in ("prodigy", "doccano", "cvat")
        for p in (shared_fixtures / folder).iterdir()
    }
    assert found == set(COUNTS) | {"cvat/datumaro_for_video_annotations.xml"}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_fixture_counts(
    shared_fixtures: Path, summarize: Callable[..., Summary], name: str
) -> None:
    path = shared_fixtures / name
    assert detect(path) == FORMAT[name.split("/")[0]]
    out = summarize(path)
    assert out.issues == []
    assert out.counts() == COUNTS[name]
    assert out.hints.task_type == TASK_TYPE[name]


def test_prodigy_binary_reject_is_the_negative_label(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "prodigy/prodigy-hf_textcat-binary.jsonl")
    values = [a.value for a in out.annotations]
    assert values.count("foo") == 10 and values.count("not foo") == 12
    first = out.annotations[0]
    assert first.annotator == "2023-10-27_16-50-06"
    assert first.item_external_id == "-784135307"
    assert first.external_id == "-1606845795"
    assert first.submitted_at == datetime.fromtimestamp(1698418209, tz=UTC)
    assert out.hints.labels == ["foo", "not foo"]
    assert out.skipped_reasons == {"ignored (answer: ignore)": 3}


def test_prodigy_choice_view(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    out = summarize(shared_fixtures / "prodigy/prodigy-hf_textcat-multi.jsonl")
    assert out.hints.labels == ["foo", "bar", "buz"]
    assert out.annotations[0].value == "bar"
    assert out.skipped_reasons == {
        "accepted with no option selected (empty accept list)": 4,
        "rejected in the choice view (no label)": 2,
        "ignored (answer: ignore)": 2,
    }
    emerson = summarize(shared_fixtures / "prodigy/emerson_annotated_text.jsonl")
    assert emerson.annotations[0].value == "Q312545"
    assert emerson.annotators == {None}
    assert emerson.items[0].payload["spans"][0]["text"] == "Emerson"


def test_prodigy_ner_manual_spans(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    out = summarize(shared_fixtures / "prodigy/prodigy-hf_fashion-train.jsonl")
    spans = [s for a in out.annotations for s in a.value]
    assert len(spans) == 2 and {s["label"] for s in spans} == {"FASHION_BRAND"}
    for ann in out.annotations:
        text = next(i.payload["text"] for i in out.items if i.external_id == ann.item_external_id)
        for span in ann.value:
            assert text[span["start"] : span["end"]] == span["text"]
    assert out.items[0].metadata == {"section": "malefashionadvice"}
    assert "spans" not in out.items[0].payload and "tokens" in out.items[0].payload


def test_prodigy_reanswer_keeps_the_latest(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "prodigy/pydata-ams-2023.jsonl")
    assert out.skipped_reasons == {
        "superseded: the same annotator answered this task again later; the latest answer is kept": 55,
        "ignored (answer: ignore)": 277,
    }
    keys = [(a.external_id, a.annotator) for a in out.annotations]
    assert len(keys) == len(set(keys))
    assert sorted({str(a.value) for a in out.annotations}) == ["new-dataset", "not new-dataset"]


def test_doccano_per_user_and_numeric_labels(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "doccano/doccano-transformer_labeling.jsonl")
    assert [(a.item_external_id, a.annotator, len(a.value)) for a in out.annotations] == [
        ("2578", "1", 5),
        ("2578", "2", 5),
        ("2580", "2", 6),
    ]
    assert out.annotations[0].value[0] == {"start": 9, "end": 14, "label": "12", "text": "JAPAN"}
    merged = summarize(shared_fixtures / "doccano/doccano-transformer_labeling_text_label.jsonl")
    assert merged.annotations[0].value[0] == {
        "start": 9,
        "end": 14,
        "label": "LOC",
        "text": "JAPAN",
    }
    current = summarize(
        shared_fixtures / "doccano/doccano_export_text_classification_example.jsonl"
    )
    assert [a.value for a in current.annotations] == ["negative", "positive", "positive"]
    csv_out = summarize(shared_fixtures / "doccano/doccano-transformer_classification.csv")
    jsonl_out = summarize(shared_fixtures / "doccano/doccano-transformer_classification.jsonl")
    assert [(a.item_external_id, a.annotator, a.value) for a in csv_out.annotations] == [
        (a.item_external_id, a.annotator, a.value) for a in jsonl_out.annotations
    ]
    assert csv_out.items[0].payload == {"text": "Terrible customer service."}


def test_doccano_multi_label(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(
        '{"text": "a", "label": ["x"]}\n{"text": "b", "label": ["y", "x"]}\n{"text": "c", "label": []}\n'
    )
    out = summarize(path)
    assert [a.value for a in out.annotations] == [["x"], ["x", "y"]]
    assert out.skipped_reasons == {"document without labels": 1}


def test_cvat_project_export_ids_and_attributes(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "cvat/datumaro_export_project_annotations.xml")
    assert [i.external_id for i in out.items] == [
        "task-39/Test/0",
        "task-39/Test/1",
        "task-39/Train/0",
        "task-39/Train/1",
        "task-39/Validation/0",
        "task-39/Validation/1",
    ]
    assert out.items[2].segments == {"subset": "Train"}
    box = out.annotations[0].value[0]
    assert box == {
        "label": "label1",
        "shape": "box",
        "points": [0.0, 2.0, 4.0, 4.0],
        "frame": 0,
        "occluded": True,
        "z_order": 1,
        "attributes": {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"},
    }
    assert out.annotators == {"tester@intel.com"}
    assert out.hints.attributes == {"a1": ["true"], "a2": ["v3"], "a3": ["0003"], "a4": ["2.4"]}


def test_cvat_job_export_and_empty_labels(
    shared_fixtures: Path, summarize: Callable[..., Summary]
) -> None:
    out = summarize(shared_fixtures / "cvat/comparing-data-markup_annotations.xml")
    assert sum(len(a.value) for a in out.annotations) == 24
    assert out.items[0].external_id == "job-1/0"
    assert out.items[0].payload == {
        "name": "pexels-arina-krasnikova-7726103.jsonl"[:-6] + ".jpg",
        "width": 2670,
        "height": 4000,
    }
    train = summarize(shared_fixtures / "cvat/datumaro_for_images_train.xml")
    assert [(s.location.line if s.location else None, s.reason) for s in train.skipped] == [
        (50, "shape with an empty label"),
        (53, "shape with an empty label"),
    ]
    assert train.annotations[1].value == [
        {
            "label": "label2",
            "shape": "points",
            "points": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "frame": 0,
            "z_order": 2,
        }
    ]


def test_cvat_video_is_refused(shared_fixtures: Path, summarize: Callable[..., Summary]) -> None:
    path = shared_fixtures / "cvat/datumaro_for_video_annotations.xml"
    assert detect(path) == "cvat"
    out = summarize(path)
    assert out.items == [] and out.annotations == []
    (issue,) = out.issues
    assert (issue.location.line, issue.location.field) == (70, "track")
    assert issue.reason.startswith(
        "CVAT for video 1.1 tracks are not supported: export the task as 'CVAT for images 1.1'"
    )


def test_cvat_tags(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "tags.xml"
    path.write_text(
        "<annotations><version>1.1</version><meta><task><id>7</id><owner><username>bo</username><email></email></owner>"
        "<assignee><username>al</username><email>al@x.org</email></assignee></task></meta>\n"
        '<image id="0" name="a.jpg"><tag label="cat"/><tag label="cute"/></image>\n'
        '<image id="1" name="b.jpg"><tag label="dog"/></image>\n'
        '<image id="2" name="c.jpg"></image>\n'
        "</annotations>\n",
        encoding="utf-8",
    )
    out = summarize(path)
    assert out.issues == []
    assert [(a.item_external_id, a.annotator, a.value) for a in out.annotations] == [
        ("task-7/0", "al@x.org", ["cat", "cute"]),
        ("task-7/1", "al@x.org", ["dog"]),
    ]
    assert out.hints.task_type == "multi" and len(out.items) == 3


def test_cvat_invalid_xml(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(
        '<annotations>\n<image id="0" name="a">\n<box label="x" xtl="1"></image>\n</annotations>\n'
    )
    (issue,) = summarize(path).issues
    assert issue.location.line == 3
    assert issue.reason == "invalid XML: mismatched tag (line 3, column 26)"
    path.write_text("<root><image id='0'/></root>")
    (issue,) = summarize(path).issues
    assert issue.reason == "root element is <root>, not <annotations>: not a CVAT XML file"
    path.write_bytes(b"")
    assert [i.reason for i in summarize(path).issues] == ["file is empty"]


def test_cvat_entities_are_refused(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "lol">]><annotations>&e;</annotations>'
    )
    (issue,) = summarize(path).issues
    assert issue.reason.startswith("refused unsafe XML")


def test_cvat_bad_coordinates_and_duplicates(
    tmp_path: Path, summarize: Callable[..., Summary]
) -> None:
    path = tmp_path / "c.xml"
    path.write_text(
        '<annotations>\n<image id="0" name="a">\n<box label="x" xtl="a" ytl="1" xbr="2" ybr="3"/>\n</image>\n'
        '<image id="0" name="b"/>\n</annotations>\n'
    )
    out = summarize(path)
    assert [(i.location.line, i.location.field, i.reason) for i in out.issues] == [
        (
            3,
            "image.box[0]",
            "<box> has missing or non-numeric coordinates (could not convert string to float: 'a')",
        ),
        (5, "image.id", "duplicate image '0': also at line 2"),
    ]


def test_jsonl_problems(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "p.jsonl"
    rows = [
        {
            "text": "a",
            "label": "L",
            "answer": "accept",
            "_input_hash": 1,
            "_task_hash": 2,
            "_view_id": "classification",
        },
        {
            "text": "b",
            "label": "L",
            "answer": "maybe",
            "_input_hash": 3,
            "_task_hash": 4,
            "_view_id": "classification",
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"text": \n', encoding="utf-8")
    out = summarize(path)
    assert [(i.location.line, i.location.field, i.reason) for i in out.issues] == [
        (2, "answer", "answer must be accept, reject or ignore, found 'maybe'"),
        (3, None, "invalid JSON: Expecting value at column 10"),
    ]
    latin = tmp_path / "l.jsonl"
    latin.write_bytes(
        json.dumps(rows[0]).encode() + b"\n" + '{"text": "é"}'.encode("latin-1") + b"\n"
    )
    (issue,) = summarize(latin, format="prodigy").issues
    assert issue.location.line == 2 and "not UTF-8" in issue.reason
    dup = tmp_path / "d.jsonl"
    dup.write_text(
        '{"id": 1, "text": "a", "label": ["x"]}\n{"id": 1, "text": "b", "label": ["y"]}\n'
    )
    (issue,) = summarize(dup).issues
    assert (issue.location.line, issue.location.field, issue.reason) == (
        2,
        "id",
        "duplicate document id '1': also at line 1",
    )


def test_cvat_wrong_encoding(tmp_path: Path, summarize: Callable[..., Summary]) -> None:
    path = tmp_path / "l.xml"
    body = '<annotations>\n<image id="0" name="café.jpg"/>\n</annotations>\n'.encode("latin-1")
    path.write_bytes(body)
    (issue,) = summarize(path).issues
    assert issue.location.line == 2
    offset = body.index(b"\xe9")
    assert f"invalid byte 0xe9 at byte offset {offset} (line 2)" in issue.reason
    declared = tmp_path / "d.xml"
    declared.write_bytes(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n' + body)
    out = summarize(declared)
    assert out.issues == [] and out.items[0].payload == {"name": "café.jpg"}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_export_to_label_studio_and_back(shared_fixtures: Path, tmp_path: Path, name: str) -> None:
    """Any import can be exported as Label Studio JSON and re-imported unchanged."""
    first = list(read(shared_fixtures / name))
    out = tmp_path / "export.json"
    write_label_studio(first, out)
    again = list(read(out))
    assert [i for i in again if isinstance(i, FormatIssue)] == []
    assert comparable(again) == comparable(first)


@pytest.mark.slow
def test_cvat_streams_with_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("<annotations><version>1.1</version><meta><task><id>1</id></task></meta>\n")
        fh.writelines(
            f'<image id="{i}" name="i{i}.jpg"><box label="car" xtl="1" ytl="2" xbr="3" ybr="4">'
            '<attribute name="colour">red</attribute></box></image>\n'
            for i in range(5000)
        )
        fh.write("</annotations>\n")
    tracemalloc.start()
    try:
        kinds = [type(r).__name__ for r in read(path)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kinds.count("ItemRecord") == 5000 and kinds.count("AnnotationRecord") == 5000
    assert peak < 10 * 1024 * 1024
