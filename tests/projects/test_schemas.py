"""Label schemas: loading from YAML with located errors, dumping, inference."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelloop.errors import ValidationFailed
from labelloop.formats.records import SchemaHints
from labelloop.projects.schemas import (
    AttributeDef,
    LabelDef,
    LabelSchema,
    Rule,
    RuleWhen,
    Scale,
    infer_schema,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [v.field for v in exc.value.violations]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_load_and_round_trip(path: Path) -> None:
    schema = LabelSchema.from_yaml(path.read_text(encoding="utf-8"), source=path.name)
    again = LabelSchema.from_yaml(schema.to_yaml(), source="dumped")
    assert again == schema
    assert LabelSchema.from_dict(schema.to_json()) == schema


def test_examples_cover_every_task_type() -> None:
    types = {LabelSchema.from_yaml(p.read_text()).task_type for p in EXAMPLES.glob("*.yaml")}
    assert types == {"single", "multi", "ordinal", "spans", "text"}


def test_labels_as_names_or_objects() -> None:
    schema = LabelSchema.from_yaml(
        "task_type: single\nlabels: [spam, {name: ham, description: not spam, hotkey: h}, 3]\n"
    )
    assert schema.label_names == ["spam", "ham", "3"]
    assert schema.labels[1].hotkey == "h"
    assert schema.to_json()["labels"] == [
        "spam",
        {"name": "ham", "description": "not spam", "hotkey": "h"},
        "3",
    ]


def test_label_names_kept_exactly_but_not_blank() -> None:
    odd = 'Yes " "" \n \t \t а б в \n'  # a real Label Studio choice (csv_test2.json)
    schema = LabelSchema.from_dict({"task_type": "single", "labels": [odd, " padded "]})
    assert schema.label_names == [odd, " padded "]
    assert LabelSchema.from_yaml(schema.to_yaml()) == schema
    with pytest.raises(ValidationFailed) as exc:
        LabelSchema.from_dict({"task_type": "single", "labels": ["ok", " \n"]})
    assert _fields(exc) == ["labels[1].name"]


BAD = [
    pytest.param(
        "task_type: sentiment\nlabels: [a]\n",
        "task_type",
        "unknown task type 'sentiment'",
        id="task-type",
    ),
    pytest.param("labels: [a]\n", "task_type", "required field is missing", id="no-task-type"),
    pytest.param(
        "task_type: single\nlabels: [a, b, a]\n",
        "labels[2].name",
        "duplicate label 'a'",
        id="dup-label",
    ),
    pytest.param("task_type: single\nlabels: []\n", "labels", "at least one label", id="no-labels"),
    pytest.param(
        "task_type: single\nlabels: [a, {nam: b}]\n",
        "labels[1].nam",
        "unknown field",
        id="typo-in-label",
    ),
    pytest.param(
        "task_type: single\nlabel: [a]\n", "label", "did you mean 'labels'", id="typo-top"
    ),
    pytest.param(
        "task_type: single\nlabels: [{name: a, hotkey: x}, {name: b, hotkey: x}]\n",
        "labels[1].hotkey",
        "already used",
        id="dup-hotkey",
    ),
    pytest.param("task_type: ordinal\n", "scale", "needs a scale", id="ordinal-no-scale"),
    pytest.param(
        "task_type: ordinal\nscale: {min: 5, max: 1}\n", "scale", "less than max", id="bad-scale"
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nscale: {min: 1, max: 5}\n",
        "scale",
        "only allowed for ordinal",
        id="scale-on-single",
    ),
    pytest.param(
        "task_type: multi\nlabels: [a, b]\nmin_labels: 2\nmax_labels: 1\n",
        "max_labels",
        "less than min_labels",
        id="multi-bounds",
    ),
    pytest.param(
        "task_type: spans\nlabels: [a]\nshapes: [box, hexagon]\n",
        "shapes[1]",
        "unknown shape 'hexagon'",
        id="shape",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nallow_overlap: true\n",
        "allow_overlap",
        "only allowed for spans",
        id="overlap-on-single",
    ),
    pytest.param("task_type: text\nlabels: [a]\n", "labels", "free text", id="text-labels"),
    pytest.param(
        "task_type: single\nlabels: [a]\nattributes: [{name: s, type: choice}]\n",
        "attributes[0]",
        "non-empty list of values",
        id="choice-without-values",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nattributes: [{name: s, type: colour}]\n",
        "attributes[0].type",
        "",
        id="attribute-type",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nattributes: [{name: s, type: text}, {name: s, type: bool}]\n",
        "attributes[1].name",
        "duplicate attribute",
        id="dup-attribute",
    ),
    pytest.param(
        "task_type: single\nlabels: [spam]\nrules: [{when: {label: spma}, flag: x}]\n",
        "rules[0].when.label",
        "did you mean 'spam'",
        id="rule-unknown-label",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nrules: [{when: {label: a}, require_attributes: [sev]}]\n",
        "rules[0].require_attributes[0]",
        "unknown attribute 'sev'",
        id="rule-unknown-attribute",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nrules: [{when: {label: a}}]\n",
        "rules[0]",
        "at least one effect",
        id="rule-no-effect",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nrules: [{when: {}, flag: x}]\n",
        "rules[0].when",
        "at least one condition",
        id="rule-no-condition",
    ),
    pytest.param(
        "task_type: single\nlabels: [a, b]\nrules: [{when: {label: a}, forbid_labels: [b]}]\n",
        "rules[0].forbid_labels",
        "only allowed for multi",
        id="forbid-on-single",
    ),
    pytest.param(
        "task_type: multi\nlabels: [a, b]\nrules: [{when: {label: a}, forbid_labels: [a]}]\n",
        "rules[0].forbid_labels[0]",
        "cannot forbid itself",
        id="forbid-self",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nrules: [{when: {active_seconds_below: -1}, flag: x}]\n",
        "rules[0].when.active_seconds_below",
        "greater than or equal to 0",
        id="negative-seconds",
    ),
    pytest.param(
        "task_type: single\nlabels: [a]\nrules: [{when: {label: a}, flag: 'too fast!'}]\n",
        "rules[0].flag",
        "pattern",
        id="flag-name",
    ),
]


@pytest.mark.parametrize(("text", "field", "message"), BAD)
def test_bad_schema_names_file_and_field(text: str, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        LabelSchema.from_yaml(text, source="project.yaml")
    assert str(exc.value).startswith("project.yaml: ")
    assert field in _fields(exc), [str(v) for v in exc.value.violations]
    hit = next(v for v in exc.value.violations if v.field == field)
    assert message in hit.message
    assert str(hit) == f"{field}: {hit.message}"


def test_every_problem_is_reported_at_once() -> None:
    text = (
        "task_type: multi\nlabels: [a, a, b]\nmin_labels: 5\n"
        "rules:\n  - {when: {label: c}, forbid_labels: [d]}\n"
    )
    with pytest.raises(ValidationFailed) as exc:
        LabelSchema.from_yaml(text, source="s.yaml")
    assert set(_fields(exc)) >= {
        "labels[1].name",
        "min_labels",
        "rules[0].when.label",
        "rules[0].forbid_labels[0]",
    }


def test_yaml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ValidationFailed, match=r"^s\.yaml, line 3, column \d+: not valid YAML"):
        LabelSchema.from_yaml("task_type: single\nlabels: [a, b\nrules: {", source="s.yaml")


@pytest.mark.parametrize("text", ["", "   \n", "- a\n- b\n", "just a string"])
def test_empty_or_not_a_mapping(text: str) -> None:
    with pytest.raises(ValidationFailed, match=r"^s\.yaml: "):
        LabelSchema.from_yaml(text, source="s.yaml")


def test_attribute_scope_defaults() -> None:
    spans = LabelSchema.from_yaml(
        "task_type: spans\nlabels: [a]\nattributes: [{name: x, type: bool}]"
    )
    single = LabelSchema.from_yaml(
        "task_type: single\nlabels: [a]\nattributes: [{name: x, type: bool}]"
    )
    assert spans.attribute_scope(spans.attributes[0]) == "region"
    assert single.attribute_scope(single.attributes[0]) == "annotation"
    with pytest.raises(ValidationFailed) as exc:
        LabelSchema.from_yaml(
            "task_type: single\nlabels: [a]\nattributes: [{name: x, type: bool, scope: region}]"
        )
    assert _fields(exc) == ["attributes[0].scope"]


def test_rule_severity_defaults() -> None:
    schema = LabelSchema.from_yaml(
        "task_type: single\nlabels: [a]\nattributes: [{name: n, type: text}]\n"
        "rules:\n  - {when: {active_seconds_below: 2}, flag: too_fast}\n"
        "  - {when: {label: a}, require_attributes: [n]}\n"
    )
    assert [r.effective_severity for r in schema.rules] == ["warning", "error"]


# -- inference --------------------------------------------------------------------------


def test_infer_single_keeps_first_seen_order() -> None:
    hints = SchemaHints(task_type="single")
    for label in ["neg", "pos", "neg", "neutral"]:
        hints.see_label(label)
    schema = infer_schema(hints)
    assert schema.task_type == "single" and schema.label_names == ["neg", "pos", "neutral"]


def test_infer_attribute_types() -> None:
    hints = SchemaHints(task_type="spans", labels=["car"])
    for v in ["true", "false"]:
        hints.see_attribute("occluded", v)
    for v in [1, 2.5]:
        hints.see_attribute("z", v)
    for v in ["red", "blue"]:
        hints.see_attribute("color", v)
    for i in range(60):
        hints.see_attribute("comment", f"note {i}")
    schema = infer_schema(hints)
    types = {a.name: a.type for a in schema.attributes}
    assert types == {"occluded": "bool", "z": "number", "color": "choice", "comment": "text"}
    assert schema.attribute("color").values == ["red", "blue"]  # type: ignore[union-attr]
    assert schema.allow_overlap


def test_infer_ordinal_scale_and_labels() -> None:
    scale = infer_schema(SchemaHints(task_type="ordinal", labels=["3", "1", "5"]))
    assert scale.scale is not None and (scale.scale.min, scale.scale.max, scale.scale.step) == (
        1,
        5,
        1,
    )
    ordered = infer_schema(SchemaHints(task_type="ordinal", labels=["low", "high"]))
    assert ordered.label_names == ["low", "high"] and ordered.scale is None


def test_infer_text_and_failures() -> None:
    assert infer_schema(SchemaHints(task_type="text", labels=["a caption"])).task_type == "text"
    assert infer_schema(SchemaHints()).task_type == "text"
    with pytest.raises(ValidationFailed, match="no labels were seen"):
        infer_schema(SchemaHints(task_type="multi"))


# -- docs ---------------------------------------------------------------------------------

DOC = (EXAMPLES.parent / "schema.md").read_text(encoding="utf-8")


def test_docs_yaml_blocks_load() -> None:
    import re

    blocks = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        LabelSchema.from_yaml(block, source="docs/schema.md")


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        pytest.param(LabelSchema, "", id="schema"),
        pytest.param(LabelDef, "", id="label"),
        pytest.param(Scale, "", id="scale"),
        pytest.param(AttributeDef, "", id="attribute"),
        pytest.param(Rule, "", id="rule"),
        pytest.param(RuleWhen, "when.", id="when"),
    ],
)
def test_docs_describe_every_field(model: type, prefix: str) -> None:
    for name in model.model_fields:  # type: ignore[attr-defined]
        assert f"| `{prefix}{name}` |" in DOC, (
            f"docs/schema.md does not document {model.__name__}.{name}"
        )


def test_docs_list_every_example() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        assert f"examples/{path.name}" in DOC
