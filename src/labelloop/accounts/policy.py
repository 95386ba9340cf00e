"""Permission checks used by every service (deny by default)."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership
from labelloop.accounts.roles import Permission, Role, allows
from labelloop.errors import PermissionDenied

#: Built once (every permission check runs it).
_ROLES = select(Membership.role).where(
    Membership.user_id == bindparam("user_id"), Membership.project_id == bindparam("project_id")
)


def roles_of(session: Session, user_id: int, project_id: int) -> frozenset[Role]:
    rows = session.scalars(_ROLES, {"user_id": user_id, "project_id": project_id})
    return frozenset(Role(r) for r in rows)


def require(
    session: Session, actor: Actor, permission: Permission, *, project_id: int | None
) -> None:
    """Raise PermissionDenied unless ``actor`` may do ``permission`` in the project."""
    if actor.system or actor.is_admin:
        return
    if actor.user_id is not None and project_id is not None:
        roles = roles_of(session, actor.user_id, project_id)
        if actor.scope_role is not None:  # an API token: its one project and role only
            in_scope = project_id == actor.scope_project_id
            roles = roles & {Role(actor.scope_role)} if in_scope else frozenset()
        if allows(roles, permission):
            return
    where = f" in project {project_id}" if project_id is not None else ""
    raise PermissionDenied(f"{actor.name} may not {permission.value}{where}")


def sees(session: Session, actor: Actor, project_id: int) -> bool:
    """Whether the actor may know the project exists: administrators and system actors
    see every project, a token only its own, a user those they hold a role in. Callers
    answer everyone else as for a project that does not exist."""
    if actor.system or actor.is_admin:
        return True
    if actor.user_id is None:
        return False
    if actor.scope_project_id is not None and actor.scope_project_id != project_id:
        return False
    return bool(roles_of(session, actor.user_id, project_id))


def allowed(
    session: Session, actor: Actor, permission: Permission, *, project_id: int | None
) -> bool:
    """Whether :func:`require` would let ``actor`` do ``permission`` in the project."""
    try:
        require(session, actor, permission, project_id=project_id)
    except PermissionDenied:
        return False
    return True


def require_admin(actor: Actor) -> None:
    if not (actor.system or actor.is_admin):
        raise PermissionDenied(f"{actor.name} is not an administrator")
