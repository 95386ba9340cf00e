"""Label Studio JSON export: reader and writer.

The export is one JSON document (a list of tasks, or a single task object), so the
reader parses it whole (``json.loads`` on the decoded text; the raw bytes are released
first, so the file is never held twice). See ``docs/formats.md`` for the mapping.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from labelloop.formats._common import (
    as_str,
    describe,
    empty_file_issue,
    json_path,
    parse_datetime,
    parse_seconds,
    read_text,
    stable_id,
)
from labelloop.formats.records import (
    AnnotationRecord,
    FormatIssue,
    GoldRecord,
    ItemRecord,
    JSONValue,
    Location,
    PredictionRecord,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)

#: result types mapped to a region shape (``None`` = text span)
SPAN_SHAPES: dict[str, str | None] = {
    "labels": None,
    "rectanglelabels": "box",
    "polygonlabels": "polygon",
    "keypointlabels": "point",
}
CHOICE_TYPES = frozenset({"choices"})
ORDINAL_TYPES = frozenset({"rating", "number"})
TEXT_TYPES = frozenset({"textarea"})
_PRIORITY = {**dict.fromkeys(SPAN_SHAPES, 0), "choices": 1, "rating": 2, "number": 2, "textarea": 3}

#: task keys that are not data when a task has no ``data`` wrapper
_TASK_KEYS = frozenset(
    {
        "id",
        "annotations",
        "completions",
        "predictions",
        "meta",
        "drafts",
        "created_at",
        "updated_at",
        "project",
        "file_upload",
        "inner_id",
        "total_annotations",
        "cancelled_annotations",
        "total_predictions",
        "comment_count",
        "unresolved_comment_count",
        "last_comment_updated_at",
        "updated_by",
        "comment_authors",
        "agreement",
        "is_labeled",
        "overlap",
    }
)
GOLD_SOURCE = "label-studio ground_truth"
DEFAULT_MODEL = "label-studio"
_GEOMETRY_EXTRAS = ("rotation", "occluded", "z_order")


class _Empty:
    """Marker: an annotation without a result for the primary control."""


EMPTY = _Empty()


@dataclass(slots=True)
class _Plan:
    """What the pre-scan decided: the primary control and the task type."""

    primary: str | None = None
    primary_type: str | None = None
    task_type: TaskType | None = None


@dataclass(slots=True)
class _Converted:
    value: JSONValue | _Empty = EMPTY
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    issues: list[FormatIssue] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)


def read_label_studio(
    path: Path, hints: SchemaHints | None = None
) -> Iterator[Record | FormatIssue]:
    """Read a Label Studio JSON export (a list of tasks or one task object)."""
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    text = read_text(path)
    if isinstance(text, FormatIssue):
        yield text
        return
    if not text.strip():
        yield empty_file_issue(path)
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        reason = (
            f"invalid JSON: the file ends before the JSON is complete ({exc.msg}); "
            "it is probably truncated"
            if truncated
            else f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        )
        if exc.msg == "Extra data":
            reason += (
                "; this looks like JSON Lines (one object per line): use the prodigy, "
                "doccano or jsonl format"
            )
        yield FormatIssue(Location(file, line=exc.lineno), reason)
        return
    del text
    if isinstance(document, dict):
        tasks: list[Any] = [document]
    elif isinstance(document, list):
        tasks = document
    else:
        yield FormatIssue(
            Location(file),
            f"expected a list of Label Studio tasks or one task object, found {describe(document)}",
        )
        return
    plan = _plan(tasks, hints)
    if plan.task_type is not None and hints.task_type is None:
        hints.task_type = plan.task_type
    yield from _read_tasks(tasks, file, plan, hints)


def _results_of(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("annotations", "completions", "predictions"):
        entries = task.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("result"), list):
                for result in entry["result"]:
                    if isinstance(result, dict):
                        yield result


def _plan(tasks: list[Any], hints: SchemaHints) -> _Plan:
    """Pre-scan: choose the primary control (spans > choices > rating > textarea, then
    first seen) and whether choices are multi-label (any result with several)."""
    seen: dict[str, str] = {}
    multi = False
    for task in tasks:
        if not isinstance(task, dict):
            continue
        for result in _results_of(task):
            kind = result.get("type")
            name = result.get("from_name")
            if not isinstance(kind, str) or kind not in _PRIORITY:
                continue
            key = name if isinstance(name, str) else kind
            seen.setdefault(key, kind)
            if kind == "choices":
                value = result.get("value")
                if isinstance(value, dict) and isinstance(value.get("choices"), list):
                    multi = multi or len(value["choices"]) > 1
    plan = _Plan()
    if not seen:
        return plan
    best = min(seen, key=lambda name: _PRIORITY[seen[name]])  # min is stable: first seen wins
    plan.primary, plan.primary_type = best, seen[best]
    kind = seen[best]
    if kind in SPAN_SHAPES:
        plan.task_type = "spans"
    elif kind in CHOICE_TYPES:
        if hints.task_type in ("single", "multi"):
            plan.task_type = hints.task_type
        else:
            plan.task_type = "multi" if multi else "single"
    elif kind in ORDINAL_TYPES:
        plan.task_type = "ordinal"
    else:
        plan.task_type = "text"
    return plan


def _item_of(
    task: dict[str, Any], loc: Location
) -> tuple[
    str | None, dict[str, Any], dict[str, Any], dict[str, str], tuple[str, ...], FormatIssue | None
]:
    """(explicit id, payload, metadata, segments, tags, issue) of a task."""
    if "data" in task:
        data = task["data"]
        if not isinstance(data, dict):
            return (
                None,
                {},
                {},
                {},
                (),
                _issue(loc, "data", f"task data must be an object, found {describe(data)}"),
            )
    else:
        data = {k: v for k, v in task.items() if k not in _TASK_KEYS}
    task_id = task.get("id")
    if task_id is not None and (isinstance(task_id, bool) or not isinstance(task_id, int | str)):
        return (
            None,
            {},
            {},
            {},
            (),
            _issue(loc, "id", f"task id must be a number or a string, found {describe(task_id)}"),
        )
    meta_raw = task.get("meta")
    meta: dict[str, Any] = dict(meta_raw) if isinstance(meta_raw, dict) else {}
    extra = meta.pop("labelloop", None)
    segments: dict[str, str] = {}
    tags: tuple[str, ...] = ()
    if isinstance(extra, dict):
        if isinstance(extra.get("segments"), dict):
            segments = {str(k): str(v) for k, v in extra["segments"].items()}
        if isinstance(extra.get("tags"), list):
            tags = tuple(str(t) for t in extra["tags"])
    return (None if task_id is None else as_str(task_id)), data, meta, segments, tags, None


def _issue(loc: Location, field_path: str, reason: str, severity: str = "error") -> FormatIssue:
    return FormatIssue(
        Location(loc.file, loc.line, loc.record, field_path),
        reason,
        "warning" if severity == "warning" else "error",
    )


def _annotator(value: object) -> str | None:
    """``completed_by``: an int id, an object with email (else id), or missing."""
    if isinstance(value, dict):
        email = value.get("email")
        if isinstance(email, str) and email:
            return email
        user_id = value.get("id")
        return None if user_id is None else as_str(user_id)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | str | float):
        return as_str(value)
    return None


def _read_tasks(
    tasks: list[Any], file: str, plan: _Plan, hints: SchemaHints
) -> Iterator[Record | FormatIssue]:
    task_ids: dict[str, int] = {}
    annotation_ids: dict[tuple[str, str | None, str], str] = {}
    per_item: dict[str, int] = {}
    for index, task in enumerate(tasks):
        loc = Location(file, record=index)
        if not isinstance(task, dict):
            yield FormatIssue(loc, f"expected a task object, found {describe(task)}")
            continue
        explicit_id, payload, meta, segments, tags, problem = _item_of(task, loc)
        if problem is not None:
            yield problem
            continue
        item_id = explicit_id if explicit_id is not None else stable_id(payload)
        first = task_ids.get(item_id)
        if first is not None:
            if explicit_id is not None:
                yield _issue(loc, "id", f"duplicate task id {item_id!r}: also at record {first}")
                continue
            yield _issue(
                loc,
                "data",
                f"task has the same data as record {first} and no id; treated as the same item",
                "warning",
            )
        else:
            task_ids[item_id] = index
            yield ItemRecord(item_id, payload, meta, segments, tags, Location(file, record=index))

        annotations = task.get("annotations", task.get("completions", []))
        key = "annotations" if "annotations" in task or "completions" not in task else "completions"
        if annotations is None:
            annotations = []
        if not isinstance(annotations, list):
            yield _issue(loc, key, f"must be a list, found {describe(annotations)}")
            annotations = []
        for a_index, ann in enumerate(annotations):
            yield from _annotation(
                ann,
                item_id,
                plan,
                hints,
                Location(file, None, index, json_path(key, a_index)),
                annotation_ids,
                per_item,
            )

        predictions = task.get("predictions", [])
        if predictions is None:
            predictions = []
        if not isinstance(predictions, list):
            yield _issue(loc, "predictions", f"must be a list, found {describe(predictions)}")
            predictions = []
        for p_index, pred in enumerate(predictions):
            yield from _prediction(
                pred,
                item_id,
                plan,
                hints,
                Location(file, None, index, json_path("predictions", p_index)),
            )


def _annotation(
    ann: object,
    item_id: str,
    plan: _Plan,
    hints: SchemaHints,
    loc: Location,
    annotation_ids: dict[tuple[str, str | None, str], str],
    per_item: dict[str, int],
) -> Iterator[Record | FormatIssue]:
    base = loc.field or ""
    if not isinstance(ann, dict):
        yield FormatIssue(loc, f"expected an annotation object, found {describe(ann)}")
        return
    annotator = _annotator(ann.get("completed_by"))
    if ann.get("was_cancelled") is True:
        yield SkippedRecord("cancelled annotation (was_cancelled)", loc)
        return
    results = ann.get("result", [])
    if results is None:
        results = []
    if not isinstance(results, list):
        yield _issue(loc, f"{base}.result", f"must be a list, found {describe(results)}")
        return
    converted = _convert(results, plan, hints, loc, prediction=False)
    yield from converted.issues
    yield from converted.skipped
    if converted.issues:
        return
    n = per_item.get(item_id, 0)
    per_item[item_id] = n + 1
    raw_id = ann.get("id")
    if raw_id is not None and not isinstance(raw_id, bool) and isinstance(raw_id, int | str):
        external_id = as_str(raw_id)
        where = f"record {loc.record}, field {base}"
        identity = (item_id, annotator, external_id)
        if identity in annotation_ids:
            yield _issue(
                loc,
                f"{base}.id",
                f"duplicate annotation id {external_id!r}: also at {annotation_ids[identity]}",
            )
            return
        annotation_ids[identity] = where
    else:
        external_id = stable_id(item_id, annotator, n)
    started = submitted = None
    active = None
    bad = False
    for key in ("created_at", "updated_at"):
        raw = ann.get(key)
        if raw is None:
            continue
        try:
            stamp = parse_datetime(raw)
        except ValueError as exc:
            yield _issue(loc, f"{base}.{key}", str(exc))
            bad = True
            continue
        if key == "created_at":
            started = stamp
        else:
            submitted = stamp
    if ann.get("lead_time") is not None:
        try:
            active = parse_seconds(ann["lead_time"])
        except ValueError as exc:
            yield _issue(loc, f"{base}.lead_time", str(exc))
            bad = True
    if bad:
        return
    task_type = plan.task_type
    if isinstance(converted.value, _Empty) or task_type is None:
        yield SkippedRecord(f"annotation without a '{plan.primary or 'label'}' result", loc)
        return
    value = converted.value
    if ann.get("gold_only") is True:
        yield GoldRecord(
            item_id,
            value,
            task_type,
            _opt_str(ann.get("gold_rationale")),
            _opt_str(ann.get("gold_source")) or GOLD_SOURCE,
            loc,
        )
        return
    yield AnnotationRecord(
        item_external_id=item_id,
        annotator=annotator,
        value=value,
        task_type=task_type,
        attributes=converted.attributes,
        external_id=external_id,
        started_at=started,
        submitted_at=submitted,
        active_seconds=active,
        location=loc,
    )
    if ann.get("ground_truth") is True:
        yield GoldRecord(
            item_id,
            value,
            task_type,
            _opt_str(ann.get("gold_rationale")),
            _opt_str(ann.get("gold_source")) or GOLD_SOURCE,
            loc,
        )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _prediction(
    pred: object, item_id: str, plan: _Plan, hints: SchemaHints, loc: Location
) -> Iterator[Record | FormatIssue]:
    base = loc.field or ""
    if isinstance(pred, int | str) and not isinstance(pred, bool):
        yield SkippedRecord("prediction given only as an id (no result in the export)", loc)
        return
    if not isinstance(pred, dict):
        yield FormatIssue(loc, f"expected a prediction object, found {describe(pred)}")
        return
    results = pred.get("result", [])
    if results is None:
        results = []
    if not isinstance(results, list):
        yield _issue(loc, f"{base}.result", f"must be a list, found {describe(results)}")
        return
    converted = _convert(results, plan, hints, loc, prediction=True)
    yield from converted.issues
    yield from converted.skipped
    if converted.issues:
        return
    if isinstance(converted.value, _Empty) or plan.task_type is None:
        yield SkippedRecord(f"prediction without a '{plan.primary or 'label'}' result", loc)
        return
    score = pred.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        yield _issue(loc, f"{base}.score", f"must be a number, found {describe(score)}")
        return
    version = pred.get("model_version")
    probabilities = pred.get("probabilities")
    probs: dict[str, float] | None = None
    if isinstance(probabilities, dict):
        try:
            probs = {str(k): float(v) for k, v in probabilities.items()}
        except (TypeError, ValueError):
            yield _issue(loc, f"{base}.probabilities", "must map labels to numbers")
            return
    yield PredictionRecord(
        item_external_id=item_id,
        model_name=_opt_str(pred.get("model_name")) or DEFAULT_MODEL,
        model_version=None if version is None or version == "" else as_str(version),
        value=converted.value,
        task_type=plan.task_type,
        probabilities=probs,
        score=None if score is None else float(score),
        location=loc,
    )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _convert(
    results: list[Any], plan: _Plan, hints: SchemaHints, loc: Location, *, prediction: bool
) -> _Converted:
    """Turn a ``result`` list into the canonical value plus attributes."""
    out = _Converted()
    base = loc.field or ""
    choices: list[str] = []
    regions: list[dict[str, Any]] = []
    region_by_id: dict[str, list[dict[str, Any]]] = {}
    scalar: JSONValue | _Empty = EMPTY
    secondary: list[tuple[int, dict[str, Any]]] = []
    for r_index, result in enumerate(results):
        where = f"{base}.result[{r_index}]"
        if not isinstance(result, dict):
            out.issues.append(
                _issue(loc, where, f"expected a result object, found {describe(result)}")
            )
            continue
        kind = result.get("type")
        name = result.get("from_name")
        value = result.get("value")
        if not isinstance(kind, str):
            out.issues.append(_issue(loc, f"{where}.type", "missing result type"))
            continue
        if kind not in _PRIORITY:
            out.skipped.append(
                SkippedRecord(f"unsupported Label Studio result type {kind!r}", _at(loc, where))
            )
            continue
        if not isinstance(value, dict):
            out.issues.append(
                _issue(loc, f"{where}.value", f"must be an object, found {describe(value)}")
            )
            continue
        key = name if isinstance(name, str) else kind
        if key != plan.primary:
            secondary.append((r_index, result))
            continue
        if kind in SPAN_SHAPES:
            made = _regions(kind, value, result, loc, where, out, prediction=prediction)
            regions.extend(made)
            rid = result.get("id")
            if isinstance(rid, str):
                region_by_id.setdefault(rid, []).extend(made)
        elif kind in CHOICE_TYPES:
            got = value.get("choices")
            if not isinstance(got, list) or not all(isinstance(c, str) for c in got):
                out.issues.append(
                    _issue(loc, f"{where}.value.choices", "must be a list of strings")
                )
                continue
            choices.extend(got)
        elif kind in ORDINAL_TYPES:
            got = value.get(kind)
            if not _number(got):
                out.issues.append(
                    _issue(loc, f"{where}.value.{kind}", f"must be a number, found {describe(got)}")
                )
                continue
            scalar = got
        else:
            got = value.get("text")
            if isinstance(got, str):
                got = [got]
            if not isinstance(got, list) or not all(isinstance(t, str) for t in got):
                out.issues.append(_issue(loc, f"{where}.value.text", "must be a list of strings"))
                continue
            scalar = "\n".join(got)
    for r_index, result in secondary:
        where = f"{base}.result[{r_index}]"
        name = result.get("from_name")
        attr_name = name if isinstance(name, str) else str(result.get("type"))
        attr_value = _secondary_value(result)
        if attr_value is None:
            out.skipped.append(
                SkippedRecord(f"unreadable {result.get('type')!r} result", _at(loc, where))
            )
            continue
        rid = result.get("id")
        if isinstance(rid, str) and rid in region_by_id:
            for region in region_by_id[rid]:
                region.setdefault("attributes", {})[attr_name] = attr_value
        else:
            out.attributes[attr_name] = attr_value
        for seen in attr_value if isinstance(attr_value, list) else [attr_value]:
            hints.see_attribute(attr_name, seen)
    if plan.task_type == "spans":
        out.value = _sort_regions(regions)
        for region in regions:
            hints.see_label(region["label"])
            for name, seen in region.get("attributes", {}).items():
                hints.see_attribute(name, seen)
    elif plan.task_type in ("single", "multi"):
        if choices:
            for choice in choices:
                hints.see_label(choice)
            if plan.task_type == "multi":
                out.value = sorted(set(choices))
            elif len(set(choices)) > 1:
                out.issues.append(
                    _issue(
                        loc,
                        f"{base}.result",
                        f"{len(choices)} choices {choices!r} for a single-label task",
                    )
                )
            else:
                out.value = choices[0]
    elif not isinstance(scalar, _Empty):
        out.value = scalar
        if plan.task_type == "ordinal":
            hints.see_label(as_str(scalar))
    return out


def _at(loc: Location, where: str) -> Location:
    return Location(loc.file, loc.line, loc.record, where)


def _secondary_value(result: dict[str, Any]) -> JSONValue:
    kind = result.get("type")
    value = result.get("value")
    if not isinstance(value, dict):
        return None
    if kind == "choices":
        got = value.get("choices")
        return list(got) if isinstance(got, list) else None
    if kind in ORDINAL_TYPES:
        got = value.get(kind)
        return got if _number(got) else None
    if kind == "textarea":
        got = value.get("text")
        if isinstance(got, list):
            return "\n".join(str(t) for t in got)
        return got if isinstance(got, str) else None
    if isinstance(kind, str) and kind in SPAN_SHAPES:
        labels = value.get(kind)
        return list(labels) if isinstance(labels, list) else None
    return None


def _regions(
    kind: str,
    value: dict[str, Any],
    result: dict[str, Any],
    loc: Location,
    where: str,
    out: _Converted,
    *,
    prediction: bool,
) -> list[dict[str, Any]]:
    labels = value.get(kind)
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        out.issues.append(
            _issue(loc, f"{where}.value.{kind}", "must be a non-empty list of label names")
        )
        return []
    shape = SPAN_SHAPES[kind]
    base: dict[str, Any] = {}
    if shape is None:
        start, end = value.get("start"), value.get("end")
        if (
            not isinstance(start, int)
            or not isinstance(end, int)
            or isinstance(start, bool)
            or isinstance(end, bool)
        ):
            out.issues.append(
                _issue(
                    loc, f"{where}.value", "text span needs integer start and end character offsets"
                )
            )
            return []
        base = {"start": start, "end": end}
        if isinstance(value.get("text"), str):
            base["text"] = value["text"]
    elif shape == "box":
        coords = [value.get(k) for k in ("x", "y", "width", "height")]
        if not all(_number(c) for c in coords):
            out.issues.append(
                _issue(loc, f"{where}.value", "rectangle needs numeric x, y, width and height")
            )
            return []
        x, y, w, h = coords
        base = {"shape": "box", "points": [x, y, _corner(x, w), _corner(y, h)], "frame": 0}
    elif shape == "polygon":
        points = value.get("points")
        if not isinstance(points, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(_number(c) for c in p) for p in points
        ):
            out.issues.append(
                _issue(loc, f"{where}.value.points", "polygon needs a list of [x, y] points")
            )
            return []
        shape_name = value.get("shape") if isinstance(value.get("shape"), str) else "polygon"
        base = {"shape": shape_name, "points": [c for p in points for c in p], "frame": 0}
    else:
        x, y = value.get("x"), value.get("y")
        if not _number(x) or not _number(y):
            out.issues.append(_issue(loc, f"{where}.value", "keypoint needs numeric x and y"))
            return []
        base = {"shape": "point", "points": [x, y], "frame": 0}
    if shape is not None:
        for extra in _GEOMETRY_EXTRAS:
            got = value.get(extra)
            if got not in (None, 0, False):
                base[extra] = got
    if isinstance(value.get("attributes"), dict) and value["attributes"]:
        base["attributes"] = dict(value["attributes"])
    if prediction and _number(result.get("score")):
        base["score"] = result["score"]
    made = []
    for label in labels:
        region = dict(base)
        region["label"] = label
        if "attributes" in base:
            region["attributes"] = dict(base["attributes"])
        made.append(region)
    return made


def _corner(start: Any, extent: Any) -> float:
    """``start + extent`` rounded to 10 decimals, so ``x + width`` does not carry float
    noise (80.62 + 3.12 is 83.74, not 83.74000000000001) and an export re-imports exactly."""
    return round(float(start + extent), 10)


def _region_key(region: dict[str, Any]) -> tuple[Any, ...]:
    if "start" in region:
        return (0, region["start"], region["end"], region["label"], ())
    return (
        1,
        region.get("frame", 0),
        tuple(region.get("points", ())),
        region["label"],
        region.get("shape", ""),
    )


def _sort_regions(regions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(regions, key=_region_key)


# --------------------------------------------------------------------------- writer


def _result_for(value: JSONValue, task_type: str, from_name: str = "label") -> list[dict[str, Any]]:
    """Canonical value -> a Label Studio ``result`` list."""
    if task_type == "single":
        return [
            {
                "type": "choices",
                "from_name": from_name,
                "to_name": "text",
                "value": {"choices": [value]},
            }
        ]
    if task_type == "multi":
        return [
            {
                "type": "choices",
                "from_name": from_name,
                "to_name": "text",
                "value": {"choices": list(value)},
            }
        ]
    if task_type == "ordinal":
        return [
            {
                "type": "rating",
                "from_name": from_name,
                "to_name": "text",
                "value": {"rating": value},
            }
        ]
    if task_type == "text":
        return [
            {
                "type": "textarea",
                "from_name": from_name,
                "to_name": "text",
                "value": {"text": [value]},
            }
        ]
    results: list[dict[str, Any]] = []
    for region in value or []:
        results.append(_region_result(region, from_name))
    return results


def _region_result(region: dict[str, Any], from_name: str) -> dict[str, Any]:
    label = region.get("label")
    extras = {k: region[k] for k in _GEOMETRY_EXTRAS if k in region}
    if "attributes" in region:
        extras["attributes"] = region["attributes"]
    out: dict[str, Any]
    if "start" in region:
        value: dict[str, Any] = {"start": region["start"], "end": region["end"], "labels": [label]}
        if "text" in region:
            value["text"] = region["text"]
        if "attributes" in region:
            value["attributes"] = region["attributes"]
        out = {"type": "labels", "from_name": from_name, "to_name": "text", "value": value}
    else:
        shape = region.get("shape", "box")
        points = list(region.get("points", []))
        if shape == "box" and len(points) == 4:
            x1, y1, x2, y2 = points
            value = {
                "x": x1,
                "y": y1,
                "width": x2 - x1,
                "height": y2 - y1,
                "rotation": 0,
                "rectanglelabels": [label],
            }
            value.update(extras)
            out = {
                "type": "rectanglelabels",
                "from_name": from_name,
                "to_name": "image",
                "value": value,
            }
        elif shape == "point" and len(points) == 2:
            value = {
                "x": points[0],
                "y": points[1],
                "width": 1.0,
                "keypointlabels": [label],
                **extras,
            }
            out = {
                "type": "keypointlabels",
                "from_name": from_name,
                "to_name": "image",
                "value": value,
            }
        else:
            pairs = [[points[i], points[i + 1]] for i in range(0, len(points) - 1, 2)]
            value = {"points": pairs, "polygonlabels": [label], **extras}
            if shape != "polygon":
                value["shape"] = shape
            out = {
                "type": "polygonlabels",
                "from_name": from_name,
                "to_name": "image",
                "value": value,
            }
    if "score" in region:
        out["score"] = region["score"]
    return out


def _attribute_results(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in attributes.items():
        if isinstance(value, list):
            out.append(
                {
                    "type": "choices",
                    "from_name": name,
                    "to_name": "text",
                    "value": {"choices": [str(v) for v in value]},
                }
            )
        elif _number(value):
            out.append(
                {"type": "number", "from_name": name, "to_name": "text", "value": {"number": value}}
            )
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out.append(
                {
                    "type": "textarea",
                    "from_name": name,
                    "to_name": "text",
                    "value": {"text": [text]},
                }
            )
    return out


def _id_value(external_id: str) -> int | str:
    return int(external_id) if external_id.isdigit() and len(external_id) < 19 else external_id


def _iso(stamp: datetime | None) -> str | None:
    return None if stamp is None else stamp.isoformat().replace("+00:00", "Z")


def _row_records(row: dict[str, Any]) -> list[Record]:
    """A long-form row dict (see ``docs/formats.md``) -> records."""
    from labelloop.formats.tabular import infer_value

    item_id = as_str(row["item_id"])
    payload = {"text": row["text"]} if row.get("text") not in (None, "") else {}
    segments = {
        k[len("segment_") :]: str(v)
        for k, v in row.items()
        if k.startswith("segment_") and v not in (None, "")
    }
    records: list[Record] = [ItemRecord(item_id, payload, segments=segments)]
    label = row.get("label")
    task_type = row.get("task_type")
    if label not in (None, ""):
        value, kind = infer_value(label, task_type)
        records.append(
            AnnotationRecord(
                item_id,
                None if row.get("annotator") in (None, "") else str(row["annotator"]),
                value,
                kind,
                external_id=None
                if row.get("annotation_id") in (None, "")
                else str(row["annotation_id"]),
                started_at=_as_dt(row.get("started_at")),
                submitted_at=_as_dt(row.get("submitted_at")),
                active_seconds=None
                if row.get("active_seconds") in (None, "")
                else float(row["active_seconds"]),
            )
        )
    if row.get("gold") not in (None, ""):
        value, kind = infer_value(row["gold"], task_type)
        records.append(GoldRecord(item_id, value, kind))
    return records


def _as_dt(value: object) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return parse_datetime(value)


def write_label_studio(
    records_or_rows: Iterable[Record | FormatIssue | dict[str, Any]], path: Path
) -> int:
    """Write records (or long-form row dicts) as a Label Studio JSON export; returns the
    number of tasks. Gold labels become ``ground_truth`` on the matching annotation, or a
    ``gold_only`` annotation when no annotation has the gold value. Written atomically."""
    tasks: dict[str, dict[str, Any]] = {}
    golds: dict[str, list[GoldRecord]] = {}

    def task_for(item_id: str) -> dict[str, Any]:
        task = tasks.get(item_id)
        if task is None:
            task = {"id": _id_value(item_id), "data": {}, "annotations": [], "predictions": []}
            tasks[item_id] = task
        return task

    def add(record: Record | FormatIssue) -> None:
        if isinstance(record, ItemRecord):
            task = task_for(record.external_id)
            task["data"] = record.payload
            meta: dict[str, Any] = dict(record.metadata)
            if record.segments or record.tags:
                meta["labelloop"] = {"segments": dict(record.segments), "tags": list(record.tags)}
            if meta:
                task["meta"] = meta
        elif isinstance(record, AnnotationRecord):
            ann: dict[str, Any] = {}
            if record.external_id is not None:
                ann["id"] = _id_value(record.external_id)
            if record.annotator is not None:
                who = record.annotator
                ann["completed_by"] = (
                    int(who) if who.isdigit() and len(who) < 19 else {"email": who}
                )
            ann["result"] = _result_for(record.value, record.task_type) + _attribute_results(
                record.attributes
            )
            ann["was_cancelled"] = False
            ann["ground_truth"] = False
            if record.started_at is not None:
                ann["created_at"] = _iso(record.started_at)
            if record.submitted_at is not None:
                ann["updated_at"] = _iso(record.submitted_at)
            if record.active_seconds is not None:
                ann["lead_time"] = record.active_seconds
            ann["_labelloop"] = (record.value, record.task_type)
            task_for(record.item_external_id)["annotations"].append(ann)
        elif isinstance(record, GoldRecord):
            task_for(record.item_external_id)
            golds.setdefault(record.item_external_id, []).append(record)
        elif isinstance(record, PredictionRecord):
            pred: dict[str, Any] = {"result": _result_for(record.value, record.task_type)}
            if record.model_version is not None:
                pred["model_version"] = record.model_version
            if record.model_name != DEFAULT_MODEL:
                pred["model_name"] = record.model_name
            if record.score is not None:
                pred["score"] = record.score
            if record.probabilities is not None:
                pred["probabilities"] = record.probabilities
            task_for(record.item_external_id)["predictions"].append(pred)

    for entry in records_or_rows:
        if isinstance(entry, dict):
            for record in _row_records(entry):
                if not (isinstance(record, ItemRecord) and record.external_id in tasks):
                    add(record)
        else:
            add(entry)

    for item_id, item_golds in golds.items():
        task = tasks[item_id]
        for gold in item_golds:
            match = next(
                (
                    a
                    for a in task["annotations"]
                    if not a["ground_truth"] and a["_labelloop"] == (gold.value, gold.task_type)
                ),
                None,
            )
            if match is None:
                match = {
                    "result": _result_for(gold.value, gold.task_type),
                    "was_cancelled": False,
                    "gold_only": True,
                }
                task["annotations"].append(match)
            match["ground_truth"] = True
            if gold.rationale is not None:
                match["gold_rationale"] = gold.rationale
            if gold.source is not None and gold.source != GOLD_SOURCE:
                match["gold_source"] = gold.source
    for task in tasks.values():
        for ann in task["annotations"]:
            ann.pop("_labelloop", None)
    _atomic_write_json(list(tasks.values()), path)
    return len(tasks)


def _atomic_write_json(document: object, path: Path) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, ensure_ascii=False, indent=1, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
