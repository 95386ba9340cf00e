"""Rulings: the adjudicator's decision on a case, and what follows from it.

A ruling states the label (checked against the label schema), a rationale (required,
at least the project's ``rationale_min`` characters), the rules it rests on, and
options: make the item gold, propose it as an exemplar of a rule, propose an amendment
of a rule's text (both go to the guideline owner, see
:mod:`labelloop.guidelines.amendments`), mark the ruling notable. Ruling a case closes
it and stops its escalation clock; the ruled label is the item's **adjudicated label**
(exports carry it); each annotator whose label differs gets a notification; notable
rulings reach the whole team in the next digest. Nothing is written unless every check
passes, and a case is ruled once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import allowed, require
from labelloop.accounts.roles import Permission
from labelloop.adjudication.models import OPEN, RULED, Case, Ruling
from labelloop.adjudication.service import SUBJECT, get_case, settings_of
from labelloop.audits.population import label_key
from labelloop.errors import Conflict, NotFound, ValidationFailed
from labelloop.escalation import service as escalation
from labelloop.guidelines import amendments
from labelloop.guidelines.service import current
from labelloop.projects.models import Annotation, Item, Project
from labelloop.projects.service import schema_of, set_gold
from labelloop.projects.validation import Violation, canonical_value, validate_value
from labelloop.store.base import rowcount, utcnow

#: The worker sends a project's digest at most this often.
DIGEST_EVERY = timedelta(hours=24)


@dataclass(frozen=True)
class RulingInput:
    label: Any
    rationale: str
    rules: Sequence[str] = ()
    gold: bool = False
    exemplar: str | None = None
    amend: str | None = None
    notable: bool = False


def _problems(
    session: Session, project: Project, item: Item, given: RulingInput
) -> list[Violation]:
    cfg = settings_of(session, project)
    problems = validate_value(schema_of(project), given.label, "label", payload=item.payload)
    rationale = (given.rationale or "").strip()
    if not rationale:
        problems.append(Violation("rationale", "required", "say why this label is right"))
    elif len(rationale) < cfg.rationale_min:
        problems.append(
            Violation(
                "rationale",
                "too_short",
                f"at least {cfg.rationale_min} characters (has {len(rationale)})",
            )
        )
    keys = amendments.rule_keys(session, project.id)
    for i, key in enumerate(given.rules):
        if key not in keys:
            problems.append(Violation(f"rules[{i}]", "unknown_rule", f"no rule {key!r}"))
    if given.exemplar is not None and given.exemplar not in keys:
        problems.append(Violation("exemplar", "unknown_rule", f"no rule {given.exemplar!r}"))
    if given.amend is not None:
        if not given.amend.strip():
            problems.append(Violation("amend", "required", "say how the rule should read"))
        elif not given.rules:
            problems.append(Violation("amend", "no_rule", "name the rule to amend (--rule)"))
    return problems


def rule(session: Session, *, actor: Actor, case_id: int, given: RulingInput) -> Ruling:
    """Rule an open case (see the module doc); 422 naming the fields when a check
    fails, 409 when the case is no longer open."""
    row = get_case(session, actor=actor, case_id=case_id)
    case = row.case
    project = session.get(Project, case.project_id)
    item = session.get(Item, case.item_id)
    assert project is not None and item is not None
    if case.status != OPEN:
        raise Conflict(f"case {case.id} is already {case.status}")
    problems = _problems(session, project, item, given)
    if problems:
        raise ValidationFailed(f"case {case.id} was not ruled", problems)
    now = utcnow()
    closed = rowcount(
        session.execute(
            update(Case)
            .where(Case.id == case.id, Case.status == OPEN)
            .values(status=RULED, closed_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if not closed:
        raise Conflict(f"case {case.id} was ruled meanwhile")
    session.refresh(case)
    ruling = _record(session, actor, project, case, item, given, now)
    escalation.resolve(session, subject=SUBJECT, subject_id=case.id, now=now)
    from labelloop.adjudication.service import hand_over_flags

    hand_over_flags(session, [item.id], now)  # flags raised while the case was open
    _follow_up(session, actor, project, item, ruling, given)
    from labelloop.feedback.lifecycle import resolve_disputes

    resolve_disputes(session, actor=actor, case_id=case.id)
    _tell_differing(session, project, item, ruling, now)
    return ruling


def _record(
    session: Session,
    actor: Actor,
    project: Project,
    case: Case,
    item: Item,
    given: RulingInput,
    now: datetime,
) -> Ruling:
    version = current(session, project.id)
    ruling = Ruling(
        case_id=case.id,
        project_id=project.id,
        item_id=item.id,
        value=canonical_value(schema_of(project), given.label),
        rationale=given.rationale.strip(),
        rule_refs=list(dict.fromkeys(given.rules)),
        gold=given.gold,
        exemplar_rule=given.exemplar,
        amendment=given.amend.strip() if given.amend else None,
        notable=given.notable,
        adjudicator_id=actor.user_id,
        adjudicator=actor.name,
        guideline_version=None if version is None else version.number,
        created_at=now,
    )
    session.add(ruling)
    session.flush()
    from labelloop.adjudication.view import ruling_json

    trail.service.append(
        session,
        actor=actor.name,
        action="case.rule",
        entity_type="case",
        entity_id=case.id,
        project_id=project.id,
        before={"status": OPEN},
        after={"status": RULED, "item_id": item.id, **ruling_json(ruling)},
    )
    return ruling


def _follow_up(
    session: Session, actor: Actor, project: Project, item: Item, ruling: Ruling, given: RulingInput
) -> None:
    """Gold label, exemplar and amendment proposals the ruling asked for."""
    if given.gold:
        set_gold(
            session,
            actor=actor,
            project=project,
            item_id=item.id,
            value=ruling.value,
            rationale=ruling.rationale,
            source="adjudication",
        )
    if given.exemplar is not None:
        amendments.propose(
            session,
            actor=actor,
            project=project,
            rule_key=given.exemplar,
            kind=amendments.EXEMPLAR,
            text=ruling.rationale,
            item_id=item.id,
            label=ruling.value,
            ruling_id=ruling.id,
        )
    if ruling.amendment is not None:
        amendments.propose(
            session,
            actor=actor,
            project=project,
            rule_key=ruling.rule_refs[0],
            kind=amendments.TEXT,
            text=ruling.amendment,
            ruling_id=ruling.id,
        )


def _tell_differing(
    session: Session, project: Project, item: Item, ruling: Ruling, now: datetime
) -> None:
    """Each annotator whose label differs gets the ruling as a feedback note (sent at
    once, with a ``ruling.differs`` notification)."""
    from labelloop.feedback.lifecycle import from_ruling

    from_ruling(session, ruling=ruling, item=item, now=now)


# -- reading --------------------------------------------------------------------------


def sees_all_rulings(session: Session, actor: Actor, project_id: int) -> bool:
    """Adjudicators and readers of data (leads, the model) see every ruling with its
    gold flag; other members see the rulings on items they labelled and the notable
    ones that are not gold (a gold item's label must stay a hidden check)."""
    return allowed(session, actor, Permission.ADJUDICATE, project_id=project_id) or allowed(
        session, actor, Permission.DATA_EXPORT, project_id=project_id
    )


def _visible_to(actor: Actor) -> Any:
    mine = select(Annotation.item_id).where(Annotation.annotator_id == actor.user_id)
    return or_(Ruling.item_id.in_(mine), and_(Ruling.notable.is_(True), Ruling.gold.is_(False)))


def list_rulings(
    session: Session, *, actor: Actor, project: Project, notable: bool = False, limit: int = 100
) -> list[tuple[Ruling, str]]:
    """The project's rulings the actor may see (:func:`sees_all_rulings`) with their
    items' external ids, newest first."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    stmt = (
        select(Ruling, Item.external_id)
        .join(Item, Item.id == Ruling.item_id)
        .where(Ruling.project_id == project.id)
    )
    if not sees_all_rulings(session, actor, project.id):
        stmt = stmt.where(_visible_to(actor))
    if notable:
        stmt = stmt.where(Ruling.notable.is_(True))
    stmt = stmt.order_by(Ruling.created_at.desc(), Ruling.id.desc()).limit(limit)
    return [(r, ext) for r, ext in session.execute(stmt).tuples()]


def get_ruling(session: Session, *, actor: Actor, project: Project, ruling_id: int) -> Ruling:
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    stmt = select(Ruling).where(Ruling.id == ruling_id, Ruling.project_id == project.id)
    if not sees_all_rulings(session, actor, project.id):
        stmt = stmt.where(_visible_to(actor))
    found = session.scalar(stmt)
    if found is None:
        raise NotFound(f"no ruling {ruling_id} in project {project.name!r}")
    return found


def adjudicated_labels(session: Session, project_id: int) -> dict[int, Any]:
    """The newest ruled label of every ruled item (for exports; no permission check)."""
    rows = session.execute(
        select(Ruling.item_id, Ruling.value)
        .where(Ruling.project_id == project_id)
        .order_by(Ruling.created_at, Ruling.id)
    ).tuples()
    return dict(rows.all())


# -- digest ---------------------------------------------------------------------------


def digest_due(session: Session, project_id: int, now: datetime) -> bool:
    """Whether notable rulings wait and the last digest is :data:`DIGEST_EVERY` old."""
    waiting = session.scalar(
        select(func.count(Ruling.id)).where(
            Ruling.project_id == project_id, Ruling.notable.is_(True), Ruling.digested_at.is_(None)
        )
    )
    if not waiting:
        return False
    last = session.scalar(
        select(func.max(Ruling.digested_at)).where(Ruling.project_id == project_id)
    )
    return last is None or now - last >= DIGEST_EVERY


def _digest_line(r: Ruling, external_id: str) -> str:
    """One ruling in the digest: item, label, rules, rationale, and what it proposed."""
    line = f"- item {external_id!r} → {label_key(r.value)}"
    if r.rule_refs:
        line += f" ({', '.join(r.rule_refs)})"
    line += f": {r.rationale}"
    if r.exemplar_rule:
        line += f" [proposed as an exemplar of {r.exemplar_rule}]"
    if r.amendment:
        line += f" [proposed wording: {r.amendment}]"
    return line


def send_digest(
    session: Session, *, actor: Actor, project: Project, now: datetime | None = None
) -> int:
    """Send the notable rulings not yet sent to every member of the project, one
    notification each; returns how many rulings went out."""
    require(session, actor, Permission.ADJUDICATE, project_id=project.id)
    now = now or utcnow()
    rows = (
        session.execute(
            select(Ruling, Item.external_id)
            .join(Item, Item.id == Ruling.item_id)
            .where(
                Ruling.project_id == project.id,
                Ruling.notable.is_(True),
                Ruling.digested_at.is_(None),
            )
            .order_by(Ruling.created_at, Ruling.id)
        )
        .tuples()
        .all()
    )
    # claim them first: a second sender (two workers, a manual digest) claims none
    claimed = set(
        session.scalars(
            update(Ruling)
            .where(Ruling.id.in_([r.id for r, _ in rows]), Ruling.digested_at.is_(None))
            .values(digested_at=now)
            .returning(Ruling.id)
            .execution_options(synchronize_session=False)
        )
    )
    rows = [(r, ext) for r, ext in rows if r.id in claimed]
    if not rows:
        return 0
    lines = [_digest_line(r, ext) for r, ext in rows]
    escalation.notify(
        session,
        user_ids=escalation.team(session, project.id),
        project_id=project.id,
        kind="ruling.digest",
        title=f"{len(rows)} notable ruling{'s' if len(rows) != 1 else ''} in {project.name}",
        body="\n".join(lines),
        link=f"/projects/{project.id}/rulings?notable=1",
        now=now,
    )
    ids = [r.id for r, _ in rows]
    trail.service.append(
        session,
        actor=actor.name,
        action="ruling.digest",
        entity_type="project",
        entity_id=project.id,
        project_id=project.id,
        after={"rulings": ids},
    )
    return len(ids)
