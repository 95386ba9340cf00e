"""API tokens as a service: hashing, scope in the permission policy, expiry, revocation,
and the idempotency store and serve command in isolation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts import tokens
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import ApiToken, Membership
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission, Role
from labelloop.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from labelloop.store.base import utcnow
from labelloop.trail.models import Event
from tests import factories

OPERATOR = Actor.local("test")


@pytest.fixture
def bound(session: Session) -> Iterator[Session]:
    factories.bind(session)
    yield session
    factories.bind(None)


@dataclass
class _Member:
    user: Any
    project: Any


def _member(role: Role) -> _Member:
    user, project = factories.UserFactory(), factories.ProjectFactory()
    factories.MembershipFactory(user=user, project=project, role=role.value)
    return _Member(user, project)


def test_token_is_stored_hashed_and_scoped(bound: Session) -> None:
    m = _member(Role.LEAD)
    factories.MembershipFactory(user=m.user, project=m.project, role=Role.ANNOTATOR.value)
    other = factories.MembershipFactory(user=m.user, role=Role.LEAD.value)  # another project
    new = tokens.create_token(
        bound,
        actor=OPERATOR,
        username=m.user.username,
        project_id=m.project.id,
        role=Role.ANNOTATOR,
    )
    row = bound.scalars(select(ApiToken).where(ApiToken.id == new.token.id)).one()
    assert new.plaintext.startswith("ll_") and len(new.plaintext) == 43
    assert (
        row.token_hash == tokens.hash_token(new.plaintext) and new.plaintext not in row.token_hash
    )
    event = bound.scalars(
        select(Event).where(Event.action == "api_token.create").order_by(Event.seq.desc())
    ).first()
    assert event is not None and new.plaintext not in str(event.after)

    actor = tokens.authenticate(bound, new.plaintext)
    assert actor is not None and not actor.is_admin and actor.scope_role == "annotator"
    require(bound, actor, Permission.ANNOTATE, project_id=m.project.id)
    # the user is a lead there, but the token carries the annotator role only
    with pytest.raises(PermissionDenied):
        require(bound, actor, Permission.AUDIT_MANAGE, project_id=m.project.id)
    # and it does not reach the user's other project
    with pytest.raises(PermissionDenied):
        require(bound, actor, Permission.PROJECT_READ, project_id=other.project_id)
    # when the role is taken away, the token loses it too
    bound.delete(
        bound.scalars(
            select(Membership).where(
                Membership.user_id == m.user.id, Membership.role == "annotator"
            )
        ).one()
    )
    bound.flush()
    with pytest.raises(PermissionDenied):
        require(bound, actor, Permission.ANNOTATE, project_id=m.project.id)


def test_revoked_expired_and_unknown_tokens(bound: Session) -> None:
    m = _member(Role.MODEL)
    new = tokens.create_token(
        bound, actor=OPERATOR, username=m.user.username, project_id=m.project.id, role=Role.MODEL
    )
    assert tokens.authenticate(bound, "ll_" + "x" * 40) is None
    assert tokens.authenticate(bound, "not-ours") is None
    new.token.expires_at = utcnow() - timedelta(seconds=1)
    bound.flush()
    assert tokens.authenticate(bound, new.plaintext) is None
    new.token.expires_at = None
    tokens.revoke_token(bound, actor=OPERATOR, token_id=new.token.id)
    assert tokens.authenticate(bound, new.plaintext) is None
    with pytest.raises(Conflict):
        tokens.revoke_token(bound, actor=OPERATOR, token_id=new.token.id)
    with pytest.raises(NotFound):
        tokens.revoke_token(bound, actor=OPERATOR, token_id=999_999)


def test_who_may_manage_tokens(bound: Session) -> None:
    m = _member(Role.ANNOTATOR)
    stranger = factories.UserFactory()
    me = Actor.for_user(m.user.id, m.user.username)
    mine = tokens.create_token(
        bound, actor=me, username=m.user.username, project_id=m.project.id, role=Role.ANNOTATOR
    )
    assert [t.id for t, _ in tokens.list_tokens(bound, actor=me)] == [mine.token.id]
    with pytest.raises(PermissionDenied):
        tokens.create_token(
            bound,
            actor=Actor.for_user(stranger.id, stranger.username),
            username=m.user.username,
            project_id=m.project.id,
            role=Role.ANNOTATOR,
        )
    token_actor = tokens.authenticate(bound, mine.plaintext)
    assert token_actor is not None
    with pytest.raises(PermissionDenied):  # a token cannot mint or list tokens
        tokens.list_tokens(bound, actor=token_actor)
    with pytest.raises(ValidationFailed):
        tokens.create_token(
            bound, actor=OPERATOR, username=m.user.username, project_id=m.project.id, role=Role.LEAD
        )


def test_idempotency_store() -> None:
    from labelloop.web.idempotency import IdempotencyStore

    store = IdempotencyStore(ttl=60, max_entries=2)
    key = ("p", "POST", "/x", "k")
    assert store.begin(key, "f1") is None
    with pytest.raises(Conflict):  # still running
        store.begin(key, "f1")
    store.finish(key, "f1", 201, {"id": 1})
    entry = store.begin(key, "f1")
    assert entry is not None and entry.body == {"id": 1}
    with pytest.raises(ValidationFailed):
        store.begin(key, "f2")
    store.begin(("a",), "f")
    store.begin(("b",), "f")  # evicts the oldest
    assert store.begin(key, "f1") is None


def test_serve_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from labelloop.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setenv("LABELLOOP_SECRET_KEY", "k" * 40)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(
        app, ["serve", "--host", "127.0.0.1", "--port", "8123", "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert seen["app"].state.settings.database_url == url
    assert "http://127.0.0.1:8123/" in result.output
