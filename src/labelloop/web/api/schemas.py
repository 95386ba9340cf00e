"""Pydantic I/O of the JSON API.

Everything a request carries is validated here, at the boundary, so that the OpenAPI
document states exactly what the API accepts and nothing a database cannot hold gets
further:

* **ids** (path, query and body) are 1..2^31-1 (:data:`MAX_ID`): PostgreSQL's
  ``integer`` columns are 32-bit, SQLite's 64-bit; one bound makes both answer alike.
* **identifiers** (external ids and keys, tags, segment keys and values, model names and
  versions, policy names, sources, label names) are :mod:`labelloop.identifiers` text:
  no control or invisible format characters, no lone surrogates, no leading or trailing
  whitespace, never empty; :data:`IDENTIFIER_PATTERN` says the same in the schema.
* **free JSON** (payloads, metadata, label values, attributes) and **free text**
  (reasons, rationales) hold no NUL (PostgreSQL's JSONB and text cannot store it) and no
  lone surrogate (not text; UTF-8 cannot encode it); the schema says "no NUL"
  (:data:`NO_NUL_PATTERN`; a ``\\ud800`` escape decodes to no Unicode text at all).
* **types are strict**: ``0`` is no boolean and ``"5"`` no number.

Each refusal is a 422 naming the field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

from labelloop.audits.schemas import DEFAULT_ERROR_CATEGORIES, STRATUM_DIMENSIONS, PolicySpec
from labelloop.identifiers import MAX_ID, problem

T = TypeVar("T")


# ------------------------------------------------------------------ character classes
def _scan(test: Any) -> list[int]:
    """Code points of planes 0-1 and 14 (where every control, format and digit
    character lives) that pass ``test``."""
    planes = (range(0x20000), range(0xE0000, 0xE1000))
    return [cp for plane in planes for cp in plane if test(chr(cp))]


def _escape(cp: int) -> str:
    # \uXXXX and \UXXXXXXXX read the same in Python's re and Rust's regex (jsonschema-rs)
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _ranges(cps: Iterable[int]) -> str:
    """``cps`` as the body of a regex character class."""
    out: list[str] = []
    ordered = sorted(set(cps))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(_escape(ordered[i]) + ("" if i == j else "-" + _escape(ordered[j])))
        i = j + 1
    return "".join(out)


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf")


#: The characters the classes below are made of (one pass over the planes).
_NOTABLE = [chr(cp) for cp in _scan(lambda ch: ch.isspace() or ch.isdigit() or _hidden(ch))]
#: Control and invisible format characters (refused anywhere in an identifier).
_HIDDEN = [ord(ch) for ch in _NOTABLE if _hidden(ch)]
#: Every whitespace character (what ``str.strip`` removes).
_WHITESPACE = [ord(ch) for ch in _NOTABLE if ch.isspace()]
#: Visible whitespace (refused at either end of an identifier).
_SPACE = [ord(ch) for ch in _NOTABLE if ch.isspace() and not _hidden(ch)]
#: Digits in the sense of ``str.isdigit`` (a policy name is not only digits).
_DIGITS = [ord(ch) for ch in _NOTABLE if ch.isdigit()]

_INNER = f"[^{_ranges(_HIDDEN)}]"
_EDGE = f"[^{_ranges(_HIDDEN + _SPACE)}]"
_IDENT = f"{_EDGE}(?:{_INNER}*{_EDGE})?"
#: What :func:`labelloop.identifiers.problem` accepts (but lone surrogates, which are
#: not text), as a JSON-schema ``pattern``.
IDENTIFIER_PATTERN = f"^{_IDENT}$"
#: An identifier or the empty string (for optional keys whose empty value means none).
OPTIONAL_IDENTIFIER_PATTERN = f"^(?:{_IDENT})?$"
#: An identifier that is not only digits (policy names: digits address a policy by id).
_EDGE_ND = f"[^{_ranges(_HIDDEN + _SPACE + _DIGITS)}]"
_INNER_ND = f"[^{_ranges(_HIDDEN + _DIGITS)}]"
_D = f"[{_ranges(_DIGITS)}]"
NAME_PATTERN = (
    f"^(?:{_EDGE_ND}(?:{_INNER}*{_EDGE})?"  # starts with something else than a digit
    f"|{_D}(?:{_INNER}*{_EDGE_ND}"  # or ends with it
    f"|{_INNER}*{_INNER_ND}{_INNER}*{_D}))$"  # or has it inside
)
#: Free text: anything but NUL.
NO_NUL_PATTERN = "^[^\\u0000]*$"
#: A reason: free text with something in it besides whitespace.
_BLANK = f"[^\\u0000{_ranges(_WHITESPACE)}]"
REASON_PATTERN = f"^[^\\u0000]*{_BLANK}[^\\u0000]*$"
#: A stratum dimension (see :data:`labelloop.audits.schemas.STRATUM_DIMENSIONS`).
STRATUM_PATTERN = f"^(?:{'|'.join(STRATUM_DIMENSIONS)}|segment:{_IDENT})$"
_KEY_EDGE = f"[^{_ranges([*_HIDDEN, *_SPACE, ord('=')])}]"
_KEY_INNER = f"[^{_ranges([*_HIDDEN, ord('=')])}]"
#: A segment filter of the item list: ``key=value``.
SEGMENT_FILTER_PATTERN = f"^{_KEY_EDGE}(?:{_KEY_INNER}*{_KEY_EDGE})?={_IDENT}$"
#: A keyset cursor: the unpadded URL-safe base64 of the last id seen as 4 big-endian
#: bytes, 0 to 2^31-1 (a first character past ``f`` would set the sign bit).
CURSOR_PATTERN = "^[A-Za-f][A-Za-z0-9_-]{4}[AQgw]$"

#: Cron fields (minute, hour, day of month, month, day of week): values, ranges, lists
#: and steps, with English month and day names.
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"


def _cron_field(value: str) -> str:
    item = f"(?:\\*|(?:{value})(?:-(?:{value}))?)(?:/[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


CRON_PATTERN = "^(?:manual|{})$".format(
    " ".join(
        _cron_field(v)
        for v in (
            "[0-5]?[0-9]",
            "[01]?[0-9]|2[0-3]",
            "0?[1-9]|[12][0-9]|3[01]",
            f"0?[1-9]|1[0-2]|{_MONTHS}",
            f"[0-7]|{_DAYS}",
        )
    )
)


# ------------------------------------------------------------------------- validators
def _bad_text(text: str) -> str | None:
    """Why ``text`` cannot be stored (NUL, a lone surrogate), or ``None``."""
    for ch in text:
        if ch == "\x00":
            return "contains NUL (U+0000), which cannot be stored"
        if "\ud800" <= ch <= "\udfff":
            return f"contains a lone surrogate (U+{ord(ch):04X}), which is not text"
    return None


def check_identifier(value: str) -> str:
    why = problem(value)
    if why is not None:
        raise PydanticCustomError("identifier", "{why}", {"why": why})
    return value


def _check_optional_identifier(value: str) -> str:
    return check_identifier(value) if value else value


def _check_name(value: str) -> str:
    check_identifier(value)
    if value.isdigit():
        raise PydanticCustomError(
            "identifier", "must not be only digits (digits address a policy by its id)"
        )
    return value


def check_text(value: str) -> str:
    why = _bad_text(value)
    if why is not None:
        raise PydanticCustomError("text", "{why}", {"why": why})
    return value


def _check_reason(value: str) -> str:
    check_text(value)
    if not value.strip():
        raise PydanticCustomError("required", "a reason is required")
    return value


def _check_cadence(value: str) -> str:
    if not re.fullmatch(CRON_PATTERN, value):
        raise PydanticCustomError(
            "cron",
            "{value} is not a valid cron expression (five fields, e.g. '0 6 * * MON') or 'manual'",
            {"value": repr(value)},
        )
    return value


def _check_strata(values: list[str]) -> list[str]:
    for value in values:
        if value not in STRATUM_DIMENSIONS and not (
            value.startswith("segment:") and problem(value.removeprefix("segment:")) is None
        ):
            raise PydanticCustomError(
                "stratum",
                "unknown stratum {value}; use segment:<key> or one of {dims}",
                {"value": repr(value), "dims": ", ".join(STRATUM_DIMENSIONS)},
            )
    return values


def _json_problem(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        why = _bad_text(value)
        return None if why is None else f"{path or 'the value'} {why}"
    if isinstance(value, list):
        for n, v in enumerate(value):
            found = _json_problem(v, f"{path}.{n}" if path else str(n))
            if found:
                return found
    elif isinstance(value, dict):
        for k, v in value.items():
            key = str(k)
            why = _bad_text(key)
            if why is not None:
                return f"a key{f' in {path}' if path else ''} {why}"
            found = _json_problem(v, f"{path}.{key}" if path else key)
            if found:
                return found
    return None


def check_json(value: Any) -> Any:
    """Any JSON value whose text (keys too) can be stored."""
    found = _json_problem(value, "")
    if found is not None:
        raise PydanticCustomError("json_text", "{why}", {"why": found})
    return value


def check_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
    return value


def _check_json_object(value: Any) -> dict[str, Any]:
    return check_json(check_object(value))  # type: ignore[no-any-return]


def _check_segment_value(value: Any) -> Any:
    if isinstance(value, str):
        return check_identifier(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    raise PydanticCustomError(
        "segment_value", "a segment is a plain value (text, a number, true/false or null)"
    )


def _integral(value: Any) -> Any:
    """JSON Schema's integers include ``5.0``; a strict ``int`` takes it as ``5``."""
    return int(value) if type(value) is float and value.is_integer() else value


# ------------------------------------------------------------------------------ types
#: Schema of a mapping whose keys carry a pattern: no other keys.
_CLOSED: dict[str, Any] = {"additionalProperties": False}
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]
Identifier = Annotated[
    str,
    Field(min_length=1, json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
    AfterValidator(check_identifier),
]
OptionalIdentifier = Annotated[
    str,
    Field(json_schema_extra={"pattern": OPTIONAL_IDENTIFIER_PATTERN}),
    AfterValidator(_check_optional_identifier),
]
Name = Annotated[
    str,
    Field(min_length=1, json_schema_extra={"pattern": NAME_PATTERN}),
    AfterValidator(_check_name),
]
Text = Annotated[
    str, Field(json_schema_extra={"pattern": NO_NUL_PATTERN}), AfterValidator(check_text)
]
Reason = Annotated[
    str, Field(json_schema_extra={"pattern": REASON_PATTERN}), AfterValidator(_check_reason)
]
Tag = Annotated[Identifier, Field(max_length=100)]
_JsonText = Annotated[str, Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
#: The schema of a free JSON value (validated by :func:`check_json`).
JsonValue = TypeAliasType(
    "JsonValue",
    "Union[_JsonText, int, float, bool, list[JsonValue], _JsonMap, None]",  # noqa: UP007
)
_JsonMap = Annotated[
    dict[_JsonText, JsonValue],
    Field(json_schema_extra=_CLOSED),
]
Json = Annotated[Any, PlainValidator(check_json, json_schema_input_type=JsonValue)]
JsonObject = Annotated[
    dict[str, Any], PlainValidator(_check_json_object, json_schema_input_type=_JsonMap)
]
SegmentValue = Annotated[
    Any,
    PlainValidator(
        _check_segment_value,
        json_schema_input_type=Union[  # noqa: UP007
            Annotated[Identifier, Field(max_length=200)], int, float, bool, None
        ],
    ),
]


class _In(BaseModel):
    """A request body: no unknown fields, no infinities, and strict types (``0`` is no
    boolean and ``"5"`` no number, as the schema says; times are parsed from text)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


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
        None,
        pattern=CURSOR_PATTERN,
        description="Pass as `cursor` for the next page; null on the last page.",
    )


_VALUE = (
    "The label, in the shape of the project's label schema (`schema` of "
    "`GET /projects/{id}`): a label name, a list of them, a number or spans. The schema "
    "decides which values are valid (422 naming `value` otherwise)."
)


class AnnotationIn(_In):
    item_id: Id
    value: Json = Field(..., description=_VALUE)
    attributes: JsonObject | None = Field(
        None, description="Attributes the project's label schema defines."
    )
    active_seconds: float | None = Field(
        None,
        ge=0,
        description="Annotators: seconds the item was actually worked on, as the client "
        "counted them; the server's own measure (since the item was served) is the upper "
        "bound. Leads recording an annotation: taken as given.",
    )
    uncertain: bool = Field(False, description="Flag the label as uncertain (give a reason).")
    uncertain_reason: Text | None = Field(None, max_length=1000)
    annotator_id: Id | None = Field(
        None,
        description="Leads only: the annotator the annotation is recorded for (a member "
        "of the project who may annotate; 422 otherwise).",
    )
    started_at: datetime | None = Field(
        None, strict=False, description="Leads only (recorded as given)."
    )
    submitted_at: datetime | None = Field(
        None, strict=False, description="Leads only (recorded as given)."
    )
    guideline_version: OptionalIdentifier | None = Field(
        None, max_length=50, description="Leads only."
    )
    external_key: OptionalIdentifier = Field(
        "",
        max_length=200,
        description="Leads only: the annotation's id in its source; resubmitting it updates.",
    )


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
    item_id: Id = Field(..., examples=[1])
    value: Json = Field(..., description=_VALUE, examples=["billing"])
    rationale: Text | None = Field(None, max_length=10_000)
    source: Identifier = Field("expert", max_length=100)


class GoldOut(BaseModel):
    id: int
    item_id: int
    item_external_id: str | None = None
    value: Any
    rationale: str | None
    source: str
    updated_at: datetime


Probabilities = Annotated[
    dict[Annotated[Identifier, Field(max_length=200)], Annotated[float, Field(ge=0, le=1)]],
    Field(json_schema_extra=_CLOSED),
]


class PredictionIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            # a value, class probabilities, or both
            "anyOf": [
                {"required": ["value"], "properties": {"value": {"not": {"type": "null"}}}},
                {
                    "required": ["probabilities"],
                    "properties": {"probabilities": {"type": "object", "minProperties": 1}},
                },
            ]
        }
    )

    item_id: Id
    model_name: Identifier = Field(..., max_length=200)
    model_version: OptionalIdentifier = Field("", max_length=100)
    value: Json = Field(None, description=_VALUE + " Give a value, class probabilities, or both.")
    probabilities: Probabilities | None = Field(
        None, description="Label name -> probability (label names of the project's schema)."
    )
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

    external_id: Identifier = Field(..., max_length=500)
    payload: JsonObject = Field(..., description="What is labeled, e.g. {'text': ...}.")
    metadata: JsonObject = Field(default_factory=dict)
    segments: dict[Annotated[Identifier, Field(max_length=100)], SegmentValue] = Field(
        default_factory=dict,
        description="Strata for sampling, e.g. {'language': 'de'}: plain values.",
        json_schema_extra=_CLOSED,
    )
    tags: list[Tag] = Field(default_factory=list, max_length=100)


class ItemsIn(_In):
    """A batch of items (at most 1000), added all or nothing."""

    items: list[ItemIn] = Field(..., min_length=1, max_length=1000)


class ItemsCreated(BaseModel):
    items: list[ItemOut]
    created: int = Field(..., description="Items added by this request.")
    existing: int = Field(..., description="Items that already existed with the same content.")


# ---------------------------------------------------------------------------- policies
Username = Annotated[Identifier, Field(max_length=150)]
Label = Annotated[Identifier, Field(max_length=200)]


class PopulationIn(_In):
    """Which annotations are in the population (every given filter must match)."""

    segments: dict[Annotated[Identifier, Field(max_length=100)], list[Label]] = Field(
        default_factory=dict, json_schema_extra=_CLOSED
    )
    tags: list[Tag] = Field(default_factory=list)
    annotators: list[Username] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)
    sources: list[Annotated[Identifier, Field(max_length=50)]] = Field(default_factory=list)


_RISK_RULE: JsonDict = {
    # allocation 'risk' needs risk weights
    "anyOf": [
        {"properties": {"allocation": {"not": {"const": "risk"}}}},
        {"properties": {"risk_weights": {"minProperties": 1}}, "required": ["risk_weights"]},
    ]
}


class PolicySpecIn(PolicySpec):
    """A policy's settings as the API takes them (see docs/audits.md): the checks of
    :class:`~labelloop.audits.schemas.PolicySpec`, with names, labels and keys as
    identifiers and each rule stated in the schema. Reviewers must hold a reviewing
    role in the project (422 otherwise)."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra=_RISK_RULE
    )

    cadence: Annotated[
        str,
        Field(max_length=100, json_schema_extra={"pattern": CRON_PATTERN}),
        AfterValidator(_check_cadence),
    ] = Field(
        "manual",
        description="A five-field cron expression in UTC (minute hour day month weekday: "
        "numbers, `*`, ranges, lists, `/steps`, English month and day names) that fires "
        "on some date (422 otherwise), or 'manual'.",
    )
    population: PopulationIn = Field(default_factory=PopulationIn)  # type: ignore[assignment]
    strata: Annotated[
        list[Annotated[str, Field(max_length=200, json_schema_extra={"pattern": STRATUM_PATTERN})]],
        AfterValidator(_check_strata),
    ] = Field(default_factory=list, json_schema_extra={"uniqueItems": True})
    risk_weights: dict[
        Annotated[Identifier, Field(max_length=300)], Annotated[float, Field(gt=0)]
    ] = Field(
        default_factory=dict,
        description="Stratum name -> weight (positive).",
        json_schema_extra=_CLOSED,
    )
    reviewers: list[Username] = Field(default_factory=list)
    error_categories: list[Annotated[Identifier, Field(max_length=100)]] = Field(
        default_factory=lambda: list(DEFAULT_ERROR_CATEGORIES),
        min_length=1,
        json_schema_extra={"uniqueItems": True},
    )

    @model_validator(mode="before")
    @classmethod
    def _integers(cls, data: Any) -> Any:
        """Whole numbers written as ``5.0`` are integers (as in JSON Schema)."""
        if not isinstance(data, dict):
            return data
        return {k: _integral(v) if k in _INTEGER_SETTINGS else v for k, v in data.items()}


#: The settings that are whole numbers.
_INTEGER_SETTINGS = frozenset(
    name for name, info in PolicySpec.model_fields.items() if info.annotation in (int, int | None)
)


def _patch_schema(schema: dict[str, Any]) -> None:
    """A patch takes any subset of the settings: nothing is required and no default
    applies (absent settings keep their current values); the rules across settings
    apply to the merged result."""
    schema.pop("required", None)
    schema.pop("anyOf", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class PolicySpecPatch(PolicySpecIn):
    """The settings a patch changes (the schema of ``PolicyPatch.spec``)."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)


class PolicyIn(_In):
    """A new audit policy: a name and its settings (see docs/audits.md)."""

    name: Name = Field(..., max_length=200, description="Not only digits.")
    active: bool = True
    spec: PolicySpecIn = Field(default_factory=lambda: PolicySpecIn())


class PolicyPatch(_In):
    """Changes to a policy: ``spec`` holds only the settings to change (merged into the
    current settings and validated as a whole); ``active`` switches its schedule."""

    active: bool | None = None
    spec: (
        Annotated[
            dict[str, Any],
            # merged into the current settings and validated as a whole (PolicySpecIn)
            PlainValidator(check_object, json_schema_input_type=PolicySpecPatch),
        ]
        | None
    ) = Field(None, description="Only the settings to change.")


class CloseIn(_In):
    allow_unreviewed: bool = Field(
        False, description="Close with open assignments (their units are reported unreviewed)."
    )


class WorkItemOut(BaseModel):
    """The item the queue serves: payload and context only (blind)."""

    item_id: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    segments: dict[str, Any]
    leased_at: datetime
    expires_at: datetime


class QueueStatusOut(BaseModel):
    done_today: int
    done_total: int
    skipped: int
    remaining: int
    overlap: int


class WorkNextOut(BaseModel):
    item: WorkItemOut | None


class SkipIn(_In):
    reason: Reason = Field(..., max_length=1000)


class SkipOut(BaseModel):
    item_id: int
    reason: str
    created_at: datetime
