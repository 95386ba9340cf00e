"""Feedback pages: one note (``/feedback/{id}``, where notifications link) for its
recipient or a lead, with its items side by side, rule references linked into the
guideline, the reply thread, the recipient's acknowledgement (**I agree** / **I
disagree**, which needs a reason and opens an adjudication case) and the lead's
**Resolve**; the project's notes page (``/projects/{id}/feedback``: everyone's own
notes, and for leads the drafts to review and send in bulk, the notes sent, and the
form to write one); and the draft editor.

The services decide (:mod:`labelloop.feedback.service`, :mod:`~labelloop.feedback.lifecycle`):
a refused form comes back with status 422, a message by each field and what was typed,
and nothing is written; a note that changed meanwhile (acknowledged twice, sent, resolved)
answers 409 with the page as it is now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.roles import Permission
from labelloop.audits.population import label_key
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.feedback import lifecycle, quality, service
from labelloop.feedback import templates as tpl
from labelloop.feedback.models import DRAFT, SENT, FeedbackNote
from labelloop.guidelines import service as guidelines
from labelloop.identifiers import MAX_ID, problem
from labelloop.projects import service as projects
from labelloop.projects.models import Project
from labelloop.projects.validation import Violation, payload_text
from labelloop.web import queries
from labelloop.web.deps import CurrentActor, CurrentUser, PathId, SessionDep, TransactionRoute
from labelloop.web.templating import render

router = APIRouter(route_class=TransactionRoute)

#: Session key of the one-shot message shown on the next feedback page.
FLASH = "fb_flash"
#: The API's limits (:mod:`labelloop.web.api.feedback`), checked with a message by the field.
MAX_MESSAGE = 10_000
MAX_FIELD = 5_000
MAX_REFS = 50
MAX_REF = 20
MAX_ITEMS = 200
#: Drafts and sent notes listed on the notes page at most.
LIST_LIMIT = 500
#: The template fields besides the message, with their titles and what they ask for.
FIELD_TITLES: dict[str, tuple[str, str]] = {
    "what_to_change": ("What to change", "what to do differently from now on"),
    "what_was_right": ("What was right", "what the work got right, and why it matters"),
    "context": ("Context", "the reading the guideline takes, the reviewers' comments"),
    "indicator": ("Indicator", "the pattern that suggests a lean"),
}
TEXT_FIELDS = tuple(FIELD_TITLES)
#: Where a reference label came from, in words.
SOURCES = {
    "audit": "audit review",
    "gold": "gold label",
    "ruling": "adjudication ruling",
    "model": "model",
    "manual": "not given",
}
#: The form fields a service violation's field path belongs to.
_FORM_FIELDS = ("recipient", "template", "severity", "message", "rule_refs", "items", "reason")

Long = Annotated[str, Form(max_length=4 * MAX_MESSAGE)]
Short = Annotated[str, Form(max_length=200)]


async def _form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_form)]


def _flash(request: Request) -> str | None:
    found = request.session.pop(FLASH, None)
    return found if isinstance(found, str) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _form_field(path: str) -> str:
    head = path.split("[", 1)[0].split(".", 1)[0]
    return head if head in (*_FORM_FIELDS, *TEXT_FIELDS) else "general"


def messages(violations: Iterable[Violation]) -> dict[str, str]:
    """A message per form field from a service's violations (the first for each;
    ``general`` for those of no field on the form)."""
    out: dict[str, str] = {}
    for v in violations:
        name = _form_field(v.field)
        where = f"{v.field}: " if v.field != name else ""
        out.setdefault(name, f"{where}{v.message}")
    return out


# -- what notes show -------------------------------------------------------------------


def rule_links(session: Session, project: Project, refs: Sequence[str]) -> list[dict[str, Any]]:
    """Each rule reference with its title and its place in the current guideline
    (``/projects/{id}/guidelines#rule-R4``; a search for it when the current version
    has no such rule; no link without a guideline)."""
    version = guidelines.current(session, project.id)
    titles = {} if version is None else {r.key: r.title for r in version.rules}
    base = f"/projects/{project.id}/guidelines"
    out = []
    for key in refs:
        href = None
        if key in titles:
            href = f"{base}#rule-{quote(key, safe='')}"
        elif version is not None:
            href = f"{base}?q={quote(key, safe='')}"
        out.append({"key": key, "title": titles.get(key), "href": href})
    return out


def _guideline_rules(session: Session, project: Project) -> list[Any]:
    """The current guideline's rules (for the rule field's hint), or none."""
    version = guidelines.current(session, project.id)
    return [] if version is None else list(version.rules)


def _names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """User id -> display name (else username), for the notes already read."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(User.id, User.username, User.display_name).where(User.id.in_(wanted))
    ).tuples()
    return {uid: display or name for uid, name, display in rows}


def _label(value: Any) -> str | None:
    return None if value is None else label_key(value)


def _items(session: Session, project: Project, note: FeedbackNote) -> list[dict[str, Any]]:
    out = []
    for i in note.items:
        item = projects.get_item(session, project, i.item_id)
        out.append(
            {
                "external_id": item.external_id,
                "text": payload_text(item.payload),
                "given": _label(i.given),
                "reference": _label(i.reference),
                "source": SOURCES.get(i.reference_source, i.reference_source),
                "differs": i.reference is not None and _label(i.given) != _label(i.reference),
            }
        )
    return out


def _title(catalogue: dict[str, tpl.Template], name: str) -> str:
    return catalogue[name].title if name in catalogue else name


def _values(note: FeedbackNote) -> dict[str, Any]:
    """A note's editable values as the forms show them."""
    return {
        "template": note.template,
        "severity": note.severity,
        "message": note.message,
        "rule_refs": ", ".join(note.rule_refs),
        **{f: str((note.fields or {}).get(f) or "") for f in TEXT_FIELDS},
    }


def needs(catalogue: dict[str, tpl.Template], note: FeedbackNote) -> list[str]:
    """What a draft still lacks before it can be sent (its template's empty fields)."""
    template = catalogue.get(note.template)
    if template is None:
        return ["a known template"]
    values = {
        **(note.fields or {}),
        "message": note.message,
        "rule_refs": note.rule_refs,
    }
    return [v.field.replace("_", " ") for v in tpl.missing(template, values)]


# -- one note --------------------------------------------------------------------------


def _note_page(
    request: Request,
    session: Session,
    actor: Actor,
    note_id: int,
    *,
    errors: dict[str, str] | None = None,
    entered: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    note = service.get_note(session, actor=actor, note_id=note_id)
    project = queries.visible_project(session, actor=actor, project_id=note.project_id)
    catalogue = service.catalogue(session, project)
    template = catalogue.get(note.template)
    can_send = queries.may(session, actor, Permission.FEEDBACK_SEND, project.id)
    names = _names(session, [note.recipient_id])
    case_href = None
    if note.case_id is not None and queries.may(session, actor, Permission.ADJUDICATE, project.id):
        case_href = f"/cases/{note.case_id}"
    return render(
        request,
        "feedback_note.html",
        {
            "project": project,
            "note": note,
            "title": _title(catalogue, note.template),
            "template": template,
            "fields": [
                (FIELD_TITLES[f][0], (note.fields or {}).get(f))
                for f in TEXT_FIELDS
                if (note.fields or {}).get(f)
            ],
            "rules": rule_links(session, project, note.rule_refs),
            "items": _items(session, project, note),
            "replies": service.replies_json(session, note),
            "recipient": names.get(note.recipient_id, f"user {note.recipient_id}"),
            "is_recipient": note.recipient_id == actor.user_id,
            "can_send": can_send,
            "case_href": case_href,
            "errors": errors or {},
            "entered": entered or {},
            "notice": notice,
            "flash": _flash(request),
            "max_field": MAX_FIELD,
        },
        status_code=status_code,
    )


@router.get("/feedback/{note_id}")
def note_page(
    request: Request,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    return _note_page(request, session, actor, note_id)


@router.post("/feedback/{note_id}/acknowledge")
def acknowledge_note(
    request: Request,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    response: Short = "",
    reason: Long = "",
) -> Response:
    """**I agree**, or **I disagree** with a reason (which opens an adjudication case on
    the note's first item)."""
    service.get_note(session, actor=actor, note_id=note_id)  # 404 / 403 first
    entered = {"reason": reason}
    errors: dict[str, str] = {}
    if response not in ("agree", "disagree"):
        errors["response"] = "choose “I agree” or “I disagree”"
    elif len(reason) > MAX_FIELD:
        errors["reason"] = f"at most {MAX_FIELD} characters (this is {len(reason)})"
    if not errors:
        try:
            note = lifecycle.acknowledge(
                session, actor=actor, note_id=note_id, agree=response == "agree", reason=reason
            )
        except ValidationFailed as exc:
            errors = messages(exc.violations)
        except Conflict as exc:
            session.rollback()
            return _note_page(request, session, actor, note_id, notice=str(exc), status_code=409)
    if errors:
        session.rollback()  # nothing of a refused acknowledgement is kept
        return _note_page(
            request,
            session,
            actor,
            note_id,
            errors=errors,
            entered=entered,
            notice="Not acknowledged: see the field marked below.",
            status_code=422,
        )
    if note.response == "agree":
        message = "Thank you: you agreed with this note."
    elif note.case_id is not None:
        message = (
            f"You disagreed: adjudication case {note.case_id} is open on the item, and an "
            "adjudicator will rule it. This note is resolved when they do."
        )
    else:
        message = "You disagreed: your reason is recorded for the lead."
    request.session[FLASH] = message
    return RedirectResponse(f"/feedback/{note_id}", status_code=303)


@router.post("/feedback/{note_id}/reply")
def reply_to_note(
    request: Request,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    body: Long = "",
) -> Response:
    service.get_note(session, actor=actor, note_id=note_id)
    errors: dict[str, str] = {}
    if len(body) > MAX_FIELD:
        errors["body"] = f"at most {MAX_FIELD} characters (this is {len(body)})"
    else:
        try:
            lifecycle.reply(session, actor=actor, note_id=note_id, body=body)
        except ValidationFailed as exc:
            errors = {"body": exc.violations[0].message if exc.violations else str(exc)}
    if errors:
        session.rollback()
        return _note_page(
            request,
            session,
            actor,
            note_id,
            errors=errors,
            entered={"body": body},
            notice="Not posted: see the field marked below.",
            status_code=422,
        )
    request.session[FLASH] = "Your reply is posted."
    return RedirectResponse(f"/feedback/{note_id}#replies", status_code=303)


@router.post("/feedback/{note_id}/resolve")
def resolve_note(
    request: Request,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    try:
        lifecycle.resolve(session, actor=actor, note_id=note_id)
    except Conflict as exc:
        session.rollback()
        return _note_page(request, session, actor, note_id, notice=str(exc), status_code=409)
    request.session[FLASH] = f"Note {note_id} is resolved."
    return RedirectResponse(f"/feedback/{note_id}", status_code=303)


# -- the notes page --------------------------------------------------------------------


@dataclass
class NotesState:
    """What the notes page shows besides the notes: the write form's values and errors,
    the send form's outcome."""

    writing: dict[str, str] = field(default_factory=dict)
    write_errors: dict[str, str] = field(default_factory=dict)
    send_error: str | None = None
    refused: dict[int, list[str]] = field(default_factory=dict)
    selected: set[int] = field(default_factory=set)
    notice: str | None = None


def _note_row(
    note: FeedbackNote, catalogue: dict[str, tpl.Template], names: dict[int, str]
) -> dict[str, Any]:
    return {
        "id": note.id,
        "title": _title(catalogue, note.template),
        "template": note.template,
        "severity": note.severity,
        "status": note.status,
        "message": note.message,
        "recipient": names.get(note.recipient_id, f"user {note.recipient_id}"),
        "n_items": len(note.items),
        "source": note.source,
        "source_id": note.source_id,
        "sent_at": note.sent_at,
        "due_at": note.due_at,
        "response": note.response,
        "needs": needs(catalogue, note) if note.status == DRAFT else [],
    }


def _blank_note() -> dict[str, str]:
    return {
        "recipient": "",
        "template": "",
        "severity": "medium",
        "message": "",
        "rule_refs": "",
        "items": "",
        **dict.fromkeys(TEXT_FIELDS, ""),
    }


def _notes_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    state: NotesState | None = None,
    *,
    status_code: int = 200,
) -> Response:
    state = state or NotesState()
    catalogue = service.catalogue(session, project)
    mine = service.my_notes(session, actor=actor, project=project)
    can_send = queries.may(session, actor, Permission.FEEDBACK_SEND, project.id)
    drafts: list[FeedbackNote] = []
    sent: list[FeedbackNote] = []
    if can_send:
        drafts = service.list_notes(
            session, actor=actor, project=project, status=DRAFT, limit=LIST_LIMIT
        )
        sent = [
            n
            for n in service.list_notes(session, actor=actor, project=project, limit=LIST_LIMIT)
            if n.status != DRAFT
        ]
    names = _names(session, [n.recipient_id for n in (*drafts, *sent)])
    listed = {n.id for n in drafts}
    return render(
        request,
        "feedback_notes.html",
        {
            "project": project,
            "mine": [_note_row(n, catalogue, names) for n in mine],
            "unread": sum(n.status == SENT for n in mine),
            "can_send": can_send,
            "can_label": queries.may(session, actor, Permission.ANNOTATE, project.id),
            "drafts": [_note_row(n, catalogue, names) for n in drafts],
            "sent": [_note_row(n, catalogue, names) for n in sent],
            "limit": LIST_LIMIT,
            "templates": list(catalogue.values()),
            "severities": service.SEVERITIES,
            "recipients": (
                quality.labelers(session, actor=actor, project=project) if can_send else []
            ),
            "field_titles": FIELD_TITLES,
            "guideline_rules": _guideline_rules(session, project) if can_send else [],
            "writing": state.writing or _blank_note(),
            "write_errors": state.write_errors,
            "send_error": state.send_error,
            "refused": state.refused,
            # refusals of notes that are no drafts (any more): sent meanwhile, say
            "refused_elsewhere": {k: v for k, v in state.refused.items() if k not in listed},
            "selected": state.selected,
            "notice": state.notice,
            "flash": _flash(request),
            "max_message": MAX_MESSAGE,
            "max_field": MAX_FIELD,
        },
        status_code=status_code,
    )


def _reading(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.PROJECT_READ
    )


def _sending(session: Session, actor: Actor, project_id: int) -> Project:
    return queries.project_for(
        session, actor=actor, project_id=project_id, permission=Permission.FEEDBACK_SEND
    )


@router.get("/projects/{project_id}/feedback")
def notes_page(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _reading(session, actor, project_id)
    return _notes_page(request, session, actor, project)


def _ids(raw: Iterable[Any]) -> list[int] | None:
    """The ticked draft ids (``None`` when one is not an id)."""
    out = []
    for value in raw:
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            return None
        number = int(value)
        if not 1 <= number <= MAX_ID:
            return None
        out.append(number)
    return list(dict.fromkeys(out))


@router.post("/projects/{project_id}/feedback/send")
def send_drafts(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    """**Send selected**: the ticked drafts go out; those whose template's fields are
    missing stay drafts and are listed with what they lack (422)."""
    project = _sending(session, actor, project_id)
    ids = _ids(form.getlist("ids"))
    if not ids:
        state = NotesState(send_error="Select at least one draft to send.")
        if ids is None:
            state.send_error = "That selection is not a list of drafts: reload the page."
        return _notes_page(request, session, actor, project, state, status_code=422)
    result = lifecycle.send(session, actor=actor, project=project, note_ids=ids)
    if not result.refused:
        request.session[FLASH] = (
            f"Sent {_plural(len(result.sent), 'note')}; each recipient finds it in their inbox."
        )
        return RedirectResponse(f"/projects/{project.id}/feedback", status_code=303)
    # the sent ones are sent (committed with the request); the rest come back marked
    refused = {
        note_id: [f"{v.field.replace('_', ' ')}: {v.message}" for v in violations]
        for note_id, violations in result.refused.items()
    }
    state = NotesState(
        refused=refused,
        selected=set(refused),
        notice=(
            f"Sent {_plural(len(result.sent), 'note')}. "
            f"{_plural(len(refused), 'draft')} not sent: "
            "fill in what each lacks (marked below), then send again."
        ),
    )
    return _notes_page(request, session, actor, project, state, status_code=422)


def _rule_refs(session: Session, project: Project, raw: str, errors: dict[str, str]) -> list[str]:
    """Rule ids from a comma- or space-separated list; each must be a rule of the
    current guideline when the project has one."""
    refs = list(dict.fromkeys(r for r in re.split(r"[,\s]+", raw) if r))
    if len(refs) > MAX_REFS:
        errors["rule_refs"] = f"at most {MAX_REFS} rules"
        return refs
    for ref in refs:
        why = problem(ref)
        if why is not None or len(ref) > MAX_REF:
            errors["rule_refs"] = f"{ref!r} is not a rule id ({why or 'too long'})"
            return refs
    for found in service.rule_problems(session, project, refs):
        errors["rule_refs"] = found.message
    return refs


def _note_values(
    session: Session, project: Project, entered: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """The checked values of a note form (template, severity, message, fields, rule
    references); problems go to ``errors`` by field."""
    catalogue = service.catalogue(session, project)
    if entered["template"] not in catalogue:
        errors["template"] = "choose a template"
    if entered["severity"] not in service.SEVERITIES:
        errors["severity"] = f"one of {', '.join(service.SEVERITIES)}"
    if len(entered["message"]) > MAX_MESSAGE:
        errors["message"] = f"at most {MAX_MESSAGE} characters (this is {len(entered['message'])})"
    fields: dict[str, str] = {}
    for name in TEXT_FIELDS:
        value = entered[name].strip()
        if len(value) > MAX_FIELD:
            errors[name] = f"at most {MAX_FIELD} characters (this is {len(value)})"
        elif value:
            fields[name] = value
    refs = _rule_refs(session, project, entered["rule_refs"], errors)
    return {
        "template": entered["template"],
        "severity": entered["severity"],
        "message": entered["message"].strip(),
        "fields": fields,
        "rule_refs": refs,
    }


def _entered(form: FormData, names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        value = form.get(name)
        out[name] = value if isinstance(value, str) else ""
    return out


NOTE_FORM = ("template", "severity", "message", "rule_refs", *TEXT_FIELDS)


@router.post("/projects/{project_id}/feedback")
def write_note(
    request: Request,
    project_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    """**Write a note**: a draft for one annotator, about the items named by their
    external ids (their labels are looked up); it waits among the drafts to be sent."""
    project = _sending(session, actor, project_id)
    entered = _entered(form, ("recipient", "items", *NOTE_FORM))
    errors: dict[str, str] = {}
    values = _note_values(session, project, entered, errors)
    items = list(dict.fromkeys(i for i in re.split(r"[,\s]+", entered["items"]) if i))
    if len(items) > MAX_ITEMS:
        errors["items"] = f"at most {MAX_ITEMS} items"
    if not entered["recipient"].strip():
        errors["recipient"] = "choose whom the note is for"
    note = None
    try:  # the service's checks too, so that every problem is named at once
        note = lifecycle.create(
            session,
            actor=actor,
            project=project,
            new=lifecycle.NewNote(
                recipient=entered["recipient"].strip(),
                template=values["template"],
                message=values["message"],
                items=tuple(items[:MAX_ITEMS]),
                severity=values["severity"],
                fields=values["fields"],
                rule_refs=tuple(values["rule_refs"][:MAX_REFS]),
            ),
        )
    except ValidationFailed as exc:
        for name, message in messages(exc.violations).items():
            errors.setdefault(name, message)
    if errors or note is None:
        session.rollback()
        project = _sending(session, actor, project_id)
        state = NotesState(
            writing=entered,
            write_errors=errors,
            notice="The note was not written: see the fields marked below.",
        )
        return _notes_page(request, session, actor, project, state, status_code=422)
    request.session[FLASH] = (
        f"Draft {note.id} written for {entered['recipient'].strip()}: "
        "review it below and send it when it is ready."
    )
    return RedirectResponse(f"/projects/{project.id}/feedback#draft-{note.id}", status_code=303)


# -- the draft editor ------------------------------------------------------------------


def _draft_of(session: Session, actor: Actor, project: Project, note_id: int) -> FeedbackNote:
    note = service.get_note(session, actor=actor, note_id=note_id)
    if note.project_id != project.id:
        raise NotFound(f"no feedback note {note_id}")
    return note


def _draft_page(
    request: Request,
    session: Session,
    actor: Actor,
    project: Project,
    note: FeedbackNote,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    catalogue = service.catalogue(session, project)
    names = _names(session, [note.recipient_id])
    return render(
        request,
        "feedback_draft.html",
        {
            "project": project,
            "note": note,
            "v": values or _values(note),
            "errors": errors or {},
            "notice": notice,
            "recipient": names.get(note.recipient_id, f"user {note.recipient_id}"),
            "items": _items(session, project, note),
            "templates": list(catalogue.values()),
            "severities": service.SEVERITIES,
            "field_titles": FIELD_TITLES,
            "needs": needs(catalogue, note),
            "rules": rule_links(session, project, note.rule_refs),
            "guideline_rules": _guideline_rules(session, project),
            "max_message": MAX_MESSAGE,
            "max_field": MAX_FIELD,
        },
        status_code=status_code,
    )


@router.get("/projects/{project_id}/feedback/drafts/{note_id}")
def draft_form(
    request: Request,
    project_id: PathId,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
) -> Response:
    project = _sending(session, actor, project_id)
    note = _draft_of(session, actor, project, note_id)
    if note.status != DRAFT:
        return RedirectResponse(f"/feedback/{note.id}", status_code=303)
    return _draft_page(request, session, actor, project, note)


@router.post("/projects/{project_id}/feedback/drafts/{note_id}")
def save_draft(
    request: Request,
    project_id: PathId,
    note_id: PathId,
    session: SessionDep,
    actor: CurrentActor,
    user: CurrentUser,
    form: FormDep,
) -> Response:
    """Save the draft's template, severity, message, fields and rule references; with
    **Save and send**, send it too (a draft that lacks its template's fields is saved
    and comes back with them marked, 422)."""
    project = _sending(session, actor, project_id)
    note = _draft_of(session, actor, project, note_id)
    entered = _entered(form, NOTE_FORM)
    errors: dict[str, str] = {}
    values = _note_values(session, project, entered, errors)
    if not errors:
        try:
            lifecycle.edit(session, actor=actor, note_id=note.id, changes=values)
        except ValidationFailed as exc:
            errors = messages(exc.violations)
    if errors:
        session.rollback()
        project = _sending(session, actor, project_id)
        note = _draft_of(session, actor, project, note_id)
        return _draft_page(
            request,
            session,
            actor,
            project,
            note,
            values=entered,
            errors=errors,
            notice="Not saved: see the fields marked below.",
            status_code=422,
        )
    if form.get("then") == "send":
        result = lifecycle.send(session, actor=actor, project=project, note_ids=[note.id])
        if result.refused:
            return _draft_page(
                request,
                session,
                actor,
                project,
                note,
                values=entered,
                errors=messages(result.refused[note.id]),
                notice="Saved, but not sent: fill in the fields marked below, then send.",
                status_code=422,
            )
        request.session[FLASH] = f"Note {note.id} sent."
        return RedirectResponse(f"/projects/{project.id}/feedback", status_code=303)
    lacking = needs(service.catalogue(session, project), note)
    request.session[FLASH] = f"Draft {note.id} saved." + (
        f" It needs {', '.join(lacking)} before it can be sent." if lacking else ""
    )
    return RedirectResponse(f"/projects/{project.id}/feedback#draft-{note.id}", status_code=303)
