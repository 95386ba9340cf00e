"""The validator at entry: every task type, every rule, every violation with its path."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelloop.projects.schemas import LabelSchema
from labelloop.projects.validation import (
    Violation,
    canonical_value,
    compile_validator,
    validate_annotation,
    validate_value,
)


def schema(text: str) -> LabelSchema:
    return LabelSchema.from_yaml(text, source="test")


def paths(violations: list[Violation]) -> list[tuple[str, str]]:
    return [(v.field, v.code) for v in violations]


SINGLE = schema(
    """
task_type: single
labels: [spam, ham, other]
attributes:
  - {name: severity, type: choice, values: [low, high], required: true}
  - {name: note, type: text}
  - {name: score, type: number}
  - {name: checked, type: bool}
rules:
  - when: {label: other}
    require_attributes: [note]
  - when: {active_seconds_below: 2}
    flag: too_fast
    severity: warning
  - when: {active_seconds_above: 600}
    flag: too_slow
"""
)


def test_violation_str_and_flag() -> None:
    v = Violation("value[2].end", "out_of_range", "end 9 is past the end", "error")
    assert str(v) == "value[2].end: end 9 is past the end"
    assert v.as_flag() == {
        "code": "out_of_range",
        "field": "value[2].end",
        "message": "end 9 is past the end",
    }


def test_single_valid() -> None:
    assert (
        validate_annotation(SINGLE, "spam", attributes={"severity": "low"}, active_seconds=10) == []
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("spma", [("value", "unknown_label")], id="unknown"),
        pytest.param(3, [("value", "type")], id="number"),
        pytest.param(["spam"], [("value", "type")], id="list"),
        pytest.param(None, [("value", "type")], id="null"),
    ],
)
def test_single_value_errors(value: Any, expected: list[tuple[str, str]]) -> None:
    assert paths(validate_annotation(SINGLE, value, attributes={"severity": "low"})) == expected


def test_all_violations_reported_with_paths() -> None:
    got = validate_annotation(
        SINGLE,
        "other",
        attributes={"severity": "mid", "score": "many", "checked": "maybe", "colour": "red"},
        active_seconds=1.0,
    )
    assert paths(got) == [
        ("attributes.severity", "attribute_value"),
        ("attributes.score", "attribute_value"),
        ("attributes.checked", "attribute_value"),
        ("attributes.colour", "unknown_attribute"),
        ("attributes.note", "required_attribute"),
        ("active_seconds", "too_fast"),
    ]
    assert [v.severity for v in got][-1] == "warning"
    assert all(v.severity == "error" for v in got[:-1])


def test_required_attribute_missing_empty_or_null() -> None:
    for attrs in (None, {}, {"severity": ""}, {"severity": None}):
        assert paths(validate_annotation(SINGLE, "spam", attributes=attrs)) == [
            ("attributes.severity", "required")
        ]


def test_attribute_types_accept_strings_as_cvat_writes_them() -> None:
    ok = validate_annotation(
        SINGLE, "spam", attributes={"severity": "high", "score": "2.5", "checked": "true"}
    )
    assert ok == []
    ok = validate_annotation(
        SINGLE, "spam", attributes={"severity": "high", "score": 7, "checked": False}
    )
    assert ok == []


def test_attributes_must_be_an_object() -> None:
    got = validate_annotation(SINGLE, "spam", attributes=["severity"])  # type: ignore[arg-type]
    assert ("attributes", "type") in paths(got)


def test_time_rules_from_active_seconds_or_timestamps() -> None:
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    fast = validate_annotation(
        SINGLE,
        "spam",
        attributes={"severity": "low"},
        started_at=start,
        submitted_at=start + timedelta(seconds=1),
    )
    assert paths(fast) == [("active_seconds", "too_fast")]
    assert fast[0].severity == "warning"
    # active_seconds wins over wall-clock time
    assert (
        validate_annotation(
            SINGLE,
            "spam",
            attributes={"severity": "low"},
            active_seconds=30,
            started_at=start,
            submitted_at=start + timedelta(seconds=1),
        )
        == []
    )
    slow = validate_annotation(SINGLE, "spam", attributes={"severity": "low"}, active_seconds=601)
    assert paths(slow) == [("active_seconds", "too_slow")] and slow[0].severity == "warning"
    # no timing at all: time rules do not fire
    assert validate_annotation(SINGLE, "spam", attributes={"severity": "low"}) == []


def test_bad_timing() -> None:
    start = datetime(2025, 1, 1, 12, 0)  # naive is taken as UTC
    got = validate_annotation(
        SINGLE,
        "spam",
        attributes={"severity": "low"},
        started_at=start,
        submitted_at=start - timedelta(seconds=5),
    )
    assert paths(got) == [("submitted_at", "clock")] and got[0].severity == "warning"
    got = validate_annotation(SINGLE, "spam", attributes={"severity": "low"}, active_seconds=-3)
    assert paths(got) == [("active_seconds", "out_of_range")] and got[0].severity == "error"


def test_rule_custom_message_and_flag_code() -> None:
    s = schema(
        "task_type: single\nlabels: [a, b]\nattributes: [{name: why, type: text}]\n"
        "rules: [{when: {label: b}, require_attributes: [why], flag: needs_reason, message: say why}]\n"
    )
    (v,) = validate_annotation(s, "b")
    assert (v.field, v.code, v.severity) == ("attributes.why", "needs_reason", "error")
    assert v.message.startswith("say why")


# -- multi --------------------------------------------------------------------------------

MULTI = schema(
    """
task_type: multi
labels: [spam, harassment, hate, none]
min_labels: 1
max_labels: 2
rules:
  - when: {label: none}
    forbid_labels: [spam, harassment, hate]
"""
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(["spam"], [], id="one"),
        pytest.param(["hate", "spam"], [], id="two"),
        pytest.param([], [("value", "too_few_labels")], id="none-chosen"),
        pytest.param(["spam", "hate", "harassment"], [("value", "too_many_labels")], id="too-many"),
        pytest.param(["spam", "spam"], [("value[1]", "duplicate_label")], id="duplicate"),
        pytest.param(["spam", "porn"], [("value[1]", "unknown_label")], id="unknown"),
        pytest.param(["spam", 1], [("value[1]", "type")], id="not-a-name"),
        pytest.param("spam", [("value", "type")], id="not-a-list"),
        pytest.param(["none", "hate"], [("value[1]", "forbidden_label")], id="forbidden"),
        pytest.param(["none"], [], id="none-alone"),
    ],
)
def test_multi(value: Any, expected: list[tuple[str, str]]) -> None:
    assert paths(validate_annotation(MULTI, value)) == expected


def test_multi_canonical_is_sorted() -> None:
    assert canonical_value(MULTI, ["spam", "hate"]) == ["hate", "spam"]


# -- ordinal ------------------------------------------------------------------------------

SCALE = schema("task_type: ordinal\nscale: {min: 1, max: 5, step: 1}\n")
HALF = schema("task_type: ordinal\nscale: {min: 0, max: 1, step: 0.25}\n")
CONTINUOUS = schema("task_type: ordinal\nscale: {min: 0, max: 100, step: null}\n")
ORDERED = schema("task_type: ordinal\nlabels: [low, medium, high]\n")


@pytest.mark.parametrize(
    ("s", "value", "code"),
    [
        pytest.param(SCALE, 3, None, id="int"),
        pytest.param(SCALE, 5.0, None, id="float-on-step"),
        pytest.param(SCALE, 0, "out_of_range", id="below"),
        pytest.param(SCALE, 6, "out_of_range", id="above"),
        pytest.param(SCALE, 2.5, "off_step", id="off-step"),
        pytest.param(SCALE, "3", "type", id="string"),
        pytest.param(SCALE, True, "type", id="bool"),
        pytest.param(SCALE, float("nan"), "type", id="nan"),
        pytest.param(HALF, 0.75, None, id="quarter"),
        pytest.param(HALF, 0.3, "off_step", id="quarter-off"),
        pytest.param(CONTINUOUS, 33.3, None, id="continuous"),
        pytest.param(ORDERED, "medium", None, id="ordered"),
        pytest.param(ORDERED, "huge", "unknown_label", id="ordered-unknown"),
        pytest.param(ORDERED, 2, "type", id="ordered-number"),
    ],
)
def test_ordinal(s: LabelSchema, value: Any, code: str | None) -> None:
    got = validate_annotation(s, value)
    assert paths(got) == ([] if code is None else [("value", code)])


# -- text ---------------------------------------------------------------------------------


def test_text() -> None:
    s = schema("task_type: text\nmax_length: 5\n")
    assert validate_annotation(s, "short") == []
    assert paths(validate_annotation(s, "too long")) == [("value", "too_long")]
    assert paths(validate_annotation(s, 5)) == [("value", "type")]


# -- spans --------------------------------------------------------------------------------

NER = schema(
    """
task_type: spans
labels: [ORG, PERSON, LOC, PRODUCT]
attributes:
  - {name: uncertain, type: bool}
  - {name: kind, type: choice, values: [company, agency], scope: annotation}
rules:
  - when: {label: ORG}
    require_attributes: [uncertain]
"""
)
TEXT = {"text": "Apple hired Tim Cook in Cupertino."}


def span(start: int, end: int, label: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    region: dict[str, Any] = {"start": start, "end": end, "label": label}
    if text is not None:
        region["text"] = text
    region.update(extra)
    return region


def test_spans_valid() -> None:
    value = [
        span(0, 5, "ORG", "Apple", attributes={"uncertain": False}),
        span(12, 20, "PERSON", "Tim Cook"),
    ]
    assert validate_annotation(NER, value, payload=TEXT) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([span(12, 40, "PERSON")], [("value[0].end", "out_of_range")], id="past-end"),
        pytest.param([span(5, 5, "PERSON")], [("value[0].end", "out_of_range")], id="empty"),
        pytest.param([span(-1, 5, "PERSON")], [("value[0].start", "out_of_range")], id="negative"),
        pytest.param([span(0, "5", "PERSON")], [("value[0].end", "type")], id="string-offset"),  # type: ignore[arg-type]
        pytest.param(
            [span(12, 20, "PERSON", "Tim Cok")],
            [("value[0].text", "text_mismatch")],
            id="text-mismatch",
        ),
        pytest.param(
            [span(12, 20, "CEO")], [("value[0].label", "unknown_label")], id="unknown-label"
        ),
        pytest.param([{"start": 12, "end": 20}], [("value[0].label", "required")], id="no-label"),
        pytest.param(["Tim Cook"], [("value[0]", "type")], id="not-a-region"),
        pytest.param([{"label": "LOC"}], [("value[0]", "shape")], id="no-position"),
        pytest.param(
            [span(12, 20, "PERSON"), span(16, 20, "PERSON"), span(24, 33, "LOC")],
            [("value[1]", "overlap")],
            id="overlap",
        ),
        pytest.param(
            [span(0, 5, "ORG")],
            [("value[0].attributes.uncertain", "required_attribute")],
            id="rule-on-region",
        ),
        pytest.param(
            [span(12, 20, "PERSON", attributes={"uncertain": "perhaps"})],
            [("value[0].attributes.uncertain", "attribute_value")],
            id="region-attribute-value",
        ),
        pytest.param(
            [span(12, 20, "PERSON", attributes={"colour": 1})],
            [("value[0].attributes.colour", "unknown_attribute")],
            id="region-unknown-attribute",
        ),
        pytest.param("Tim Cook", [("value", "type")], id="not-a-list"),
    ],
)
def test_spans_errors(value: Any, expected: list[tuple[str, str]]) -> None:
    assert paths(validate_annotation(NER, value, payload=TEXT)) == expected


def test_spans_every_problem_in_one_pass() -> None:
    value = [
        span(0, 5, "ORG", "Appel"),
        span(3, 90, "CEO"),
        {"start": 1.5, "end": 2, "label": "LOC"},
    ]
    got = paths(validate_annotation(NER, value, payload=TEXT))
    assert got == [
        ("value[0].text", "text_mismatch"),
        ("value[1].label", "unknown_label"),
        ("value[1].end", "out_of_range"),
        ("value[2].start", "type"),
        ("value[1]", "overlap"),
        ("value[0].attributes.uncertain", "required_attribute"),
    ]


def test_overlap_allowed_when_schema_says_so() -> None:
    s = schema("task_type: spans\nlabels: [A]\nallow_overlap: true\n")
    assert validate_annotation(s, [span(0, 5, "A"), span(2, 6, "A")], payload=TEXT) == []


def test_span_text_taken_from_first_string_field() -> None:
    payload = {"id": 3, "body": "Hello world"}
    assert validate_annotation(NER, [span(6, 11, "LOC", "world")], payload=payload) == []
    got = validate_annotation(NER, [span(6, 11, "LOC")], payload={"id": 3})
    assert paths(got) == [("value[0]", "no_text")]
    # no payload given: offsets are only checked for shape
    assert validate_annotation(NER, [span(6, 500, "LOC")]) == []


def test_annotation_scope_attribute_required_on_annotation() -> None:
    s = schema(
        "task_type: spans\nlabels: [A]\nattributes:\n"
        "  - {name: doc_ok, type: bool, scope: annotation, required: true}\n"
        "  - {name: conf, type: number, required: true}\n"
    )
    got = paths(validate_annotation(s, [span(0, 5, "A")], payload=TEXT))
    assert got == [("value[0].attributes.conf", "required"), ("attributes.doc_ok", "required")]


def test_cyrillic_spans_from_label_studio_export(shared_fixtures: Path) -> None:
    path = shared_fixtures / "label_studio" / "project-14-at-2025-06-25-13-18-72190ffe.json"
    task = json.loads(path.read_text(encoding="utf-8"))[0]
    regions = [
        {
            "start": r["value"]["start"],
            "end": r["value"]["end"],
            "text": r["value"]["text"],
            "label": r["value"]["labels"][0],
        }
        for r in task["annotations"][0]["result"]
    ]
    assert len(regions) == 7
    s = schema("task_type: spans\nlabels: [ORG, PERSON, LOC, PRODUCT]\n")
    assert validate_annotation(s, regions, payload=task["data"]) == []
    assert [r["text"] for r in canonical_value(s, regions)][:2] == ["SpaceX", "ракету Falcon 9"]
    # shifting one span by a character breaks the text match; a span past the end is caught
    bad = [
        dict(regions[2], start=regions[2]["start"] + 1),
        dict(regions[0], end=len(task["data"]["text"]) + 1),
    ]
    got = paths(validate_annotation(s, bad, payload=task["data"]))
    assert ("value[0].text", "text_mismatch") in got and ("value[1].end", "out_of_range") in got


BOXES = schema(
    """
task_type: spans
labels: [car, person]
allow_overlap: true
shapes: [box]
attributes:
  - {name: occluded, type: bool, required: true}
"""
)


def box(label: str = "car", **extra: Any) -> dict[str, Any]:
    region = {
        "label": label,
        "shape": "box",
        "points": [1.0, 2.0, 30.5, 40.0],
        "frame": 0,
        "attributes": {"occluded": "false"},
    }
    region.update(extra)
    return region


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        pytest.param(box(), [], id="ok"),
        pytest.param(box(shape="polygon"), [("value[0].shape", "shape_not_allowed")], id="shape"),
        pytest.param(box(points=[]), [("value[0].points", "type")], id="no-points"),
        pytest.param(box(points=[1, "x"]), [("value[0].points", "type")], id="bad-points"),
        pytest.param(box(frame=-1), [("value[0].frame", "type")], id="frame"),
        pytest.param(
            box(attributes={}),
            [("value[0].attributes.occluded", "required")],
            id="required-region-attr",
        ),
        pytest.param(box(label="truck"), [("value[0].label", "unknown_label")], id="label"),
    ],
)
def test_geometry_regions(region: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert paths(validate_annotation(BOXES, [region], payload={"image": "a.jpg"})) == expected


# -- validate_value (gold, predictions) ----------------------------------------------------


def test_validate_value_ignores_attributes_and_rules() -> None:
    assert validate_value(SINGLE, "other") == []  # rule requiring `note` does not apply
    assert paths(validate_value(SINGLE, "nope", "label")) == [("label", "unknown_label")]
    assert paths(validate_value(MULTI, ["spam", "x"], "gold")) == [("gold[1]", "unknown_label")]
    assert paths(validate_value(NER, [span(0, 99, "ORG")], payload=TEXT)) == [
        ("value[0].end", "out_of_range")
    ]


# -- properties and speed --------------------------------------------------------------


@st.composite
def valid_annotations(draw: st.DrawFn) -> tuple[LabelSchema, Any, dict[str, Any], str]:
    names = draw(
        st.lists(
            st.text(min_size=1, max_size=8).filter(str.strip),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    task = draw(st.sampled_from(["single", "multi", "ordinal", "spans", "text"]))
    text = draw(st.text(min_size=1, max_size=40))
    data: dict[str, Any] = {"task_type": task}
    if task in ("single", "multi", "spans"):
        data["labels"] = names
    if task == "ordinal":
        lo = draw(st.integers(-5, 5))
        data["scale"] = {"min": lo, "max": lo + draw(st.integers(1, 10)), "step": 1}
    attrs = {"note": draw(st.text(max_size=10)), "level": draw(st.sampled_from(["a", "b"]))}
    data["attributes"] = [
        {"name": "note", "type": "text"},
        {"name": "level", "type": "choice", "values": ["a", "b"]},
    ]
    if task == "spans":
        for a in data["attributes"]:
            a["scope"] = "annotation"
    s = LabelSchema.from_dict(data)
    if task == "single":
        value: Any = draw(st.sampled_from(names))
    elif task == "multi":
        value = draw(st.lists(st.sampled_from(names), unique=True))
    elif task == "ordinal":
        value = draw(st.integers(data["scale"]["min"], data["scale"]["max"]))
    elif task == "spans":
        cuts = sorted(
            draw(st.lists(st.integers(0, len(text)), min_size=0, max_size=8, unique=True))
        )
        value = [
            {"start": a, "end": b, "label": draw(st.sampled_from(names)), "text": text[a:b]}
            for a, b in zip(cuts[::2], cuts[1::2], strict=False)
        ]
    else:
        value = draw(st.text())
    return s, value, attrs, text


@given(valid_annotations())
@settings(max_examples=300, deadline=None)
def test_random_valid_values_have_no_errors(
    case: tuple[LabelSchema, Any, dict[str, Any], str],
) -> None:
    s, value, attrs, text = case
    assert (
        validate_annotation(s, value, attributes=attrs, payload={"text": text}, active_seconds=10)
        == []
    )
    assert validate_value(s, value, payload={"text": text}) == []
    assert validate_annotation(s, canonical_value(s, value), payload={"text": text}) == []


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers()),
    )
)
@settings(max_examples=200, deadline=None)
def test_garbage_never_crashes(value: Any) -> None:
    for s in (SINGLE, MULTI, SCALE, ORDERED, NER, BOXES):
        for v in validate_annotation(s, value, payload=TEXT):
            assert v.field.startswith("value") or v.field.startswith("attributes")


def test_compiled_validator_is_fast() -> None:
    """Target >= 200,000/s (see benchmarks/bench_validation.py); the assertion keeps a wide
    margin and takes the best of several rounds so a loaded CI machine stays green."""
    s = LabelSchema.from_dict({"task_type": "single", "labels": ["a", "b", "c", "d"]})
    validate = compile_validator(s)
    assert compile_validator(s) is validate  # compiled once per schema
    values = ["a", "b", "c", "d"] * 5_000
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for v in values:
            validate(v, active_seconds=4.0)
        best = max(best, len(values) / (time.perf_counter() - t0))
    assert best > 50_000, f"{best:,.0f} validations/s"
