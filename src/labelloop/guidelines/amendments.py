"""Amendments: proposed changes to one rule, usually from an adjudication ruling.

An adjudicator (or an editor) proposes either a clarification of a rule's text or an
item to show as a boundary exemplar of the rule; the guideline owner (a holder of
``guideline.edit``) accepts it into the draft, where it ships with the next published
version, or rejects it. Accepting a text amendment appends the clarification to the
rule's text as its own paragraph; the editor may reword it in the draft before
publishing. Every step appends a trail event.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError as PydanticError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import allowed, require
from labelloop.accounts.roles import Permission
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.guidelines import service as guidelines
from labelloop.guidelines.models import (
    ACCEPTED,
    PROPOSED,
    REJECTED,
    GuidelineAmendment,
)
from labelloop.guidelines.schemas import ExemplarDoc, GuidelineDoc, RuleDoc
from labelloop.projects.models import Item, Project
from labelloop.projects.validation import Violation
from labelloop.store.base import rowcount, utcnow

TEXT = "text"
EXEMPLAR = "exemplar"


def _may_propose(session: Session, actor: Actor, project_id: int) -> None:
    for permission in (Permission.ADJUDICATE, Permission.GUIDELINE_EDIT):
        if allowed(session, actor, permission, project_id=project_id):
            return
    raise PermissionDenied(f"{actor.name} may not propose guideline amendments")


def rule_keys(session: Session, project_id: int) -> set[str]:
    """The rule ids of the current version and of the draft."""
    keys: set[str] = set()
    for version in (
        guidelines.current(session, project_id),
        guidelines._draft(session, project_id),
    ):
        if version is not None:
            keys |= {r.key for r in version.rules}
    return keys


def propose(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    rule_key: str,
    kind: str,
    text: str,
    item_id: int | None = None,
    label: Any = None,
    ruling_id: int | None = None,
) -> GuidelineAmendment:
    """Record a proposal (``kind`` ``"text"``: ``text`` is the clarification;
    ``"exemplar"``: ``item_id`` with its correct ``label``, ``text`` says why)."""
    _may_propose(session, actor, project.id)
    field = "amend" if kind == TEXT else "exemplar"
    if rule_key not in rule_keys(session, project.id):
        raise ValidationFailed(
            f"the guideline has no rule {rule_key}",
            [Violation(field, "unknown_rule", f"no rule {rule_key!r} in the guideline")],
        )
    if kind == TEXT and not text.strip():
        raise ValidationFailed(
            "an amendment needs its text",
            [Violation("amend", "required", "say how the rule should read")],
        )
    amendment = GuidelineAmendment(
        project_id=project.id,
        rule_key=rule_key,
        kind=kind,
        text=text.strip(),
        item_id=item_id,
        label=label,
        ruling_id=ruling_id,
        proposed_by=actor.name,
    )
    session.add(amendment)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="guideline.amendment.propose",
        entity_type="guideline_amendment",
        entity_id=amendment.id,
        project_id=project.id,
        after=amendment_json(amendment),
    )
    return amendment


def amendment_json(a: GuidelineAmendment) -> dict[str, Any]:
    return {
        "rule": a.rule_key,
        "kind": a.kind,
        "text": a.text,
        "item_id": a.item_id,
        "label": a.label,
        "ruling_id": a.ruling_id,
        "status": a.status,
        "proposed_by": a.proposed_by,
        "proposed_at": a.proposed_at.isoformat() if a.proposed_at else None,
        "decided_by": a.decided_by,
    }


def list_amendments(
    session: Session, *, actor: Actor, project: Project, status: str | None = PROPOSED
) -> list[GuidelineAmendment]:
    """The project's amendments (``status`` ``None``: all), oldest first."""
    _may_propose(session, actor, project.id)
    stmt = select(GuidelineAmendment).where(GuidelineAmendment.project_id == project.id)
    if status is not None:
        stmt = stmt.where(GuidelineAmendment.status == status)
    return list(session.scalars(stmt.order_by(GuidelineAmendment.id)))


def _pending(session: Session, project: Project, amendment_id: int) -> GuidelineAmendment:
    """The amendment, claimed for a decision: its status leaves ``proposed`` with a
    compare-and-set, so two leads deciding at once cannot both apply it (409)."""
    found = session.get(GuidelineAmendment, amendment_id)
    if found is None or found.project_id != project.id:
        raise NotFound(f"no amendment {amendment_id} in project {project.name!r}")
    claimed = rowcount(
        session.execute(
            update(GuidelineAmendment)
            .where(GuidelineAmendment.id == found.id, GuidelineAmendment.status == PROPOSED)
            .values(status="deciding")
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(found)
    if not claimed:
        raise Conflict(f"amendment {amendment_id} is already {found.status}")
    found.status = PROPOSED  # the decision sets the final status in this transaction
    return found


def _amended(session: Session, rule: RuleDoc, a: GuidelineAmendment) -> RuleDoc:
    if a.kind == TEXT:
        text = f"{rule.text.rstrip()}\n\n{a.text}" if rule.text.strip() else a.text
        return rule.model_copy(update={"text": text})
    item = session.get(Item, a.item_id) if a.item_id is not None else None
    if item is None:
        raise Conflict(f"the item of amendment {a.id} no longer exists")
    if any(e.item == item.external_id for e in rule.exemplars):
        return rule
    why = a.text if len(a.text) <= 2000 else a.text[:1999] + "…"
    exemplar = ExemplarDoc(item=item.external_id, kind="boundary", label=a.label, why=why)
    return rule.model_copy(update={"exemplars": (*rule.exemplars, exemplar)})


def accept(
    session: Session, *, actor: Actor, project: Project, amendment_id: int
) -> GuidelineAmendment:
    """Apply the amendment to the draft (started from the current version when there is
    none); it ships with the next published version."""
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    amendment = _pending(session, project, amendment_id)
    doc = guidelines.draft_document(session, actor=actor, project=project)
    keys = [r.id for r in doc.rules]
    if amendment.rule_key not in keys:
        raise Conflict(f"the draft no longer has rule {amendment.rule_key}; reject the amendment")
    rules = list(doc.rules)
    at = keys.index(amendment.rule_key)
    try:
        rules[at] = RuleDoc.model_validate(_amended(session, rules[at], amendment).model_dump())
    except PydanticError as exc:
        raise Conflict(
            f"amendment {amendment.id} would make rule {amendment.rule_key} too long or give "
            f"it too many exemplars ({exc.errors()[0]['msg']}); edit the draft, then reject it"
        ) from None
    new = GuidelineDoc(title=doc.title, preamble=doc.preamble, rules=tuple(rules))
    draft = guidelines.save_draft(
        session, actor=actor, project=project, doc=new, source="amendment"
    )
    return _decide(session, actor, project, amendment, ACCEPTED, draft.id)


def reject(
    session: Session, *, actor: Actor, project: Project, amendment_id: int
) -> GuidelineAmendment:
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    amendment = _pending(session, project, amendment_id)
    return _decide(session, actor, project, amendment, REJECTED, None)


def _decide(
    session: Session,
    actor: Actor,
    project: Project,
    amendment: GuidelineAmendment,
    status: str,
    version_id: int | None,
) -> GuidelineAmendment:
    before = amendment_json(amendment)
    amendment.status, amendment.version_id = status, version_id
    amendment.decided_by, amendment.decided_at = actor.name, utcnow()
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action=f"guideline.amendment.{'accept' if status == ACCEPTED else 'reject'}",
        entity_type="guideline_amendment",
        entity_id=amendment.id,
        project_id=project.id,
        before=before,
        after=amendment_json(amendment),
    )
    return amendment
