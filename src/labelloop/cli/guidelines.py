"""`labelloop guidelines`: import the draft, publish versions, show, export, history, diff,
and the re-check list of a change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.cli._common import (
    DatabaseUrl,
    JsonFlag,
    console,
    fail,
    handle_errors,
    open_session,
)
from labelloop.errors import ImportFailed, ValidationFailed
from labelloop.guidelines import service
from labelloop.guidelines.diff import GuidelineDiff
from labelloop.guidelines.recheck import (
    DEFAULT_SAMPLE,
    MAX_LIMIT,
    MAX_SAMPLE,
    Recheck,
    Sent,
)
from labelloop.guidelines.recheck import recheck as recheck_list
from labelloop.guidelines.recheck import send as send_recheck
from labelloop.guidelines.schemas import GuidelineDoc, read_document, to_markdown, to_yaml
from labelloop.projects.service import get_project

app = typer.Typer(help="Versioned guidelines: rules with exemplars.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
VersionOpt = Annotated[
    str | None,
    typer.Option("--version", "-v", help="Version (1.2) or 'draft'; default the current one."),
]
#: Larger guideline files are refused before they are read.
MAX_FILE_BYTES = 2 * 1024 * 1024


def _read(path: Path) -> tuple[GuidelineDoc, Callable[[str], int | None]]:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise fail(f"{path}: {size} bytes; a guideline file may hold at most {MAX_FILE_BYTES}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    with handle_errors():
        return read_document(text, source=str(path))


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Markdown with front matter, or YAML.")],
    project: ProjectOpt,
    database_url: DatabaseUrl = None,
) -> None:
    """Replace the project's draft with the guideline in FILE (see docs/guidelines.md)."""
    doc, line_of = _read(file)
    with open_session(database_url) as session:
        proj = get_project(session, project)
        try:
            service.save_draft(
                session, actor=Actor.local(), project=proj, doc=doc, source=file.name
            )
        except ValidationFailed as exc:  # against the project: name the file's lines
            issues = [f"line {line_of(v.field) or 1}, {v}" for v in exc.violations]
            raise ImportFailed(f"{file}: {exc}", issues) from None
        exemplars = sum(len(r.exemplars) for r in doc.rules)
        console.print(
            f"draft of [bold]{proj.name}[/]: {len(doc.rules)} rules, {exemplars} exemplars; "
            f"publish it with [bold]labelloop guidelines publish --project {proj.id} "
            '--note "..."[/]'
        )


@app.command("publish")
def publish_cmd(
    project: ProjectOpt,
    note: Annotated[str, typer.Option("--note", "-n", help="What changed and why (required).")],
    major: Annotated[bool, typer.Option("--major", help="Publish as MAJOR+1.0.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Publish the draft as the next version (1.0 first, then 1.1, ... or 2.0 with --major)."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        v = service.publish(session, actor=Actor.local(), project=proj, note=note, major=major)
        console.print(
            f"published guideline [bold]{v.number}[/] of {proj.name}: {len(v.rules)} rules"
        )


@app.command("show")
def show_cmd(
    project: ProjectOpt,
    version: VersionOpt = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show a version (default the current one) with its rules and exemplars."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        v = service.get_version(session, actor=Actor.local(), project=proj, number=version)
        doc = service.document(session, v)
        if as_json:
            typer.echo(
                json.dumps({"version": v.number, **doc.as_json()}, indent=2, ensure_ascii=False)
            )
            return
        console.print(
            Markdown(
                "\n\n".join(
                    [f"# {doc.title} ({v.number})", doc.preamble]
                    + [f"## {r.id}: {r.title}\n\n{r.text}" for r in doc.rules]
                )
            )
        )
        for rule in doc.rules:
            for e in rule.exemplars:
                console.print(
                    f"  {rule.id} {e.kind}: {e.item} is {e.label!r}: {e.why}", markup=False
                )


@app.command("export")
def export_cmd(
    project: ProjectOpt,
    version: VersionOpt = None,
    fmt: Annotated[
        Literal["md", "yaml"], typer.Option("--format", "-f", help="md or yaml.")
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a version in the format `import` reads."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        v = service.get_version(session, actor=Actor.local(), project=proj, number=version)
        doc = service.document(session, v)
    try:
        text = to_markdown(doc) if fmt == "md" else to_yaml(doc)
    except ValueError as exc:
        raise fail(f"{exc} (--format yaml)") from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote version {v.number} to {output}")


@app.command("history")
def history_cmd(
    project: ProjectOpt, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Published versions, newest first, with their change notes."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        versions = service.history(session, actor=Actor.local(), project=proj)
        rows: list[dict[str, Any]] = [
            {
                "version": v.number,
                "published_at": v.published_at.isoformat() if v.published_at else None,
                "published_by": v.published_by,
                "rules": len(v.rules),
                "acknowledged_by": service.acknowledged_by(session, v),
                "note": v.note,
            }
            for v in versions
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        console.print("no published version yet: [bold]labelloop guidelines import FILE[/]")
        return
    table = Table("version", "published", "by", "rules", "acknowledged", "note")
    for r in rows:
        table.add_row(
            r["version"],
            (r["published_at"] or "")[:16],
            r["published_by"] or "",
            str(r["rules"]),
            str(r["acknowledged_by"]),
            r["note"] or "",
        )
    console.print(table)


def print_diff(d: GuidelineDiff) -> None:
    console.print(f"[bold]{d.old or 'nothing'} → {d.new}[/]")
    if d.empty:
        console.print("nothing changed")
    if d.title:
        console.print(f"title: {escape(d.title[0])} → {escape(d.title[1])}", highlight=False)
    if d.preamble_diff:
        console.print("preamble:", highlight=False)
        console.print(d.preamble_diff, markup=False, highlight=False)
    for r in d.added:
        console.print(f"[green]+ {r.id}[/] {escape(r.title)}", highlight=False)
    for r in d.removed:
        console.print(f"[red]- {r.id}[/] {escape(r.title)}", highlight=False)
    for c in d.changed:
        fields = ", ".join(c.fields)
        console.print(f"[yellow]~ {c.id}[/] {escape(c.title)} ({fields})", highlight=False)
        if c.text_diff:
            console.print(c.text_diff, markup=False, highlight=False)


@app.command("diff")
def diff_cmd(
    project: ProjectOpt,
    old: Annotated[str, typer.Argument(help="The older version (1.0).")],
    new: Annotated[str, typer.Argument(help="The newer version (1.1), or 'draft'.")],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Rules added, removed and changed from OLD to NEW, with a text diff per changed rule."""
    with open_session(database_url) as session:
        proj = get_project(session, project)
        d = service.diff(session, actor=Actor.local(), project=proj, old=old, new=new)
    if as_json:
        typer.echo(json.dumps(d.as_json(), indent=2, ensure_ascii=False))
    else:
        print_diff(d)


def print_recheck(r: Recheck) -> None:
    span = f"{r.old or 'none'} → {r.new}"
    console.print(
        f"[bold]{span}[/]{' rule ' + r.rule if r.rule else ''}: "
        f"{r.total} annotations made before {r.new} to re-check",
        highlight=False,
    )
    rules = Table("rule", "change", "labels", "exemplar labels", "annotations", title="By rule")
    for c in r.rules:
        labels, neighbours = ", ".join(c.labels), ", ".join(c.exemplar_labels)
        rules.add_row(c.id, c.change, labels, neighbours, str(c.annotations))
    console.print(rules)
    by_label = ", ".join(f"{k} {v}" for k, v in r.labels.items()) or "none"
    console.print(f"by label: {by_label}", markup=False, highlight=False)
    by_reason = ", ".join(f"{k} {v}" for k, v in r.reasons.items())
    console.print(f"by reason: {by_reason}", markup=False, highlight=False)
    if not r.entries:
        return
    table = Table("id", "item", "annotator", "label", "version", "submitted", "reason")
    table.columns[1].overflow = table.columns[2].overflow = "fold"
    for e in r.entries:
        label = e.label if isinstance(e.label, str) else json.dumps(e.label, ensure_ascii=False)
        table.add_row(
            *map(escape, (str(e.annotation_id), e.item, e.annotator, label)),
            e.guideline_version or "",
            e.submitted_at.date().isoformat() if e.submitted_at else "",
            e.reason.replace("_", " "),
        )
    more = f" (the first {len(r.entries)} of {r.total})" if len(r.entries) < r.total else ""
    table.title = f"Likeliest affected first{more}"
    console.print(table)


def _sent_json(sent: Sent) -> dict[str, Any]:
    return {
        "run": sent.run.id,
        "policy": sent.policy.name,
        "created": sent.created,
        "population": sent.run.population_size,
        "sample": sent.run.sample_size,
        "notes": sent.notes,
    }


@app.command("recheck")
def recheck_cmd(
    project: ProjectOpt,
    rule: Annotated[
        str | None,
        typer.Option("--rule", "-r", help="Only this rule (R4); default every changed one."),
    ] = None,
    old: Annotated[
        str | None, typer.Option("--from", help="The older version; default the one before --to.")
    ] = None,
    new: Annotated[
        str | None, typer.Option("--to", help="The newer version; default the current one.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, max=MAX_LIMIT, help="List this many annotations.")
    ] = 20,
    send: Annotated[
        bool,
        typer.Option("--send", help="Open an audit run reviewing a random sample of the list."),
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            min=1,
            max=MAX_SAMPLE,
            help=f"With --send: how many to review [default {DEFAULT_SAMPLE}].",
        ),
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Past annotations a guideline change may affect (made before --to, concerning the
    labels of its changed rules and their exemplars), likeliest first; with --send, an
    audit run to review them. --json: {"from", "to", "rule", "total", "rules", "labels",
    "reasons", "annotations", "truncated"} and, with --send, "sent": {"run", "policy",
    "created", "population", "sample", "notes"} (see docs/guidelines.md)."""
    if sample is not None and not send:
        raise fail("--sample goes with --send")
    with open_session(database_url) as session:
        proj = get_project(session, project)
        actor = Actor.local()
        found = recheck_list(
            session,
            actor=actor,
            project=proj,
            rule=rule,
            from_version=old,
            to_version=new,
            limit=limit,
        )
        sent = None
        if send:
            sent = send_recheck(
                session,
                actor=actor,
                project=proj,
                rule=rule,
                from_version=old,
                to_version=new,
                sample=sample or DEFAULT_SAMPLE,
            )
    if as_json:
        data = found.as_json() | ({"sent": _sent_json(sent)} if sent else {})
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    print_recheck(found)
    if sent is not None:
        state = "sent to review as" if sent.created else "already sent as"
        console.print(
            f"{state} audit run [bold]{sent.run.id}[/] ({escape(sent.policy.name)}): "
            f"{sent.run.sample_size} of {sent.run.population_size} annotations to review; "
            f"reviewers: [bold]labelloop audit queue {sent.run.id}[/]",
            highlight=False,
        )


def _external_id(session: Any, item_id: int | None) -> str | None:
    from labelloop.projects.models import Item

    item = None if item_id is None else session.get(Item, item_id)
    return None if item is None else item.external_id


@app.command("amendments")
def amendments_cmd(
    project: ProjectOpt,
    status: Annotated[str, typer.Option(help="proposed, accepted, rejected or all.")] = "proposed",
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Proposed changes to rules (from rulings), waiting for the guideline's owner."""
    from labelloop.guidelines import amendments

    if status not in {"proposed", "accepted", "rejected", "all"}:
        raise fail(f"--status must be proposed, accepted, rejected or all, not {status!r}", code=2)
    with open_session(database_url) as session:
        proj = get_project(session, project)
        found = amendments.list_amendments(
            session, actor=Actor.local(), project=proj, status=None if status == "all" else status
        )
        rows = [
            {"id": a.id, **amendments.amendment_json(a), "item": _external_id(session, a.item_id)}
            for a in found
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
        return
    if not rows:
        console.print(f"no {'' if status == 'all' else status + ' '}amendments")
        return
    table = Table("id", "rule", "kind", "proposal", "ruling", "status")
    for r in rows:
        what = (
            r["text"]
            if r["kind"] == "text"
            else f"item {r['item_id']} as {r['label']}: {r['text']}"
        )
        table.add_row(
            str(r["id"]), r["rule"], r["kind"], escape(what), str(r["ruling_id"] or ""), r["status"]
        )
    console.print(table)


@app.command("accept")
def accept_cmd(
    amendment: Annotated[int, typer.Argument(help="The amendment id.", min=1)],
    project: ProjectOpt,
    database_url: DatabaseUrl = None,
) -> None:
    """Accept an amendment into the draft (it ships with the next published version)."""
    from labelloop.guidelines import amendments

    with open_session(database_url) as session:
        proj = get_project(session, project)
        a = amendments.accept(session, actor=Actor.local(), project=proj, amendment_id=amendment)
        console.print(f"amendment {a.id} to {a.rule_key} accepted into the draft")


@app.command("reject")
def reject_cmd(
    amendment: Annotated[int, typer.Argument(help="The amendment id.", min=1)],
    project: ProjectOpt,
    database_url: DatabaseUrl = None,
) -> None:
    """Reject an amendment."""
    from labelloop.guidelines import amendments

    with open_session(database_url) as session:
        proj = get_project(session, project)
        a = amendments.reject(session, actor=Actor.local(), project=proj, amendment_id=amendment)
        console.print(f"amendment {a.id} to {a.rule_key} rejected")
