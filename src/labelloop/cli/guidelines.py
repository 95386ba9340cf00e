"""`labelloop guidelines`: import the draft, publish versions, show, export, history, diff."""

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
