"""Guideline use cases: import and edit the draft, publish versions, read, diff, and
acknowledge them.

Reads need ``project.read``; writing the draft and publishing need ``guideline.edit``
(leads). Every write appends a trail event in the caller's transaction. A published
version is never changed: the next edit starts a new draft from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.errors import (
    AcknowledgementRequired,
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from labelloop.guidelines.diff import GuidelineDiff, diff_documents
from labelloop.guidelines.models import (
    DRAFT,
    GuidelineAck,
    GuidelineExemplar,
    GuidelineRule,
    GuidelineVersion,
)
from labelloop.guidelines.schemas import VERSION, ExemplarDoc, GuidelineDoc, RuleDoc
from labelloop.projects.models import Item, Project
from labelloop.projects.service import schema_of
from labelloop.projects.validation import Violation, canonical_value, validate_value
from labelloop.store.base import utcnow
from labelloop.store.conflicts import retry_on_unique

#: The advisory-lock key of a project's guideline writes: this constant in the high 32
#: bits, the project id in the low ones (the one-key space of PostgreSQL's advisory
#: locks, apart from the two-key space the queue uses).
_LOCK_SPACE = 0x47_4C_44_4E  # "GLDN"


def _one_writer(session: Session, project_id: int) -> None:
    """Serialise a project's guideline writes (draft saves, discards, publishes): on
    PostgreSQL a transaction-scoped advisory lock, so the second writer waits and then
    reads what the first committed (a publish cannot be doubled, nor a just-published
    version edited or discarded as if it were still the draft). SQLite runs one writer
    at a time already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": (_LOCK_SPACE << 32) | project_id},
        )


# -- reading --------------------------------------------------------------------------


#: Versions by number, newest first.
_NEWEST_FIRST = (GuidelineVersion.major.desc(), GuidelineVersion.minor.desc())


def _published(project_id: int) -> Select[Any]:
    return (
        select(GuidelineVersion)
        .where(GuidelineVersion.project_id == project_id, GuidelineVersion.number != DRAFT)
        .order_by(*_NEWEST_FIRST)
    )


def current(session: Session, project_id: int) -> GuidelineVersion | None:
    """The newest published version (no permission check: internal use)."""
    found: GuidelineVersion | None = session.scalar(_published(project_id).limit(1))
    return found


def _draft(session: Session, project_id: int) -> GuidelineVersion | None:
    return session.scalar(
        select(GuidelineVersion).where(
            GuidelineVersion.project_id == project_id, GuidelineVersion.number == DRAFT
        )
    )


def get_version(
    session: Session, *, actor: Actor, project: Project, number: str | None = None
) -> GuidelineVersion:
    """A published version by number (``"1.2"``), the draft (``"draft"``, editors
    only) or, without a number, the current version."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    if number is None:
        found = current(session, project.id)
        if found is None:
            raise NotFound(f"project {project.name!r} has no published guideline yet")
        return found
    if number == DRAFT:
        require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
        found = _draft(session, project.id)
    elif VERSION.fullmatch(number):
        found = session.scalar(
            select(GuidelineVersion).where(
                GuidelineVersion.project_id == project.id, GuidelineVersion.number == number
            )
        )
    else:
        raise ValidationFailed(
            f"{number!r} is not a version number",
            [Violation("version", "invalid", "a version is MAJOR.MINOR (1.2) or 'draft'")],
        )
    if found is None:
        raise NotFound(f"project {project.name!r} has no guideline version {number}")
    return found


def history(session: Session, *, actor: Actor, project: Project) -> Sequence[GuidelineVersion]:
    """Published versions, newest first."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    return session.scalars(_published(project.id)).all()


def document(session: Session, version: GuidelineVersion) -> GuidelineDoc:
    """A version as a document (exemplars name their items by external id)."""
    ids = {e.item_id for r in version.rules for e in r.exemplars}
    names = dict(
        session.execute(select(Item.id, Item.external_id).where(Item.id.in_(ids))).tuples().all()
        if ids
        else []
    )
    return GuidelineDoc(
        title=version.title,
        preamble=version.preamble,
        rules=tuple(
            RuleDoc(
                id=r.key,
                title=r.title,
                text=r.text,
                labels=tuple(r.labels),
                exemplars=tuple(
                    ExemplarDoc(item=names[e.item_id], kind=e.kind, label=e.label, why=e.why)
                    for e in r.exemplars
                ),
            )
            for r in version.rules
        ),
    )


def exemplar_texts(
    session: Session, *, actor: Actor, project: Project, doc: GuidelineDoc
) -> dict[str, str]:
    """A short text of each exemplar's item (its payload's ``text``, else the payload),
    by external id, for showing exemplars beside their rules."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    wanted = {e.item for r in doc.rules for e in r.exemplars}
    if not wanted:
        return {}
    rows = session.execute(
        select(Item.external_id, Item.payload).where(
            Item.project_id == project.id, Item.external_id.in_(wanted)
        )
    )
    out = {}
    for ext, payload in rows:
        text = payload.get("text") if isinstance(payload, dict) else None
        out[ext] = (text if isinstance(text, str) else str(payload))[:300]
    return out


def diff(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    old: str | None = None,
    new: str | None = None,
) -> GuidelineDiff:
    """What changed from version ``old`` to version ``new`` (default: the current
    version, and the version published before ``new``; before the first, nothing)."""
    b = get_version(session, actor=actor, project=project, number=new)
    if old is None:
        earlier = [v for v in history(session, actor=actor, project=project) if _before(v, b)]
        a_doc, a_number = (
            (document(session, earlier[0]), earlier[0].number)
            if earlier
            else (GuidelineDoc(title=b.title), None)
        )
    else:
        a = get_version(session, actor=actor, project=project, number=old)
        a_doc, a_number = document(session, a), a.number
    return diff_documents(a_doc, document(session, b), old=a_number, new=b.number)


def _before(v: GuidelineVersion, than: GuidelineVersion) -> bool:
    if than.is_draft:
        return True
    return (v.major or 0, v.minor or 0) < (than.major or 0, than.minor or 0)


def shown_exemplar_items(project_id: int) -> Select[int]:
    """The items any published version shows as exemplars: annotators have seen their
    correct label, so the queue never uses them as hidden gold checks."""
    return (
        select(GuidelineExemplar.item_id)
        .join(GuidelineRule, GuidelineRule.id == GuidelineExemplar.rule_id)
        .join(GuidelineVersion, GuidelineVersion.id == GuidelineRule.version_id)
        .where(GuidelineVersion.project_id == project_id, GuidelineVersion.number != DRAFT)
    )


# -- the draft ------------------------------------------------------------------------


def _check(session: Session, project: Project, doc: GuidelineDoc) -> dict[str, int]:
    """Check the document against the project (labels in the schema, exemplar items
    that exist, exemplar labels the schema accepts); returns item ids by external id."""
    schema = schema_of(project)
    names = set(schema.label_names)
    wanted = {e.item for r in doc.rules for e in r.exemplars}
    items = dict(
        session.execute(
            select(Item.external_id, Item.id).where(
                Item.project_id == project.id, Item.external_id.in_(wanted)
            )
        )
        .tuples()
        .all()
        if wanted
        else []
    )
    problems: list[Violation] = []
    for i, rule in enumerate(doc.rules):
        for j, label in enumerate(rule.labels):
            if names and label not in names:
                problems.append(
                    Violation(f"rules[{i}].labels[{j}]", "unknown_label", f"no label {label!r}")
                )
        for j, ex in enumerate(rule.exemplars):
            where = f"rules[{i}].exemplars[{j}]"
            if ex.item not in items:
                problems.append(
                    Violation(f"{where}.item", "not_found", f"no item {ex.item!r} in the project")
                )
            problems += validate_value(schema, ex.label, f"{where}.label")
    if problems:
        raise ValidationFailed(
            f"the guideline does not fit project {project.name!r} ({len(problems)} problems)",
            problems,
        )
    return items


def _fill(version: GuidelineVersion, doc: GuidelineDoc, items: dict[str, int], schema: Any) -> None:
    version.title, version.preamble = doc.title, doc.preamble
    version.rules = [
        GuidelineRule(
            key=r.id,
            position=i,
            title=r.title,
            text=r.text,
            labels=list(r.labels),
            exemplars=[
                GuidelineExemplar(
                    item_id=items[e.item],
                    position=j,
                    kind=e.kind,
                    label=canonical_value(schema, e.label),
                    why=e.why,
                )
                for j, e in enumerate(r.exemplars)
            ],
        )
        for i, r in enumerate(doc.rules)
    ]


def save_draft(
    session: Session, *, actor: Actor, project: Project, doc: GuidelineDoc, source: str = "api"
) -> GuidelineVersion:
    """Replace the draft with ``doc`` (creating the draft when there is none)."""
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    _one_writer(session, project.id)
    items = _check(session, project, doc)
    draft = _draft(session, project.id)
    before = None if draft is None else document(session, draft).as_json()
    if draft is None:
        draft = GuidelineVersion(
            project_id=project.id, number=DRAFT, title=doc.title, created_by=actor.name
        )
        session.add(draft)
    else:
        # the old rows go before the new ones with the same keys arrive
        draft.rules = []
        session.flush()
    _fill(draft, doc, items, schema_of(project))
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="guideline.draft.save",
        entity_type="guideline_version",
        entity_id=draft.id,
        project_id=project.id,
        before=before,
        after={**doc.as_json(), "source": source},
    )
    return draft


def draft_document(session: Session, *, actor: Actor, project: Project) -> GuidelineDoc:
    """The draft as a document; without a draft, the current version's (the start of
    the next edit), or an empty guideline named after the project."""
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    version = _draft(session, project.id) or current(session, project.id)
    if version is None:
        return GuidelineDoc(title=f"{project.name} guideline")
    return document(session, version)


def save_rule(
    session: Session, *, actor: Actor, project: Project, rule: RuleDoc, replaces: str | None = None
) -> GuidelineVersion:
    """Add a rule to the draft, or replace rule ``replaces`` (which may change its id)."""
    doc = draft_document(session, actor=actor, project=project)
    rules = list(doc.rules)
    keys = [r.id for r in rules]
    if replaces is not None and replaces not in keys:
        raise NotFound(f"the draft has no rule {replaces}")
    if rule.id in keys and rule.id != replaces:
        raise Conflict(f"the draft already has a rule {rule.id}")
    if replaces is None:
        rules.append(rule)
    else:
        rules[keys.index(replaces)] = rule
    new = GuidelineDoc(title=doc.title, preamble=doc.preamble, rules=tuple(rules))
    return save_draft(session, actor=actor, project=project, doc=new, source="web")


def delete_rule(session: Session, *, actor: Actor, project: Project, key: str) -> GuidelineVersion:
    doc = draft_document(session, actor=actor, project=project)
    if key not in {r.id for r in doc.rules}:
        raise NotFound(f"the draft has no rule {key}")
    new = GuidelineDoc(
        title=doc.title, preamble=doc.preamble, rules=tuple(r for r in doc.rules if r.id != key)
    )
    return save_draft(session, actor=actor, project=project, doc=new, source="web")


def discard_draft(session: Session, *, actor: Actor, project: Project) -> None:
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    _one_writer(session, project.id)
    draft = _draft(session, project.id)
    if draft is None:
        raise NotFound(f"project {project.name!r} has no guideline draft")
    before = document(session, draft).as_json()
    session.delete(draft)
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="guideline.draft.discard",
        entity_type="guideline_version",
        entity_id=draft.id,
        project_id=project.id,
        before=before,
    )


# -- publishing -----------------------------------------------------------------------


def publish(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    note: str,
    major: bool = False,
    published_at: datetime | None = None,
) -> GuidelineVersion:
    """Publish the draft as the next version: ``MAJOR.MINOR + 1``, or ``MAJOR + 1 .0``
    with ``major``; the first version is 1.0. The change note is required.

    ``published_at`` records a version of the past (importing a guideline's history; the
    demo): system actors only, and never before the current version."""
    require(session, actor, Permission.GUIDELINE_EDIT, project_id=project.id)
    if published_at is not None and not actor.system:
        raise PermissionDenied(f"{actor.name} may not date a version in the past")
    note = note.strip()
    if not note:
        raise ValidationFailed(
            "a published version needs a change note",
            [Violation("note", "required", "say what changed and why")],
        )
    _one_writer(session, project.id)
    draft = _draft(session, project.id)
    if draft is None:
        raise Conflict(f"project {project.name!r} has no guideline draft to publish")
    if not draft.rules:
        raise Conflict("the draft has no rules")
    latest = current(session, project.id)
    doc = document(session, draft)
    if latest is not None and document(session, latest) == doc:
        raise Conflict(f"the draft is the same as version {latest.number}; nothing to publish")
    _check(session, project, doc)  # the schema may have changed since the draft was saved
    now = utcnow()
    when = published_at or now
    if when > now:
        raise ValidationFailed(
            "a version cannot be published in the future",
            [Violation("published_at", "future", f"{when.isoformat()} is later than now")],
        )
    if latest is not None and latest.published_at is not None and when < latest.published_at:
        if published_at is not None:
            raise Conflict(f"version {latest.number} was published later than {when.isoformat()}")
        when = latest.published_at  # this server's clock is behind: versions stay in order
    # every check is done: only now does the draft become the version
    if latest is None:
        draft.major, draft.minor = 1, 0
    elif major:
        draft.major, draft.minor = (latest.major or 0) + 1, 0
    else:
        draft.major, draft.minor = latest.major, (latest.minor or 0) + 1
    draft.number = f"{draft.major}.{draft.minor}"
    draft.note, draft.published_by, draft.published_at = note, actor.name, when
    session.flush()
    trail.service.append(
        session,
        actor=actor.name,
        action="guideline.publish",
        entity_type="guideline_version",
        entity_id=draft.id,
        project_id=project.id,
        after={"number": draft.number, "note": note, "document": doc.as_json()},
    )
    return draft


# -- acknowledgement ------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A version the user has not acknowledged, and what changed since the last one
    they did (everything, when they have acknowledged none)."""

    version: GuidelineVersion
    since: str | None
    changes: GuidelineDiff
    rules: dict[str, RuleDoc] = field(default_factory=dict)
    preamble: str = ""


def _newest(stmt: Any) -> Any:
    return stmt.order_by(*_NEWEST_FIRST).limit(1)


def _unacknowledged(
    session: Session, user_id: int, project_id: int
) -> tuple[int, str, int | None] | None:
    """(current version id, its number, the id of the last version the user
    acknowledged) when those differ. Ids and numbers only: the queue asks this before
    every new item, so no rule is loaded."""
    latest = session.execute(
        _newest(
            select(GuidelineVersion.id, GuidelineVersion.number).where(
                GuidelineVersion.project_id == project_id, GuidelineVersion.number != DRAFT
            )
        )
    ).first()
    if latest is None:
        return None
    last = session.scalar(
        _newest(
            select(GuidelineVersion.id)
            .join(GuidelineAck, GuidelineAck.version_id == GuidelineVersion.id)
            .where(GuidelineAck.user_id == user_id, GuidelineVersion.project_id == project_id)
        )
    )
    return None if last == latest.id else (latest.id, latest.number, last)


def pending(session: Session, *, actor: Actor, project: Project) -> Pending | None:
    """The current version when the user has not acknowledged it (None for system
    actors, when there is no guideline, or when they are up to date)."""
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    found = None if actor.user_id is None else _unacknowledged(session, actor.user_id, project.id)
    if found is None:
        return None
    latest = session.get(GuidelineVersion, found[0])
    last = None if found[2] is None else session.get(GuidelineVersion, found[2])
    assert latest is not None
    new = document(session, latest)
    old = document(session, last) if last is not None else GuidelineDoc(title=new.title)
    changes = diff_documents(old, new, old=last.number if last else None, new=latest.number)
    rules = {r.id: r for r in new.rules}
    return Pending(latest, last.number if last else None, changes, rules, new.preamble)


def require_acknowledged(session: Session, *, actor: Actor, project: Project) -> None:
    """Raise AcknowledgementRequired while the user has a version to read (the queue
    calls it before serving a new item; the caller has checked ``annotate``)."""
    found = None if actor.user_id is None else _unacknowledged(session, actor.user_id, project.id)
    if found is not None:
        raise AcknowledgementRequired(
            f"read and acknowledge guideline version {found[1]} of project "
            f"{project.name!r} before the next item",
            version=found[1],
        )


def acknowledge(session: Session, *, actor: Actor, project: Project, number: str) -> GuidelineAck:
    """Record that the user has read version ``number`` (idempotent)."""
    if actor.user_id is None:
        raise ValidationFailed("only a user can acknowledge a guideline")
    version = get_version(session, actor=actor, project=project, number=number)
    if version.is_draft:
        raise Conflict("a draft cannot be acknowledged")
    user_id = actor.user_id

    def record() -> tuple[GuidelineAck, bool]:
        done = session.scalar(
            select(GuidelineAck).where(
                GuidelineAck.version_id == version.id, GuidelineAck.user_id == user_id
            )
        )
        if done is not None:
            return done, False
        new = GuidelineAck(version_id=version.id, user_id=user_id)
        session.add(new)
        session.flush()
        return new, True

    # a double click sent twice at once: the second finds the first's row
    ack, created = retry_on_unique(session, record)
    if not created:
        return ack
    trail.service.append(
        session,
        actor=actor.name,
        action="guideline.acknowledge",
        entity_type="guideline_version",
        entity_id=version.id,
        project_id=project.id,
        after={"number": version.number, "user_id": actor.user_id},
    )
    return ack


def acknowledged_by(session: Session, version: GuidelineVersion) -> int:
    """How many users have acknowledged ``version``."""
    counted = select(func.count()).where(GuidelineAck.version_id == version.id)
    return session.scalar(counted) or 0
