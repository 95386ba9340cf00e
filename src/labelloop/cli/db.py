"""`labelloop db`: schema migrations."""

from __future__ import annotations

import typer

from labelloop.cli._common import DatabaseUrl, console, handle_errors, migrate, settings_for
from labelloop.store import make_engine
from labelloop.store.migrate import current

app = typer.Typer(help="Database schema: create and migrate.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(
    revision: str = typer.Argument("head", help="Target revision."),
    database_url: DatabaseUrl = None,
) -> None:
    """Create or migrate the database schema to the newest revision."""
    settings = settings_for(database_url)
    engine = make_engine(settings)
    try:
        with handle_errors():
            pinned = migrate(engine, settings, revision)
            console.print(
                f"database at revision [bold]{current(engine)}[/] ({engine.url.render_as_string()})"
            )
            if pinned is not None:
                console.print(
                    f"anchored the trail's {pinned} events written before it was keyed "
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
