"""What every command shares: the database option, sessions, error mapping, consoles.

Domain errors map to exit code 1 with the message on stderr (usage errors are 2, from
Typer); this module is the one place where that mapping lives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.errors import ImportFailed, LabelLoopError, NotFound, TrailBroken, ValidationFailed
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.conflicts import is_concurrent_conflict

console = Console()
err_console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="LABELLOOP_DATABASE_URL",
        help="Database URL (default sqlite:///./labelloop.db).",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def settings_for(database_url: str | None) -> Settings:
    settings = Settings()
    if database_url:
        settings.database_url = database_url
    return settings


def fail(message: str, *, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def report_error(exc: LabelLoopError) -> typer.Exit:
    """Print a domain error (with its list of problems) to stderr; exit code 1."""
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    details: list[object] = []
    if isinstance(exc, ImportFailed | ValidationFailed):
        details = list(getattr(exc, "issues", None) or getattr(exc, "violations", []))
    elif isinstance(exc, TrailBroken):
        details = list(exc.problems)
    for detail in details:
        err_console.print(f"  - {detail}", highlight=False, soft_wrap=True, markup=False)
    if isinstance(exc, ImportFailed) and exc.total > len(exc.issues):
        err_console.print(f"  ... and {exc.total - len(exc.issues)} more problems", highlight=False)
    return typer.Exit(1)


@contextmanager
def handle_errors() -> Iterator[None]:
    try:
        yield
    except LabelLoopError as exc:
        raise report_error(exc) from None
    except OperationalError as exc:
        hint = " (run `labelloop db upgrade` first?)" if "no such table" in str(exc) else ""
        raise fail(f"database error: {exc.orig}{hint}") from None
    except DBAPIError as exc:
        if not is_concurrent_conflict(exc):
            raise
        raise fail(
            f"a concurrent change got there first; run the command again ({exc.orig})"
        ) from None


@contextmanager
def open_session(database_url: str | None) -> Iterator[Session]:
    """One committed unit of work against the configured database, errors mapped."""
    engine = make_engine(settings_for(database_url))
    try:
        with handle_errors(), session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def open_reader(database_url: str | None) -> Iterator[Session]:
    """A read-only unit of work (on SQLite a deferred BEGIN: no write lock), for a long
    read before a short write in :func:`open_session`; errors mapped."""
    engine = make_engine(settings_for(database_url), read_only=True)
    try:
        with handle_errors(), session_scope(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def migrate(engine: Engine, settings: Settings, revision: str = "head") -> int | None:
    """Bring the schema to ``revision``; at the newest one, anchor the trail's events
    written before it was keyed, if any (:func:`labelloop.trail.service.pin_legacy`).
    Returns the anchored event, or None."""
    from labelloop import trail
    from labelloop.store import upgrade

    upgrade(engine, revision)
    if revision != "head":
        return None
    with session_scope(make_session_factory(engine)) as session:
        pinned = trail.service.pin_legacy(session, anchor_file=settings.trail_anchor_file)
    return None if pinned is None else pinned.seq


AsOpt = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Act as this user (their roles are checked, and rulings name them); "
        "default the local operator.",
    ),
]


def acting_as(session: Session, username: str | None) -> Actor:
    """The local operator, or (``--as USER``) that user, whose roles are then checked."""
    if username is None:
        return Actor.local()
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise NotFound(f"no active user {username!r}")
    return Actor.for_user(user.id, user.username, is_admin=user.is_admin)
