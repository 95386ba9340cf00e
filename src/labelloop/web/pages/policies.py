"""Lead pages for audit policies: the list with "Run now", the create form and the edit
form.

The form holds the common :class:`~labelloop.audits.schemas.PolicySpec` fields; the
rest (population filters, risk weights, confidence, ...) go in an "advanced" YAML or
JSON mapping that overrides the fields. Invalid input re-renders the form with a
message per field (422) and saves nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy
from labelloop.audits.schemas import STRATUM_DIMENSIONS, PolicySpec
from labelloop.errors import Conflict, ValidationFailed
from labelloop.projects.models import Project
from labelloop.store.base import utcnow
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: PolicySpec fields that have their own form field; every other field is "advanced".
FORM_FIELDS = (
    "cadence",
    "window",
    "window_days",
    "strata",
    "allocation",
    "sample_size",
    "target_half_width",
    "min_per_stratum",
    "reviewers",
    "blind",
    "double_review_fraction",
    "error_categories",
)
ALLOCATIONS = ("proportional", "equal", "neyman", "risk")
WINDOWS = ("since_previous", "last_days")


def _manage(session: Session, actor: Actor, project_id: PathId) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )


def _split(text: str, sep: str = ",") -> list[str]:
    return [part.strip() for part in text.replace("\r", "").split(sep) if part.strip()]


def form_values(policy: AuditPolicy | None) -> dict[str, Any]:
    """The form's fields as strings, from a policy (or the defaults for a new one)."""
    spec = PolicySpec.model_validate(policy.spec) if policy else PolicySpec()
    data = spec.as_json()
    defaults = PolicySpec().as_json()
    advanced = {
        k: v for k, v in data.items() if k not in FORM_FIELDS and (policy and v != defaults[k])
    }
    return {
        "name": policy.name if policy else "",
        "cadence": spec.cadence,
        "window": spec.window,
        "window_days": str(spec.window_days),
        "strata": ", ".join(spec.strata),
        "allocation": spec.allocation,
        "sample_size": "" if spec.sample_size is None else str(spec.sample_size),
        "target_half_width": ""
        if spec.target_half_width is None
        else f"{spec.target_half_width:g}",
        "min_per_stratum": str(spec.min_per_stratum),
        "reviewers": ", ".join(spec.reviewers),
        "blind": spec.blind,
        "double_review_fraction": f"{spec.double_review_fraction:g}",
        "error_categories": "\n".join(spec.error_categories),
        "active": policy.active if policy else True,
        "advanced": yaml.safe_dump(advanced, sort_keys=False) if advanced else "",
    }


def parse_form(values: dict[str, Any]) -> tuple[PolicySpec | None, dict[str, str]]:
    """The spec the form describes, or the message of every field in error."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "cadence": values["cadence"].strip() or "manual",
        "window": values["window"],
        "allocation": values["allocation"],
        "strata": _split(values["strata"]),
        "reviewers": _split(values["reviewers"]),
        "blind": values["blind"],
        "error_categories": _split(values["error_categories"], "\n"),
    }
    numbers: dict[str, type] = {
        "window_days": int,
        "sample_size": int,
        "target_half_width": float,
        "min_per_stratum": int,
        "double_review_fraction": float,
    }
    for name, kind in numbers.items():
        raw = values[name].strip()
        if not raw:
            if name in ("sample_size", "target_half_width"):
                data[name] = None
            continue
        try:
            data[name] = kind(raw)
        except ValueError:
            errors[name] = "a whole number" if kind is int else "a number"
    if data.get("sample_size") is not None and data.get("target_half_width") is not None:
        errors["target_half_width"] = "give a sample size or a target half-width, not both"
    advanced_text = values["advanced"].strip()
    if advanced_text:
        try:
            advanced = yaml.safe_load(advanced_text)
        except yaml.YAMLError as exc:
            advanced = None
            errors["advanced"] = f"not YAML or JSON: {exc}".splitlines()[0]
        else:
            if not isinstance(advanced, dict):
                errors["advanced"] = "a mapping of policy settings (see docs/audits.md)"
            else:
                advanced.pop("name", None)
                data.update(advanced)
    if errors:
        return None, errors
    try:
        return PolicySpec.model_validate(data), {}
    except ValidationError as exc:
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            msg = str(e["msg"]).removeprefix("Value error, ")
            if not loc:
                field = "allocation" if "risk" in msg else "sample_size"
            elif loc[0] in FORM_FIELDS:
                field = loc[0]
            else:
                field, msg = "advanced", f"{'.'.join(loc)}: {msg}"
            errors.setdefault(field, msg)
        return None, errors


class PolicyForm(BaseModel):
    """The fields of the policy form, as posted (text; parsed by :func:`parse_form`)."""

    name: str = Field("", max_length=200)
    cadence: str = Field("manual", max_length=100)
    window: str = Field("since_previous", max_length=100)
    window_days: str = Field("7", max_length=100)
    strata: str = Field("", max_length=10_000)
    allocation: str = Field("proportional", max_length=100)
    sample_size: str = Field("", max_length=100)
    target_half_width: str = Field("", max_length=100)
    min_per_stratum: str = Field("2", max_length=100)
    reviewers: str = Field("", max_length=10_000)
    blind: str | None = Field(None, max_length=10)
    double_review_fraction: str = Field("0.1", max_length=100)
    error_categories: str = Field("", max_length=10_000)
    active: str | None = Field(None, max_length=10)
    advanced: str = Field("", max_length=10_000)

    def values(self, name: str | None = None) -> dict[str, Any]:
        """The form's values for :func:`parse_form` and the template (checkboxes as
        booleans); ``name`` overrides the posted one (a policy's name is fixed)."""
        data = self.model_dump()
        data["name"] = self.name if name is None else name
        data["blind"] = self.blind is not None
        data["active"] = self.active is not None
        return data


def _form_page(
    request: Request,
    project: Project,
    policy: AuditPolicy | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "policy_form.html",
        {
            "project": project,
            "policy": policy,
            "v": values,
            "errors": errors or {},
            "message": message,
            "allocations": ALLOCATIONS,
            "windows": WINDOWS,
            "dimensions": STRATUM_DIMENSIONS,
        },
        status_code=status_code,
    )


def _list_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    message: str | None = None,
    status_code: int = 200,
    new: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    rows = []
    for p in queries.policies_of(session, actor=actor, project=project):
        spec = p.spec
        rows.append(
            {
                "policy": p,
                "strata": spec.get("strata") or [],
                "size": f"{spec['sample_size']}"
                if spec.get("sample_size") is not None
                else f"±{spec.get('target_half_width')}",
                "last": audits.last_run(session, p),
                "next_due": audits.next_due(session, p),
            }
        )
    return render(
        request,
        "policies.html",
        {
            "project": project,
            "rows": rows,
            "message": message,
            "v": new or form_values(None),
            "errors": errors or {},
            "allocations": ALLOCATIONS,
            "windows": WINDOWS,
            "dimensions": STRATUM_DIMENSIONS,
            "now": utcnow(),
        },
        status_code=status_code,
    )


PolicyFields = Annotated[PolicyForm, Form()]


@router.get("/projects/{project_id}/policies")
def policies_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _manage(session, actor, project_id)
    return _list_page(request, session, actor, project)


@router.post("/projects/{project_id}/policies")
def create_policy(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: PolicyFields,
) -> Response:
    project = _manage(session, actor, project_id)
    values = form.values()
    name = form.name
    spec, errors = parse_form(values)
    if not name.strip():
        errors["name"] = "give the policy a name"
    if spec is None or errors:
        return _list_page(
            request,
            session,
            actor,
            project,
            new=values,
            errors=errors,
            message="the policy was not saved: see the fields marked below",
            status_code=422,
        )
    try:
        policy = audits.create_policy(
            session,
            actor=actor,
            project=project,
            name=name,
            spec=spec,
            active=bool(values["active"]),
        )
    except (ValidationFailed, Conflict) as exc:
        session.rollback()
        field = "name" if isinstance(exc, Conflict) else "reviewers"
        return _list_page(
            request,
            session,
            actor,
            project,
            new=values,
            errors={field: str(exc)},
            message="the policy was not saved: see the fields marked below",
            status_code=422,
        )
    return RedirectResponse(f"/projects/{project.id}/policies#policy-{policy.id}", status_code=303)


@router.get("/projects/{project_id}/policies/{policy_id}")
def edit_policy_page(
    request: Request,
    project_id: PathId,
    policy_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _manage(session, actor, project_id)
    policy = audits.get_policy(session, project, policy_id)
    return _form_page(request, project, policy, form_values(policy))


@router.post("/projects/{project_id}/policies/{policy_id}")
def edit_policy(
    request: Request,
    project_id: PathId,
    policy_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: PolicyFields,
) -> Response:
    project = _manage(session, actor, project_id)
    policy = audits.get_policy(session, project, policy_id)
    values = form.values(policy.name)
    spec, errors = parse_form(values)
    if spec is None:
        return _form_page(
            request,
            project,
            policy,
            values,
            errors,
            "the policy was not saved: see the fields marked below",
            422,
        )
    try:
        audits.update_policy(session, actor=actor, policy=policy, spec=spec)
        audits.set_policy_active(session, actor=actor, policy=policy, active=values["active"])
    except ValidationFailed as exc:
        session.rollback()
        policy = audits.get_policy(session, project, policy_id)
        return _form_page(
            request,
            project,
            policy,
            values,
            {"reviewers": str(exc)},
            "the policy was not saved: see the fields marked below",
            422,
        )
    return RedirectResponse(f"/projects/{project.id}/policies#policy-{policy.id}", status_code=303)


@router.post("/projects/{project_id}/policies/{policy_id}/run")
def run_policy_now(
    request: Request,
    project_id: PathId,
    policy_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    """Open a run for the window ending now and show it."""
    project = _manage(session, actor, project_id)
    policy = audits.get_policy(session, project, policy_id)
    name = policy.name
    try:
        res = audits.run_now(session, actor=actor, policy=policy)
    except ValidationFailed as exc:
        session.rollback()
        return _list_page(
            request,
            session,
            actor,
            project,
            message=f"{name} was not run: {exc}",
            status_code=422,
        )
    return RedirectResponse(f"/audits/runs/{res.run.id}", status_code=303)
