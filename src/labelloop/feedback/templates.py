"""Feedback templates: what each kind of note must say.

Built in: the audit taxonomy's categories plus ``positive``. A project adds its own in
YAML (``labelloop feedback templates --project P --file templates.yaml``)::

    - name: tone_misread
      title: Tone misread
      required: [message, what_to_change]

A note of a template must fill every required field; the check names the missing ones
(422 / exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labelloop.projects.validation import Violation

#: Fields a template may require.
FIELDS = ("message", "rule_refs", "what_was_right", "what_to_change", "context", "indicator")
NAME = re.compile(r"[a-z][a-z0-9_]{1,49}")


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    required: tuple[str, ...]
    description: str = ""


BUILT_IN: tuple[Template, ...] = (
    Template(
        "boundary_case",
        "Boundary case",
        ("message", "what_to_change"),
        "An item on the edge between two labels: what decides it.",
    ),
    Template(
        "ambiguous_context",
        "Ambiguous context",
        ("message", "context"),
        "The item reads two ways; which reading the guideline takes.",
    ),
    Template(
        "bias_indicator",
        "Bias indicator",
        ("message", "indicator"),
        "A pattern that suggests a systematic lean (segment, author, wording).",
    ),
    Template(
        "guideline_misread",
        "Guideline misread",
        ("message", "rule_refs"),
        "A rule applied differently from how it reads.",
    ),
    Template("attention_slip", "Attention slip", ("message",), "A slip, not a misunderstanding."),
    Template(
        "positive",
        "Positive",
        ("message", "what_was_right"),
        "Work that was notably right, and why it matters.",
    ),
)
#: Audit error categories (the default taxonomy) → the template their notes use.
FOR_CATEGORY = {
    "boundary case": "boundary_case",
    "ambiguous context": "ambiguous_context",
    "bias indicator": "bias_indicator",
    "guideline misread": "guideline_misread",
    "attention slip": "attention_slip",
}


def catalogue(custom: Sequence[Mapping[str, Any]] = ()) -> dict[str, Template]:
    """The built-in templates and a project's own, by name."""
    out = {t.name: t for t in BUILT_IN}
    for t in custom:
        out[str(t["name"])] = Template(
            str(t["name"]),
            str(t.get("title") or t["name"]),
            tuple(t.get("required") or ("message",)),
            str(t.get("description") or ""),
        )
    return out


def check_custom(data: Any, source: str = "templates") -> list[dict[str, Any]]:
    """Validate a project's template list (the YAML's content); ValueError naming the
    entry and field."""
    if not isinstance(data, list):
        raise ValueError(f"{source}: a list of templates is expected")
    out, seen = [], {t.name for t in BUILT_IN}
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: a mapping with name, title and required is expected")
        name = entry.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"{where}.name: lower-case letters, digits and _ (2-50), got {name!r}")
        if name in seen:
            raise ValueError(f"{where}.name: {name!r} is already a template")
        seen.add(name)
        required = entry.get("required", ["message"])
        if not isinstance(required, list) or not required:
            raise ValueError(f"{where}.required: a non-empty list of fields")
        for j, f in enumerate(required):
            if f not in FIELDS:
                raise ValueError(f"{where}.required[{j}]: {f!r} is not one of {', '.join(FIELDS)}")
        unknown = set(entry) - {"name", "title", "required", "description"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        out.append(
            {
                "name": name,
                "title": str(entry.get("title") or name),
                "required": list(required),
                "description": str(entry.get("description") or ""),
            }
        )
    return out


def missing(template: Template, values: Mapping[str, Any]) -> list[Violation]:
    """A violation for each required field left empty."""
    return [
        Violation(
            f, "required", f"the {template.title.lower()} template needs {f.replace('_', ' ')}"
        )
        for f in template.required
        if not values.get(f) or (isinstance(values.get(f), str) and not values[f].strip())
    ]
