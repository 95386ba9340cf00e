"""`labelloop trail`: verify, checkpoint and read the audit trail."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelloop import trail
from labelloop.cli._common import (
    DatabaseUrl,
    JsonFlag,
    console,
    err_console,
    open_session,
    settings_for,
)
from labelloop.errors import TrailBroken
from labelloop.trail.anchors import Anchor

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)

AnchorFile = Annotated[
    Path | None,
    typer.Option(
        "--anchor-file",
        help="The append-only anchor file (default: LABELLOOP_TRAIL_ANCHOR_FILE, "
        "./labelloop-trail.anchors).",
        show_default=False,
        dir_okay=False,
    ),
]


def _anchor_json(anchor: Anchor | None) -> dict[str, Any] | None:
    if anchor is None:
        return None
    return {
        "line": anchor.line or None,
        "seq": anchor.seq,
        "hash": anchor.hash,
        "time": anchor.time,
    }


@app.command("verify")
def verify_cmd(
    anchor_file: AnchorFile = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Check the keyed hash chain, its head and this database's anchors; exit 1 naming each problem.

    Names every edited, deleted, reordered or rewritten event, every event chained with another key, and every forged anchor line. Warns (exit 0) when no anchor exists for this database yet, unless the trail holds events written before it was keyed (those fail until an anchor covers them; `labelloop db upgrade` anchors them).
    """
    path = anchor_file or settings_for(database_url).trail_anchor_file
    with open_session(database_url) as session:
        result = trail.service.verify(session, anchor_file=path)
        latest = result.latest_anchor
        if as_json:
            report = {
                "ok": result.ok,
                "events": result.checked,
                "last_seq": result.last_seq,
                "legacy_events": result.legacy,
                "anchor_file": str(path),
                "anchors_matched": len(result.anchors),
                "latest_anchor": _anchor_json(latest),
                "problems": result.problems,
                "warnings": result.warnings,
            }
            typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        if not result.ok:
            raise TrailBroken(
                f"trail does not verify: {len(result.problems)} problem(s) in {result.checked} events",
                result.problems,
            )
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        if as_json:
            return
        anchored = (
            f"; latest anchor: event {latest.seq} of {latest.time} (line {latest.line} of "
            f"{path}), {result.last_seq - latest.seq} newer event(s)"
            if latest is not None
            else ""
        )
        console.print(
            f"[green]ok[/]: {result.checked} events, chain intact{anchored}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("checkpoint")
def checkpoint_cmd(
    anchor_file: AnchorFile = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Append the trail's head, signed with the trail key, to the append-only anchor file.

    Then `labelloop trail verify` detects deleted events up to this one, even if the whole trail is deleted. Keep the anchor file out of reach of whoever can write to the database (another host, or chattr +a). The worker appends one every LABELLOOP_TRAIL_CHECKPOINT_MINUTES.
    """
    path = anchor_file or settings_for(database_url).trail_anchor_file
    with open_session(database_url) as session:
        anchor = trail.service.checkpoint(session, anchor_file=path)
    if as_json:
        report = {"anchor_file": str(path), **anchor.signed_fields()}
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console.print(
        f"anchored event {anchor.seq} (hash {anchor.hash[:16]}...) of {anchor.database} in {path}",
        highlight=False,
        soft_wrap=True,
    )


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
