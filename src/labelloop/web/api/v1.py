"""``/api/v1``: projects, items, annotations, gold labels, predictions, audits, exports.

Every route resolves the caller (``CurrentActor``: a bearer token or the session
cookie) and hands it to a service, which checks the permission. Writes (POST, PATCH)
accept ``Idempotency-Key`` (see :mod:`labelloop.web.idempotency`).

The OpenAPI document is the contract (tested with schemathesis in
``tests/web/test_schemathesis.py``): every status a route can answer is declared, ids
and identifiers are bounded as :mod:`labelloop.web.api.schemas` says, operation ids are
the route names, and OpenAPI links say where ids come from (a created item's id feeds
the annotation, gold and prediction writes; a policy's id its reads, patch and runs;
a run's id its report and close).
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Security
from fastapi.responses import FileResponse
from fastapi.security import APIKeyCookie, HTTPBearer
from pydantic import AfterValidator, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from labelloop.accounts.roles import Permission
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.identifiers import MAX_ID
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project
from labelloop.projects.validation import Violation
from labelloop.web import queries
from labelloop.web.api.common import _ID, ERRORS, WRITE_ERRORS, ProjectId, _created
from labelloop.web.api.schemas import (
    CURSOR_PATTERN,
    IDENTIFIER_PATTERN,
    SEGMENT_FILTER_PATTERN,
    AnnotationIn,
    AnnotationOut,
    CloseIn,
    ErrorResponse,
    GoldIn,
    GoldOut,
    ItemIn,
    ItemOut,
    ItemsCreated,
    ItemsIn,
    Me,
    Page,
    PolicyIn,
    PolicyOut,
    PolicyPatch,
    PolicySpecIn,
    PredictionIn,
    PredictionOut,
    ProjectOut,
    QueueStatusOut,
    RunOut,
    SkipIn,
    SkipOut,
    WorkItemOut,
    WorkNextOut,
    check_identifier,
    check_object,
)
from labelloop.web.app import SESSION_COOKIE
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute
from labelloop.web.idempotency import IdempotencyDep
from labelloop.web.pages.transfers import RAW_DESCRIPTION, ExportFormatParam, export_response
from labelloop.workbench import service as workbench


def _operation_id(route: Any) -> str:
    """Operation ids are the route names (``submit_annotation``), as links name them."""
    return str(route.name)


#: How callers authenticate, for the OpenAPI document (``CurrentActor`` does the work:
#: these only read what they declare, and refuse nothing).
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token (`labelloop user token create`): `Authorization: Bearer ll_...`.",
)
_COOKIE = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The session cookie of a signed-in page (writes need `X-CSRF-Token` too).",
)
router = APIRouter(
    responses=ERRORS,
    route_class=TransactionRoute,
    generate_unique_id_function=_operation_id,
    dependencies=[Security(_BEARER), Security(_COOKIE)],
)

# ------------------------------------------------------------------------- parameters
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="The audit run's id. " + _ID)]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The item's id. " + _ID)]
PolicyKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        json_schema_extra={"pattern": IDENTIFIER_PATTERN},
        description="The policy's id (digits; past 2^31-1 no policy: 404) or its name.",
        examples=["weekly-quality", "1"],
    ),
    AfterValidator(check_identifier),
]
QueryIdentifier = Annotated[
    str,
    Query(min_length=1, json_schema_extra={"pattern": IDENTIFIER_PATTERN}),
    AfterValidator(check_identifier),
]
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page (6 characters of URL-safe base64).",
    ),
]


def _check_segment_filters(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep:
            raise PydanticCustomError(
                "segment_filter", "expected key=value, got {value}", {"value": repr(value)}
            )
        check_identifier(key)
        check_identifier(rest)
    return values


SegmentFilters = Annotated[
    list[Annotated[str, Field(json_schema_extra={"pattern": SEGMENT_FILTER_PATTERN})]] | None,
    Query(description="key=value; repeat for several (all must match)", max_length=300),
    AfterValidator(_check_segment_filters),
]


def _after(cursor: str | None) -> str | None:
    """The keyset position of an API cursor (the last id seen, 4 bytes of base64), in
    the form :mod:`labelloop.web.queries` reads."""
    if cursor is None:
        return None
    return queries.encode_cursor(int.from_bytes(base64.urlsafe_b64decode(cursor + "=="), "big"))


def _next_cursor(position: str | None) -> str | None:
    """The API cursor of the next page (see :data:`CURSOR_PATTERN`)."""
    if position is None:
        return None
    last = queries.decode_cursor(position).to_bytes(4, "big")
    return base64.urlsafe_b64encode(last).decode().rstrip("=")


def _policy(session: Any, project: Project, key: str) -> AuditPolicy:
    """A policy by id (ASCII digits) or name; an id beyond :data:`MAX_ID`, or other
    digits (names are never only digits), is no policy."""
    if key.isascii() and key.isdigit():
        number = int(key)
        if number <= MAX_ID:
            return audits.get_policy(session, project, number)
    elif not key.isdigit():
        return audits.get_policy(session, project, key)
    raise NotFound(f"project {project.name} has no audit policy {key!r}")


# ------------------------------------------------------------------------------ links
def _link(op: str, body: dict[str, str] | None = None, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation ``op``: its path parameters (``project_id=``)
    and the fields of its body (merged into the rest of the body) from runtime
    expressions."""
    link: dict[str, Any] = {"operationId": op}
    if parameters:
        link["parameters"] = {f"path.{k}": v for k, v in parameters.items()}
    if body:
        link["requestBody"] = body
    return link


_PROJECT = "$request.path.project_id"


def _item_links(item_id: str) -> dict[str, Any]:
    """Links from a response that names an item (at ``item_id``) to its writes."""
    return {
        "SubmitAnnotation": _link("submit_annotation", {"item_id": item_id}, project_id=_PROJECT),
        "SetGold": _link("set_gold", {"item_id": item_id}, project_id=_PROJECT),
        "AddPrediction": _link("add_prediction", {"item_id": item_id}, project_id=_PROJECT),
        "SkipItem": _link("work_skip", project_id=_PROJECT, item_id=item_id),
    }


def _policy_links(policy: str) -> dict[str, Any]:
    """Links from a response that names a policy (at ``policy``) to its routes."""
    return {
        name: _link(op, project_id=_PROJECT, policy=policy)
        for name, op in (
            ("GetPolicy", "get_policy"),
            ("PolicyTrend", "policy_trend"),
            ("UpdatePolicy", "update_policy"),
            ("RunPolicyNow", "run_policy_now"),
        )
    }


def _run_links(run_id: str) -> dict[str, Any]:
    """Links from a response that names a run (at ``run_id``) to its routes."""
    return {
        name: _link(op, run_id=run_id)
        for name, op in (
            ("GetRun", "get_run"),
            ("GetReport", "get_report"),
            ("CloseRun", "close_run"),
        )
    }


def _project_links(project_id: str) -> dict[str, Any]:
    """Links from a response that names a project (at ``project_id``) to its routes."""
    ops = (
        "get_project",
        "list_items",
        "create_items",
        "work_next",
        "work_status",
        "list_gold",
        "list_policies",
        "create_policy",
        "list_runs",
        "export",
    )
    return {op.title().replace("_", ""): _link(op, project_id=project_id) for op in ops}


def _project_out(session: Any, actor: Any, p: Project, counts: bool = False) -> ProjectOut:
    return ProjectOut(
        id=p.id,
        name=p.name,
        description=p.description,
        task_type=p.task_type,
        schema_version=p.schema_version,
        label_schema=p.label_schema,
        roles=queries.my_roles(session, actor=actor, project_id=p.id),
        counts=projects.project_summary(session, p).as_dict() if counts else None,
    )


def _item_out(i: Item) -> ItemOut:
    return ItemOut(
        id=i.id,
        external_id=i.external_id,
        payload=i.payload,
        metadata=i.meta or {},
        segments=i.segments or {},
        tags=list(i.tags or []),
        created_at=i.created_at,
    )


@router.get(
    "/me",
    tags=["accounts"],
    responses={
        200: {
            "description": "The caller",
            "links": {
                **_project_links("$response.body#/token_project_id"),
                "SubmitAnnotationAsMe": _link(
                    "submit_annotation",
                    {"annotator_id": "$response.body#/user_id"},
                    project_id="$response.body#/token_project_id",
                ),
            },
        }
    },
)
def me(actor: CurrentActor) -> Me:
    """Who the credential stands for."""
    return Me(
        name=actor.name,
        user_id=actor.user_id,
        is_admin=actor.is_admin,
        token_project_id=actor.scope_project_id,
        token_role=actor.scope_role,
    )


# ---------------------------------------------------------------------------- projects
@router.get(
    "/projects",
    tags=["projects"],
    responses={
        200: {"description": "The projects", "links": _project_links("$response.body#/0/id")}
    },
)
def list_projects(session: SessionDep, actor: CurrentActor) -> list[ProjectOut]:
    """Projects the caller holds a role in (every project for administrators)."""
    return [_project_out(session, actor, p) for p in queries.visible_projects(session, actor=actor)]


@router.get("/projects/{project_id}", tags=["projects"])
def get_project(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> ProjectOut:
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )
    return _project_out(session, actor, p, counts=True)


# ------------------------------------------------------------------------------- items
@router.get(
    "/projects/{project_id}/items",
    tags=["items"],
    responses={
        200: {"description": "A page of items", "links": _item_links("$response.body#/items/0/id")}
    },
)
def list_items(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
    external_id: Annotated[QueryIdentifier | None, Query(max_length=500)] = None,
    tag: Annotated[QueryIdentifier | None, Query(max_length=100)] = None,
    segment: SegmentFilters = None,
    has_gold: bool | None = None,
) -> Page[ItemOut]:
    """Items by id, with filters and keyset (cursor) pagination."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )
    pairs = tuple((key, value) for key, _, value in (s.partition("=") for s in segment or []))
    if has_gold is not None:  # gold labels are hidden checks
        queries.project_for(
            session, actor=actor, project_id=p.id, permission=Permission.DATA_EXPORT
        )
    items, nxt = queries.list_items(
        session,
        actor=actor,
        project=p,
        filters=queries.ItemFilter(external_id, tag, pairs, has_gold),
        limit=limit,
        cursor=_after(cursor),
    )
    return Page[ItemOut](items=[_item_out(i) for i in items], next_cursor=_next_cursor(nxt))


# ------------------------------------------------------------------------- annotations
@router.post(
    "/projects/{project_id}/annotations",
    tags=["annotations"],
    status_code=201,
    responses=WRITE_ERRORS,
)
def submit_annotation(
    project_id: ProjectId,
    body: AnnotationIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> AnnotationOut:
    """Annotators submit the label of the item the queue served them
    (`POST .../work/next`), under the queue's rules: one vote per item, the server's
    clock for `submitted_at` and its measure of active time (409 when the item is not
    leased to them or already done; 422 when they send fields only leads may set).
    Callers who may import (leads) record an annotation as given instead: for any
    annotator of the project (`annotator_id`), with its own times, and with the same
    `external_key` a resubmission updates it. The label is validated against the
    project's schema; errors answer 422 with one detail per violation and its field
    path (``value``, ``attributes.severity``, ...)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    a: Annotation = workbench.submit_from_api(
        session,
        actor=actor,
        project=p,
        item_id=body.item_id,
        value=body.value,
        attributes=body.attributes,
        active_seconds=body.active_seconds,
        uncertain=body.uncertain,
        uncertain_reason=body.uncertain_reason,
        recorded={f: getattr(body, f) for f in workbench.RECORD_ONLY},
    )
    out = AnnotationOut.model_validate(a)
    return _created(idem, out)  # type: ignore[return-value]


# ------------------------------------------------------------------------------- queue
@router.post(
    "/projects/{project_id}/work/next",
    tags=["annotations"],
    responses={
        **WRITE_ERRORS,
        200: {
            "description": "The leased item",
            "links": _item_links("$response.body#/item/item_id"),
        },
    },
)
def work_next(
    project_id: ProjectId, idem: IdempotencyDep, session: SessionDep, actor: CurrentActor
) -> WorkNextOut:
    """The item the caller should label now, leased to them (the same one again until
    they submit or skip it); `item` is null when their queue is empty. The view is
    blind: payload and context only. Their counts: `GET .../work/status`."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    work = workbench.next_item(session, actor=actor, project=p)
    out = WorkNextOut(
        item=None if work is None else WorkItemOut.model_validate(work, from_attributes=True)
    )
    return _created(idem, out, 200)  # type: ignore[return-value]


@router.get("/projects/{project_id}/work/status", tags=["annotations"])
def work_status(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> QueueStatusOut:
    """The caller's queue counts: labelled today (UTC) and in all, skipped, and how many
    items they could still take (hidden gold checks not counted)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    status = workbench.queue_status(session, actor=actor, project=p)
    return QueueStatusOut.model_validate(status, from_attributes=True)


@router.post(
    "/projects/{project_id}/work/{item_id}/skip", tags=["annotations"], responses=WRITE_ERRORS
)
def work_skip(
    project_id: ProjectId,
    item_id: ItemId,
    body: SkipIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> SkipOut:
    """Skip the item the queue served the caller, with a reason; it is not offered to
    them again (409 when it is not leased to them)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    record = workbench.skip(session, actor=actor, project=p, item_id=item_id, reason=body.reason)
    out = SkipOut(item_id=record.item_id, reason=record.reason, created_at=record.created_at)
    return _created(idem, out, 200)  # type: ignore[return-value]


# ------------------------------------------------------------------------- gold labels
def _gold_out(g: GoldLabel, external_id: str | None = None) -> GoldOut:
    return GoldOut(
        id=g.id,
        item_id=g.item_id,
        item_external_id=external_id,
        value=g.value,
        rationale=g.rationale,
        source=g.source,
        updated_at=g.updated_at,
    )


@router.get("/projects/{project_id}/gold", tags=["gold labels"])
def list_gold(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> Page[GoldOut]:
    """Gold labels (hidden checks: leads and model accounts only)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    rows, nxt = queries.gold_labels(
        session, actor=actor, project=p, limit=limit, cursor=_after(cursor)
    )
    return Page[GoldOut](
        items=[_gold_out(g, ext) for g, ext in rows], next_cursor=_next_cursor(nxt)
    )


@router.post(
    "/projects/{project_id}/gold", tags=["gold labels"], status_code=201, responses=WRITE_ERRORS
)
def set_gold(
    project_id: ProjectId,
    body: GoldIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> GoldOut:
    """Set (or replace) the gold label of an item."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    g = projects.set_gold(
        session,
        actor=actor,
        project=p,
        item_id=body.item_id,
        value=body.value,
        rationale=body.rationale,
        source=body.source,
    )
    return _created(idem, _gold_out(g))  # type: ignore[return-value]


# ------------------------------------------------------------------------- predictions
@router.post(
    "/projects/{project_id}/predictions",
    tags=["predictions"],
    status_code=201,
    responses=WRITE_ERRORS,
)
def add_prediction(
    project_id: ProjectId,
    body: PredictionIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> PredictionOut:
    """Store (or replace) a model's prediction for an item (model accounts, leads)."""
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    pred: Prediction = projects.add_prediction(
        session,
        actor=actor,
        project=p,
        item_id=body.item_id,
        model_name=body.model_name,
        model_version=body.model_version,
        value=body.value,
        probabilities=body.probabilities,
        score=body.score,
    )
    out = PredictionOut.model_validate(pred)
    return _created(idem, out)  # type: ignore[return-value]


# ------------------------------------------------------------------------------ audits
def _policy_out(session: Any, x: AuditPolicy) -> PolicyOut:
    last = audits.last_run(session, x)
    return PolicyOut(
        id=x.id,
        project_id=x.project_id,
        name=x.name,
        cadence=x.cadence,
        active=x.active,
        spec=x.spec,
        last_run_id=last.id if last else None,
        next_due=audits.next_due(session, x),
    )


def _run_out(session: Any, run: AuditRun, notes: list[str] | None = None) -> RunOut:
    return RunOut(
        id=run.id,
        policy_id=run.policy_id,
        project_id=run.project_id,
        status=run.status,
        trigger=run.trigger,
        window_start=run.window_start,
        window_end=run.window_end,
        population_size=run.population_size,
        sample_size=run.sample_size,
        opened_at=run.opened_at,
        closed_at=run.closed_at,
        progress=audits.progress(session, run),
        error_rate=(run.report or {}).get("error_rate", {}).get("overall"),
        notes=notes or [],
    )


@router.get(
    "/projects/{project_id}/audit-policies",
    tags=["audits"],
    responses={
        200: {"description": "The policies", "links": _policy_links("$response.body#/0/id")}
    },
)
def list_policies(
    project_id: ProjectId, session: SessionDep, actor: CurrentActor
) -> list[PolicyOut]:
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    return [_policy_out(session, x) for x in queries.policies_of(session, actor=actor, project=p)]


@router.get(
    "/projects/{project_id}/audit-policies/{policy}",
    tags=["audits"],
    responses={
        200: {
            "description": "The policy",
            "links": {
                "RunPolicyNow": _link(
                    "run_policy_now", project_id=_PROJECT, policy="$response.body#/id"
                ),
                "LastRun": _link("get_run", run_id="$response.body#/last_run_id"),
            },
        }
    },
)
def get_policy(
    project_id: ProjectId, policy: PolicyKey, session: SessionDep, actor: CurrentActor
) -> PolicyOut:
    """One audit policy, by id or name."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_REVIEW
    )
    return _policy_out(session, _policy(session, p, policy))


@router.get("/projects/{project_id}/audit-policies/{policy}/trend", tags=["audits"])
def policy_trend(
    project_id: ProjectId, policy: PolicyKey, session: SessionDep, actor: CurrentActor
) -> list[dict[str, Any]]:
    """Per closed cycle of the policy: error rate, alpha, gold accuracy and coverage with
    their intervals, and whether each changed significantly from the cycle before."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_REVIEW
    )
    rows: list[dict[str, Any]] = queries.as_json(audits.trend(session, _policy(session, p, policy)))
    return rows


@router.get(
    "/projects/{project_id}/audit-runs",
    tags=["audits"],
    responses={200: {"description": "The runs", "links": _run_links("$response.body#/0/id")}},
)
def list_runs(project_id: ProjectId, session: SessionDep, actor: CurrentActor) -> list[RunOut]:
    p = queries.visible_project(session, actor=actor, project_id=project_id)
    return [_run_out(session, r) for r in queries.runs_of_project(session, actor=actor, project=p)]


@router.get(
    "/audit-runs/{run_id}",
    tags=["audits"],
    responses={200: {"description": "The run", "links": _run_links("$response.body#/id")}},
)
def get_run(run_id: RunId, session: SessionDep, actor: CurrentActor) -> RunOut:
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_REVIEW)
    return _run_out(session, run)


@router.get(
    "/audit-runs/{run_id}/report",
    tags=["audits"],
    responses={409: {"model": ErrorResponse, "description": "The run has no report yet"}},
)
def get_report(run_id: RunId, session: SessionDep, actor: CurrentActor) -> dict[str, Any]:
    """The stored JSON report of a closed run (leads)."""
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_MANAGE)
    if not run.report:
        raise Conflict(f"audit run {run.id} has no report yet (it is {run.status})")
    return run.report


# -------------------------------------------------------------------------- item writes
def _spec_violations(
    exc: ValidationError, prefix: str | None, message: str = "invalid audit policy"
) -> ValidationFailed:
    """A pydantic error as violations with their field paths (under ``prefix``)."""
    problems = [
        Violation(
            ".".join([*([prefix] if prefix else []), *(str(p) for p in e["loc"])]),
            str(e["type"]),
            str(e["msg"]),
        )
        for e in exc.errors()
    ]
    return ValidationFailed(f"{message}: " + "; ".join(str(v) for v in problems[:10]), problems)


#: The body of ``POST .../items``: one item or a batch (validated in the route, so that
#: error paths read ``items.0.payload``, not a union member's name).
ItemsBody = Annotated[
    dict[str, Any], Body(), PlainValidator(check_object, json_schema_input_type=ItemIn | ItemsIn)
]


_ITEMS_CREATED = {
    "model": ItemsCreated,
    "links": _item_links("$response.body#/items/0/id"),
}


@router.post(
    "/projects/{project_id}/items",
    tags=["items"],
    status_code=201,
    responses={
        **WRITE_ERRORS,
        201: {**_ITEMS_CREATED, "description": "Items were added"},
        200: {**_ITEMS_CREATED, "description": "Nothing was added: every item existed"},
    },
)
def create_items(
    project_id: ProjectId,
    body: ItemsBody,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> ItemsCreated:
    """Add one item (an item object) or a batch (``{"items": [...]}``, at most 1000), all
    or nothing. Idempotent on ``external_id``: an item that already exists with the same
    content is returned (counted in ``existing``) and nothing is written; one whose
    content differs is a 409; an external id repeated within a batch is a 422. Answers
    201 when anything was added, else 200."""
    # the permission before the content: a caller who may not import learns nothing more
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_IMPORT
    )
    try:
        batch = ItemsIn.model_validate(body) if "items" in body else None
        given = batch.items if batch is not None else [ItemIn.model_validate(body)]
    except ValidationError as exc:
        failed = _spec_violations(exc, None, "the items are not valid")
        raw = body.get("items")
        if isinstance(raw, list):  # every problem at once, in item order
            ids = [i.get("external_id") if isinstance(i, dict) else None for i in raw]
            failed.violations = sorted(
                [*failed.violations, *projects.repeated_ids(ids)], key=projects.item_position
            )
        raise failed from None
    rows = projects.add_items(
        session,
        actor=actor,
        project=p,
        items=[
            projects.NewItem(
                external_id=i.external_id,
                payload=i.payload,
                metadata=i.metadata,
                segments=i.segments,
                tags=i.tags,
            )
            for i in given
        ],
    )
    created = sum(1 for _, new in rows if new)
    out = ItemsCreated(
        items=[_item_out(i) for i, _ in rows], created=created, existing=len(rows) - created
    )
    return _created(idem, out, 201 if created else 200)  # type: ignore[return-value]


# ------------------------------------------------------------------------ policy writes
#: The body of ``POST .../audit-policies`` (validated in the route, after the permission).
PolicyBody = Annotated[
    dict[str, Any], Body(), PlainValidator(check_object, json_schema_input_type=PolicyIn)
]


@router.post(
    "/projects/{project_id}/audit-policies",
    tags=["audits"],
    status_code=201,
    responses={
        **WRITE_ERRORS,
        201: {
            "description": "The policy",
            "links": {
                **_policy_links("$response.body#/id"),
                "GetPolicyByName": _link(
                    "get_policy", project_id=_PROJECT, policy="$response.body#/name"
                ),
            },
        },
    },
)
def create_policy(
    project_id: ProjectId,
    body: PolicyBody,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> PolicyOut:
    """Create an audit policy (409 when the name is taken; 422 naming the field for
    invalid settings, and for reviewers who do not exist or may not review)."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    try:  # after the permission: a caller who may not manage audits learns nothing more
        new = PolicyIn.model_validate(body)
    except ValidationError as exc:
        raise _spec_violations(exc, None) from None
    policy = audits.create_policy(
        session, actor=actor, project=p, name=new.name, spec=new.spec, active=new.active
    )
    return _created(idem, _policy_out(session, policy))  # type: ignore[return-value]


@router.patch(
    "/projects/{project_id}/audit-policies/{policy}", tags=["audits"], responses=WRITE_ERRORS
)
def update_policy(
    project_id: ProjectId,
    policy: PolicyKey,
    body: PolicyPatch,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> PolicyOut:
    """Change a policy's settings (only the keys given in ``spec``; the result is
    validated as a whole, errors name ``spec.<field>``) and/or switch it on or off.
    Past runs keep the settings they were opened with."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    x = _policy(session, p, policy)
    if body.spec is not None:
        try:
            spec = PolicySpecIn.model_validate({**x.spec, **body.spec})
        except ValidationError as exc:
            raise _spec_violations(exc, "spec") from None
        audits.update_policy(session, actor=actor, policy=x, spec=spec)
    if body.active is not None:
        audits.set_policy_active(session, actor=actor, policy=x, active=body.active)
    return _created(idem, _policy_out(session, x), 200)  # type: ignore[return-value]


_RUN_OPENED = {"model": RunOut, "links": _run_links("$response.body#/id")}


@router.post(
    "/projects/{project_id}/audit-policies/{policy}/runs",
    tags=["audits"],
    status_code=201,
    responses={
        **WRITE_ERRORS,
        201: {**_RUN_OPENED, "description": "The run, opened now"},
        200: {**_RUN_OPENED, "description": "The run of this window, opened before"},
    },
)
def run_policy_now(
    project_id: ProjectId,
    policy: PolicyKey,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> RunOut:
    """Open a run now, for the window since the previous run (or the policy's last
    ``window_days``) up to now: the sample is drawn, frozen and assigned. 422 when
    nothing in the window passes the policy."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    res = audits.run_now(session, actor=actor, policy=_policy(session, p, policy))
    out = _run_out(session, res.run, res.notes)
    return _created(idem, out, 201 if res.created else 200)  # type: ignore[return-value]


@router.post(
    "/audit-runs/{run_id}/close",
    tags=["audits"],
    responses={
        **WRITE_ERRORS,
        200: {
            "description": "The closed run",
            "links": {"GetReport": _link("get_report", run_id="$response.body#/id")},
        },
    },
)
def close_run(
    run_id: RunId,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
    body: CloseIn | None = None,
) -> RunOut:
    """Close an open run and compute its report (409 while reviews are outstanding,
    unless ``allow_unreviewed``)."""
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_MANAGE)
    audits.close_run(
        session,
        actor=actor,
        run=run,
        allow_unreviewed=body.allow_unreviewed if body is not None else False,
    )
    return _created(idem, _run_out(session, run), 200)  # type: ignore[return-value]


# ------------------------------------------------------------------------------ exports
@router.get(
    "/projects/{project_id}/export",
    tags=["exports"],
    response_class=FileResponse,
    responses={200: {"description": "The export file, as an attachment."}},
)
def export(
    project_id: ProjectId,
    session: SessionDep,
    actor: CurrentActor,
    format: Annotated[
        ExportFormatParam,
        Query(description="csv, jsonl, parquet (long form) or label-studio (JSON)."),
    ] = "csv",
    raw: Annotated[bool, Query(description=RAW_DESCRIPTION)] = False,
) -> FileResponse:
    """Download the project's annotations, gold labels and (Label Studio) predictions
    (``data.export``: leads and model accounts). CSV cells a spreadsheet would run as
    formulas are escaped unless ``raw``. Recorded as an ``export.file`` event."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_EXPORT
    )
    return export_response(session, actor=actor, project=p, format=format, raw=raw)
