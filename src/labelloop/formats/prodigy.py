"""Prodigy JSONL (``prodigy db-out``) reader.

Two streaming passes: the first decides the task type (binary ``classification``,
``choice`` single or multiple, spans) and which answer wins when an annotator answered
the same task twice; the second yields records. See ``docs/formats.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelloop.formats._common import (
    as_str,
    describe,
    empty_file_issue,
    is_empty_file,
    iter_json_lines,
    parse_datetime,
    stable_id,
)
from labelloop.formats.records import (
    AnnotationRecord,
    FormatIssue,
    ItemRecord,
    JSONValue,
    Location,
    Record,
    SchemaHints,
    SkippedRecord,
    TaskType,
)

#: a rejected binary ``classification`` answer for label ``L`` becomes ``NEGATIVE_PREFIX + L``
NEGATIVE_PREFIX = "not "
SUPERSEDED = (
    "superseded: the same annotator answered this task again later; the latest answer is kept"
)
SPAN_VIEWS = frozenset(
    {"ner_manual", "spans_manual", "ner", "image_manual", "relations", "pos_manual"}
)
_ANSWER_KEYS = frozenset({"answer", "accept", "config"})


@dataclass(slots=True)
class _Scan:
    multi: bool = False
    winners: dict[int, int] = field(default_factory=dict)  # hash(task, annotator) -> winning line
    stamps: dict[int, float] = field(default_factory=dict)


def _annotator(task: dict[str, Any]) -> str | None:
    for key in ("_annotator_id", "_session_id"):
        value = task.get(key)
        if value not in (None, ""):
            return as_str(value)
    return None


def _view(task: dict[str, Any]) -> str:
    """``binary``, ``choice`` or ``spans`` for a task."""
    view = task.get("_view_id")
    if view == "choice" or (view is None and "options" in task):
        return "choice"
    if view in SPAN_VIEWS or (view is None and "spans" in task and "label" not in task):
        return "spans"
    return "binary"


def _task_key(task: dict[str, Any], line: int) -> str:
    value = task.get("_task_hash")
    return as_str(value) if value is not None else f"line-{line}"


def _scan(path: Path) -> _Scan:
    scan = _Scan()
    for entry in iter_json_lines(path):
        if isinstance(entry, FormatIssue):
            continue
        line, _, task = entry
        if not isinstance(task, dict):
            continue
        config = task.get("config")
        if isinstance(config, dict) and config.get("choice_style") == "multiple":
            scan.multi = True
        accept = task.get("accept")
        if isinstance(accept, list) and len(accept) > 1:
            scan.multi = True
        key = hash((_task_key(task, line), _annotator(task)))
        stamp = task.get("_timestamp")
        when = (
            float(stamp)
            if isinstance(stamp, int | float) and not isinstance(stamp, bool)
            else float("-inf")
        )
        if key not in scan.winners or when >= scan.stamps[key]:
            scan.winners[key] = line
            scan.stamps[key] = when
    scan.stamps.clear()
    return scan


def read_prodigy(path: Path, hints: SchemaHints | None = None) -> Iterator[Record | FormatIssue]:
    """Read a Prodigy JSONL export."""
    hints = hints if hints is not None else SchemaHints()
    file = str(path)
    if is_empty_file(path):
        yield empty_file_issue(path)
        return
    scan = _scan(path)
    choice_type: TaskType = "multi" if scan.multi or hints.task_type == "multi" else "single"
    items: set[str] = set()
    task_type: TaskType | None = None
    for entry in iter_json_lines(path):
        if isinstance(entry, FormatIssue):
            yield entry
            continue
        line, record, task = entry
        loc = Location(file, line=line, record=record)
        if not isinstance(task, dict):
            yield FormatIssue(
                loc, f"expected a JSON object (a Prodigy task), found {describe(task)}"
            )
            continue
        view = _view(task)
        raw_input = task.get("_input_hash")
        payload = {
            k: v
            for k, v in task.items()
            if not k.startswith("_")
            and k not in _ANSWER_KEYS
            and k != "meta"
            and not (view == "binary" and k == "label")
            and not (view == "spans" and k == "spans")
        }
        item_id = as_str(raw_input) if raw_input is not None else stable_id(payload)
        if item_id not in items:
            items.add(item_id)
            meta = task.get("meta")
            yield ItemRecord(
                item_id, payload, dict(meta) if isinstance(meta, dict) else {}, location=loc
            )
        annotator = _annotator(task)
        winner = scan.winners.get(hash((_task_key(task, line), annotator)))
        if winner is not None and winner != line:
            yield SkippedRecord(SUPERSEDED, loc)
            continue
        answer = task.get("answer")
        if answer is None:
            yield SkippedRecord("task without an answer (not annotated)", loc)
            continue
        if answer not in ("accept", "reject", "ignore"):
            yield FormatIssue(
                _at(loc, "answer"), f"answer must be accept, reject or ignore, found {answer!r}"
            )
            continue
        if answer == "ignore":
            yield SkippedRecord("ignored (answer: ignore)", loc)
            continue
        got = _value(task, view, answer, choice_type, loc)
        if isinstance(got, FormatIssue | SkippedRecord):
            yield got
            continue
        value, kind = got
        if task_type is None:
            task_type = kind
            if hints.task_type is None:
                hints.task_type = kind
        elif kind != task_type:
            yield FormatIssue(
                _at(loc, "_view_id"),
                f"this {view} answer is a {kind} label but earlier tasks are {task_type}; "
                "import one Prodigy view per file",
            )
            continue
        _see(hints, task, view, value, kind)
        submitted = None
        stamp = task.get("_timestamp")
        if stamp is not None:
            try:
                submitted = parse_datetime(stamp)
            except (ValueError, OverflowError, OSError) as exc:
                yield FormatIssue(_at(loc, "_timestamp"), str(exc))
                continue
        task_hash = task.get("_task_hash")
        yield AnnotationRecord(
            item_external_id=item_id,
            annotator=annotator,
            value=value,
            task_type=kind,
            external_id=as_str(task_hash)
            if task_hash is not None
            else stable_id(item_id, annotator, line),
            submitted_at=submitted,
            location=loc,
        )


def _at(loc: Location, field_path: str) -> Location:
    return Location(loc.file, loc.line, loc.record, field_path)


def _value(
    task: dict[str, Any], view: str, answer: str, choice_type: TaskType, loc: Location
) -> tuple[JSONValue, TaskType] | FormatIssue | SkippedRecord:
    if view == "choice":
        if answer == "reject":
            return SkippedRecord("rejected in the choice view (no label)", loc)
        accept = task.get("accept", [])
        if not isinstance(accept, list):
            return FormatIssue(
                _at(loc, "accept"), f"must be a list of option ids, found {describe(accept)}"
            )
        chosen = [as_str(a) for a in accept]
        if choice_type == "multi":
            return sorted(set(chosen)), "multi"
        if not chosen:
            return SkippedRecord("accepted with no option selected (empty accept list)", loc)
        return chosen[0], "single"
    if view == "spans":
        if answer == "reject":
            return SkippedRecord("rejected span annotation", loc)
        spans = task.get("spans", [])
        if not isinstance(spans, list):
            return FormatIssue(_at(loc, "spans"), f"must be a list, found {describe(spans)}")
        text = task.get("text")
        regions: list[dict[str, Any]] = []
        for n, span in enumerate(spans):
            region = _region(span, text)
            if region is None:
                return FormatIssue(
                    _at(loc, f"spans[{n}]"), "span needs a label and start/end offsets (or points)"
                )
            regions.append(region)
        regions.sort(
            key=lambda r: (r.get("start", 0), r.get("end", 0), r["label"], r.get("points", []))
        )
        return regions, "spans"
    label = task.get("label")
    if not isinstance(label, str) or not label:
        return FormatIssue(
            _at(loc, "label"), f"binary classification needs a label, found {describe(label)}"
        )
    return (label if answer == "accept" else NEGATIVE_PREFIX + label), "single"


def _region(span: object, text: object) -> dict[str, Any] | None:
    if not isinstance(span, dict) or not isinstance(span.get("label"), str):
        return None
    start, end = span.get("start"), span.get("end")
    if isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool):
        region: dict[str, Any] = {"start": start, "end": end, "label": span["label"]}
        if isinstance(span.get("text"), str):
            region["text"] = span["text"]
        elif isinstance(text, str):
            region["text"] = text[start:end]
        return region
    points = span.get("points")
    if (
        isinstance(points, list)
        and points
        and all(isinstance(p, list) and len(p) == 2 for p in points)
    ):
        shape = "box" if span.get("type") == "rect" and len(points) == 4 else "polygon"
        flat = [c for p in points for c in p]
        if shape == "box":
            xs, ys = flat[0::2], flat[1::2]
            flat = [min(xs), min(ys), max(xs), max(ys)]
        return {"label": span["label"], "shape": shape, "points": flat, "frame": 0}
    return None


def _see(
    hints: SchemaHints, task: dict[str, Any], view: str, value: JSONValue, kind: TaskType
) -> None:
    if view == "choice":
        options = task.get("options")
        if isinstance(options, list):
            for option in options:
                if isinstance(option, dict) and "id" in option:
                    hints.see_label(as_str(option["id"]))
        for label in value if isinstance(value, list) else [value]:
            hints.see_label(str(label))
    elif view == "binary":
        label = str(task.get("label"))
        hints.see_label(label)
        hints.see_label(NEGATIVE_PREFIX + label)
    else:
        for region in value:
            hints.see_label(region["label"])
