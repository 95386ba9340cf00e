"""``/api/v1``: projects, items, annotations, gold labels, predictions, audits, exports.

Every route resolves the caller (``CurrentActor``: a bearer token or the session
cookie) and hands it to a service, which checks the permission. Writes (POST, PATCH)
accept ``Idempotency-Key`` (see :mod:`labelloop.web.idempotency`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError

from labelloop.accounts.roles import Permission
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.audits.schemas import PolicySpec
from labelloop.errors import Conflict, ValidationFailed
from labelloop.projects import service as projects
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project
from labelloop.projects.validation import Violation
from labelloop.web import queries
from labelloop.web.api.schemas import (
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
    PredictionIn,
    PredictionOut,
    ProjectOut,
    RunOut,
)
from labelloop.web.deps import CurrentActor, SessionDep, TransactionRoute
from labelloop.web.idempotency import IdempotencyDep
from labelloop.web.pages.transfers import ExportFormatParam, export_response

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or an invalid credential"},
    403: {"model": ErrorResponse, "description": "The caller's role does not allow it"},
    404: {"model": ErrorResponse, "description": "No such record"},
    422: {"model": ErrorResponse, "description": "Invalid input, with field paths"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorResponse, "description": "Conflict, or the same key is in flight"},
}

router = APIRouter(responses=ERRORS, route_class=TransactionRoute)


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


def _created(idem: Any, body: Any, status: int = 201) -> JSONResponse:
    data = body.model_dump(mode="json", by_alias=True)
    idem.remember(status, data)
    return JSONResponse(data, status_code=status)


@router.get("/me", tags=["accounts"])
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
@router.get("/projects", tags=["projects"])
def list_projects(session: SessionDep, actor: CurrentActor) -> list[ProjectOut]:
    """Projects the caller holds a role in (every project for administrators)."""
    return [_project_out(session, actor, p) for p in queries.visible_projects(session, actor=actor)]


@router.get("/projects/{project_id}", tags=["projects"])
def get_project(project_id: int, session: SessionDep, actor: CurrentActor) -> ProjectOut:
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )
    return _project_out(session, actor, p, counts=True)


# ------------------------------------------------------------------------------- items
@router.get("/projects/{project_id}/items", tags=["items"])
def list_items(
    project_id: int,
    session: SessionDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    external_id: Annotated[str | None, Query(max_length=500)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    segment: Annotated[
        list[str] | None,
        Query(description="key=value; repeat for several (all must match)", max_length=300),
    ] = None,
    has_gold: bool | None = None,
) -> Page[ItemOut]:
    """Items by id, with filters and keyset (cursor) pagination."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )
    pairs = []
    for s in segment or []:
        key, sep, value = s.partition("=")
        if not sep or not key:
            from labelloop.errors import ValidationFailed
            from labelloop.projects.validation import Violation

            raise ValidationFailed(
                "segment filters are key=value",
                [Violation("segment", "format", f"expected key=value, got {s!r}")],
            )
        pairs.append((key, value))
    if has_gold is not None:  # gold labels are hidden checks
        queries.project_for(
            session, actor=actor, project_id=p.id, permission=Permission.DATA_EXPORT
        )
    items, nxt = queries.list_items(
        session,
        actor=actor,
        project=p,
        filters=queries.ItemFilter(external_id, tag, tuple(pairs), has_gold),
        limit=limit,
        cursor=cursor,
    )
    return Page[ItemOut](items=[_item_out(i) for i in items], next_cursor=nxt)


# ------------------------------------------------------------------------- annotations
@router.post(
    "/projects/{project_id}/annotations",
    tags=["annotations"],
    status_code=201,
    responses=WRITE_ERRORS,
)
def submit_annotation(
    project_id: int,
    body: AnnotationIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> AnnotationOut:
    """Submit (or, with the same ``external_key``, resubmit) an annotation. The label is
    validated against the project's schema; errors answer 422 with one detail per
    violation and its field path (``value``, ``attributes.severity``, ...)."""
    p = projects.get_project(session, project_id)
    annotator = body.annotator_id if body.annotator_id is not None else actor.user_id
    if annotator is None:
        from labelloop.errors import ValidationFailed
        from labelloop.projects.validation import Violation

        raise ValidationFailed(
            "annotator_id is required for this caller",
            [Violation("annotator_id", "required", "give the annotator's user id")],
        )
    a: Annotation = projects.submit_annotation(
        session,
        actor=actor,
        project=p,
        item_id=body.item_id,
        annotator_id=annotator,
        value=body.value,
        attributes=body.attributes,
        started_at=body.started_at,
        submitted_at=body.submitted_at,
        active_seconds=body.active_seconds,
        guideline_version=body.guideline_version,
        source="api",
        external_key=body.external_key,
    )
    out = AnnotationOut.model_validate(a)
    return _created(idem, out)  # type: ignore[return-value]


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
    project_id: int,
    session: SessionDep,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[GoldOut]:
    """Gold labels (hidden checks: leads and model accounts only)."""
    p = projects.get_project(session, project_id)
    rows, nxt = queries.gold_labels(session, actor=actor, project=p, limit=limit, cursor=cursor)
    return Page[GoldOut](items=[_gold_out(g, ext) for g, ext in rows], next_cursor=nxt)


@router.post(
    "/projects/{project_id}/gold", tags=["gold labels"], status_code=201, responses=WRITE_ERRORS
)
def set_gold(
    project_id: int, body: GoldIn, idem: IdempotencyDep, session: SessionDep, actor: CurrentActor
) -> GoldOut:
    """Set (or replace) the gold label of an item."""
    p = projects.get_project(session, project_id)
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
    project_id: int,
    body: PredictionIn,
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> PredictionOut:
    """Store (or replace) a model's prediction for an item (model accounts, leads)."""
    p = projects.get_project(session, project_id)
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


@router.get("/projects/{project_id}/audit-policies", tags=["audits"])
def list_policies(project_id: int, session: SessionDep, actor: CurrentActor) -> list[PolicyOut]:
    p = projects.get_project(session, project_id)
    return [_policy_out(session, x) for x in queries.policies_of(session, actor=actor, project=p)]


@router.get("/projects/{project_id}/audit-policies/{policy}", tags=["audits"])
def get_policy(project_id: int, policy: str, session: SessionDep, actor: CurrentActor) -> PolicyOut:
    """One audit policy, by id or name."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_REVIEW
    )
    return _policy_out(session, audits.get_policy(session, p, policy))


@router.get("/projects/{project_id}/audit-policies/{policy}/trend", tags=["audits"])
def policy_trend(
    project_id: int, policy: str, session: SessionDep, actor: CurrentActor
) -> list[dict[str, Any]]:
    """Per closed cycle of the policy: error rate, alpha, gold accuracy and coverage with
    their intervals, and whether each changed significantly from the cycle before."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_REVIEW
    )
    rows: list[dict[str, Any]] = queries.as_json(
        audits.trend(session, audits.get_policy(session, p, policy))
    )
    return rows


@router.get("/projects/{project_id}/audit-runs", tags=["audits"])
def list_runs(project_id: int, session: SessionDep, actor: CurrentActor) -> list[RunOut]:
    p = projects.get_project(session, project_id)
    return [_run_out(session, r) for r in queries.runs_of_project(session, actor=actor, project=p)]


@router.get("/audit-runs/{run_id}", tags=["audits"])
def get_run(run_id: int, session: SessionDep, actor: CurrentActor) -> RunOut:
    run = queries.run_for(session, actor=actor, run_id=run_id, permission=Permission.AUDIT_REVIEW)
    return _run_out(session, run)


@router.get("/audit-runs/{run_id}/report", tags=["audits"])
def get_report(run_id: int, session: SessionDep, actor: CurrentActor) -> dict[str, Any]:
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


_ITEM_SCHEMA = ItemIn.model_json_schema()
ITEMS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ITEM_SCHEMA,
                        {
                            "title": "ItemsIn",
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": _ITEM_SCHEMA, "maxItems": 1000}
                            },
                            "required": ["items"],
                            "additionalProperties": False,
                        },
                    ]
                }
            }
        },
    }
}


@router.post(
    "/projects/{project_id}/items",
    tags=["items"],
    status_code=201,
    responses=WRITE_ERRORS,
    openapi_extra=ITEMS_BODY,
)
def create_items(
    project_id: int,
    body: Annotated[dict[str, Any], Body()],
    idem: IdempotencyDep,
    session: SessionDep,
    actor: CurrentActor,
) -> ItemsCreated:
    """Add one item (an item object) or a batch (``{"items": [...]}``, at most 1000), all
    or nothing. Idempotent on ``external_id``: an item that already exists with the same
    content is returned (counted in ``existing``) and nothing is written; one whose
    content differs is a 409. Answers 201 when anything was added, else 200."""
    p = projects.get_project(session, project_id)
    try:  # validated here, so error paths read ``items.0.payload``, not the union's name
        batch = ItemsIn.model_validate(body) if "items" in body else None
        given = batch.items if batch is not None else [ItemIn.model_validate(body)]
    except ValidationError as exc:
        raise _spec_violations(exc, None, "the items are not valid") from None
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


@router.post(
    "/projects/{project_id}/audit-policies",
    tags=["audits"],
    status_code=201,
    responses=WRITE_ERRORS,
)
def create_policy(
    project_id: int, body: PolicyIn, idem: IdempotencyDep, session: SessionDep, actor: CurrentActor
) -> PolicyOut:
    """Create an audit policy (409 when the name is taken)."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    policy = audits.create_policy(
        session, actor=actor, project=p, name=body.name, spec=body.spec, active=body.active
    )
    return _created(idem, _policy_out(session, policy))  # type: ignore[return-value]


@router.patch(
    "/projects/{project_id}/audit-policies/{policy}", tags=["audits"], responses=WRITE_ERRORS
)
def update_policy(
    project_id: int,
    policy: str,
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
    x = audits.get_policy(session, p, policy)
    if body.spec is not None:
        try:
            spec = PolicySpec.model_validate({**x.spec, **body.spec})
        except ValidationError as exc:
            raise _spec_violations(exc, "spec") from None
        audits.update_policy(session, actor=actor, policy=x, spec=spec)
    if body.active is not None:
        audits.set_policy_active(session, actor=actor, policy=x, active=body.active)
    return _created(idem, _policy_out(session, x), 200)  # type: ignore[return-value]


@router.post(
    "/projects/{project_id}/audit-policies/{policy}/runs",
    tags=["audits"],
    status_code=201,
    responses=WRITE_ERRORS,
)
def run_policy_now(
    project_id: int, policy: str, idem: IdempotencyDep, session: SessionDep, actor: CurrentActor
) -> RunOut:
    """Open a run now, for the window since the previous run (or the policy's last
    ``window_days``) up to now: the sample is drawn, frozen and assigned. 422 when
    nothing in the window passes the policy."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    res = audits.run_now(session, actor=actor, policy=audits.get_policy(session, p, policy))
    out = _run_out(session, res.run, res.notes)
    return _created(idem, out, 201 if res.created else 200)  # type: ignore[return-value]


@router.post("/audit-runs/{run_id}/close", tags=["audits"], responses=WRITE_ERRORS)
def close_run(
    run_id: int,
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
    project_id: int,
    session: SessionDep,
    actor: CurrentActor,
    format: Annotated[
        ExportFormatParam,
        Query(description="csv, jsonl, parquet (long form) or label-studio (JSON)."),
    ] = "csv",
) -> FileResponse:
    """Download the project's annotations, gold labels and (Label Studio) predictions
    (``data.export``: leads and model accounts). Recorded as an ``export.file`` event."""
    p = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.DATA_EXPORT
    )
    return export_response(session, actor=actor, project=p, format=format)
