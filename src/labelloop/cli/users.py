"""`labelloop user`: accounts and project roles."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from labelloop.accounts import service
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.cli._common import DatabaseUrl, JsonFlag, console, open_session

app = typer.Typer(help="Users and their roles per project.", no_args_is_help=True)


@app.command("create")
def create_cmd(
    username: Annotated[str, typer.Argument(help="Login name (an email works).")],
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="Password (prompted when omitted and --no-login not given).", hide_input=True
        ),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Global administrator.")] = False,
    no_login: Annotated[
        bool, typer.Option("--no-login", help="Account without a password.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user (password hashed with argon2)."""
    if password is None and not no_login:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with open_session(database_url) as session:
        user = service.create_user(
            session,
            actor=Actor.local(),
            username=username,
            email=email,
            password=password,
            is_admin=admin,
        )
        console.print(f"created user [bold]{user.username}[/] (id {user.id})")


@app.command("list")
def list_cmd(as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """List users."""
    with open_session(database_url) as session:
        users = service.list_users(session)
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": u.id,
                            "username": u.username,
                            "email": u.email,
                            "is_admin": u.is_admin,
                            "can_login": u.password_hash is not None,
                        }
                        for u in users
                    ],
                    indent=2,
                )
            )
            return
        table = Table("id", "username", "email", "admin", "can log in")
        for u in users:
            table.add_row(
                str(u.id),
                u.username,
                u.email or "",
                "yes" if u.is_admin else "",
                "yes" if u.password_hash else "",
            )
        console.print(table)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise typer.BadParameter(
            f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}"
        ) from None


@app.command("grant")
def grant_cmd(
    username: str,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    role: Annotated[
        str,
        typer.Option(
            "--role", "-r", help="lead, adjudicator, auditor, mentor, annotator or model."
        ),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Give a user a role in a project."""
    from labelloop.projects.service import get_project

    with open_session(database_url) as session:
        p = get_project(session, project)
        service.grant(
            session, actor=Actor.local(), username=username, project_id=p.id, role=_role(role)
        )
        console.print(f"{username} is now {role} in {p.name}")


@app.command("revoke")
def revoke_cmd(
    username: str,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    role: Annotated[str, typer.Option("--role", "-r", help="Role to take away.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Take a role in a project away from a user."""
    from labelloop.projects.service import get_project

    with open_session(database_url) as session:
        p = get_project(session, project)
        service.revoke(
            session, actor=Actor.local(), username=username, project_id=p.id, role=_role(role)
        )
        console.print(f"{username} is no longer {role} in {p.name}")


token_app = typer.Typer(help="API tokens (scoped to a project and a role).", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create_cmd(
    username: str,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    role: Annotated[str, typer.Option("--role", "-r", help="A role the user holds there.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")] = "",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API token; the token is printed once and only its hash is stored."""
    from labelloop.accounts import tokens
    from labelloop.projects.service import get_project

    with open_session(database_url) as session:
        p = get_project(session, project)
        new = tokens.create_token(
            session,
            actor=Actor.local(),
            username=username,
            project_id=p.id,
            role=_role(role),
            name=name,
        )
        token_id = new.token.id
    console.print(
        f"token {token_id} for {username} ({role} in {p.name}); copy it now, it is not shown again:"
    )
    typer.echo(new.plaintext)


@token_app.command("list")
def token_list_cmd(
    username: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List API tokens (never their secrets)."""
    from labelloop.accounts import tokens

    with open_session(database_url) as session:
        rows = [
            {
                "id": t.id,
                "username": user,
                "project_id": t.project_id,
                "role": t.role,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked": t.revoked_at is not None,
            }
            for t, user in tokens.list_tokens(session, actor=Actor.local(), username=username)
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "user", "project", "role", "name", "prefix", "last used", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["username"]),
            str(r["project_id"]),
            str(r["role"]),
            str(r["name"]),
            f"{r['prefix']}…",
            str(r["last_used_at"] or ""),
            "yes" if r["revoked"] else "",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke_cmd(token_id: int, database_url: DatabaseUrl = None) -> None:
    """Revoke an API token by id (it stops working at once)."""
    from labelloop.accounts import tokens

    with open_session(database_url) as session:
        tokens.revoke_token(session, actor=Actor.local(), token_id=token_id)
    console.print(f"token {token_id} revoked")


sessions_app = typer.Typer(
    help="Signed-in browser sessions (kept on the server).", no_args_is_help=True
)
app.add_typer(sessions_app, name="sessions")


@sessions_app.command("list")
def sessions_list_cmd(
    username: str, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """List a user's live sessions: when they signed in, when last used, from where."""
    from datetime import timedelta

    from labelloop.accounts import sessions
    from labelloop.cli._common import settings_for

    idle = timedelta(hours=settings_for(database_url).session_idle_hours)
    with open_session(database_url) as session:
        rows = [
            {
                "id": s.id,
                "created_at": s.created_at.isoformat(),
                "last_seen_at": s.last_seen_at.isoformat(),
                "expires_at": s.expires_at.isoformat(),
                "client": s.client,
                "user_agent": s.user_agent,
            }
            for s in sessions.live(session, actor=Actor.local(), username=username, idle=idle)
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "signed in (UTC)", "last used (UTC)", "from", "browser")
    for r in rows:  # Text cells: a browser's User-Agent is not Rich markup
        table.add_row(
            str(r["id"]),
            str(r["created_at"])[:16],
            str(r["last_seen_at"])[:16],
            Text(str(r["client"] or "")),
            Text(str(r["user_agent"] or "")[:60]),
        )
    console.print(table)


@sessions_app.command("revoke")
def sessions_revoke_cmd(
    username: str,
    session_id: Annotated[
        int | None, typer.Option("--id", help="Only this session (default: all of them).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Sign a user out everywhere (or out of one session): their cookies stop working at
    once, copies included."""
    from labelloop.accounts import sessions

    with open_session(database_url) as session:
        ended = sessions.revoke(
            session, actor=Actor.local(), username=username, session_id=session_id
        )
    console.print(f"ended {ended} session{'s' if ended != 1 else ''} of {username}")
