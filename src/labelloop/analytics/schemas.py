"""What the dashboard shows: charts (each with a table of the same numbers), the annotator
scorecard, the feedback loop's figures, totals, and how fresh the stored snapshot is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from labelloop.projects.models import Project


@dataclass
class Chart:
    """One chart and the table that carries the same numbers."""

    id: str
    title: str
    kind: str  # "bar" or "line"
    labels: list[str]
    #: {"name", "data", "band": [low, high] | None, "axis", "type", "max",
    #:  "whiskers": [low, high] | None} (whiskers: an interval drawn on each bar)
    series: list[dict[str, Any]]
    columns: list[str]
    rows: list[list[str]]
    note: str = ""

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "labels": self.labels, "series": self.series}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScoreRow:
    """One annotator's line of the scorecard (``None`` where there is nothing to measure)."""

    annotator: str
    volume: int
    gold_n: int
    gold_accuracy: float | None
    consensus_n: int
    consensus_agreement: float | None
    audit_n: int
    audit_error_rate: float | None
    median_active_seconds: float | None
    flags: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FeedbackSection:
    """The feedback part of the dashboard: counts from ``labelloop feedback stats`` and
    its charts (latency, error-type Pareto, before/after effect)."""

    sent: int
    acknowledged: int
    ack_rate: float | None
    window_days: int
    charts: list[Chart] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeedbackSection:
        charts = [Chart(**c) for c in data.get("charts", [])]
        return cls(**{**data, "charts": charts})


@dataclass
class Freshness:
    """How the shown snapshot relates to the project's current data."""

    computed_at: datetime
    compute_seconds: float
    stale: bool
    new_annotations: int  # added since the snapshot
    changes: int  # trail events of the project since the snapshot (any write)


@dataclass
class Overview:
    project: Project
    totals: dict[str, int]
    charts: list[Chart] = field(default_factory=list)
    scorecard: list[ScoreRow] = field(default_factory=list)
    #: None in snapshots stored before the section existed (until the next refresh)
    feedback: FeedbackSection | None = None
    freshness: Freshness | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON stored in a snapshot."""
        return {
            "totals": self.totals,
            "charts": [c.to_json() for c in self.charts],
            "scorecard": [s.to_json() for s in self.scorecard],
            "feedback": None if self.feedback is None else self.feedback.to_json(),
        }

    @classmethod
    def from_payload(cls, project: Project, payload: dict[str, Any]) -> Overview:
        feedback = payload.get("feedback")
        return cls(
            project=project,
            totals=dict(payload["totals"]),
            charts=[Chart(**c) for c in payload["charts"]],
            scorecard=[ScoreRow(**s) for s in payload["scorecard"]],
            feedback=None if feedback is None else FeedbackSection.from_json(feedback),
        )
