"""`labelloop project`: create, list and show projects; read and edit label schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.cli._common import DatabaseUrl, JsonFlag, console, open_session, report_error
from labelloop.errors import ConfigurationError, LabelLoopError
from labelloop.projects import service
from labelloop.projects.models import Project
from labelloop.projects.schemas import LabelSchema
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn

app = typer.Typer(help="Projects and their label schemas.", no_args_is_help=True)

SchemaFile = Annotated[
    Path,
    typer.Option(
        "--schema",
        "-s",
        help="Label schema in YAML (see docs/schema.md).",
        dir_okay=False,
    ),
]


def _read_schema(path: Path) -> LabelSchema:
    """Load a schema file before any database work, so a bad file fails fast."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror})") from None
    return LabelSchema.from_yaml(text, source=str(path))


def _load(path: Path) -> LabelSchema:
    try:
        return _read_schema(path)
    except LabelLoopError as exc:
        raise report_error(exc) from None


def _project_dict(project: Project, counts: dict[str, int] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "task_type": project.task_type,
        "schema_version": project.schema_version,
        "created_at": project.created_at.isoformat(),
    }
    if counts is not None:
        data["counts"] = counts
    data["schema"] = project.label_schema
    return data


@app.command("create")
def create_cmd(
    name: Annotated[str, typer.Argument(help="Project name (not all digits).")],
    schema: SchemaFile,
    description: Annotated[str | None, typer.Option(help="What the project labels.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a project with the label schema in a YAML file."""
    label_schema = _load(schema)
    with open_session(database_url) as session:
        project = service.create_project(
            session, actor=Actor.local(), name=name, schema=label_schema, description=description
        )
        console.print(
            f"created project [bold]{project.name}[/] (id {project.id}, {project.task_type}, "
            f"{len(label_schema.labels)} labels)"
        )


@app.command("list")
def list_cmd(as_json: JsonFlag = False, database_url: DatabaseUrl = None) -> None:
    """List projects with their counts."""
    with open_session(database_url) as session:
        rows = [(p, service.project_summary(session, p)) for p in service.list_projects(session)]
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {k: v for k, v in _project_dict(p, s.as_dict()).items() if k != "schema"}
                        for p, s in rows
                    ],
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        if not rows:
            console.print(
                "no projects yet: [bold]labelloop project create NAME --schema schema.yaml[/]"
            )
            return
        table = Table(
            "id", "name", "task type", "schema v.", "items", "annotations", "annotators", "gold"
        )
        for p, s in rows:
            table.add_row(
                str(p.id),
                p.name,
                p.task_type,
                str(p.schema_version),
                str(s.items),
                str(s.annotations),
                str(s.annotators),
                str(s.gold),
            )
        console.print(table)


@app.command("show")
def show_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show a project's counts and label schema."""
    with open_session(database_url) as session:
        p = service.get_project(session, project)
        summary = service.project_summary(session, p)
        if as_json:
            typer.echo(
                json.dumps(_project_dict(p, summary.as_dict()), indent=2, ensure_ascii=False)
            )
            return
        console.print(
            f"[bold]{p.name}[/] (id {p.id}) - {p.task_type}, schema version {p.schema_version}"
        )
        if p.description:
            console.print(p.description, highlight=False)
        table = Table("what", "count")
        for key, value in summary.as_dict().items():
            table.add_row(key, str(value))
        console.print(table)
        console.print("[bold]label schema[/]")
        typer.echo(service.schema_of(p).to_yaml().rstrip())


@app.command("schema")
def schema_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    edit: Annotated[
        Path | None,
        typer.Option(
            "--edit",
            help="Replace the schema with this YAML file (validated first).",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Apply even if stored annotations become invalid.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the label schema as YAML; with --edit FILE, replace it."""
    new_schema = _load(edit) if edit is not None else None
    with open_session(database_url) as session:
        p = service.get_project(session, project)
        if new_schema is None:
            typer.echo(service.schema_of(p).to_yaml().rstrip())
            return
        old_version = p.schema_version
        service.update_schema(
            session, actor=Actor.local(), project=p, schema=new_schema, force=force
        )
        if p.schema_version == old_version:
            console.print(f"schema of [bold]{p.name}[/] unchanged (version {old_version})")
        else:
            console.print(f"schema of [bold]{p.name}[/] updated to version {p.schema_version}")


@app.command("settings")
def settings_cmd(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    overlap: Annotated[
        int | None,
        typer.Option("--overlap", min=1, max=100, help="Annotators per item in the workbench."),
    ] = None,
    gold_rate: Annotated[
        float | None,
        typer.Option(
            "--gold-rate", min=0.0, max=1.0, help="Share of served items that are hidden gold."
        ),
    ] = None,
    lease_minutes: Annotated[
        int | None,
        typer.Option(
            "--lease-minutes", min=1, max=1440, help="How long an annotator holds an item."
        ),
    ] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Show the workbench queue settings; with options, change them."""
    with open_session(database_url) as session:
        p = service.get_project(session, project)
        if overlap is None and gold_rate is None and lease_minutes is None:
            out = workbench.get_settings(session, p)
        else:
            change = SettingsIn(overlap=overlap, gold_rate=gold_rate, lease_minutes=lease_minutes)
            out = workbench.update_settings(session, actor=Actor.local(), project=p, change=change)
        if as_json:
            typer.echo(json.dumps(out.model_dump(), indent=2))
            return
        console.print(
            f"[bold]{p.name}[/]: overlap {out.overlap}, gold rate {out.gold_rate:g}, "
            f"lease {out.lease_minutes} min"
        )
