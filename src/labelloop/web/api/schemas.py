"""Pydantic I/O of the JSON API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from labelloop.audits.schemas import PolicySpec

T = TypeVar("T")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    field: str | None = None
    code: str | None = None
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """Every error of the API has this shape."""

    error: ErrorBody


class Me(BaseModel):
    name: str
    user_id: int | None
    is_admin: bool
    token_project_id: int | None = None
    token_role: str | None = None


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str | None
    task_type: str
    schema_version: int
    label_schema: dict[str, Any] = Field(serialization_alias="schema")
    roles: list[str] = []
    counts: dict[str, int] | None = None


class ItemOut(BaseModel):
    id: int
    external_id: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    segments: dict[str, Any]
    tags: list[str]
    created_at: datetime


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class AnnotationIn(_In):
    item_id: int
    value: Any = Field(..., description="The label, in the project's canonical shape.")
    annotator_id: int | None = Field(
        None, description="Defaults to the caller; another annotator needs data.import."
    )
    attributes: dict[str, Any] | None = None
    started_at: datetime | None = None
    submitted_at: datetime | None = None
    active_seconds: float | None = Field(None, ge=0)
    guideline_version: str | None = Field(None, max_length=50)
    external_key: str = Field("", max_length=200)


class AnnotationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    annotator_id: int
    value: Any
    attributes: dict[str, Any]
    submitted_at: datetime | None
    active_seconds: float | None
    source: str
    flags: list[dict[str, Any]]


class GoldIn(_In):
    item_id: int
    value: Any
    rationale: str | None = Field(None, max_length=10_000)
    source: str = Field("expert", max_length=100)


class GoldOut(BaseModel):
    id: int
    item_id: int
    item_external_id: str | None = None
    value: Any
    rationale: str | None
    source: str
    updated_at: datetime


class PredictionIn(_In):
    item_id: int
    model_name: str = Field(..., max_length=200)
    model_version: str = Field("", max_length=100)
    value: Any = None
    probabilities: dict[str, float] | None = None
    score: float | None = None


class PredictionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    item_id: int
    model_name: str
    model_version: str
    value: Any
    probabilities: dict[str, Any] | None
    score: float | None


class PolicyOut(BaseModel):
    id: int
    project_id: int
    name: str
    cadence: str
    active: bool
    spec: dict[str, Any]
    last_run_id: int | None = None
    next_due: datetime | None = Field(
        None, description="Next scheduled run (past: due now); null for manual or inactive."
    )


class RunOut(BaseModel):
    id: int
    policy_id: int
    project_id: int
    status: str
    trigger: str
    window_start: datetime
    window_end: datetime
    population_size: int
    sample_size: int
    opened_at: datetime
    closed_at: datetime | None
    progress: dict[str, int]
    error_rate: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list, description="Notes from opening the run.")


class ItemIn(_In):
    """One item; ``external_id`` is its id in your system (unique per project)."""

    external_id: str = Field(..., max_length=500)
    payload: dict[str, Any] = Field(..., description="What is labeled, e.g. {'text': ...}.")
    metadata: dict[str, Any] = Field(default_factory=dict)
    segments: dict[str, Any] = Field(
        default_factory=dict, description="Strata for sampling, e.g. {'language': 'de'}."
    )
    tags: list[str] = Field(default_factory=list)


class ItemsIn(_In):
    """A batch of items (at most 1000), added all or nothing."""

    items: list[ItemIn]


class ItemsCreated(BaseModel):
    items: list[ItemOut]
    created: int = Field(..., description="Items added by this request.")
    existing: int = Field(..., description="Items that already existed with the same content.")


class PolicyIn(_In):
    """A new audit policy: a name and its settings (see docs/audits.md)."""

    name: str = Field(..., max_length=200)
    active: bool = True
    spec: PolicySpec = Field(default_factory=lambda: PolicySpec())


class PolicyPatch(_In):
    """Changes to a policy: ``spec`` holds only the settings to change (merged into the
    current settings and validated as a whole); ``active`` switches its schedule."""

    active: bool | None = None
    spec: dict[str, Any] | None = None


class CloseIn(_In):
    allow_unreviewed: bool = Field(
        False, description="Close with open assignments (their units are reported unreviewed)."
    )
