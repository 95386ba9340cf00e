"""`labelloop feedback`: notes to annotators (list, show, write, send, acknowledge,
resolve), the project's templates and settings, and `stats` (counts, latency, effect);
see docs/feedback.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.cli._common import (
    AsOpt,
    DatabaseUrl,
    JsonFlag,
    acting_as,
    console,
    fail,
    open_session,
)
from labelloop.feedback import effect, lifecycle, service
from labelloop.feedback.models import STATUSES
from labelloop.projects.service import get_project

app = typer.Typer(help="Feedback notes to annotators, and whether they work.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
NoteArg = Annotated[int, typer.Argument(help="The note id.", min=1)]


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command("list")
def list_cmd(
    project: ProjectOpt,
    status: Annotated[
        str | None, typer.Option(help="draft, sent, acknowledged or resolved.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 100,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The project's notes, newest first."""
    if status is not None and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}, not {status!r}", code=2)
    with open_session(database_url) as session:
        proj = get_project(session, project)
        notes = service.list_notes(
            session, actor=Actor.local(), project=proj, status=status, limit=limit
        )
        rows = [service.note_json(n, with_items=False) | {"items": len(n.items)} for n in notes]
    if as_json:
        _echo(rows)
        return
    if not rows:
        console.print("no feedback notes")
        return
    table = Table("id", "to", "template", "status", "confusion", "items", "message")
    for r in rows:
        c = r["confusion"]
        table.add_row(
            str(r["id"]),
            str(r["recipient_id"]),
            r["template"],
            r["status"],
            escape(f"{c['given']} → {c['expected']}") if c else "",
            str(r["items"]),
            escape(r["message"][:80]),
        )
    console.print(table)


@app.command("show")
def show_cmd(note: NoteArg, as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """One note with its items (your label, the reference) and its thread."""
    with open_session(database_url) as session:
        n = service.get_note(session, actor=Actor.local(), note_id=note)
        data = service.note_json(n)
    if as_json:
        _echo(data)
        return
    console.print(
        f"[bold]note {data['id']}[/] ({data['template']}, {data['severity']}) · {data['status']}"
    )
    console.print(escape(data["message"]))
    for k, v in data["fields"].items():
        console.print(f"  {k.replace('_', ' ')}: {escape(str(v))}")
    if data["rule_refs"]:
        console.print(f"  rules: {', '.join(data['rule_refs'])}")
    for i in data["items"]:
        console.print(
            f"  item {i['item_id']}: {escape(str(i['given']))} → {escape(str(i['reference']))} ({i['reference_source']})"
        )


@app.command("write")
def write_cmd(
    project: ProjectOpt,
    to: Annotated[str, typer.Option("--to", help="The recipient's username.")],
    template: Annotated[
        str, typer.Option(help="boundary_case, ambiguous_context, ... or the project's own.")
    ],
    message: Annotated[str, typer.Option(help="What happened.")],
    item: Annotated[
        list[str] | None, typer.Option("--item", help="An item's external id (repeatable).")
    ] = None,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="A template field as NAME=TEXT (repeatable)."),
    ] = None,
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="A rule reference (repeatable).")
    ] = None,
    severity: Annotated[str, typer.Option(help="low, medium, high or critical.")] = "medium",
    database_url: DatabaseUrl = None,
) -> None:
    """Write a draft by hand (the template's required fields are checked)."""
    fields = {}
    for entry in field or []:
        name, sep, text = entry.partition("=")
        if not sep:
            raise fail(f"--field {entry!r}: write NAME=TEXT", code=2)
        fields[name.strip()] = text
    new = lifecycle.NewNote(
        recipient=to,
        template=template,
        message=message,
        items=tuple(item or ()),
        severity=severity,
        fields=fields,
        rule_refs=tuple(rule or ()),
    )
    with open_session(database_url) as session:
        proj = get_project(session, project)
        n = lifecycle.create(session, actor=Actor.local(), project=proj, new=new)
        console.print(
            f"draft {n.id} written; send it with [bold]labelloop feedback send {n.id} --project {proj.name}[/]"
        )


@app.command("send")
def send_cmd(
    project: ProjectOpt,
    notes: Annotated[list[int] | None, typer.Argument(help="Note ids; none: every draft.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send drafts to their recipients (drafts missing a template's fields stay drafts)."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        ids = notes or [
            n.id
            for n in service.list_notes(
                session, actor=Actor.local(), project=proj, status="draft", limit=100000
            )
        ]
        result = lifecycle.send(session, actor=Actor.local(), project=proj, note_ids=ids)
    console.print(f"sent {len(result.sent)} notes")
    for note_id, problems in result.refused.items():
        console.print(
            f"[yellow]note {note_id} not sent:[/] "
            + "; ".join(f"{p.field}: {p.message}" for p in problems)
        )
    if result.refused:
        raise typer.Exit(1)


@app.command("ack")
def ack_cmd(
    note: NoteArg,
    as_user: AsOpt,
    disagree: Annotated[
        str | None,
        typer.Option("--disagree", help="Disagree, saying why (opens an adjudication case)."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Acknowledge a note as its recipient (--as USER): agree, or --disagree REASON."""
    if as_user is None:
        raise fail("--as USER is required: only the recipient acknowledges", code=2)
    with open_session(database_url) as session:
        n = lifecycle.acknowledge(
            session,
            actor=acting_as(session, as_user),
            note_id=note,
            agree=disagree is None,
            reason=disagree,
        )
        case = f"; case {n.case_id} opened for the adjudicator" if n.case_id else ""
        console.print(f"note {n.id} acknowledged ({n.response}){case}")


@app.command("resolve")
def resolve_cmd(note: NoteArg, database_url: DatabaseUrl = None) -> None:
    """Close a sent or acknowledged note."""
    with open_session(database_url) as session:
        n = lifecycle.resolve(session, actor=Actor.local(), note_id=note)
        console.print(f"note {n.id} resolved")


@app.command("templates")
def templates_cmd(
    project: ProjectOpt,
    file: Annotated[
        Path | None, typer.Option("--file", help="YAML list of the project's own templates.")
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List the templates (built in and the project's), or replace the project's from FILE."""
    custom = None
    if file is not None:
        try:
            custom = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise fail(f"{file}: {exc}") from None
    with open_session(database_url) as session:
        proj = get_project(session, project)
        if custom is not None:
            service.update_settings(session, actor=Actor.local(), project=proj, templates=custom)
        rows = [
            {"name": t.name, "title": t.title, "required": list(t.required)}
            for t in service.catalogue(session, proj).values()
        ]
    if as_json:
        _echo(rows)
        return
    for r in rows:
        console.print(f"{r['name']}: {r['title']} (needs {', '.join(r['required'])})")


@app.command("settings")
def settings_cmd(
    project: ProjectOpt,
    auto_send: Annotated[
        bool | None,
        typer.Option("--auto-send/--review-first", help="Send generated drafts at once."),
    ] = None,
    due_days: Annotated[
        int | None, typer.Option(help="Days a recipient has to acknowledge.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show or change the project's feedback settings."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        if auto_send is not None or due_days is not None:
            cfg = service.update_settings(
                session, actor=Actor.local(), project=proj, auto_send=auto_send, due_days=due_days
            )
        else:
            cfg = service.settings_of(session, proj)
        console.print(f"auto_send: {cfg.auto_send}\ndue_days: {cfg.due_days}")


@app.command("stats")
def stats_cmd(
    project: ProjectOpt,
    window_days: Annotated[
        int, typer.Option(min=1, max=365, help="Days before and after each note.")
    ] = effect.WINDOW_DAYS,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Notes sent and acknowledged, latency, and each template's effect: the recipients'
    error before and after, with Wilson intervals and a Cochran–Mantel–Haenszel test."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        data = effect.stats(session, actor=Actor.local(), project=proj, window_days=window_days)
    if as_json:
        _echo(data)
        return
    lat = data["latency_hours"]
    console.print(
        f"sent {data['sent']}, acknowledged {data['acknowledged']} ({data['ack_rate']}); "
        f"hours finding→sent median {lat['finding_to_sent']['median']}, sent→ack median {lat['sent_to_ack']['median']}"
    )
    table = Table("template", "notes", "error before [95% CI]", "after [95% CI]", "p (CMH)")
    for e in data["effect"]:
        table.add_row(
            e["template"], str(e["n_notes"]), _fmt(e["before"]), _fmt(e["after"]), str(e["p_value"])
        )
    console.print(table)


def _fmt(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    return f"{r['rate']:.1%} [{r['ci'][0]:.1%}, {r['ci'][1]:.1%}] n={r['n']}"
