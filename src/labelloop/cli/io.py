"""`labelloop import` and `labelloop export`: bulk data in and out of a project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.cli._common import (
    DatabaseUrl,
    JsonFlag,
    console,
    err_console,
    handle_errors,
    settings_for,
)
from labelloop.errors import ConfigurationError

IMPORT_FORMATS = ("auto", "label-studio", "cvat", "prodigy", "doccano", "csv", "jsonl", "parquet")
EXPORT_FORMATS = ("csv", "jsonl", "parquet", "label-studio")
TASK_TYPES = ("single", "multi", "ordinal", "spans", "text")


def _column(help_text: str) -> Any:
    return typer.Option(
        help=help_text + ' "" for none.', rich_help_panel="Column mapping (CSV/JSONL/Parquet)"
    )


def _columns(help_text: str) -> Any:
    return typer.Option(help=help_text, rich_help_panel="Column mapping (CSV/JSONL/Parquet)")


def _choice(value: str | None, choices: tuple[str, ...], flag: str) -> None:
    if value is not None and value not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=flag)


def _tabular_options(**given: Any) -> Any:
    """TabularOptions from the column flags: None keeps the reader's default column name,
    an empty string maps the role to no column."""
    from labelloop.formats import TabularOptions

    kwargs: dict[str, Any] = {}
    for name, value in given.items():
        if value is None or value == ():
            continue
        if isinstance(value, str) and name not in ("tag_separator", "multi_separator", "delimiter"):
            value = value or None
        if name == "delimiter" and value == "\\t":
            value = "\t"
        kwargs[name] = value
    if "fieldnames" in kwargs:
        kwargs["fieldnames"] = [c.strip() for c in kwargs["fieldnames"].split(",")]
    return TabularOptions(**kwargs) if kwargs else None


def import_cmd(
    file: Annotated[
        Path, typer.Argument(help="File to import.", dir_okay=False, show_default=False)
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"One of: {', '.join(IMPORT_FORMATS)}.")
    ] = "auto",
    create: Annotated[
        bool,
        typer.Option(
            "--create", help="Create the project with a label schema inferred from the file."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count everything, then write nothing.")
    ] = False,
    item_col: Annotated[str | None, _column("Column with the item id (default item_id).")] = None,
    annotator_col: Annotated[
        str | None, _column("Column with the annotator (default annotator).")
    ] = None,
    label_col: Annotated[str | None, _column("Column with the label (default label).")] = None,
    started_col: Annotated[
        str | None, _column("Column with the start time (default started_at).")
    ] = None,
    submitted_col: Annotated[
        str | None, _column("Column with the submit time (default submitted_at).")
    ] = None,
    active_seconds_col: Annotated[
        str | None, _column("Column with active seconds (default active_seconds).")
    ] = None,
    annotation_id_col: Annotated[
        str | None, _column("Column with the annotation id (default annotation_id).")
    ] = None,
    gold_col: Annotated[str | None, _column("Column with the gold label (default gold).")] = None,
    text_col: Annotated[str | None, _column("Column with the item text (default text).")] = None,
    tags_col: Annotated[str | None, _column("Column with item tags (default tags).")] = None,
    payload_col: Annotated[
        list[str] | None, _columns("Extra item payload column (repeatable).")
    ] = None,
    segment_col: Annotated[
        list[str] | None, _columns("Segment column (repeatable; default: every segment_* column).")
    ] = None,
    metadata_col: Annotated[
        list[str] | None, _columns("Item metadata column (repeatable).")
    ] = None,
    tag_separator: Annotated[
        str | None, _columns("Separator inside the tags column (default |).")
    ] = None,
    task_type: Annotated[
        str | None,
        _columns(f"Read labels as: {', '.join(TASK_TYPES)} (default: the project's, or inferred)."),
    ] = None,
    multi_separator: Annotated[
        str | None, _columns("Split label cells on this separator (multi-label).")
    ] = None,
    delimiter: Annotated[
        str | None, _columns("CSV delimiter (default: sniffed; \\t for tab).")
    ] = None,
    fieldnames: Annotated[
        str | None, _columns("Comma-separated column names for a file without a header row.")
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Import annotations, items, gold labels and predictions from FILE; all or nothing.

    Every problem is listed with file, line or record, and field; then nothing is written.

    Re-importing the same file changes nothing; a changed annotation is updated, with a trail event.

    Annotations without an annotator are stored under the user "unknown".
    """
    from labelloop.projects.importer import import_file
    from labelloop.store import make_engine, make_session_factory

    _choice(format, IMPORT_FORMATS, "--format")
    _choice(task_type, TASK_TYPES, "--task-type")
    options = _tabular_options(
        item=item_col,
        annotator=annotator_col,
        label=label_col,
        started_at=started_col,
        submitted_at=submitted_col,
        active_seconds=active_seconds_col,
        annotation_id=annotation_id_col,
        gold=gold_col,
        text=text_col,
        tag_column=tags_col,
        payload_columns=tuple(payload_col or ()),
        segment_columns=list(segment_col) if segment_col else None,
        metadata_columns=tuple(metadata_col or ()),
        tag_separator=tag_separator,
        task_type=task_type,
        multi_separator=multi_separator,
        delimiter=delimiter,
        fieldnames=fieldnames,
    )
    engine = make_engine(settings_for(database_url))
    try:
        with handle_errors():
            if not file.is_file():
                raise ConfigurationError(f"{file}: no such file")
            session = make_session_factory(engine)()
            try:
                with Progress(
                    SpinnerColumn(),
                    TextColumn("[progress.description]{task.description}"),
                    TextColumn("{task.completed:,} records"),
                    TimeElapsedColumn(),
                    console=err_console,
                    transient=True,
                    disable=as_json or not err_console.is_terminal,
                ) as bar:
                    task = bar.add_task(f"importing {file.name}", total=None)
                    summary = import_file(
                        session,
                        actor=Actor.local(),
                        path=file,
                        project=project,
                        format=format,
                        create=create,
                        options=options,
                        progress=lambda done: bar.update(task, completed=done),
                    )
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
    finally:
        engine.dispose()
    if as_json:
        data = summary.as_dict()
        data["dry_run"] = dry_run
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_summary(summary, dry_run=dry_run)


def _print_summary(summary: Any, *, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    console.print(
        f"{verb} [bold]{summary.filename}[/] ({summary.format}) into [bold]{summary.project}[/]"
        + (" [yellow](dry run: nothing written)[/]" if dry_run else ""),
        soft_wrap=True,
    )
    table = Table("", "created", "updated", "unchanged", "in file")
    table.add_row(
        "items",
        f"{summary.items_created:,}",
        f"{summary.items_updated:,}",
        f"{summary.items_unchanged:,}",
        f"{summary.items_created + summary.items_updated + summary.items_unchanged:,}",
    )
    table.add_row(
        "annotations",
        f"{summary.annotations_created:,}",
        f"{summary.annotations_updated:,}",
        f"{summary.annotations_unchanged:,}",
        f"{summary.annotations:,}",
    )
    table.add_row(
        "gold labels",
        f"{summary.gold_created:,}",
        f"{summary.gold_updated:,}",
        f"{summary.gold - summary.gold_created - summary.gold_updated:,}",
        f"{summary.gold:,}",
    )
    table.add_row(
        "predictions",
        f"{summary.predictions_created:,}",
        f"{summary.predictions_updated:,}",
        f"{summary.predictions - summary.predictions_created - summary.predictions_updated:,}",
        f"{summary.predictions:,}",
    )
    console.print(table)
    console.print(f"annotators: {summary.annotators:,}   sha256: {summary.sha256}", soft_wrap=True)
    for reason, n in sorted(summary.skipped.items()):
        console.print(f"skipped {n:,}: {reason}", highlight=False)
    for code, n in sorted(summary.warnings.items()):
        console.print(f"[yellow]flagged[/] {n:,}: {code}", highlight=False)
    for notice in summary.notices:
        err_console.print(f"[yellow]warning:[/] {notice}", highlight=False, markup=False)
    if not summary.changed and not dry_run:
        console.print("nothing changed (this file was already imported)")
    if summary.schema_yaml is not None:
        console.print(
            f"created project [bold]{summary.project}[/] with this inferred label schema:"
        )
        typer.echo(summary.schema_yaml.rstrip())
        console.print(
            f"review it; to change it, edit a copy and run "
            f"[bold]labelloop project schema {summary.project} --edit FILE[/]",
            highlight=False,
            soft_wrap=True,
        )


def export_cmd(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.", dir_okay=False)],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"One of: {', '.join(EXPORT_FORMATS)}.")
    ] = "csv",
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="CSV: write every cell exactly as stored, without the ' that keeps "
            "spreadsheets from running text starting with = + - @ tab or CR as a formula. "
            "For other programs that read CSV (labelloop import reads both); do not open "
            "such a file in a spreadsheet.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Export a project's annotations, gold labels (and, for Label Studio, predictions).

    CSV is safe to open in a spreadsheet: a text cell starting with = + - @ tab or CR
    (a formula to Excel, LibreOffice or Google Sheets) gets a leading ', and plain
    numbers such as -1 stay numbers. labelloop import removes that ' again, so the
    file re-imports as it was. --raw turns the escape off; JSONL, Parquet and Label
    Studio JSON are always raw.
    """
    from labelloop.cli._common import open_session
    from labelloop.projects.exporter import export_project

    _choice(format, EXPORT_FORMATS, "--format")
    with open_session(database_url) as session:
        summary = export_project(
            session, actor=Actor.local(), project=project, format=format, path=output, raw=raw
        )
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    console.print(
        f"exported [bold]{summary.project}[/] to [bold]{summary.path}[/] ({summary.format}): "
        f"{summary.items:,} items, {summary.annotations:,} annotations, {summary.gold:,} gold labels, "
        f"{summary.predictions:,} predictions",
        highlight=False,
        soft_wrap=True,
    )
