"""`labelloop cases`: detect and open disagreement cases, list and show them, rule them,
tune detection, and send the digest of notable rulings (see docs/adjudication.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.adjudication import rulings, service
from labelloop.adjudication.view import CaseView, case_view
from labelloop.cli._common import (
    AsOpt,
    DatabaseUrl,
    JsonFlag,
    acting_as,
    console,
    fail,
    open_reader,
    open_session,
)
from labelloop.projects.service import get_project

app = typer.Typer(
    help="Disagreement cases: detection, the adjudicator's queue, rulings.",
    no_args_is_help=True,
)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]


def _label(text: str) -> Any:
    """A label given on the command line: JSON when it parses (a list for multi-label
    projects), the text itself otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command("detect")
def detect_cmd(
    project: ProjectOpt,
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Open a case on every item with a disagreement signal and no open case or ruling."""
    with open_reader(database_url) as reader, open_session(database_url) as session:
        proj, actor = get_project(reader, project), acting_as(reader, as_user)
        r = service.detect_apart(reader=reader, session=session, actor=actor, project=proj)
    if as_json:
        _echo(
            {
                "opened": r.opened,
                "candidates": r.candidates,
                "by_reason": r.by_reason,
                "seconds": r.seconds,
            }
        )
        return
    reasons = ", ".join(f"{n} {k}" for k, n in sorted(r.by_reason.items())) or "none"
    console.print(
        f"{r.opened} new cases ({reasons}) from {r.candidates} items with signals, in {r.seconds} s"
    )


@app.command("open")
def open_cmd(
    project: ProjectOpt,
    item: Annotated[str, typer.Option("--item", help="The item's external id.")],
    note: Annotated[str, typer.Option("--note", help="What is unclear about it (required).")],
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Open a case on one item by hand."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        case = service.open_case(
            session, actor=acting_as(session, as_user), project=proj, item=item, note=note
        )
        console.print(f"opened case {case.id} on item {item!r} (priority {case.priority:g})")


@app.command("list")
def list_cmd(
    project: ProjectOpt,
    status: Annotated[str, typer.Option(help="open, ruled or all.", case_sensitive=False)] = "open",
    limit: Annotated[int, typer.Option(min=1, max=100000, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cases by priority. JSON: a list of {id, item, reason, priority, status, opened_at,
    due_at, level, ...}."""
    if status not in {"open", "ruled", "all"}:
        raise fail(f"--status must be open, ruled or all, not {status!r}", code=2)
    with open_session(database_url) as session:
        proj = get_project(session, project)
        rows = service.list_cases(
            session,
            actor=acting_as(session, as_user),
            project=proj,
            status=None if status == "all" else status,
            limit=limit,
        )
        data = [r.as_json() for r in rows]
    if as_json:
        _echo(data)
        return
    if not data:
        console.print(f"no {'' if status == 'all' else status + ' '}cases")
        return
    table = Table("case", "item", "reason", "priority", "status", "waits on", "due (UTC)")
    for c in data:
        table.add_row(
            str(c["id"]),
            escape(c["item"]),
            c["reason"].replace("_", " "),
            f"{c['priority']:.2f}",
            c["status"],
            c["level"] or "",
            (c["due_at"] or "")[5:16].replace("T", " "),
        )
    console.print(table)


def _print_case(v: CaseView) -> None:
    c = v.row.case
    console.print(f"[bold]case {c.id}[/] on item {escape(v.item.external_id)} · {c.status}")
    text = v.item.payload.get("text") if isinstance(v.item.payload, dict) else None
    console.print(escape(str(text if text is not None else v.item.payload)))
    for s in c.signals:
        console.print(f"  [yellow]{s['reason']}[/]: {escape(s['detail'])}")
    console.print(
        f"priority {c.priority:g} = uncertainty {c.uncertainty:g} × impact {c.impact:g}"
        + (f"; consensus {escape(c.consensus)} at posterior {c.posterior:g}" if c.consensus else "")
    )
    table = Table("label", "votes", "who")
    for g in v.groups:
        who = "(anonymous)" if g.annotators is None else ", ".join(g.annotators)
        table.add_row(escape(g.label), str(g.count), escape(who))
    console.print(table)
    if v.prediction is not None:
        p = v.prediction
        conf = "" if p.confidence is None else f" ({p.confidence:.2f})"
        console.print(f"model {escape(p.model)} {escape(p.version)} says {escape(p.label)}{conf}")
    for r in v.rules:
        console.print(f"rule [bold]{r.key}[/] {escape(r.title)} ({', '.join(r.labels)})")
    for past, ext in v.similar:
        console.print(
            f"similar: ruling {past.id} on {escape(ext)}: {escape(str(past.value))}"
            f" — {escape(past.rationale)}"
        )
    if v.ruling is not None:
        console.print(
            f"[green]ruled[/] {escape(str(v.ruling.value))}: {escape(v.ruling.rationale)}"
        )


@app.command("show")
def show_cmd(
    case: Annotated[int, typer.Argument(help="The case id.", min=1)],
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """One case with the votes grouped, the model's prediction, the rules that concern
    its labels and similar past rulings."""
    with open_session(database_url) as session:
        v = case_view(session, actor=acting_as(session, as_user), case_id=case)
        if as_json:
            _echo(v.as_json())
            return
        _print_case(v)


@app.command("rule")
def rule_cmd(
    case: Annotated[int, typer.Argument(help="The case id.", min=1)],
    label: Annotated[str, typer.Option("--label", help="The final label (JSON for lists).")],
    rationale: Annotated[str, typer.Option("--rationale", help="Why (required).")],
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="A rule the ruling rests on (repeatable).")
    ] = None,
    gold: Annotated[bool, typer.Option("--gold", help="Make the item gold.")] = False,
    exemplar: Annotated[
        str | None, typer.Option("--exemplar", help="Propose the item as an exemplar of this rule.")
    ] = None,
    amend: Annotated[
        str | None, typer.Option("--amend", help="Propose this clarification of the first --rule.")
    ] = None,
    notable: Annotated[
        bool, typer.Option("--notable", help="Send it to the whole team in the digest.")
    ] = False,
    as_json: JsonFlag = False,
    as_user: AsOpt = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Rule a case: its label becomes the item's adjudicated label; annotators who
    differed are told."""
    given = rulings.RulingInput(
        label=_label(label),
        rationale=rationale,
        rules=tuple(rule or ()),
        gold=gold,
        exemplar=exemplar,
        amend=amend,
        notable=notable,
    )
    with open_session(database_url) as session:
        r = rulings.rule(session, actor=acting_as(session, as_user), case_id=case, given=given)
        from labelloop.adjudication.view import ruling_json

        data = ruling_json(r)
    if as_json:
        _echo(data)
        return
    console.print(
        f"case {case} ruled {escape(json.dumps(data['label'], ensure_ascii=False))} (ruling {data['id']})"
    )


@app.command("settings")
def settings_cmd(
    project: ProjectOpt,
    posterior_below: Annotated[
        float | None, typer.Option(help="Open a case below this posterior.")
    ] = None,
    spread_min_votes: Annotated[
        int | None, typer.Option(help="Votes needed for the spread signal.")
    ] = None,
    spread_max_share: Annotated[
        float | None, typer.Option(help="Spread: top label's share at most this.")
    ] = None,
    model_consensus: Annotated[
        float | None, typer.Option(help="Model signal: consensus posterior at least this.")
    ] = None,
    model_confidence: Annotated[
        float | None, typer.Option(help="Model signal: the model's confidence at least this.")
    ] = None,
    rationale_min: Annotated[
        int | None, typer.Option(help="Shortest rationale, in characters.")
    ] = None,
    sla_hours: Annotated[
        float | None, typer.Option(help="Hours each escalation level gets.")
    ] = None,
    anonymous: Annotated[
        bool | None, typer.Option("--anonymous/--named", help="Hide who chose what.")
    ] = None,
    detect_minutes: Annotated[
        int | None, typer.Option(help="The worker's detection cadence.")
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show the project's adjudication settings, or change those given."""
    changes = {
        k: v
        for k, v in {
            "posterior_below": posterior_below,
            "spread_min_votes": spread_min_votes,
            "spread_max_share": spread_max_share,
            "model_consensus": model_consensus,
            "model_confidence": model_confidence,
            "rationale_min": rationale_min,
            "sla_hours": sla_hours,
            "anonymous": anonymous,
            "detect_minutes": detect_minutes,
        }.items()
        if v is not None
    }
    with open_session(database_url) as session:
        proj = get_project(session, project)
        if changes:
            cfg = service.update_settings(
                session, actor=Actor.local(), project=proj, changes=changes
            )
        else:
            cfg = service.settings_of(session, proj)
        data = service.settings_json(cfg)
    if as_json:
        _echo(data)
        return
    for k, v in data.items():
        console.print(f"{k}: {v}")


@app.command("digest")
def digest_cmd(project: ProjectOpt, database_url: DatabaseUrl = None) -> None:
    """Send the notable rulings not yet sent to the whole team now."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        n = rulings.send_digest(session, actor=Actor.local(), project=proj)
    console.print(f"digest of {n} notable rulings sent" if n else "no notable rulings waiting")
