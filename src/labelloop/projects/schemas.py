"""Label schemas (what a project's labels look like) and pydantic I/O shapes.

A :class:`LabelSchema` is written by a lead in YAML (see ``docs/schema.md``)::

    task_type: single
    labels: [spam, ham, {name: unsure, description: "cannot tell", hotkey: u}]
    attributes:
      - {name: severity, type: choice, values: [low, high]}
    rules:
      - when: {label: spam}
        require_attributes: [severity]
      - when: {active_seconds_below: 2}
        flag: too_fast
        severity: warning

It is stored on the project as JSON (:meth:`LabelSchema.to_json`) and checked at every
write by :mod:`labelloop.projects.validation`. Loading never half-succeeds: every problem
is reported with its field path (``labels[2].name``, ``rules[0].when.label``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from labelloop.errors import ValidationFailed
from labelloop.formats.records import TASK_TYPES, SchemaHints, TaskType

Severity = Literal["error", "warning"]
AttributeType = Literal["choice", "text", "number", "bool"]
AttributeScope = Literal["annotation", "region"]

#: Geometry shapes a ``spans`` schema may allow (CVAT and Label Studio region kinds).
KNOWN_SHAPES = (
    "box",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
    "keypoint",
)

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelDef(_Model):
    """One label: its name, an optional description shown to annotators, a hotkey."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    hotkey: str | None = Field(default=None, min_length=1, max_length=20)

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        # other characters are kept as they are: tools export labels with quotes,
        # tabs and newlines, and an import must round-trip them exactly
        if not v.strip():
            raise ValueError("a label name must not be blank")
        return v


class Scale(_Model):
    """A numeric rating scale; ``step`` None means any number between ``min`` and ``max``."""

    min: int | float
    max: int | float
    step: int | float | None = 1

    @model_validator(mode="after")
    def _check(self) -> Scale:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min:g}) must be less than max ({self.max:g})")
        if self.step is not None and self.step <= 0:
            raise ValueError("step must be positive")
        return self


class AttributeDef(_Model):
    """An extra field on an annotation (or on each span region).

    ``scope`` defaults to ``region`` for ``spans`` schemas and ``annotation`` otherwise;
    it decides where ``required`` is enforced. Values are type-checked wherever they
    appear.
    """

    name: str = Field(min_length=1, max_length=100)
    type: AttributeType = "choice"
    values: list[str] | None = None
    required: bool = False
    scope: AttributeScope | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AttributeDef:
        if self.type == "choice" and not self.values:
            raise ValueError("a choice attribute needs a non-empty list of values")
        if self.type != "choice" and self.values:
            raise ValueError(f"values are only allowed for choice attributes, not {self.type}")
        if self.values and len(set(self.values)) != len(self.values):
            raise ValueError("values must be unique")
        return self


class RuleWhen(_Model):
    """Conditions of a rule; every given condition must hold."""

    label: str | None = None
    active_seconds_below: int | float | None = Field(default=None, ge=0)
    active_seconds_above: int | float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> RuleWhen:
        if (
            self.label is None
            and self.active_seconds_below is None
            and self.active_seconds_above is None
        ):
            raise ValueError(
                "give at least one condition: label, active_seconds_below or active_seconds_above"
            )
        return self


class Rule(_Model):
    """A declarative project rule: ``when`` conditions, then one or more effects.

    Effects: ``require_attributes`` (named attributes must be present), ``forbid_labels``
    (multi-label: these labels may not be chosen together with ``when.label``) and
    ``flag`` (a named flag such as ``too_fast``). ``severity`` defaults to ``warning``
    for a rule whose only effect is a flag, ``error`` otherwise; errors reject the
    annotation, warnings are stored as flags on it.
    """

    when: RuleWhen
    require_attributes: list[str] = Field(default_factory=list)
    forbid_labels: list[str] = Field(default_factory=list)
    flag: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.\-]+$", max_length=50)
    severity: Severity | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not (self.require_attributes or self.forbid_labels or self.flag):
            raise ValueError("give at least one effect: require_attributes, forbid_labels or flag")
        return self

    @property
    def effective_severity(self) -> Severity:
        if self.severity is not None:
            return self.severity
        return (
            "warning"
            if self.flag and not (self.require_attributes or self.forbid_labels)
            else "error"
        )


def _label_def(v: Any) -> Any:
    if isinstance(v, str):
        return {"name": v}
    if isinstance(v, int | float) and not isinstance(v, bool):
        return {"name": str(v)}
    return v


class LabelSchema(_Model):
    """A project's label schema: task type, labels, attributes and rules."""

    task_type: TaskType
    labels: list[LabelDef] = Field(default_factory=list)
    scale: Scale | None = None
    min_labels: int = Field(default=0, ge=0)
    max_labels: int | None = Field(default=None, ge=1)
    allow_overlap: bool = False
    shapes: list[str] | None = None
    max_length: int | None = Field(default=None, ge=1)
    attributes: list[AttributeDef] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    description: str | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_label_def(x) for x in v]
        return v

    @model_validator(mode="after")
    def _semantics(self) -> LabelSchema:
        problems = _semantic_problems(self)
        if problems:
            raise PydanticCustomError(
                "label_schema",
                "{summary}",
                {"summary": "; ".join(f"{f}: {m}" for f, m in problems), "problems": problems},
            )
        return self

    # -- derived views -------------------------------------------------------------

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def attribute(self, name: str) -> AttributeDef | None:
        for attr in self.attributes:
            if attr.name == name:
                return attr
        return None

    def attribute_scope(self, attr: AttributeDef) -> AttributeScope:
        if attr.scope is not None:
            return attr.scope
        return "region" if self.task_type == "spans" else "annotation"

    # -- loading and dumping --------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "schema") -> LabelSchema:
        """Validate a mapping; raise ValidationFailed naming ``source`` and every field path."""
        if not isinstance(data, Mapping):
            raise ValidationFailed(
                f"{source}: a label schema must be a mapping with at least `task_type`",
                [_violation("", "type", f"expected a mapping, got {_kind(data)}")],
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            violations = _pydantic_violations(exc)
            raise ValidationFailed(
                f"{source}: invalid label schema ({len(violations)} problem{'s' if len(violations) != 1 else ''})",
                violations,
            ) from None

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "schema.yaml") -> LabelSchema:
        """Parse YAML text; syntax errors name the line and column, others the field path."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ValidationFailed(
                f"{source}{where}: not valid YAML: {problem}",
                [_violation("", "yaml", f"{problem}{where}")],
            ) from None
        if data is None:
            raise ValidationFailed(
                f"{source}: the file is empty; a label schema needs at least `task_type`"
            )
        return cls.from_dict(data, source=source)

    def to_json(self) -> dict[str, Any]:
        """Compact JSON form (defaults left out, label names as plain strings)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["task_type"] = self.task_type
        if "labels" in data:
            data["labels"] = [
                label["name"] if set(label) == {"name"} else label for label in data["labels"]
            ]
        if "attributes" in data:
            data["attributes"] = [
                {"name": a["name"], "type": a.get("type", "choice")}
                | {k: v for k, v in a.items() if k not in ("name", "type")}
                for a in data["attributes"]
            ]
        if "rules" in data:
            for rule in data["rules"]:
                rule["when"] = {k: v for k, v in rule["when"].items() if v is not None}
        order = [
            "task_type",
            "description",
            "labels",
            "scale",
            "min_labels",
            "max_labels",
            "allow_overlap",
            "shapes",
            "max_length",
            "attributes",
            "rules",
        ]
        return {k: data[k] for k in order if k in data}

    def to_yaml(self) -> str:
        """YAML that :meth:`from_yaml` reads back to an equal schema."""
        return yaml.safe_dump(
            self.to_json(), sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
        )


# -- semantic checks ----------------------------------------------------------------


def _semantic_problems(s: LabelSchema) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    add = problems.append
    names = s.label_names
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            add((f"labels[{i}].name", f"duplicate label {name!r} (also labels[{seen[name]}])"))
        seen.setdefault(name, i)
    hotkeys: dict[str, int] = {}
    for i, label in enumerate(s.labels):
        if label.hotkey is not None:
            if label.hotkey in hotkeys:
                add(
                    (
                        f"labels[{i}].hotkey",
                        f"hotkey {label.hotkey!r} is already used by labels[{hotkeys[label.hotkey]}]",
                    )
                )
            hotkeys.setdefault(label.hotkey, i)

    tt = s.task_type
    if tt in ("single", "multi", "spans") and not s.labels:
        add(("labels", f"a {tt} schema needs at least one label"))
    if tt == "ordinal":
        if s.scale is None and not s.labels:
            add(
                (
                    "scale",
                    "an ordinal schema needs a scale {min, max, step} or an ordered list of labels",
                )
            )
        if s.scale is not None and s.labels:
            add(("scale", "give either a scale or ordered labels, not both"))
    elif s.scale is not None:
        add(("scale", f"scale is only allowed for ordinal schemas, not {tt}"))
    if tt == "text" and s.labels:
        add(("labels", "a text schema takes free text; remove labels"))
    if tt != "text" and s.max_length is not None:
        add(("max_length", "max_length is only allowed for text schemas"))
    if tt != "multi":
        if s.min_labels:
            add(("min_labels", "min_labels is only allowed for multi schemas"))
        if s.max_labels is not None:
            add(("max_labels", "max_labels is only allowed for multi schemas"))
    else:
        if s.max_labels is not None and s.max_labels < s.min_labels:
            add(
                (
                    "max_labels",
                    f"max_labels ({s.max_labels}) is less than min_labels ({s.min_labels})",
                )
            )
        if s.labels and s.min_labels > len(s.labels):
            add(
                (
                    "min_labels",
                    f"min_labels ({s.min_labels}) exceeds the number of labels ({len(s.labels)})",
                )
            )
    if tt != "spans":
        if s.allow_overlap:
            add(("allow_overlap", "allow_overlap is only allowed for spans schemas"))
        if s.shapes is not None:
            add(("shapes", "shapes is only allowed for spans schemas"))
    elif s.shapes is not None:
        for i, shape in enumerate(s.shapes):
            if shape not in KNOWN_SHAPES:
                add((f"shapes[{i}]", f"unknown shape {shape!r}; one of {', '.join(KNOWN_SHAPES)}"))

    attr_names: dict[str, int] = {}
    for i, attr in enumerate(s.attributes):
        if attr.name in attr_names:
            add(
                (
                    f"attributes[{i}].name",
                    f"duplicate attribute {attr.name!r} (also attributes[{attr_names[attr.name]}])",
                )
            )
        attr_names.setdefault(attr.name, i)
        if attr.scope == "region" and tt != "spans":
            add((f"attributes[{i}].scope", "region attributes are only allowed in spans schemas"))

    label_set = set(names)
    for i, rule in enumerate(s.rules):
        where = f"rules[{i}]"
        if rule.when.label is not None:
            if tt == "text" or (tt == "ordinal" and s.scale is not None):
                add(
                    (
                        f"{where}.when.label",
                        f"label conditions need a schema with labels; this is {tt}",
                    )
                )
            elif rule.when.label not in label_set:
                add(
                    (
                        f"{where}.when.label",
                        f"unknown label {rule.when.label!r}{_hint(rule.when.label, names)}",
                    )
                )
        for j, attr_name in enumerate(rule.require_attributes):
            if attr_name not in attr_names:
                add(
                    (
                        f"{where}.require_attributes[{j}]",
                        f"unknown attribute {attr_name!r}{_hint(attr_name, list(attr_names))}",
                    )
                )
        if rule.forbid_labels:
            if tt != "multi":
                add((f"{where}.forbid_labels", "forbid_labels is only allowed for multi schemas"))
            if rule.when.label is None:
                add((f"{where}.when.label", "forbid_labels needs a `label` condition"))
            for j, forbidden in enumerate(rule.forbid_labels):
                if forbidden not in label_set:
                    add(
                        (
                            f"{where}.forbid_labels[{j}]",
                            f"unknown label {forbidden!r}{_hint(forbidden, names)}",
                        )
                    )
                elif forbidden == rule.when.label:
                    add(
                        (
                            f"{where}.forbid_labels[{j}]",
                            f"a label cannot forbid itself ({forbidden!r})",
                        )
                    )
    return problems


def _hint(name: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- error conversion ---------------------------------------------------------------


def _violation(field: str, code: str, message: str) -> Any:
    from labelloop.projects.validation import Violation

    return Violation(field, code, message, "error")


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(v), type(v).__name__
    )


def _loc_path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _pydantic_violations(exc: ValidationError) -> list[Any]:
    violations: list[Any] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        prefix = _loc_path(loc)
        ctx = err.get("ctx") or {}
        if err["type"] == "label_schema" and "problems" in ctx:
            for field, message in ctx["problems"]:
                full = f"{prefix}.{field}" if prefix and field else (field or prefix)
                violations.append(_violation(full, "invalid", message))
            continue
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field" + _hint(str(loc[-1]), _FIELDS_BY_DEPTH.get(len(loc), []))
        elif err["type"] == "literal_error" and loc and loc[-1] == "task_type":
            message = f"unknown task type {err['input']!r}; one of {', '.join(TASK_TYPES)}"
        violations.append(_violation(prefix, err["type"], message))
    return violations


_FIELDS_BY_DEPTH: dict[int, list[str]] = {1: list(LabelSchema.model_fields)}


# -- inference ----------------------------------------------------------------------


def _as_float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def infer_schema(hints: SchemaHints) -> LabelSchema:
    """A schema that accepts what a reader saw (for ``import --create``).

    Labels keep the order of first sight; ordinal labels that are all numbers become a
    scale; attributes seen only with true/false become ``bool``, only with numbers
    ``number``, with fewer than 50 distinct values ``choice``, otherwise ``text``.
    Spans schemas allow overlaps (the file may have them): review and tighten.
    Raises ValidationFailed when no schema can be inferred (e.g. no labels seen).
    """
    task_type: TaskType = hints.task_type or ("single" if hints.labels else "text")
    data: dict[str, Any] = {"task_type": task_type}
    labels = list(hints.labels)
    if task_type == "ordinal":
        numbers = [_as_float(x) for x in labels]
        if labels and all(n is not None for n in numbers):
            nums = [n for n in numbers if n is not None]
            lo, hi = min(nums), max(nums)
            if lo == hi:
                hi = lo + 1
            integral = all(n.is_integer() for n in nums)
            data["scale"] = {
                "min": int(lo) if integral else lo,
                "max": int(hi) if integral else hi,
                "step": 1 if integral else None,
            }
        else:
            data["labels"] = labels
    elif task_type != "text":
        if not labels:
            raise ValidationFailed(
                f"cannot infer a {task_type} label schema: no labels were seen in the file"
            )
        data["labels"] = labels
    if task_type == "spans":
        data["allow_overlap"] = True
    attributes = []
    for name, seen in hints.attributes.items():
        attr: dict[str, Any] = {"name": name}
        if seen and all(v.strip().lower() in _TRUE | _FALSE for v in seen) and len(seen) <= 2:
            attr["type"] = "bool"
        elif seen and all(_as_float(v) is not None for v in seen):
            attr["type"] = "number"
        elif seen and len(seen) < 50 and all(v for v in seen):
            attr["type"], attr["values"] = "choice", list(seen)
        else:
            attr["type"] = "text"
        attributes.append(attr)
    if attributes:
        data["attributes"] = attributes
    return LabelSchema.from_dict(data, source="inferred schema")


# -- I/O shapes -----------------------------------------------------------------------


class ProjectOut(BaseModel):
    """A project as the CLI (``--json``) and the API show it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    task_type: str
    schema_version: int
    created_at: datetime
    label_schema: dict[str, Any]


class AnnotationIn(BaseModel):
    """An annotation submitted through the API or the workbench (validated against the
    project's schema by :func:`labelloop.projects.service.submit_annotation`)."""

    model_config = ConfigDict(extra="forbid")

    item_id: int
    value: Any
    attributes: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime | None = None
    submitted_at: datetime | None = None
    active_seconds: float | None = Field(default=None, ge=0)
    guideline_version: str | None = Field(default=None, max_length=50)
    external_key: str = Field(default="", max_length=200)


class GoldIn(BaseModel):
    """A gold label to set on an item."""

    model_config = ConfigDict(extra="forbid")

    item_id: int
    value: Any
    rationale: str | None = None
    source: str = Field(default="expert", max_length=100)


class PredictionIn(BaseModel):
    """A model prediction: a value, class probabilities, or both."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    item_id: int
    model_name: str = Field(min_length=1, max_length=200)
    model_version: str = Field(default="", max_length=100)
    value: Any = None
    probabilities: dict[str, float] | None = None
    score: float | None = None


@dataclass(frozen=True)
class ProjectSummary:
    """Counts of what a project holds."""

    items: int
    annotations: int
    annotators: int
    gold: int
    predictions: int
    flagged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "items": self.items,
            "annotations": self.annotations,
            "annotators": self.annotators,
            "gold": self.gold,
            "predictions": self.predictions,
            "flagged": self.flagged,
        }


_NAME_RE = re.compile(r"^\S(.*\S)?$")


def check_project_name(name: str) -> str:
    """Project names: 1-200 characters, no leading/trailing spaces, not all digits
    (a bare number names a project by id)."""
    if not name or not _NAME_RE.match(name):
        raise ValidationFailed("project name must not be empty or start/end with spaces")
    if len(name) > 200:
        raise ValidationFailed("project name must have at most 200 characters")
    if name.isdigit():
        raise ValidationFailed(f"project name {name!r} is all digits; numbers name projects by id")
    return name
