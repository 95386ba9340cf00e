"""`labelloop trail`: verify and read the audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from labelloop import trail
from labelloop.cli._common import DatabaseUrl, JsonFlag, console, open_session
from labelloop.errors import TrailBroken

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
def verify_cmd(database_url: DatabaseUrl = None) -> None:
    """Recompute the hash chain; exit 1 naming every edited, deleted or reordered event."""
    with open_session(database_url) as session:
        result = trail.service.verify(session)
        if not result.ok:
            raise TrailBroken(
                f"trail does not verify: {len(result.problems)} problem(s) in {result.checked} events",
                result.problems,
            )
        console.print(f"[green]ok[/]: {result.checked} events, chain intact")


@app.command("show")
def show_cmd(
    project: Annotated[str | None, typer.Option(help="Project name or id.")] = None,
    entity_type: Annotated[str | None, typer.Option(help="e.g. annotation, project, user.")] = None,
    entity_id: Annotated[str | None, typer.Option(help="Id of the entity.")] = None,
    actor: Annotated[str | None, typer.Option(help="e.g. cli:root or user:alice.")] = None,
    action: Annotated[str | None, typer.Option(help="Action, * as wildcard (import.*).")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only events at or after (ISO 8601).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Only events before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List events, newest first, with filters."""
    with open_session(database_url) as session:
        project_id = None
        if project is not None:
            from labelloop.projects.service import get_project

            project_id = get_project(session, project).id
        events = trail.service.query(
            session,
            project_id=project_id,
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            action=action,
            since=since,
            until=until,
            limit=limit,
        )
        if as_json:
            rows = [
                {
                    "seq": e.seq,
                    "created_at": e.created_at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "entity_type": e.entity_type,
                    "entity_id": e.entity_id,
                    "project_id": e.project_id,
                    "before": e.before,
                    "after": e.after,
                    "hash": e.hash,
                }
                for e in events
            ]
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        table = Table("seq", "when (UTC)", "actor", "action", "entity", "change")
        for e in events:
            change = json.dumps(e.after if e.after is not None else e.before, ensure_ascii=False)
            table.add_row(
                str(e.seq),
                e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                f"{e.entity_type}:{e.entity_id or ''}",
                change if len(change) <= 80 else change[:77] + "...",
            )
        console.print(table)
