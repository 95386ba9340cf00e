"""`labelloop demo`: build the simulated demo project and say what was built and where."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy.engine import make_url

from labelloop.accounts.actor import Actor
from labelloop.cli._common import DatabaseUrl, console, handle_errors, settings_for
from labelloop.settings import DEFAULT_DATABASE_URL

KIND_NOTES = {
    "strong": "",
    "average": "",
    "confuser": "refund <-> billing",
    "speeder": "rushes, errs more",
    "fatigued": "tires late in sessions",
}


def _where(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def demo_cmd(
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulation (same seed, same data).")
    ] = 7,
    items: Annotated[
        int, typer.Option("--items", min=1, max=200_000, help="Number of tickets to simulate.")
    ] = 2000,
    database_url: DatabaseUrl = None,
) -> None:
    """Build the demo project: ~2,000 support tickets labelled by a simulated team of twelve.

    Migrates the database first, so it works on an empty machine. Running it again
    changes nothing (the existing demo is reported); use a new database to rebuild.
    """
    from labelloop.demo.builder import build_demo
    from labelloop.store import make_engine, make_session_factory, session_scope, upgrade

    settings = settings_for(database_url)
    engine = make_engine(settings)
    started = time.perf_counter()
    try:
        with handle_errors():
            upgrade(engine)
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("simulating the team", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, description="importing records", completed=done, total=total)

                with session_scope(make_session_factory(engine)) as session:
                    summary = build_demo(
                        session,
                        actor=Actor.local("demo"),
                        seed=seed,
                        n_items=items,
                        progress=progress,
                    )
                    bar.update(task, description="committing")
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started

    if summary.created:
        console.print(
            f"built demo project [bold]{summary.project}[/] (seed {summary.seed}, {summary.n_items} tickets) "
            f"in {elapsed:.1f} s"
        )
    for notice in summary.notices:
        console.print(f"[yellow]note:[/] {notice}")
    console.print(f"database: [bold]{_where(settings.database_url)}[/]", soft_wrap=True)

    counts = Table(
        "items",
        "annotations",
        "annotators",
        "gold",
        "predictions",
        "flagged too fast",
        title="contents",
    )
    c = summary.counts
    counts.add_row(
        *(
            str(c.get(k, 0))
            for k in ("items", "annotations", "annotators", "gold", "predictions", "flagged")
        )
    )
    console.print(counts)

    if summary.annotators:
        team = Table(
            "annotator",
            "kind",
            "labels",
            "accuracy",
            "planted problem",
            title="simulated team",
            caption="accuracy against the simulation's true labels",
        )
        for a in summary.annotators:
            kind = a.kind if a.kind in ("strong", "average") else f"[bold red]{a.kind}[/]"
            team.add_row(
                a.username, kind, str(a.annotations), f"{a.accuracy:.1%}", KIND_NOTES[a.kind]
            )
        console.print(team)

    logins = Table("role", "username", "password", "", title="demo logins (demo data only)")
    for acc in summary.accounts:
        logins.add_row(acc.role, acc.username, acc.password, acc.note)
    console.print(logins)

    db = (
        ""
        if settings.database_url == DEFAULT_DATABASE_URL
        else f" --database-url {shlex.quote(settings.database_url)}"
    )
    name = shlex.quote(summary.project)
    console.print("next, try:")
    for line in (
        f"labelloop project show {name}{db}",
        f"labelloop export --project {name} --format csv -o demo.csv{db}",
        "labelloop stats agreement demo.csv --item item_id --annotator annotator --label label",
        f"labelloop trail verify{db}",
    ):
        console.print(f"  [bold]{line}[/]", highlight=False, soft_wrap=True)
