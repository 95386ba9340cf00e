"""The adjudicator's pages: the queue of disagreement cases (detection, opening a case by
hand), the case page with its ruling form, and the lead's adjudication settings.

The case page is keyboard-first like the workbench (``static/cases.js``): number keys
pick a label, ``r`` focuses the rationale, Ctrl+Enter submits, ``n`` skips to the next
open case, ``?`` shows the keys. The server decides: a refused ruling gets the page back
with status 422, a message per field and everything that was typed, and nothing is
written; a case ruled meanwhile answers 409 and shows its ruling. A ruling leads to the
highest-priority open case left (or the queue), with a flash.

Reading and ruling cases need ``adjudicate`` (adjudicators, leads). Auditors and mentors
may open a case by hand (``/projects/{id}/cases/open``) but not read the queue.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.adjudication import rulings, service
from labelloop.adjudication.models import OPEN, RULED, Ruling
from labelloop.adjudication.service import CaseRow
from labelloop.adjudication.view import CaseView, case_view
from labelloop.audits.population import label_key
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed
from labelloop.guidelines import service as guidelines
from labelloop.identifiers import MAX_ID
from labelloop.projects import service as projects
from labelloop.projects.models import Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.projects.validation import payload_text
from labelloop.store.base import utcnow
from labelloop.web import queries
from labelloop.web.deps import (
    CurrentActor,
    CurrentUser,
    PathId,
    SessionDep,
    TransactionRoute,
    long_read,
)
from labelloop.web.forms import form_number
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: Session key of the one-shot message shown on the next adjudication page.
FLASH = "adj_flash"
#: Cases per queue page.
PAGE = 100
#: The queue's tabs: query value -> case status (``None``: every status).
TABS: dict[str, str | None] = {"open": OPEN, "ruled": RULED, "all": None}
#: Labels the number keys 1-9 pick; the rest are chosen by click.
KEYED = 9
#: Ordinal scales with more steps than this get a number input instead of buttons.
MAX_SCALE_BUTTONS = 21
MAX_RATIONALE = 20_000
MAX_NOTE = 2_000
ItemRef = Annotated[str, Form(max_length=500)]
Note = Annotated[str, Form(max_length=MAX_NOTE)]
Number = Annotated[str, Form(max_length=30)]


async def _form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_form)]


def _adjudicating(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.ADJUDICATE
    )


def may_open(session: Session, actor: Actor, project_id: int) -> bool:
    """Whether the actor may open a case by hand (adjudicate, or review audits)."""
    return queries.may(session, actor, Permission.ADJUDICATE, project_id) or queries.may(
        session, actor, Permission.AUDIT_REVIEW, project_id
    )


def open_cases(session: Session, actor: Actor, project: Project) -> int | None:
    """How many cases wait in the project (``None`` for those who may not read them)."""
    if not queries.may(session, actor, Permission.ADJUDICATE, project.id):
        return None
    return service.count_cases(session, actor=actor, project=project).get(OPEN, 0)


def _opening(session: Session, actor: Actor, project_id: int) -> Project:
    project = queries.visible_project(session, actor=actor, project_id=project_id)
    if not may_open(session, actor, project.id):
        raise PermissionDenied(f"{actor.name} may not open cases in project {project.id}")
    return project


def _flash(request: Request) -> str | None:
    found = request.session.pop(FLASH, None)
    return found if isinstance(found, str) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# -- the queue -------------------------------------------------------------------------


def _queue_row(row: CaseRow) -> dict[str, Any]:
    d = row.deadline
    waiting = d is not None and d.resolved_at is None
    return {
        "id": row.case.id,
        "item": row.item,
        "reason": row.case.reason,
        "priority": row.case.priority,
        "status": row.case.status,
        "level": d.owner if d is not None else None,
        "due_at": d.due_at if waiting and d is not None else None,
        "overdue": waiting and d is not None and d.due_at <= utcnow(),
        "opened_at": row.case.opened_at,
    }


def _queue_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    tab: str = "open",
    offset: int = 0,
    opening: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rows = service.list_cases(
        session, actor=actor, project=project, status=TABS[tab], limit=PAGE + 1, offset=offset
    )
    counts = service.count_cases(session, actor=actor, project=project)
    counts["all"] = sum(counts.values())
    cfg = service.settings_of(session, project)
    return render(
        request,
        "cases.html",
        {
            "project": project,
            "tab": tab,
            "tabs": list(TABS),
            "counts": counts,
            "rows": [_queue_row(r) for r in rows[:PAGE]],
            "offset": offset,
            "more": len(rows) > PAGE,
            "page": PAGE,
            "flash": _flash(request),
            "detected_at": cfg.detected_at,
            "opening": opening or {"item": "", "note": ""},
            "errors": errors or {},
            "can_manage": queries.may(session, actor, Permission.PROJECT_MANAGE, project.id),
        },
        status_code=status_code,
    )


@router.get("/projects/{project_id}/cases")
def case_queue(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    status: Annotated[str, Query(pattern="^(open|ruled|all)$")] = "open",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    project = _adjudicating(session, actor, project_id)
    return _queue_page(request, session, actor, project, tab=status, offset=offset)


@router.post("/projects/{project_id}/cases/detect")
def detect_now(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    """Run detection now (the worker runs it on the project's cadence too)."""
    with long_read(request, session) as reader:
        project = _adjudicating(reader, actor, project_id)
        found = service.detect_apart(reader=reader, session=session, actor=actor, project=project)
    message = f"{_plural(found.opened, 'new case')}"
    if found.by_reason:
        reasons = sorted(found.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        message += " (" + ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in reasons) + ")"
    request.session[FLASH] = f"{message}; detection took {found.seconds:.1f} s."
    return RedirectResponse(f"/projects/{project.id}/cases", status_code=303)


@router.get("/projects/{project_id}/cases/next")
def next_case(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    after: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """The highest-priority open case; with ``after``, the one after it in the queue."""
    project = _adjudicating(session, actor, project_id)
    found = service.next_case(session, actor=actor, project=project, after=after)
    target = None if found is None else found.case.id
    if target is None or target == after:
        request.session[FLASH] = "No other open case: the queue is done."
        return RedirectResponse(f"/projects/{project.id}/cases", status_code=303)
    return RedirectResponse(f"/cases/{target}", status_code=303)


# -- opening a case by hand ------------------------------------------------------------


def _open_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "case_open.html",
        {
            "project": project,
            "v": values,
            "errors": errors or {},
            "flash": _flash(request),
            "can_adjudicate": queries.may(session, actor, Permission.ADJUDICATE, project.id),
        },
        status_code=status_code,
    )


@router.get("/projects/{project_id}/cases/open")
def open_form(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    item: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    project = _opening(session, actor, project_id)
    return _open_page(request, session, actor, project, {"item": item, "note": ""})


@router.post("/projects/{project_id}/cases/open")
def open_by_hand(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    item: ItemRef = "",
    note: Note = "",
    back: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Open a case on an item named by its external id; errors re-render the form that
    was sent (the queue's or the page's own) with the message by its field."""
    project = _opening(session, actor, project_id)
    values = {"item": item, "note": note}
    errors: dict[str, str] = {}
    status = 422
    found: list[Item] = []
    if not item.strip():
        errors["item"] = "name the item (its external id)"
    else:
        found, _ = queries.list_items(
            session,
            actor=actor,
            project=project,
            filters=queries.ItemFilter(external_id=item.strip()),
            limit=1,
        )
        if not found:
            errors["item"] = f"no item {item.strip()!r} in {project.name}"
    if not note.strip():
        errors["note"] = "say what is unclear about the item"
    if not errors:
        try:
            case = service.open_case(
                session, actor=actor, project=project, item=found[0].id, note=note
            )
        except ValidationFailed as exc:
            errors = {v.field: v.message for v in exc.violations}
        except Conflict as exc:
            errors, status = {"item": str(exc)}, 409
        else:
            message = f"Case {case.id} opened on item {found[0].external_id!r}."
            request.session[FLASH] = message
            if queries.may(session, actor, Permission.ADJUDICATE, project.id):
                return RedirectResponse(f"/cases/{case.id}", status_code=303)
            return RedirectResponse(f"/projects/{project.id}/cases/open", status_code=303)
    session.rollback()
    project = _opening(session, actor, project_id)
    if back == "queue" and queries.may(session, actor, Permission.ADJUDICATE, project.id):
        return _queue_page(
            request, session, actor, project, opening=values, errors=errors, status_code=status
        )
    return _open_page(request, session, actor, project, values, errors, status_code=status)


# -- the case page ---------------------------------------------------------------------


def _scale_values(schema: LabelSchema) -> list[int | float] | None:
    sc = schema.scale
    if sc is None or sc.step is None:
        return None
    n = math.floor((sc.max - sc.min) / sc.step + 1e-9) + 1
    if n > MAX_SCALE_BUTTONS:
        return None
    values = [sc.min + i * sc.step for i in range(n)]
    return [int(v) if float(v).is_integer() else round(v, 10) for v in values]


def _choices(schema: LabelSchema, view: CaseView) -> list[dict[str, Any]]:
    """The labels the ruling may choose, with their number key, their votes and whether
    the model or the consensus chose them."""
    votes = {g.label: g.count for g in view.groups}
    model = view.prediction.label if view.prediction is not None else None
    consensus = view.row.case.consensus
    scale = _scale_values(schema) if schema.task_type == "ordinal" and schema.scale else None
    names: list[tuple[str, str | None]]
    if scale is not None:
        names = [(str(v), None) for v in scale]
    else:
        names = [(label.name, label.description) for label in schema.labels]
    return [
        {
            "name": name,
            "description": description,
            "key": str(i + 1) if i < KEYED else "",
            "votes": votes.get(name, 0),
            "model": name == model,
            "consensus": name == consensus,
        }
        for i, (name, description) in enumerate(names)
    ]


def _control(schema: LabelSchema) -> str:
    """How the label is chosen: ``radio``, ``checkbox``, ``number`` or ``json``/``text``."""
    tt = schema.task_type
    if tt == "multi":
        return "checkbox"
    if tt == "single" or (tt == "ordinal" and (not schema.scale or _scale_values(schema))):
        return "radio"
    if tt == "ordinal":
        return "number"
    return "json" if tt == "spans" else "text"


def _payload_rows(payload: dict[str, Any], shown: str | None) -> list[tuple[str, str]]:
    rows = []
    for key, v in payload.items():
        if isinstance(v, str) and v == shown:
            continue
        rows.append((key, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
    return rows


def _rules(session: Session, actor: Actor, project: Project, view: CaseView) -> dict[str, Any]:
    """The current guideline's rules: those that concern the labels in play (with their
    text and exemplars) and every rule for the references, the concerning ones first."""
    version = guidelines.current(session, project.id)
    if version is None:
        return {"concerning": [], "all": [], "items": {}}
    doc = guidelines.document(session, version)
    concerning_keys = [r.key for r in view.rules]
    by_key = {r.id: r for r in doc.rules}
    concerning = [by_key[k] for k in concerning_keys if k in by_key]
    rest = [r for r in doc.rules if r.id not in set(concerning_keys)]
    shown = doc.model_copy(update={"rules": tuple(concerning)})
    items = guidelines.exemplar_texts(session, actor=actor, project=project, doc=shown)
    return {"concerning": concerning, "all": [*concerning, *rest], "items": items}


def _ruling_view(ruling: Ruling) -> dict[str, Any]:
    return {"ruling": ruling, "label": label_key(ruling.value)}


def _case_page(
    request: Request,
    session: Session,
    actor: Actor,
    case_id: int,
    *,
    errors: dict[str, str] | None = None,
    entered: dict[str, Any] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    view = case_view(session, actor=actor, case_id=case_id)
    project = view.project
    schema = projects.schema_of(project)
    text = payload_text(view.item.payload)
    cfg = service.settings_of(session, project)
    d = view.row.deadline
    waiting = d is not None and d.resolved_at is None
    return render(
        request,
        "case.html",
        {
            "project": project,
            "view": view,
            "case": view.row.case,
            "deadline": d if waiting else None,
            "overdue": waiting and d is not None and d.due_at <= utcnow(),
            "schema": schema,
            "text": text,
            "payload_rows": _payload_rows(view.item.payload or {}, text),
            "segments": view.item.segments or {},
            "choices": _choices(schema, view),
            "control": _control(schema),
            "guide": _rules(session, actor, project, view),
            "rationale_min": cfg.rationale_min,
            "max_rationale": MAX_RATIONALE,
            "ruled": _ruling_view(view.ruling) if view.ruling is not None else None,
            "errors": errors or {},
            "entered": entered or {},
            "notice": notice,
            "flash": _flash(request),
            "keyed": KEYED,
        },
        status_code=status_code,
    )


@router.get("/cases/{case_id}")
def case_page(
    request: Request,
    case_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    return _case_page(request, session, actor, case_id)


def _label(schema: LabelSchema, values: list[str]) -> Any:
    """The chosen label as the schema wants it (``None`` when nothing was chosen)."""
    tt = schema.task_type
    if tt == "multi":
        return values
    raw = values[0] if values else None
    if raw is None or (tt != "text" and not raw.strip()):
        return None
    if tt == "spans":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw  # the validator names it
    if tt == "ordinal" and schema.scale is not None:
        return form_number(raw.strip())
    return raw


def _strings(form: FormData, key: str) -> list[str]:
    return [v for v in form.getlist(key) if isinstance(v, str)]


def _one(form: FormData, key: str) -> str:
    v = form.get(key)
    return v if isinstance(v, str) else ""


def _entered(form: FormData) -> dict[str, Any]:
    """What the adjudicator typed and chose, to fill the form again after a refusal."""
    return {
        "label": _strings(form, "label"),
        "rationale": _one(form, "rationale"),
        "rules": _strings(form, "rules"),
        "gold": form.get("gold") == "1",
        "exemplar": _one(form, "exemplar"),
        "amend": _one(form, "amend"),
        "amend_rule": _one(form, "amend_rule"),
        "notable": form.get("notable") == "1",
    }


#: Form field of a violation's field path (``rules[2]`` -> ``rules``).
_FIELDS = ("label", "rationale", "rules", "exemplar", "amend")


def _form_field(path: str) -> str:
    head = path.split("[", 1)[0].split(".", 1)[0]
    return head if head in _FIELDS else "label"


def _ruling_input(schema: LabelSchema, entered: dict[str, Any]) -> tuple[Any, rulings.RulingInput]:
    label = _label(schema, entered["label"])
    refs = list(dict.fromkeys(r for r in entered["rules"] if r))
    amend = entered["amend"] if entered["amend"].strip() else None
    if amend is not None and entered["amend_rule"]:
        # the service amends the first rule referenced: put the chosen one first
        refs = [entered["amend_rule"], *(r for r in refs if r != entered["amend_rule"])]
    return label, rulings.RulingInput(
        label=label,
        rationale=entered["rationale"],
        rules=tuple(refs),
        gold=entered["gold"],
        exemplar=entered["exemplar"] or None,
        amend=amend,
        notable=entered["notable"],
    )


def _messages(exc: ValidationFailed, label: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    for v in exc.violations:
        field = _form_field(v.field)
        message = v.message
        if field == "label" and label is None:
            message = "choose a label"
        elif field == "amend" and v.code == "no_rule":
            message = "choose the rule to amend (or tick it under Rules)"
        where = f"{v.field}: " if v.field not in (field, "label") else ""
        errors.setdefault(field, f"{where}{message}")
    return errors


@router.post("/cases/{case_id}/rule")
def rule_case(
    request: Request,
    case_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    row = service.get_case(session, actor=actor, case_id=case_id)
    project = queries.visible_project(session, actor=actor, project_id=row.case.project_id)
    entered = _entered(form)
    label, given = _ruling_input(projects.schema_of(project), entered)

    def refused(errors: dict[str, str]) -> Response:
        return _case_page(
            request,
            session,
            actor,
            case_id,
            errors=errors,
            entered=entered,
            notice="Not ruled: fix the fields marked below and submit again.",
            status_code=422,
        )

    too_long = {
        name: f"at most {MAX_RATIONALE} characters"
        for name in ("rationale", "amend")
        if len(entered[name]) > MAX_RATIONALE
    }
    if too_long:
        return refused(too_long)
    try:
        ruling = rulings.rule(session, actor=actor, case_id=case_id, given=given)
    except ValidationFailed as exc:
        session.rollback()  # nothing of a refused ruling is kept
        return refused(_messages(exc, label))
    except Conflict as exc:
        session.rollback()
        return _case_page(request, session, actor, case_id, notice=str(exc), status_code=409)
    request.session[FLASH] = f"Case {case_id} ruled: {label_key(ruling.value)}."
    found = service.next_case(session, actor=actor, project=project, after=case_id)
    if found is None:
        return RedirectResponse(f"/projects/{project.id}/cases", status_code=303)
    return RedirectResponse(f"/cases/{found.case.id}", status_code=303)


# -- settings --------------------------------------------------------------------------

#: (field, title, whole number?, help) of the settings form, in order.
SETTINGS: tuple[tuple[str, str, bool, str], ...] = (
    (
        "posterior_below",
        "Posterior below",
        False,
        "open a case when the consensus label's posterior is below this (0–1)",
    ),
    (
        "spread_min_votes",
        "Spread: minimum votes",
        True,
        "items with at least this many votes are checked for spread (2–1000)",
    ),
    (
        "spread_max_share",
        "Spread: largest share",
        False,
        "open a case when the most chosen label has at most this share of the votes (0–1)",
    ),
    (
        "model_consensus",
        "Model vs. consensus",
        False,
        "the model's dissent counts against a consensus at least this sure (0–1)",
    ),
    (
        "model_confidence",
        "Model confidence",
        False,
        "… and when the model is at least this sure of its own label (0–1)",
    ),
    (
        "rationale_min",
        "Rationale minimum",
        True,
        "characters a ruling's rationale needs at least (1–2000)",
    ),
    (
        "sla_hours",
        "SLA (hours)",
        False,
        "hours each level of the escalation path (adjudicator → lead → owner) has",
    ),
    (
        "detect_minutes",
        "Detect every (minutes)",
        True,
        "how often the worker runs detection (1–44640)",
    ),
)


def _settings_page(
    request: Request,
    project: Project,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "adjudication_settings.html",
        {
            "project": project,
            "fields": SETTINGS,
            "v": values,
            "errors": errors or {},
            "notice": notice,
        },
        status_code=status_code,
    )


def _manage(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_MANAGE
    )


@router.get("/projects/{project_id}/adjudication/settings")
def settings_form(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    saved: bool = False,
) -> Response:
    project = _manage(session, actor, project_id)
    values = service.settings_json(service.settings_of(session, project))
    return _settings_page(request, project, values, notice="Saved." if saved else None)


def _parse_number(raw: str, whole: bool) -> int | float:
    text = raw.strip()
    if not text:
        raise ValueError("required")
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a whole number" if whole else "a number") from None
    if not math.isfinite(value):
        raise ValueError("a finite number")
    if whole:
        if not value.is_integer():
            raise ValueError("a whole number")
        return int(value)
    return value


@router.post("/projects/{project_id}/adjudication/settings")
def save_settings(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    posterior_below: Number = "",
    spread_min_votes: Number = "",
    spread_max_share: Number = "",
    model_consensus: Number = "",
    model_confidence: Number = "",
    rationale_min: Number = "",
    sla_hours: Number = "",
    detect_minutes: Number = "",
    anonymous: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    project = _manage(session, actor, project_id)
    raw = {
        "posterior_below": posterior_below,
        "spread_min_votes": spread_min_votes,
        "spread_max_share": spread_max_share,
        "model_consensus": model_consensus,
        "model_confidence": model_confidence,
        "rationale_min": rationale_min,
        "sla_hours": sla_hours,
        "detect_minutes": detect_minutes,
    }
    changes: dict[str, Any] = {"anonymous": anonymous == "1"}
    errors: dict[str, str] = {}
    for name, _title, whole, _help in SETTINGS:
        try:
            changes[name] = _parse_number(raw[name], whole)
        except ValueError as exc:
            errors[name] = str(exc)
    values: dict[str, Any] = {**raw, "anonymous": anonymous == "1"}
    if not errors:
        try:
            service.update_settings(session, actor=actor, project=project, changes=changes)
        except ValidationFailed as exc:
            errors = {v.field: v.message for v in exc.violations}
    if errors:
        session.rollback()
        project = _manage(session, actor, project_id)
        return _settings_page(request, project, values, errors, status_code=422)
    return RedirectResponse(
        f"/projects/{project.id}/adjudication/settings?saved=1", status_code=303
    )
