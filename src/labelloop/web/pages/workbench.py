"""The annotator workbench: the queue page, submitting a label, skipping an item.

The page shows the one item the annotator holds (see :mod:`labelloop.workbench.service`)
with controls for the project's task type; ``static/workbench.js`` adds hotkeys, span
selection, image zoom and pan, active-time counting and the same checks as the server
before submitting. The server stays authoritative: a submission that breaks the schema
gets the page back with status 422 and the field messages, and nothing is saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from labelloop.accounts.actor import Actor
from labelloop.errors import AcknowledgementRequired, Conflict, ValidationFailed
from labelloop.feedback import service as feedback
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.schemas import LabelSchema, Rule
from labelloop.projects.validation import Violation
from labelloop.web import queries
from labelloop.web.app import PAGE_CSP
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.errors import details_of
from labelloop.web.forms import form_number
from labelloop.web.pages.guidelines import guideline_panel
from labelloop.web.templating import render
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import MAX_REASON, WorkItem

router = APIRouter(route_class=TransactionRoute)

#: Keys the page keeps for itself (labels may not take them unless the schema says so).
RESERVED_KEYS = ("s", "f", "g")
#: Ordinal scales with more steps than this get a number input instead of buttons.
MAX_SCALE_BUTTONS = 21


async def _form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_form)]


# -- what the page shows ----------------------------------------------------------------


def _hotkeys(schema: LabelSchema) -> dict[str, str]:
    """Label name -> hotkey: the schema's, else 1..9 in order (never a reserved key)."""
    taken = {label.hotkey.lower() for label in schema.labels if label.hotkey}
    out: dict[str, str] = {}
    digits = iter(str(d) for d in range(1, 10))
    for label in schema.labels:
        if label.hotkey:
            out[label.name] = label.hotkey
            continue
        for d in digits:
            if d not in taken:
                out[label.name] = d
                break
    return out


def _scale_values(schema: LabelSchema) -> list[int | float] | None:
    sc = schema.scale
    if sc is None or sc.step is None:
        return None
    n = math.floor((sc.max - sc.min) / sc.step + 1e-9) + 1
    if n > MAX_SCALE_BUTTONS:
        return None
    values = [sc.min + i * sc.step for i in range(n)]
    return [int(v) if float(v).is_integer() else round(v, 10) for v in values]


def rule_text(rule: Rule) -> str:
    """A rule in words, for the guideline panel."""
    when = []
    if rule.when.label is not None:
        when.append(f"the label is {rule.when.label!r}")
    if rule.when.active_seconds_below is not None:
        when.append(f"labeled in under {rule.when.active_seconds_below:g} s of active time")
    if rule.when.active_seconds_above is not None:
        when.append(f"labeled in over {rule.when.active_seconds_above:g} s of active time")
    then = []
    if rule.require_attributes:
        then.append("fill in " + ", ".join(rule.require_attributes))
    if rule.forbid_labels:
        then.append("do not also choose " + ", ".join(rule.forbid_labels))
    if rule.flag and not (rule.require_attributes or rule.forbid_labels):
        then.append(f"the label is flagged {rule.flag!r}")
    text = f"When {' and '.join(when)}: {'; '.join(then)}"
    if rule.message:
        text += f" ({rule.message})"
    kind = "required" if rule.effective_severity == "error" else "a warning"
    return f"{text}. This is {kind}."


def _guide(schema: LabelSchema, hotkeys: Mapping[str, str]) -> dict[str, Any]:
    """The guideline panel: the schema's description, each label's description and the
    rules that mention it, and the rules that hold for every label."""
    labels = []
    for label in schema.labels:
        rules = [
            rule_text(r)
            for r in schema.rules
            if r.when.label == label.name or label.name in r.forbid_labels
        ]
        labels.append(
            {
                "name": label.name,
                "description": label.description,
                "hotkey": hotkeys.get(label.name),
                "rules": rules,
            }
        )
    general = [rule_text(r) for r in schema.rules if r.when.label is None]
    return {"description": schema.description, "labels": labels, "general": general}


def _payload_rows(work: WorkItem) -> list[tuple[str, str]]:
    """Payload fields other than the displayed text and image, as text."""
    shown = {work.display_text, work.image_url}
    rows = []
    for key, v in work.payload.items():
        if isinstance(v, str) and v in shown:
            continue
        rows.append((key, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
    return rows


def _csp_for(work: WorkItem | None) -> dict[str, str]:
    """The page's CSP; an item image on another host is allowed from that host only."""
    url = work.image_url if work is not None else None
    if not url:
        return {}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return {}
    origin = f"{parts.scheme}://{parts.netloc}"
    return {
        "Content-Security-Policy": PAGE_CSP.replace(
            "img-src 'self' data:", f"img-src 'self' data: {origin}"
        )
    }


def _page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    errors: list[dict[str, Any]] | None = None,
    entered: dict[str, Any] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        work, status = workbench.work_view(session, actor=actor, project=project)
    except AcknowledgementRequired:  # a new guideline version to read first
        return RedirectResponse(f"/projects/{project.id}/guidelines/read", status_code=303)
    schema = projects.schema_of(project)
    hotkeys = _hotkeys(schema)
    flash = request.session.pop("wb_flash", None)
    entered = entered or {}
    if work is None or entered.get("item_id") != work.item_id:
        entered = {}
    return render(
        request,
        "workbench.html",
        {
            "project": project,
            "work": work,
            "status": status,
            "schema": schema,
            "schema_json": schema.to_json(),
            "hotkeys": hotkeys,
            "scale_values": _scale_values(schema),
            "annotation_attributes": [
                a for a in schema.attributes if schema.attribute_scope(a) == "annotation"
            ],
            "region_attributes": [
                a for a in schema.attributes if schema.attribute_scope(a) == "region"
            ],
            "guide": _guide(schema, hotkeys),
            "guideline": guideline_panel(session, actor, project),
            "payload_rows": _payload_rows(work) if work is not None else [],
            "errors": errors or [],
            "entered": entered,
            "notice": notice,
            "flash": flash if isinstance(flash, str) else None,
            "new_notes": feedback.unread_count(session, actor=actor, project=project),
            "max_reason": MAX_REASON,
            "reserved": [
                k for k in RESERVED_KEYS if k not in {h.lower() for h in hotkeys.values()}
            ],
        },
        status_code=status_code,
        headers=_csp_for(work),
    )


# -- reading the form -------------------------------------------------------------------


def _value(schema: LabelSchema, form: FormData) -> Any:
    tt = schema.task_type
    if tt == "multi":
        return [v for v in form.getlist("value") if isinstance(v, str)]
    if tt == "spans":
        raw = form.get("spans")
        if not isinstance(raw, str) or not raw.strip():
            return []
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationFailed(
                "the spans are not valid JSON",
                [Violation("value", "json", f"not valid JSON: {exc.msg}")],
            ) from None
    raw = form.get("value")
    if not isinstance(raw, str) or (tt != "text" and not raw.strip()):
        what = "a value on the scale" if tt == "ordinal" else "a label"
        if tt == "text":
            what = "an answer"
        raise ValidationFailed(
            f"choose {what} before submitting", [Violation("value", "required", f"choose {what}")]
        )
    if tt == "ordinal" and schema.scale is not None:
        return form_number(raw.strip())
    return raw


def _attributes(schema: LabelSchema, form: FormData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in schema.attributes:
        if schema.attribute_scope(attr) != "annotation":
            continue
        raw = form.get(f"attr.{attr.name}")
        if not isinstance(raw, str) or raw == "":
            continue
        if attr.type == "number":
            out[attr.name] = form_number(raw.strip())
        elif attr.type == "bool":
            out[attr.name] = {"true": True, "false": False}.get(raw, raw)
        else:
            out[attr.name] = raw
    return out


def _text(form: FormData, key: str) -> str | None:
    v = form.get(key)
    return v if isinstance(v, str) else None


def _active_seconds(form: FormData) -> float | None:
    raw = form.get("active_seconds")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def _entered(item_id: PathId, form: FormData) -> dict[str, Any]:
    """What the annotator entered, to fill the form again after a refusal."""
    return {
        "item_id": item_id,
        "values": [v for v in form.getlist("value") if isinstance(v, str)],
        "spans": _text(form, "spans") or "",
        "attrs": {
            k[5:]: v for k, v in form.multi_items() if k.startswith("attr.") and isinstance(v, str)
        },
        "uncertain": form.get("uncertain") == "1",
        "uncertain_reason": _text(form, "uncertain_reason") or "",
        "skip_reason": _text(form, "reason") or "",
    }


def _done(request: Request, project_id: PathId, message: str) -> Response:
    request.session["wb_flash"] = message
    return RedirectResponse(f"/projects/{project_id}/work", status_code=303)


# -- routes -----------------------------------------------------------------------------


@router.get("/projects/{project_id}/work")
def work_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    return _page(request, session, actor, project)


@router.post("/projects/{project_id}/work/{item_id}")
def submit_label(
    request: Request,
    project_id: PathId,
    item_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    schema = projects.schema_of(project)
    try:
        value = _value(schema, form)
        workbench.submit(
            session,
            actor=actor,
            project=project,
            item_id=item_id,
            value=value,
            attributes=_attributes(schema, form),
            active_seconds=_active_seconds(form),
            uncertain=form.get("uncertain") == "1",
            uncertain_reason=_text(form, "uncertain_reason"),
        )
    except ValidationFailed as exc:
        # the service checks permission and the item first: a refusal here is about
        # the label itself, so the annotator gets the page back with every message
        session.rollback()
        errors = details_of(exc) or [{"field": None, "message": str(exc)}]
        return _page(
            request,
            session,
            actor,
            project,
            errors=errors,
            entered=_entered(item_id, form),
            notice="Not saved: fix the fields below and submit again.",
            status_code=422,
        )
    except Conflict as exc:
        session.rollback()
        return _page(request, session, actor, project, notice=str(exc), status_code=409)
    return _done(request, project.id, f"Saved your label for item #{item_id}.")


@router.post("/projects/{project_id}/work/{item_id}/skip")
def skip_item(
    request: Request,
    project_id: PathId,
    item_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    try:
        workbench.skip(
            session,
            actor=actor,
            project=project,
            item_id=item_id,
            reason=_text(form, "reason"),
        )
    except ValidationFailed as exc:
        session.rollback()
        return _page(
            request,
            session,
            actor,
            project,
            errors=details_of(exc),
            entered=_entered(item_id, form),
            notice="Not skipped: give a reason.",
            status_code=422,
        )
    except Conflict as exc:
        session.rollback()
        return _page(request, session, actor, project, notice=str(exc), status_code=409)
    return _done(request, project.id, f"Skipped item #{item_id}.")
