"""Pydantic I/O for audit policies and reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_ERROR_CATEGORIES: tuple[str, ...] = (
    "boundary case",
    "ambiguous context",
    "guideline misread",
    "bias indicator",
    "attention slip",
    "tool or data issue",
)
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
SEVERITY_WEIGHT: dict[str, float] = {"low": 1.0, "medium": 2.0, "high": 4.0, "critical": 8.0}
Verdict = Literal["correct", "incorrect", "unsure"]

#: Stratum dimensions: ``segment:<key>`` for an item segment, or one of these.
STRATUM_DIMENSIONS: tuple[str, ...] = (
    "annotator",
    "label",
    "tag",
    "new_annotator",
    "model_disagreement",
)


#: Where a cadence's first firing is looked for (croniter searches decades ahead).
_CRON_ORIGIN = datetime(2000, 1, 1)


def _unstorable(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds text no database can store (NUL, a lone surrogate)."""
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            return path or "value"
    elif isinstance(value, dict):
        for k, v in value.items():
            found = _unstorable(str(k), path) or _unstorable(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for n, v in enumerate(value):
            found = _unstorable(v, f"{path}.{n}" if path else str(n))
            if found:
                return found
    return None


class PopulationFilter(BaseModel):
    """Which annotations are in the population (every given filter must match)."""

    model_config = ConfigDict(extra="forbid")

    segments: dict[str, list[str]] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    annotators: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class PolicySpec(BaseModel):
    """Everything an audit policy says; stored as JSON on the policy and frozen into
    every run it opens."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cadence: str = Field(
        "manual", max_length=100, description="A cron expression (UTC) or 'manual'."
    )
    window: Literal["since_previous", "last_days"] = "since_previous"
    window_days: int = Field(7, ge=1, le=3660)
    missed_windows: Literal["catch_up", "skip"] = "catch_up"
    population: PopulationFilter = Field(default_factory=PopulationFilter)
    strata: list[str] = Field(default_factory=list)
    allocation: Literal["proportional", "equal", "neyman", "risk"] = "proportional"
    risk_weights: dict[str, float] = Field(default_factory=dict)
    sample_size: int | None = Field(None, ge=1, le=1_000_000)
    target_half_width: float | None = Field(None, ge=0.001, lt=0.5)
    expected_error_rate: float = Field(0.1, gt=0, lt=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    min_per_stratum: int = Field(2, ge=0, le=10_000)
    reviewers: list[str] = Field(default_factory=list)
    blind: bool = True
    double_review_fraction: float = Field(0.1, ge=0, le=1)
    error_categories: list[str] = Field(default_factory=lambda: list(DEFAULT_ERROR_CATEGORIES))
    new_annotator_items: int = Field(50, ge=1, le=1_000_000)
    new_annotator_days: int = Field(14, ge=1, le=3660)

    @field_validator("cadence")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = value.strip()
        if value == "manual":
            return value
        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a valid cron expression (e.g. '0 6 * * MON') or 'manual'"
            )
        try:
            croniter(value, _CRON_ORIGIN).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"{value!r} never fires (no such date)") from None
        return value

    @field_validator("strata")
    @classmethod
    def _strata(cls, value: list[str]) -> list[str]:
        for dim in value:
            if dim in STRATUM_DIMENSIONS or (
                dim.startswith("segment:") and len(dim) > len("segment:")
            ):
                continue
            raise ValueError(
                f"unknown stratum {dim!r}; use segment:<key> or one of {', '.join(STRATUM_DIMENSIONS)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("strata repeat a dimension")
        return value

    @field_validator("error_categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        if not cleaned:
            raise ValueError("the error-category taxonomy must not be empty")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("error categories repeat")
        return cleaned

    @model_validator(mode="after")
    def _size(self) -> PolicySpec:
        if self.sample_size is None and self.target_half_width is None:
            self.sample_size = 200
        if self.allocation == "risk" and not self.risk_weights:
            raise ValueError("allocation 'risk' needs risk_weights (stratum -> weight)")
        if any(w <= 0 for w in self.risk_weights.values()):
            raise ValueError("risk weights must be positive")
        where = _unstorable(self.model_dump())
        if where is not None:
            raise ValueError(f"{where} holds NUL or a lone surrogate, which cannot be stored")
        return self

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ReviewInput(BaseModel):
    """A reviewer's finding."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    corrected_value: Any = None
    error_category: str | None = None
    severity: Literal["low", "medium", "high", "critical"] | None = None
    rule_ref: str | None = Field(None, max_length=200)
    comment: str | None = Field(None, max_length=10_000)
    active_seconds: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _incorrect_needs_detail(self) -> ReviewInput:
        if self.verdict == "incorrect":
            missing = [
                name
                for name in ("corrected_value", "error_category", "severity")
                if getattr(self, name) in (None, "")
            ]
            if missing:
                raise ValueError(f"an 'incorrect' verdict needs {', '.join(missing)}")
        return self
