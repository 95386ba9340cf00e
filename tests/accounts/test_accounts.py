"""Users, passwords, roles and the permission policy."""

from __future__ import annotations

import pytest

from labelloop import trail
from labelloop.accounts import service
from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import GRANTS, Permission, Role, allows
from labelloop.errors import Conflict, PermissionDenied, ValidationFailed

OPERATOR = Actor.local("test")


def test_password_is_hashed_with_argon2(session) -> None:
    user = service.create_user(session, actor=OPERATOR, username="ana", password="correct horse")
    assert user.password_hash is not None and user.password_hash.startswith("$argon2")
    assert "correct horse" not in user.password_hash
    assert service.check_password(user, "correct horse")
    assert not service.check_password(user, "wrong horse")


def test_short_password_and_duplicate_user_refused(session) -> None:
    with pytest.raises(ValidationFailed):
        service.create_user(session, actor=OPERATOR, username="bo", password="short")
    service.create_user(session, actor=OPERATOR, username="bo")
    with pytest.raises(Conflict):
        service.create_user(session, actor=OPERATOR, username="bo")


def test_only_admins_create_users(session) -> None:
    user = service.create_user(session, actor=OPERATOR, username="cy")
    as_user = Actor.for_user(user.id, user.username)
    with pytest.raises(PermissionDenied):
        service.create_user(session, actor=as_user, username="dee")


def test_every_write_is_in_the_trail(session) -> None:
    service.create_user(session, actor=OPERATOR, username="eve")
    events = trail.service.query(session, action="user.create")
    assert [e.after["username"] for e in events] == ["eve"]
    assert trail.service.verify(session).ok


@pytest.mark.parametrize("role", list(Role))
def test_deny_by_default(role: Role) -> None:
    assert not allows(frozenset(), Permission.PROJECT_READ)
    assert allows(frozenset({role}), Permission.PROJECT_READ)
    assert GRANTS[role] <= frozenset(Permission)


def test_annotator_cannot_manage_project(session) -> None:
    from labelloop.accounts.models import Membership
    from labelloop.projects.models import Project

    project = Project(
        name="p", task_type="single", label_schema={"task_type": "single", "labels": ["a"]}
    )
    session.add(project)
    session.flush()
    user = service.create_user(session, actor=OPERATOR, username="fin")
    session.add(Membership(user_id=user.id, project_id=project.id, role=Role.ANNOTATOR.value))
    session.flush()
    actor = Actor.for_user(user.id, user.username)
    require(session, actor, Permission.ANNOTATE, project_id=project.id)
    with pytest.raises(PermissionDenied):
        require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    with pytest.raises(PermissionDenied):
        require(session, actor, Permission.ANNOTATE, project_id=project.id + 1)
