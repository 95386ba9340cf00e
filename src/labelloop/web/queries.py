"""Read use cases the pages and the API share that no feature service offers yet.

Like the services, each takes ``session`` and ``actor`` as keywords and checks the
permission with :func:`labelloop.accounts.policy.require` before reading. (They belong
in their feature packages; they live here until those grow them.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.policy import allowed, require, require_admin, roles_of, sees
from labelloop.accounts.roles import GRANTS, Permission, Role
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy, AuditRun
from labelloop.errors import NotFound, ValidationFailed
from labelloop.identifiers import MAX_ID
from labelloop.projects import service as projects
from labelloop.projects.models import GoldLabel, Item, Project
from labelloop.projects.validation import Violation


def may(session: Session, actor: Actor, permission: Permission, project_id: int) -> bool:
    """Whether ``actor`` holds ``permission`` in the project (for showing links)."""
    return allowed(session, actor, permission, project_id=project_id)


def visible_project(session: Session, *, actor: Actor, project_id: int | str) -> Project:
    """The project of this id, when the actor holds a role in it. For anyone else it
    answers exactly as for a project that does not exist (NotFound with the same
    message), so outsiders cannot learn which projects exist. Only ids are taken (a
    string of ASCII digits within :data:`~labelloop.identifiers.MAX_ID`, as a path
    gives it): never names, which would answer with suggestions."""
    number = _id_of(project_id)
    project = None if number is None else session.get(Project, number)
    if project is None or not sees(session, actor, project.id):
        raise NotFound(f"no project with id {project_id}")
    return project


def _id_of(value: int | str) -> int | None:
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 10):
            return None
        value = int(value)
    return value if 1 <= value <= MAX_ID else None


def project_for(
    session: Session, *, actor: Actor, project_id: int | str, permission: Permission
) -> Project:
    """A project the actor may access with ``permission``: NotFound for outsiders (as
    for a missing project), PermissionDenied for members whose roles do not allow it."""
    project = visible_project(session, actor=actor, project_id=project_id)
    require(session, actor, permission, project_id=project.id)
    return project


def visible_projects(session: Session, *, actor: Actor) -> Sequence[Project]:
    """The projects the actor holds a role in (all for administrators); a token sees
    its own project only."""
    found = projects.list_projects(session, actor=actor)
    if actor.scope_project_id is not None:
        found = [p for p in found if p.id == actor.scope_project_id]
    return found


def my_roles(session: Session, *, actor: Actor, project_id: int) -> list[str]:
    if actor.user_id is None:
        return []
    roles: set[Role] = set(roles_of(session, actor.user_id, project_id))
    if actor.scope_role is not None:
        in_scope = project_id == actor.scope_project_id
        roles = roles & {Role(actor.scope_role)} if in_scope else set()
    return sorted(r.value for r in roles)


def run_for(session: Session, *, actor: Actor, run_id: int, permission: Permission) -> AuditRun:
    """A run the actor may access with ``permission``; NotFound (as for a missing run)
    when the actor holds no role in its project."""
    run = audits.get_run(session, run_id)
    if not sees(session, actor, run.project_id):
        raise NotFound(f"no audit run {run_id}")
    require(session, actor, permission, project_id=run.project_id)
    return run


def policies_of(session: Session, *, actor: Actor, project: Project) -> Sequence[AuditPolicy]:
    require(session, actor, Permission.AUDIT_REVIEW, project_id=project.id)
    return audits.list_policies(session, project)


def runs_of_project(session: Session, *, actor: Actor, project: Project) -> Sequence[AuditRun]:
    require(session, actor, Permission.AUDIT_REVIEW, project_id=project.id)
    return session.scalars(
        select(AuditRun)
        .where(AuditRun.project_id == project.id)
        .order_by(AuditRun.window_start.desc(), AuditRun.id.desc())
    ).all()


# ------------------------------------------------------------------------------ items
@dataclass(frozen=True)
class ItemFilter:
    external_id: str | None = None
    tag: str | None = None
    segments: tuple[tuple[str, str], ...] = ()
    has_gold: bool | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if not isinstance(value, int) or value < 0:
            raise ValueError
        return value
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise ValidationFailed(
            "the cursor is not valid",
            [Violation("cursor", "invalid", "not a cursor from this API")],
        ) from None


def list_items(
    session: Session,
    *,
    actor: Actor,
    project: Project,
    filters: ItemFilter,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Item], str | None]:
    """One page of items by id, and the cursor of the next page (``None`` at the end).

    Keyset pagination: a cursor is the last id seen, so pages stay stable while items
    are added. Tag and segment filters are applied in Python on the id-ordered scan
    for portability between SQLite and PostgreSQL JSON.
    """
    require(session, actor, Permission.PROJECT_READ, project_id=project.id)
    after = decode_cursor(cursor) if cursor else 0
    stmt = select(Item).where(Item.project_id == project.id, Item.id > after).order_by(Item.id)
    if filters.external_id is not None:
        stmt = stmt.where(Item.external_id == filters.external_id)
    if filters.has_gold is not None:
        gold = select(GoldLabel.item_id).where(GoldLabel.project_id == project.id)
        stmt = stmt.where(Item.id.in_(gold) if filters.has_gold else Item.id.not_in(gold))
    out: list[Item] = []
    last_seen = after
    batch = max(limit * 4, 200)
    while len(out) <= limit:
        rows = session.scalars(stmt.where(Item.id > last_seen).limit(batch)).all()
        if not rows:
            break
        for item in rows:
            last_seen = item.id
            if filters.tag is not None and filters.tag not in (item.tags or []):
                continue
            if any(str((item.segments or {}).get(k)) != v for k, v in filters.segments):
                continue
            out.append(item)
            if len(out) > limit:
                break
        if len(rows) < batch:
            break
    if len(out) > limit:
        page = out[:limit]
        return page, encode_cursor(page[-1].id)
    return out, None


def gold_labels(
    session: Session, *, actor: Actor, project: Project, limit: int, cursor: str | None
) -> tuple[list[tuple[GoldLabel, str]], str | None]:
    """Gold labels are hidden checks: reading them needs ``data.export`` (lead, model)."""
    require(session, actor, Permission.DATA_EXPORT, project_id=project.id)
    after = decode_cursor(cursor) if cursor else 0
    rows = (
        session.execute(
            select(GoldLabel, Item.external_id)
            .join(Item, Item.id == GoldLabel.item_id)
            .where(GoldLabel.project_id == project.id, GoldLabel.id > after)
            .order_by(GoldLabel.id)
            .limit(limit + 1)
        )
        .tuples()
        .all()
    )
    if len(rows) > limit:
        rows = rows[:limit]
        return list(rows), encode_cursor(rows[-1][0].id)
    return list(rows), None


# ------------------------------------------------------------------------------ admin
@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    display_name: str | None
    email: str | None
    is_admin: bool
    is_active: bool
    can_login: bool
    roles: list[tuple[str, str]]  # (project name, role)


def users_overview(session: Session, *, actor: Actor) -> list[UserRow]:
    require_admin(actor)
    memberships: dict[int, list[tuple[str, str]]] = {}
    for uid, pname, role in session.execute(
        select(Membership.user_id, Project.name, Membership.role)
        .join(Project, Project.id == Membership.project_id)
        .order_by(Project.name, Membership.role)
    ).tuples():
        memberships.setdefault(uid, []).append((pname, role))
    users = session.scalars(select(User).order_by(User.username)).all()
    return [
        UserRow(
            u.id,
            u.username,
            u.display_name,
            u.email,
            u.is_admin,
            u.is_active,
            u.password_hash is not None,
            memberships.get(u.id, []),
        )
        for u in users
    ]


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count(User.id))) or 0)


def role_permissions() -> dict[str, list[str]]:
    return {role.value: sorted(p.value for p in GRANTS[role]) for role in Role}


def as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
