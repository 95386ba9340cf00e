"""The `labelloop` command: a root Typer app assembled from one sub-app per feature."""

from __future__ import annotations

import typer

from labelloop import __version__
from labelloop.cli import (
    audits,
    cases,
    db,
    demo,
    escalation,
    feedback,
    guidelines,
    projects,
    stats,
    trail,
    users,
)
from labelloop.cli import io as io_cmds
from labelloop.cli._common import DatabaseUrl, console, handle_errors, settings_for
from labelloop.web.serve import serve_cmd

app = typer.Typer(
    name="labelloop",
    help="LabelLoop: periodic audits, feedback and training that keep labeled data trustworthy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(trail.app, name="trail")
app.add_typer(users.app, name="user")
app.command("demo")(demo.demo_cmd)
app.add_typer(stats.app, name="stats")
app.add_typer(projects.app, name="project")
app.add_typer(audits.app, name="audit")
app.add_typer(guidelines.app, name="guidelines")
app.add_typer(cases.app, name="cases")
app.add_typer(feedback.app, name="feedback")
app.add_typer(escalation.app, name="escalation")
app.command("worker")(audits.worker_cmd)
app.command("import")(io_cmds.import_cmd)
app.command("export")(io_cmds.export_cmd)
app.command("serve")(serve_cmd)


@app.command("init")
def init_cmd(database_url: DatabaseUrl = None) -> None:
    """Create the database (migrated to the newest schema) and the secret key."""
    from labelloop.cli._common import migrate
    from labelloop.store import make_engine

    settings = settings_for(database_url)
    engine = make_engine(settings)
    try:
        with handle_errors():
            migrate(engine, settings)
    finally:
        engine.dispose()
    settings.ensure_secret_key()
    console.print(f"database ready at [bold]{settings.database_url}[/]")
    console.print(
        "next: [bold]labelloop project create NAME --schema schema.yaml[/] "
        "or [bold]labelloop import FILE --project NAME --create[/]"
    )


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    app()
