"""Helpers for the format tests: read a file and count what came out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labelloop.formats import (
    AnnotationRecord,
    FormatIssue,
    GoldRecord,
    ItemRecord,
    PredictionRecord,
    Record,
    SchemaHints,
    SkippedRecord,
    read,
)


@dataclass
class Summary:
    """Everything a reader yielded for one file, grouped by kind."""

    items: list[ItemRecord] = field(default_factory=list)
    annotations: list[AnnotationRecord] = field(default_factory=list)
    golds: list[GoldRecord] = field(default_factory=list)
    predictions: list[PredictionRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    issues: list[FormatIssue] = field(default_factory=list)
    hints: SchemaHints = field(default_factory=SchemaHints)

    @property
    def errors(self) -> list[FormatIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def annotators(self) -> set[str | None]:
        return {a.annotator for a in self.annotations}

    @property
    def skipped_reasons(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)

    def counts(self) -> tuple[int, int, int, int, int, int]:
        """(items, annotators, annotations, gold, predictions, skipped)."""
        return (
            len(self.items),
            len(self.annotators),
            len(self.annotations),
            len(self.golds),
            len(self.predictions),
            len(self.skipped),
        )


def summarize_file(path: Path, **kwargs: Any) -> Summary:
    out = Summary()
    for record in read(path, hints=out.hints, **kwargs):
        if isinstance(record, ItemRecord):
            out.items.append(record)
        elif isinstance(record, AnnotationRecord):
            out.annotations.append(record)
        elif isinstance(record, GoldRecord):
            out.golds.append(record)
        elif isinstance(record, PredictionRecord):
            out.predictions.append(record)
        elif isinstance(record, SkippedRecord):
            out.skipped.append(record)
        else:
            out.issues.append(record)
    return out


def comparable(records: Sequence[Record | FormatIssue]) -> list[tuple[object, ...]]:
    """Records reduced to comparable tuples, sorted (for round-trip tests)."""
    out: list[tuple[object, ...]] = []
    for r in records:
        if isinstance(r, AnnotationRecord):
            out.append(
                (
                    "a",
                    r.item_external_id,
                    r.annotator,
                    r.external_id,
                    r.value,
                    r.task_type,
                    r.attributes,
                    r.started_at,
                    r.submitted_at,
                    r.active_seconds,
                )
            )
        elif isinstance(r, GoldRecord):
            out.append(("g", r.item_external_id, r.value, r.task_type, r.rationale, r.source))
        elif isinstance(r, PredictionRecord):
            out.append(
                (
                    "p",
                    r.item_external_id,
                    r.model_name,
                    r.model_version,
                    r.value,
                    r.task_type,
                    r.score,
                )
            )
        elif isinstance(r, ItemRecord):
            out.append(("i", r.external_id, r.payload, r.metadata, r.segments, r.tags))
    return sorted(out, key=repr)


@pytest.fixture
def summarize() -> Callable[..., Summary]:
    """``summarize(path, format=..., options=...)`` -> :class:`Summary`."""
    return summarize_file
