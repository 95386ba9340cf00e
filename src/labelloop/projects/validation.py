"""Validation at entry: the one validator every path that writes labels goes through.

:func:`compile_validator` turns a :class:`~labelloop.projects.schemas.LabelSchema` into a
function that checks one annotation and returns **every** :class:`Violation` with its
field path (``value``, ``value[2].end``, ``attributes.severity``, ``active_seconds``).
Errors reject the annotation; warnings are stored as flags on it
(:meth:`Violation.as_flag`). The compiled function does the common case (a known label,
no attributes, no rules) in a few dictionary look-ups, so bulk imports can call it per
annotation. :func:`validate_annotation` and :func:`validate_value` (gold labels,
predictions) use the same compiled checks.

Label values are in the canonical shapes of :mod:`labelloop.formats.records`;
:func:`canonical_value` sorts multi-label lists and span regions into that shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from labelloop.projects.schemas import _FALSE, _TRUE, AttributeDef, LabelSchema, Rule

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem with a label: where (field path), what (code), why (message)."""

    field: str
    code: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_flag(self) -> dict[str, str]:
        """The JSON stored in ``Annotation.flags`` for a warning."""
        return {"code": self.code, "field": self.field, "message": self.message}


class AnnotationValidator(Protocol):
    """The compiled validator's call signature."""

    def __call__(
        self,
        value: Any,
        *,
        attributes: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
        active_seconds: float | None = None,
        started_at: datetime | None = None,
        submitted_at: datetime | None = None,
    ) -> list[Violation]: ...


def errors_of(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


def warnings_of(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "warning"]


def payload_text(payload: Mapping[str, Any] | None) -> str | None:
    """The text spans refer to: ``payload["text"]``, else the first string field."""
    if not payload:
        return None
    text = payload.get("text")
    if isinstance(text, str):
        return text
    for v in payload.values():
        if isinstance(v, str):
            return v
    return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _first(pair: tuple[int, Rule]) -> int:
    return pair[0]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _show(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


# -- attributes ------------------------------------------------------------------------


def _attr_value_problem(attr: AttributeDef, v: Any) -> str | None:
    """Why ``v`` is not a valid value of ``attr`` (None when it is)."""
    if attr.type == "choice":
        assert attr.values is not None
        if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v) in attr.values:
            return None
        return f"{_show(v)} is not one of {', '.join(attr.values)}"
    if attr.type == "text":
        return None if isinstance(v, str) else f"expected text, got {_kind(v)}"
    if attr.type == "number":
        if _is_number(v):
            return None
        if isinstance(v, str):
            try:
                if math.isfinite(float(v)):
                    return None
            except ValueError:
                pass
        return f"expected a number, got {_show(v)}"
    # bool
    if isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE):
        return None
    return f"expected true or false, got {_show(v)}"


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _missing(v: Any) -> bool:
    return v is None or v == "" or v == []


class _Compiled:
    """Precomputed look-ups for one schema; :meth:`check` is the validator."""

    def __init__(self, schema: LabelSchema) -> None:
        s = self.schema = schema
        self.task_type = s.task_type
        self.names = frozenset(s.label_names)
        self.names_text = ", ".join(s.label_names)
        self.attrs: dict[str, AttributeDef] = {a.name: a for a in s.attributes}
        self.required_ann = [
            a.name for a in s.attributes if a.required and s.attribute_scope(a) == "annotation"
        ]
        self.required_region = [
            a.name for a in s.attributes if a.required and s.attribute_scope(a) == "region"
        ]
        self.region_attr = {a.name for a in s.attributes if s.attribute_scope(a) == "region"}
        # rules with a label condition are looked up by label; the rest need a duration
        self.rules_by_label: dict[str, list[tuple[int, Rule]]] = {}
        self.rules_unlabeled: list[tuple[int, Rule]] = []
        for i, rule in enumerate(s.rules):
            if rule.when.label is not None:
                self.rules_by_label.setdefault(rule.when.label, []).append((i, rule))
            else:
                self.rules_unlabeled.append((i, rule))
        self.shapes = None if s.shapes is None else frozenset(s.shapes)
        self.scale = s.scale
        self.ordinal_labels = bool(s.labels) and s.task_type == "ordinal"
        # fast path: single-label with no rules and no required annotation attributes
        self.simple_single = s.task_type == "single" and not s.rules and not self.required_ann

    # -- entry point ---------------------------------------------------------------

    def __call__(
        self,
        value: Any,
        *,
        attributes: Mapping[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
        active_seconds: float | None = None,
        started_at: datetime | None = None,
        submitted_at: datetime | None = None,
    ) -> list[Violation]:
        if (
            self.simple_single
            and not attributes
            and value.__class__ is str
            and value in self.names
            and (active_seconds is None or active_seconds >= 0)
            and (
                started_at is None
                or submitted_at is None
                or _aware(submitted_at) >= _aware(started_at)
            )
        ):
            return []
        out: list[Violation] = []
        self.check_value(value, "value", out, payload=payload)
        present = self.labels_in(value) if self.rules_by_label else set()
        if attributes:
            if not isinstance(attributes, Mapping):
                out.append(
                    Violation("attributes", "type", f"expected an object, got {_kind(attributes)}")
                )
                attributes = None
            else:
                self.check_attributes(attributes, "attributes", out)
        for name in self.required_ann:
            if not attributes or _missing(attributes.get(name)):
                out.append(
                    Violation(f"attributes.{name}", "required", f"attribute {name!r} is required")
                )
        duration = self.check_time(active_seconds, started_at, submitted_at, out)
        if self.schema.rules:
            self.apply_rules(value, present, attributes, duration, out)
        return out

    # -- value ---------------------------------------------------------------------

    def labels_in(self, value: Any) -> set[str]:
        tt = self.task_type
        if tt == "single" or (tt == "ordinal" and self.ordinal_labels):
            return {value} if isinstance(value, str) else set()
        if tt == "multi":
            return {v for v in value if isinstance(v, str)} if isinstance(value, list) else set()
        if tt == "spans" and isinstance(value, list):
            return {
                r["label"] for r in value if isinstance(r, dict) and isinstance(r.get("label"), str)
            }
        return set()

    def _label(self, v: Any, field: str, out: list[Violation]) -> bool:
        if not isinstance(v, str):
            out.append(
                Violation(
                    field, "type", f"expected a label name (string), got {_kind(v)} {_show(v)}"
                )
            )
            return False
        if v not in self.names:
            out.append(
                Violation(
                    field,
                    "unknown_label",
                    f"unknown label {_show(v)}; labels are {self.names_text}",
                )
            )
            return False
        return True

    def check_value(
        self,
        value: Any,
        field: str,
        out: list[Violation],
        *,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        tt = self.task_type
        if tt == "single":
            self._label(value, field, out)
        elif tt == "multi":
            self._multi(value, field, out)
        elif tt == "ordinal":
            self._ordinal(value, field, out)
        elif tt == "spans":
            self._spans(value, field, out, payload)
        else:
            if not isinstance(value, str):
                out.append(Violation(field, "type", f"expected text, got {_kind(value)}"))
            elif self.schema.max_length is not None and len(value) > self.schema.max_length:
                out.append(
                    Violation(
                        field,
                        "too_long",
                        f"{len(value)} characters; at most {self.schema.max_length}",
                    )
                )

    def _multi(self, value: Any, field: str, out: list[Violation]) -> None:
        if not isinstance(value, list):
            out.append(
                Violation(field, "type", f"expected a list of label names, got {_kind(value)}")
            )
            return
        seen: dict[str, int] = {}
        for i, v in enumerate(value):
            if self._label(v, f"{field}[{i}]", out):
                if v in seen:
                    out.append(
                        Violation(
                            f"{field}[{i}]",
                            "duplicate_label",
                            f"{v!r} is already {field}[{seen[v]}]",
                        )
                    )
                seen.setdefault(v, i)
        n, s = len(value), self.schema
        if n < s.min_labels:
            out.append(
                Violation(
                    field,
                    "too_few_labels",
                    f"{n} label(s) chosen; at least {s.min_labels} required",
                )
            )
        if s.max_labels is not None and n > s.max_labels:
            out.append(
                Violation(
                    field, "too_many_labels", f"{n} labels chosen; at most {s.max_labels} allowed"
                )
            )

    def _ordinal(self, value: Any, field: str, out: list[Violation]) -> None:
        if self.ordinal_labels:
            self._label(value, field, out)
            return
        sc = self.scale
        assert sc is not None
        if not _is_number(value):
            out.append(
                Violation(
                    field,
                    "type",
                    f"expected a number on the scale {sc.min:g}..{sc.max:g}, got {_kind(value)} {_show(value)}",
                )
            )
            return
        if not sc.min <= value <= sc.max:
            out.append(
                Violation(
                    field, "out_of_range", f"{value:g} is outside the scale {sc.min:g}..{sc.max:g}"
                )
            )
        elif sc.step is not None:
            k = (value - sc.min) / sc.step
            if abs(k - round(k)) > 1e-9:
                out.append(
                    Violation(
                        field,
                        "off_step",
                        f"{value:g} is not on the scale's steps of {sc.step:g} from {sc.min:g}",
                    )
                )

    def _spans(
        self, value: Any, field: str, out: list[Violation], payload: Mapping[str, Any] | None
    ) -> None:
        if not isinstance(value, list):
            out.append(Violation(field, "type", f"expected a list of regions, got {_kind(value)}"))
            return
        text = payload_text(payload) if payload is not None else None
        text_spans: list[tuple[int, int, int]] = []
        for i, region in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(region, dict):
                out.append(
                    Violation(where, "type", f"expected a region object, got {_kind(region)}")
                )
                continue
            if "label" not in region:
                out.append(Violation(f"{where}.label", "required", "a region needs a label"))
            else:
                self._label(region["label"], f"{where}.label", out)
            if "start" in region or "end" in region:
                span = self._text_span(region, where, text, payload is not None, out)
                if span is not None:
                    text_spans.append((span[0], span[1], i))
            elif "shape" in region or "points" in region:
                self._geometry(region, where, out)
            else:
                out.append(
                    Violation(
                        where, "shape", "a region needs start/end (text) or shape/points (geometry)"
                    )
                )
            attrs = region.get("attributes")
            if attrs is not None:
                if not isinstance(attrs, dict):
                    out.append(
                        Violation(
                            f"{where}.attributes", "type", f"expected an object, got {_kind(attrs)}"
                        )
                    )
                    attrs = None
                else:
                    self.check_attributes(attrs, f"{where}.attributes", out)
            for name in self.required_region:
                if not attrs or _missing(attrs.get(name)):
                    out.append(
                        Violation(
                            f"{where}.attributes.{name}",
                            "required",
                            f"attribute {name!r} is required",
                        )
                    )
        if not self.schema.allow_overlap and len(text_spans) > 1:
            text_spans.sort()
            last_end, last_i = text_spans[0][1], text_spans[0][2]
            for start, end, i in text_spans[1:]:
                if start < last_end:
                    out.append(
                        Violation(
                            f"{field}[{i}]",
                            "overlap",
                            f"overlaps {field}[{last_i}]; this schema forbids overlapping spans",
                        )
                    )
                if end > last_end:
                    last_end, last_i = end, i

    def _text_span(
        self,
        region: dict[str, Any],
        where: str,
        text: str | None,
        have_payload: bool,
        out: list[Violation],
    ) -> tuple[int, int] | None:
        start, end = region.get("start"), region.get("end")
        ok = True
        for name, v in (("start", start), ("end", end)):
            if not _is_int(v):
                out.append(
                    Violation(
                        f"{where}.{name}",
                        "type",
                        f"expected a character offset (integer), got {_kind(v)} {_show(v)}",
                    )
                )
                ok = False
            elif v < 0:  # type: ignore[operator]
                out.append(Violation(f"{where}.{name}", "out_of_range", f"offset {v} is negative"))
                ok = False
        if not ok:
            return None
        assert isinstance(start, int) and isinstance(end, int)
        if end <= start:
            out.append(
                Violation(
                    f"{where}.end", "out_of_range", f"end {end} must be greater than start {start}"
                )
            )
            return None
        if text is None:
            if have_payload:
                out.append(
                    Violation(
                        where, "no_text", "text spans need a text field in the item's payload"
                    )
                )
            return (start, end)
        if end > len(text):
            out.append(
                Violation(
                    f"{where}.end",
                    "out_of_range",
                    f"end {end} is past the end of the text ({len(text)} characters)",
                )
            )
            return (start, end)
        quoted = region.get("text")
        if quoted is not None and quoted != text[start:end]:
            out.append(
                Violation(
                    f"{where}.text",
                    "text_mismatch",
                    f"{_show(quoted)} does not match the text at {start}..{end}: {_show(text[start:end])}",
                )
            )
        return (start, end)

    def _geometry(self, region: dict[str, Any], where: str, out: list[Violation]) -> None:
        shape = region.get("shape")
        if not isinstance(shape, str):
            out.append(
                Violation(f"{where}.shape", "type", f"expected a shape name, got {_kind(shape)}")
            )
        elif self.shapes is not None and shape not in self.shapes:
            allowed = ", ".join(sorted(self.shapes)) or "none (text spans only)"
            out.append(
                Violation(
                    f"{where}.shape",
                    "shape_not_allowed",
                    f"shape {shape!r} is not allowed; allowed: {allowed}",
                )
            )
        points = region.get("points")
        if not isinstance(points, list) or not points or not all(_is_number(p) for p in points):
            out.append(Violation(f"{where}.points", "type", "expected a non-empty list of numbers"))
        frame = region.get("frame")
        if frame is not None and not (_is_int(frame) and frame >= 0):
            out.append(
                Violation(
                    f"{where}.frame",
                    "type",
                    f"expected a frame number (integer >= 0), got {_show(frame)}",
                )
            )

    # -- attributes, time, rules ---------------------------------------------------------

    def check_attributes(
        self, attributes: Mapping[str, Any], field: str, out: list[Violation]
    ) -> None:
        for name, v in attributes.items():
            attr = self.attrs.get(name)
            if attr is None:
                known = ", ".join(self.attrs) or "none"
                out.append(
                    Violation(
                        f"{field}.{name}",
                        "unknown_attribute",
                        f"unknown attribute {name!r}; defined: {known}",
                    )
                )
                continue
            if _missing(v):
                continue  # absent; `required` is checked separately
            problem = _attr_value_problem(attr, v)
            if problem is not None:
                out.append(Violation(f"{field}.{name}", "attribute_value", problem))

    def check_time(
        self,
        active_seconds: float | None,
        started_at: datetime | None,
        submitted_at: datetime | None,
        out: list[Violation],
    ) -> float | None:
        if started_at is not None and submitted_at is not None:
            elapsed = (_aware(submitted_at) - _aware(started_at)).total_seconds()
            if elapsed < 0:
                out.append(
                    Violation("submitted_at", "clock", "submitted before it was started", "warning")
                )
            elif active_seconds is None:
                active_seconds = elapsed
        if active_seconds is not None:
            if (
                active_seconds.__class__ is float
                and active_seconds >= 0
                and active_seconds != math.inf
            ):
                return active_seconds  # the common case
            if not _is_number(active_seconds):
                out.append(
                    Violation(
                        "active_seconds",
                        "type",
                        f"expected a number of seconds, got {_show(active_seconds)}",
                    )
                )
                return None
            if active_seconds < 0:
                out.append(
                    Violation("active_seconds", "out_of_range", f"{active_seconds:g} is negative")
                )
                return None
        return active_seconds

    def apply_rules(
        self,
        value: Any,
        present: set[str],
        attributes: Mapping[str, Any] | None,
        duration: float | None,
        out: list[Violation],
    ) -> None:
        if present and self.rules_by_label:
            cands = list(self.rules_unlabeled) if duration is not None else []
            for label in present:
                cands.extend(self.rules_by_label.get(label, ()))
            cands.sort(key=_first)
        elif duration is not None:
            cands = self.rules_unlabeled
        else:
            return
        for i, rule in cands:
            w = rule.when
            if w.active_seconds_below is not None and (
                duration is None or not duration < w.active_seconds_below
            ):
                continue
            if w.active_seconds_above is not None and (
                duration is None or not duration > w.active_seconds_above
            ):
                continue
            if w.label is not None and w.label not in present:
                continue
            sev = rule.effective_severity
            for attr_name in rule.require_attributes:
                attr = self.attrs[attr_name]
                if self.schema.attribute_scope(attr) == "region" and isinstance(value, list):
                    for j, region in enumerate(value):
                        if not isinstance(region, dict) or (
                            w.label is not None and region.get("label") != w.label
                        ):
                            continue
                        ra = region.get("attributes")
                        if not isinstance(ra, dict) or _missing(ra.get(attr_name)):
                            out.append(
                                self._rule_violation(
                                    rule,
                                    i,
                                    f"value[{j}].attributes.{attr_name}",
                                    "required_attribute",
                                    f"attribute {attr_name!r} is required {self._because(w)}",
                                    sev,
                                )
                            )
                elif not attributes or _missing(attributes.get(attr_name)):
                    out.append(
                        self._rule_violation(
                            rule,
                            i,
                            f"attributes.{attr_name}",
                            "required_attribute",
                            f"attribute {attr_name!r} is required {self._because(w)}",
                            sev,
                        )
                    )
            if rule.forbid_labels and isinstance(value, list):
                for j, v in enumerate(value):
                    if v in rule.forbid_labels:
                        out.append(
                            self._rule_violation(
                                rule,
                                i,
                                f"value[{j}]",
                                "forbidden_label",
                                f"{v!r} may not be chosen together with {w.label!r}",
                                sev,
                            )
                        )
            if rule.flag and not (rule.require_attributes or rule.forbid_labels):
                field = "active_seconds" if w.label is None else "value"
                out.append(
                    self._rule_violation(
                        rule, i, field, rule.flag, self._flag_message(w, duration), sev
                    )
                )

    @staticmethod
    def _because(w: Any) -> str:
        return f"when the label is {w.label!r}" if w.label is not None else "by a project rule"

    @staticmethod
    def _flag_message(w: Any, duration: float | None) -> str:
        parts = []
        if w.label is not None:
            parts.append(f"label is {w.label!r}")
        if w.active_seconds_below is not None:
            parts.append(f"{duration:g} active seconds, below {w.active_seconds_below:g}")
        if w.active_seconds_above is not None:
            parts.append(f"{duration:g} active seconds, above {w.active_seconds_above:g}")
        return "; ".join(parts)

    @staticmethod
    def _rule_violation(
        rule: Rule, index: int, field: str, code: str, default: str, sev: Severity
    ) -> Violation:
        message = rule.message or default
        return Violation(field, rule.flag or code, f"{message} (rules[{index}])", sev)


_CACHE: dict[int, tuple[LabelSchema, _Compiled]] = {}


def _compiled(schema: LabelSchema) -> _Compiled:
    hit = _CACHE.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    compiled = _Compiled(schema)
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[id(schema)] = (schema, compiled)
    return compiled


def compile_validator(schema: LabelSchema) -> AnnotationValidator:
    """A validator for annotations under ``schema``; call it once per annotation."""
    return _compiled(schema)


def validate_annotation(
    schema: LabelSchema,
    value: Any,
    *,
    attributes: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    active_seconds: float | None = None,
    started_at: datetime | None = None,
    submitted_at: datetime | None = None,
) -> list[Violation]:
    """Every violation of one annotation (value, attributes, timing, rules).

    ``payload`` is the item's payload; span offsets are checked against its text
    (``payload["text"]`` or its first string field) and skipped when it is None.
    """
    return _compiled(schema)(
        value,
        attributes=attributes,
        payload=payload,
        active_seconds=active_seconds,
        started_at=started_at,
        submitted_at=submitted_at,
    )


def validate_value(
    schema: LabelSchema,
    value: Any,
    field: str = "value",
    *,
    payload: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Violations of a bare label value (gold labels, predictions): no attributes or rules."""
    out: list[Violation] = []
    _compiled(schema).check_value(value, field, out, payload=payload)
    return out


def canonical_value(schema: LabelSchema, value: Any) -> Any:
    """``value`` in canonical form: multi-label lists sorted, span regions sorted by position."""
    if schema.task_type == "multi" and isinstance(value, list):
        return sorted(value)
    if schema.task_type == "spans" and isinstance(value, list):

        def key(r: Any) -> tuple[Any, ...]:
            if not isinstance(r, dict):
                return (2,)
            if "start" in r:
                return (0, r.get("start", 0), r.get("end", 0), str(r.get("label")))
            return (1, r.get("frame") or 0, str(r.get("label")), r.get("points") or [])

        return sorted(value, key=key)
    return value


__all__ = [
    "AnnotationValidator",
    "Violation",
    "canonical_value",
    "compile_validator",
    "errors_of",
    "payload_text",
    "validate_annotation",
    "validate_value",
    "warnings_of",
]
