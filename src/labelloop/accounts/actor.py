"""Who is acting: a signed-in user, a token, or the local operator of the CLI."""

from __future__ import annotations

import getpass
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The subject of a service call.

    ``system`` actors (the CLI's local operator, the worker, the demo builder) hold every
    permission: whoever can run commands against the database already owns it. Web and
    API requests act as users and are checked against their memberships.
    """

    name: str
    user_id: int | None = None
    is_admin: bool = False
    system: bool = False
    #: An API token's scope: the actor may act only in this project, only with this
    #: role (and only while the user still holds it). ``None`` for signed-in users.
    scope_project_id: int | None = None
    scope_role: str | None = None

    @classmethod
    def local(cls, component: str = "cli") -> Actor:
        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry in some containers
            who = "unknown"
        return cls(name=f"{component}:{who}", system=True)

    @classmethod
    def for_user(cls, user_id: int, username: str, *, is_admin: bool = False) -> Actor:
        return cls(name=f"user:{username}", user_id=user_id, is_admin=is_admin)

    @classmethod
    def for_token(cls, user_id: int, username: str, *, project_id: int, role: str) -> Actor:
        """A user acting through an API token: never an administrator, one project, one role."""
        return cls(
            name=f"user:{username}",
            user_id=user_id,
            scope_project_id=project_id,
            scope_role=role,
        )
