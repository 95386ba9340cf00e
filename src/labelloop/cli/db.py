"""`labelloop db`: schema migrations."""

from __future__ import annotations

import typer

from labelloop.cli._common import DatabaseUrl, console, handle_errors, settings_for
from labelloop.store import make_engine, upgrade
from labelloop.store.migrate import current

app = typer.Typer(help="Database schema: create and migrate.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(
    revision: str = typer.Argument("head", help="Target revision."),
    database_url: DatabaseUrl = None,
) -> None:
    """Create or migrate the database schema to the newest revision."""
    from labelloop import trail
    from labelloop.store import make_session_factory, session_scope

    settings = settings_for(database_url)
    engine = make_engine(settings)
    try:
        with handle_errors():
            upgrade(engine, revision)
            console.print(
                f"database at revision [bold]{current(engine)}[/] ({engine.url.render_as_string()})"
            )
            if revision != "head":
                return
            # events written before the trail was keyed: anchor them now (see
            # docs/security.md); verify refuses them while no anchor covers them
            with session_scope(make_session_factory(engine)) as session:
                pinned = trail.service.pin_legacy(session, anchor_file=settings.trail_anchor_file)
            if pinned is not None:
                console.print(
                    f"anchored the trail's {pinned.seq} events written before it was keyed "
                    f"in {settings.trail_anchor_file}"
                )
    finally:
        engine.dispose()


@app.command("current")
def current_cmd(database_url: DatabaseUrl = None) -> None:
    """Print the schema revision the database is at."""
    engine = make_engine(settings_for(database_url))
    try:
        with handle_errors():
            console.print(current(engine) or "empty (run `labelloop db upgrade`)")
    finally:
        engine.dispose()
