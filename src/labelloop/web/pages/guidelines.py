"""Guideline pages: read a version (with search), compare versions (with, for leads,
the change's re-check list and its send-to-review form), acknowledge a new one, and,
for leads, edit the draft rule by rule and publish it.

The rule form takes the rule's Markdown text in a plain text area and its exemplars as
a YAML list (``- {item: ticket-0007, kind: positive, label: refund, why: ...}``);
invalid input re-renders the form with a message per field (422) and saves nothing.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Permission
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.guidelines import recheck, service
from labelloop.guidelines.diff import GuidelineDiff
from labelloop.guidelines.schemas import MAX_TEXT, VERSION, GuidelineDoc, RuleDoc, version_order
from labelloop.projects.models import Project
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.pages.amendments import amendment_rows
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

Text = Annotated[str, Form(max_length=MAX_TEXT)]
Short = Annotated[str, Form(max_length=500)]


def _read(session: Session, actor: Actor, project_id: PathId) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )


def _edit(session: Session, actor: Actor, project_id: PathId) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.GUIDELINE_EDIT
    )


def _matches(rule: RuleDoc, q: str) -> bool:
    exemplars = [f"{e.item} {e.label} {e.why}" for e in rule.exemplars]
    hay = " ".join([rule.id, rule.title, rule.text, *rule.labels, *exemplars])
    return all(word in hay.casefold() for word in q.casefold().split())


@router.get("/projects/{project_id}/guidelines")
def guideline_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    version: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    project = _read(session, actor, project_id)
    if version == "draft":
        return RedirectResponse(f"/projects/{project.id}/guidelines/draft", status_code=303)
    history = service.history(session, actor=actor, project=project)
    can_edit = queries.may(session, actor, Permission.GUIDELINE_EDIT, project.id)
    shown = doc = None
    if history:
        shown = service.get_version(session, actor=actor, project=project, number=version)
        doc = service.document(session, shown)
    rules = [r for r in doc.rules if _matches(r, q)] if doc else []
    return render(
        request,
        "guidelines.html",
        {
            "project": project,
            "history": history,
            "shown": shown,
            "doc": doc,
            "rules": rules,
            "q": q[:200],
            "items": service.exemplar_texts(session, actor=actor, project=project, doc=doc)
            if doc
            else {},
            "acknowledged": {v.id: service.acknowledged_by(session, v) for v in history},
            "pending": service.pending(session, actor=actor, project=project),
            "can_edit": can_edit,
            "can_label": queries.may(session, actor, Permission.ANNOTATE, project.id),
        },
    )


@router.get("/projects/{project_id}/guidelines/diff")
def guideline_diff_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    old: Annotated[str | None, Query(alias="from", max_length=20)] = None,
    new: Annotated[str | None, Query(alias="to", max_length=20)] = None,
) -> Response:
    project = _read(session, actor, project_id)
    changes = service.diff(session, actor=actor, project=project, old=old, new=new)
    return _diff_page(request, session, actor, project, changes)


def _recheck_of(
    session: Session, actor: Actor, project: Project, changes: GuidelineDiff
) -> recheck.Recheck | None:
    """The re-check counts of a change between published versions, for those who may
    read annotations' labels (None otherwise)."""
    published = changes.new is not None and VERSION.fullmatch(changes.new)
    if not published or not queries.may(session, actor, Permission.DATA_EXPORT, project.id):
        return None
    if changes.old is not None and version_order(changes.old) >= version_order(changes.new):
        return None
    return recheck.recheck(
        session,
        actor=actor,
        project=project,
        from_version=changes.old,
        to_version=changes.new,
        limit=0,
    )


def _diff_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    changes: GuidelineDiff,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "guideline_diff.html",
        {
            "project": project,
            "changes": changes,
            "recheck": _recheck_of(session, actor, project, changes),
            "can_send": queries.may(session, actor, Permission.AUDIT_MANAGE, project.id),
            "default_sample": recheck.DEFAULT_SAMPLE,
            "max_sample": recheck.MAX_SAMPLE,
            "error": error,
        },
        status_code=status_code,
    )


@router.post("/projects/{project_id}/guidelines/recheck")
def send_recheck(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    to: Annotated[str, Form(max_length=20)],
    old: Annotated[str, Form(alias="from", max_length=20)] = "",
    rule: Annotated[str, Form(max_length=20)] = "",
    sample: Annotated[int, Form(ge=1, le=recheck.MAX_SAMPLE)] = recheck.DEFAULT_SAMPLE,
) -> Response:
    """Send the change's re-check list to review, and show the audit run."""
    project = queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.AUDIT_MANAGE
    )
    try:
        sent = recheck.send(
            session,
            actor=actor,
            project=project,
            rule=rule or None,
            from_version=old or None,
            to_version=to,
            sample=sample,
        )
    except ValidationFailed as exc:
        session.rollback()
        project = _read(session, actor, project_id)
        changes = service.diff(session, actor=actor, project=project, old=old or None, new=to)
        message = f"not sent: {exc}"
        return _diff_page(request, session, actor, project, changes, error=message, status_code=422)
    return RedirectResponse(f"/audits/runs/{sent.run.id}", status_code=303)


@router.post("/projects/{project_id}/guidelines/acknowledge")
def acknowledge(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    version: Annotated[str, Form(max_length=20)],
    next: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    project = _read(session, actor, project_id)
    service.acknowledge(session, actor=actor, project=project, number=version)
    target = (
        f"/projects/{project.id}/work" if next == "work" else f"/projects/{project.id}/guidelines"
    )
    return RedirectResponse(target, status_code=303)


@router.get("/projects/{project_id}/guidelines/read")
def read_new_version(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    """What changed for the user since the version they last acknowledged; the
    workbench sends them here before their next item."""
    project = _read(session, actor, project_id)
    found = service.pending(session, actor=actor, project=project)
    if found is None:
        return RedirectResponse(f"/projects/{project.id}/work", status_code=303)
    return render(request, "guideline_ack.html", {"project": project, "pending": found})


# -- the lead's editor ------------------------------------------------------------------


def _draft_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    *,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    note: str = "",
    status_code: int = 200,
) -> Response:
    doc = service.draft_document(session, actor=actor, project=project)
    has_draft = _has_draft(session, actor, project)
    latest = service.current(session, project.id)
    changes = None
    if has_draft and latest is not None:
        changes = service.diff(
            session, actor=actor, project=project, old=latest.number, new="draft"
        )
    return render(
        request,
        "guideline_draft.html",
        {
            "project": project,
            "doc": doc,
            "has_draft": has_draft,
            "latest": latest,
            "changes": changes,
            "errors": errors or {},
            "notice": notice,
            "note": note,
            "amendments": amendment_rows(session, actor, project),
        },
        status_code=status_code,
    )


def _has_draft(session: Session, actor: Actor, project: Project) -> bool:
    try:
        service.get_version(session, actor=actor, project=project, number="draft")
    except NotFound:
        return False
    return True


@router.get("/projects/{project_id}/guidelines/draft")
def draft_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    saved: bool = False,
) -> Response:
    project = _edit(session, actor, project_id)
    return _draft_page(request, session, actor, project, notice="Saved." if saved else None)


@router.post("/projects/{project_id}/guidelines/draft")
def save_header(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    title: Short = "",
    preamble: Text = "",
) -> Response:
    project = _edit(session, actor, project_id)
    doc = service.draft_document(session, actor=actor, project=project)
    try:
        new = GuidelineDoc(title=title, preamble=preamble, rules=doc.rules)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): e["msg"] for e in exc.errors() if e["loc"]}
        return _draft_page(request, session, actor, project, errors=errors, status_code=422)
    service.save_draft(session, actor=actor, project=project, doc=new, source="web")
    return RedirectResponse(f"/projects/{project.id}/guidelines/draft?saved=1", status_code=303)


@router.post("/projects/{project_id}/guidelines/publish")
def publish(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    note: Text = "",
    major: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    project = _edit(session, actor, project_id)
    try:
        v = service.publish(session, actor=actor, project=project, note=note, major=major == "on")
    except (ValidationFailed, Conflict) as exc:
        session.rollback()  # nothing of a refused publish is kept
        errors = {"note": str(exc)}
        status = 409 if isinstance(exc, Conflict) else 422
        project = _edit(session, actor, project_id)
        return _draft_page(
            request, session, actor, project, errors=errors, note=note, status_code=status
        )
    return RedirectResponse(
        f"/projects/{project.id}/guidelines?version={quote(v.number)}", status_code=303
    )


@router.post("/projects/{project_id}/guidelines/draft/discard")
def discard(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _edit(session, actor, project_id)
    service.discard_draft(session, actor=actor, project=project)
    return RedirectResponse(f"/projects/{project.id}/guidelines/draft", status_code=303)


def _rule_values(rule: RuleDoc | None) -> dict[str, str]:
    if rule is None:
        return {"id": "", "title": "", "labels": "", "text": "", "exemplars": ""}
    exemplars = [e.model_dump(mode="json") for e in rule.exemplars]
    return {
        "id": rule.id,
        "title": rule.title,
        "labels": ", ".join(rule.labels),
        "text": rule.text,
        "exemplars": yaml.safe_dump(exemplars, sort_keys=False, allow_unicode=True)
        if exemplars
        else "",
    }


def _rule_page(
    request: Request,
    project: Project,
    key: str | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "guideline_rule.html",
        {"project": project, "key": key, "v": values, "errors": errors or {}},
        status_code=status_code,
    )


@router.get("/projects/{project_id}/guidelines/draft/rules/{key}")
def rule_form(
    request: Request,
    project_id: PathId,
    key: Annotated[str, Path(max_length=20)],
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _edit(session, actor, project_id)
    doc = service.draft_document(session, actor=actor, project=project)
    if key == "new":
        return _rule_page(request, project, None, _rule_values(None))
    rule = next((r for r in doc.rules if r.id == key), None)
    if rule is None:
        raise NotFound(f"the draft has no rule {key}")
    return _rule_page(request, project, key, _rule_values(rule))


def _parse_rule(values: dict[str, str]) -> RuleDoc:
    """The form's fields as a rule; errors keyed by form field (ValueError)."""
    try:
        exemplars = yaml.safe_load(values["exemplars"]) if values["exemplars"].strip() else []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _FormError({"exemplars": f"not valid YAML{where}"}) from None
    if not isinstance(exemplars, list):
        raise _FormError({"exemplars": "a YAML list of {item, kind, label, why}"})
    labels = [part.strip() for part in values["labels"].split(",") if part.strip()]
    try:
        return RuleDoc.model_validate(
            {
                "id": values["id"].strip(),
                "title": values["title"],
                "text": values["text"].replace("\r\n", "\n"),
                "labels": labels,
                "exemplars": exemplars,
            }
        )
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            field = loc[0] if loc else "id"
            where = f"{'.'.join(loc[1:])}: " if len(loc) > 1 else ""
            errors.setdefault(field, f"{where}{e['msg']}")
        raise _FormError(errors) from None


class _FormError(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid form")
        self.errors = errors


@router.post("/projects/{project_id}/guidelines/draft/rules/{key}")
def save_rule(
    request: Request,
    project_id: PathId,
    key: Annotated[str, Path(max_length=20)],
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    id: Annotated[str, Form(max_length=40)] = "",
    title: Short = "",
    labels: Short = "",
    text: Text = "",
    exemplars: Text = "",
    delete: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    project = _edit(session, actor, project_id)
    replaces = None if key == "new" else key
    if delete and replaces is not None:
        service.delete_rule(session, actor=actor, project=project, key=replaces)
        return RedirectResponse(f"/projects/{project.id}/guidelines/draft?saved=1", status_code=303)
    values = {"id": id, "title": title, "labels": labels, "text": text, "exemplars": exemplars}
    try:
        rule = _parse_rule(values)
        service.save_rule(session, actor=actor, project=project, rule=rule, replaces=replaces)
    except _FormError as exc:
        return _rule_page(request, project, replaces, values, exc.errors, status_code=422)
    except ValidationFailed as exc:
        errors = {_form_field(v.field): f"{v.field}: {v.message}" for v in exc.violations}
        return _rule_page(request, project, replaces, values, errors, status_code=422)
    except Conflict as exc:
        return _rule_page(request, project, replaces, values, {"id": str(exc)}, status_code=422)
    return RedirectResponse(f"/projects/{project.id}/guidelines/draft?saved=1", status_code=303)


def _form_field(path: str) -> str:
    """``rules[3].exemplars[0].item`` -> ``exemplars`` (the form field that holds it)."""
    for name in ("exemplars", "labels", "title", "text", "id"):
        if f".{name}" in path:
            return name
    return "id"


def guideline_panel(session: Session, actor: Actor, project: Project) -> dict[str, Any]:
    """The current version's rules, for the workbench's guideline panel."""
    try:
        latest = service.get_version(session, actor=actor, project=project)
    except NotFound:
        return {"version": None, "rules": ()}
    return {"version": latest.number, "rules": service.document(session, latest).rules}
