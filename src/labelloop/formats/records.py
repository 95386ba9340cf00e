"""Typed records that every reader yields and every writer takes.

Readers in :mod:`labelloop.formats` turn a file into a stream of these records (and
:class:`FormatIssue` for each problem, with its location); services in
``labelloop.projects`` validate them against a project's label schema and write them.
Nothing here touches a database.

Canonical label values (``value`` fields), by task type:

* ``single``: the label name, ``"spam"``.
* ``multi``: a sorted list of label names, ``["billing", "refund"]``.
* ``ordinal``: a number on the scale, ``4`` (Label Studio ``rating``).
* ``spans``: a list of regions sorted by position. Text spans are
  ``{"start": 0, "end": 5, "label": "ORG", "text": "Apple"}`` (character offsets,
  end exclusive); geometry regions (CVAT boxes, Label Studio rectangles) are
  ``{"label": "car", "shape": "box", "points": [x1, y1, x2, y2], "frame": 0}``; both
  may carry ``"attributes": {...}``.
* ``text``: free text, ``"a caption"`` (Label Studio ``textarea``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

TaskType = Literal["single", "multi", "ordinal", "spans", "text"]
TASK_TYPES: tuple[TaskType, ...] = ("single", "multi", "ordinal", "spans", "text")

JSONValue = Any  # str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record or a problem sits in its source file.

    ``line`` is 1-based (JSONL, CSV, XML); ``record`` is the 0-based index of the
    task/row/element within the file; ``field`` is a dotted path such as
    ``annotations[0].result[1].value.choices``.
    """

    file: str
    line: int | None = None
    record: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.record is not None:
            parts.append(f"record {self.record}")
        if self.field:
            parts.append(f"field {self.field}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class FormatIssue:
    """A problem found while reading: the location and a reason a person can act on."""

    location: Location
    reason: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """A unit to label, keyed by the id it has in the source tool."""

    external_id: str
    payload: dict[str, JSONValue]
    metadata: dict[str, JSONValue] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class AnnotationRecord:
    """One annotator's label for one item.

    ``external_id`` identifies the annotation in the source tool when it has one
    (Label Studio annotation id, Prodigy ``_task_hash``...); re-imports match on
    (item, annotator, external_id) so they are idempotent.
    """

    item_external_id: str
    annotator: str | None
    value: JSONValue
    task_type: TaskType
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    external_id: str | None = None
    started_at: datetime | None = None
    submitted_at: datetime | None = None
    active_seconds: float | None = None
    guideline_version: str | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class GoldRecord:
    """Accepted truth for an item."""

    item_external_id: str
    value: JSONValue
    task_type: TaskType
    rationale: str | None = None
    source: str | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """A model's label or class probabilities for an item."""

    item_external_id: str
    model_name: str
    model_version: str | None
    value: JSONValue
    task_type: TaskType
    probabilities: dict[str, float] | None = None
    score: float | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """Something the reader deliberately did not import, counted by reason
    (e.g. a Label Studio annotation with ``was_cancelled``, a Prodigy ``ignore``)."""

    reason: str
    location: Location | None = None


Record = ItemRecord | AnnotationRecord | GoldRecord | PredictionRecord | SkippedRecord


@dataclass(slots=True)
class SchemaHints:
    """What a reader learned about the label schema while reading, so ``--create``
    can infer a project schema: task type, labels in order of first sight, and the
    attributes seen with their observed values."""

    task_type: TaskType | None = None
    labels: list[str] = field(default_factory=list)
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def see_label(self, label: str) -> None:
        if label not in self.labels:
            self.labels.append(label)

    def see_attribute(self, name: str, value: object) -> None:
        seen = self.attributes.setdefault(name, [])
        text = str(value)
        if text not in seen and len(seen) < 50:
            seen.append(text)
