"""The guideline document: Markdown and YAML read alike, errors name line and field."""

from __future__ import annotations

import pytest

from labelloop.errors import ImportFailed
from labelloop.guidelines.schemas import parse_document, to_markdown, to_yaml
from tests.guidelines._data import EXAMPLE


def test_example_reads_and_round_trips() -> None:
    doc = parse_document(EXAMPLE.read_text(encoding="utf-8"), source="guideline.md")
    assert [r.id for r in doc.rules] == ["R1", "R2", "R3"]
    r1 = doc.rules[0]
    assert r1.title == "Refund or billing" and r1.labels == ("refund", "billing")
    assert [e.kind for e in r1.exemplars] == ["positive", "boundary"]
    assert r1.text.startswith("Choose **refund**") and '- "Why was I charged' in r1.text
    assert doc.preamble.startswith("Pick the one intent")
    assert parse_document(to_markdown(doc), source="again.md") == doc
    assert parse_document(to_yaml(doc), source="again.yaml") == doc


def test_headings_inside_code_blocks_are_text() -> None:
    text = "---\ntitle: T\n---\n## R1: One\n```\n## R2: not a rule\n```\n"
    doc = parse_document(text, source="g.md")
    assert [r.id for r in doc.rules] == ["R1"]
    assert "## R2: not a rule" in doc.rules[0].text


@pytest.mark.parametrize(
    ("text", "source", "expected"),
    [
        (
            "title: T\nrules:\n  - id: R1\n    title: A\n  - id: R1\n    title: B\n",
            "g.yaml",
            "line 5, rules[1].id: rule id 'R1' is also rules[0]",
        ),
        (
            "title: T\nrules:\n  - id: R1\n    title: A\n    exemplars:\n      - item: x\n"
            "        kind: maybe\n        label: refund\n",
            "g.yaml",
            "line 7, rules[0].exemplars[0].kind",
        ),
        ("title: T\nrules:\n  - id: 12\n    title: A\n", "g.yaml", "line 3, rules[0].id"),
        (
            "---\ntitle: T\nrules:\n  R1: {labels: [a], colour: red}\n---\n\n## R1: A\ntext\n",
            "g.md",
            "line 4, rules[0].colour: unknown field",
        ),
        ("---\ntitle: T\n---\n## R1 no separator\n", "g.md", "rules[0].title"),
        ("---\ntitle: [unclosed\n---\n", "g.md", "g.md, line 2: not valid YAML"),
        ("- just\n- a list\n", "g.yaml", "expected a mapping"),
    ],
)
def test_errors_name_line_and_field(text: str, source: str, expected: str) -> None:
    with pytest.raises(ImportFailed) as err:
        parse_document(text, source=source)
    found = " | ".join([str(err.value), *map(str, err.value.issues)])
    assert source in str(err.value)
    assert expected in found, found


def test_yaml_by_extension_even_with_a_document_marker() -> None:
    doc = parse_document("---\ntitle: T\nrules:\n  - {id: R1, title: A}\n", source="g.yaml")
    assert [r.id for r in doc.rules] == ["R1"]


def test_underlined_headings_are_text_and_export_refuses_rule_like_headings() -> None:
    text = "---\ntitle: T\n---\n## R1: One\nA paragraph\n---\nmore\n"
    doc = parse_document(text, source="g.md")
    assert [r.id for r in doc.rules] == ["R1"] and "more" in doc.rules[0].text
    r1 = doc.rules[0].model_copy(update={"text": "intro\n\n## Note: not a rule"})
    with pytest.raises(ValueError, match="export it as YAML"):
        to_markdown(doc.model_copy(update={"rules": (r1,)}))
    assert parse_document(to_yaml(doc.model_copy(update={"rules": (r1,)})), source="g.yaml")


def test_new_is_not_a_rule_id() -> None:
    with pytest.raises(ImportFailed) as err:
        parse_document("title: T\nrules:\n  - {id: new, title: A}\n", source="g.yaml")
    assert "line 3, rules[0].id: 'new' is reserved" in err.value.issues[0]
