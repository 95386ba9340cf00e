"""`labelloop escalation`: what waits past its deadline, and the project's escalation
paths (see docs/escalation.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from labelloop.cli._common import AsOpt, DatabaseUrl, JsonFlag, acting_as, console, open_session
from labelloop.escalation import paths as escalation_paths
from labelloop.escalation import service as escalation
from labelloop.projects.service import get_project
from labelloop.store.base import utcnow

app = typer.Typer(
    help="Deadlines that climb an escalation path: what is overdue, and each path.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]


@app.command("overdue")
def overdue_cmd(
    project: ProjectOpt,
    include_all: Annotated[
        bool, typer.Option("--all", help="Also list what is still within its SLA.")
    ] = False,
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List what waits past its deadline, most overdue first (leads)."""
    now = utcnow()
    with open_session(database_url) as session:
        proj = get_project(session, project)
        found = escalation.waiting(
            session,
            actor=acting_as(session, as_user),
            project_id=proj.id,
            overdue_only=not include_all,
            now=now,
        )
        rows = [escalation.deadline_json(d, now) for d in found]
    if as_json:
        typer.echo(json.dumps({"deadlines": rows}, indent=2, ensure_ascii=False))
        return
    if not rows:
        console.print("Nothing is overdue." if not include_all else "Nothing waits.")
        return
    table = Table("what", "waits on", "due (UTC)", "late (min)")
    for r in rows:
        table.add_row(
            escape(r["title"]),
            f"{r['owner']} (level {r['level'] + 1})",
            r["due_at"][:16].replace("T", " "),
            str(r["overdue_minutes"]),
        )
    console.print(table)


@app.command("paths")
def paths_cmd(
    project: ProjectOpt,
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show each subject's escalation path (case, flag, audit_run, feedback)."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        found = escalation_paths.paths(
            session, actor=acting_as(session, as_user), project_id=proj.id
        )
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for subject, p in found.items():
        console.print(f"{subject:10} {p['levels']}" + (" (default)" if p["default"] else ""))


@app.command("set-path")
def set_path_cmd(
    project: ProjectOpt,
    subject: Annotated[str, typer.Argument(help="case, flag, audit_run or feedback.")],
    levels: Annotated[
        str | None,
        typer.Argument(
            help="Levels as 'role:SLA, ...', e.g. 'auditor:24h, adjudicator:48h, lead:5bd'."
        ),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Put the default path back.")] = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a subject's escalation path (leads); SLAs in m, h, d or bd (business days)."""
    if (levels is None) == (not default):
        raise typer.BadParameter("give LEVELS or --default (not both)")
    with open_session(database_url) as session:
        proj = get_project(session, project)
        got = escalation_paths.set_path(
            session,
            actor=acting_as(session, as_user),
            project_id=proj.id,
            subject=subject,
            spec=None if default else levels,
        )
    console.print(f"{subject}: " + ", ".join(lv.text() for lv in got))
