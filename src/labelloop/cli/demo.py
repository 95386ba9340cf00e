"""`labelloop demo`: build the simulated demo project and say what was built and where."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.cli._common import DatabaseUrl, console, handle_errors, migrate, settings_for
from labelloop.settings import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from labelloop.demo.builder import DemoSummary

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
    audits: Annotated[
        bool, typer.Option("--audits/--no-audits", help="Also run three weekly audit cycles.")
    ] = True,
    reports_dir: Annotated[
        Path, typer.Option("--reports-dir", help="Where the audit reports are written.")
    ] = Path("demo-reports"),
    database_url: DatabaseUrl = None,
) -> None:
    """Build the demo project: ~2,000 support tickets labelled by a simulated team of twelve.

    Migrates the database first, so it works on an empty machine. Running it again
    changes nothing (the existing demo is reported); use a new database to rebuild.
    """
    from labelloop.demo.builder import build_demo
    from labelloop.store import make_engine, make_session_factory, session_scope

    settings = settings_for(database_url)
    engine = make_engine(settings)
    started = time.perf_counter()
    try:
        with handle_errors():
            migrate(engine, settings)
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
                cycles: list[dict[str, str]] = []
                late_cases = 0
                if audits and summary.seed is not None and summary.n_items is not None:
                    bar.update(
                        task,
                        description="running three weekly audit cycles",
                        completed=0,
                        total=None,
                    )
                    cycles, late_cases = _run_audits(engine, summary, reports_dir)
                # anchor the demo's trail outside the database (see `labelloop trail verify`)
                with session_scope(make_session_factory(engine)) as session:
                    anchor = trail.service.checkpoint(
                        session, anchor_file=settings.trail_anchor_file
                    )
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
    console.print(
        f"trail anchored at event {anchor.seq} in [bold]{settings.trail_anchor_file}[/]",
        soft_wrap=True,
    )

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

    if cycles:
        audit_table = Table(
            "run",
            "window (UTC)",
            "sample / population",
            "error rate [95% CI]",
            "patterns",
            "by guideline version",
            title="audit cycles (policy weekly-quality)",
        )
        for cyc in cycles:
            audit_table.add_row(
                cyc["run"],
                cyc["window"],
                cyc["size"],
                cyc["error_rate"],
                cyc["patterns"],
                cyc["versions"],
            )
        console.print(audit_table)
        console.print(
            f"audit reports (HTML and Markdown) are in [bold]{reports_dir.resolve()}[/]",
            soft_wrap=True,
        )

    if summary.court is not None:
        court = summary.court
        console.print(
            f"adjudication: {court.opened + late_cases} disagreement cases opened "
            f"({late_cases} after the audits), {court.ruled} refund/billing cases ruled under "
            f"1.0 with rationales, {court.amendments} of their proposals accepted into 1.1, "
            f"{court.left_open + late_cases} left open for [bold]demo.adjudicator[/]",
            soft_wrap=True,
        )

    if cycles:
        console.print(
            "feedback: each cycle's findings went to the annotators as notes the day after "
            "its window; they err less afterwards (simulated): see [bold]labelloop feedback "
            "stats[/]",
            soft_wrap=True,
        )

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
        f"labelloop audit trend weekly-quality --project {name}{db}",
        f"labelloop guidelines diff --project {name} 1.0 1.1{db}",
        f"labelloop cases list --project {name}{db}",
        f"labelloop feedback stats --project {name}{db}",
        f"labelloop audit report {cycles[-1]['run'] if cycles else 1} --format html -o report.html{db}",
        f"labelloop trail verify{db}",
    ):
        console.print(f"  [bold]{line}[/]", highlight=False, soft_wrap=True)


def _versions(report: dict[str, Any]) -> str:
    """``1.0: 18.2% · 1.1: 12.0%``: the error rate under each guideline version."""
    parts = []
    for v in report.get("by_guideline_version", []):
        value = v["error_rate"].get("value")
        rate = "-" if value is None else f"{value:.1%}"
        parts.append(f"{v['version'] or 'none'}: {rate} (n={v['reviewed']})")
    return " · ".join(parts) or "-"


def _run_audits(
    engine: Engine, summary: DemoSummary, reports_dir: Path
) -> tuple[list[dict[str, str]], int]:
    """Three weekly audit cycles with simulated reviewers, reports written to files; then
    case detection once more. Returns the cycles and how many cases that opened."""
    from labelloop.adjudication import service as adjudication
    from labelloop.analytics import service as analytics
    from labelloop.audits.models import AuditRun
    from labelloop.audits.render import to_html, to_markdown
    from labelloop.demo import audits as demo_audits
    from labelloop.demo.simulate import simulate
    from labelloop.projects.service import get_project
    from labelloop.store import make_session_factory, session_scope

    assert summary.seed is not None and summary.n_items is not None
    data = simulate(summary.seed, summary.n_items)
    reports_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with session_scope(make_session_factory(engine)) as session:
        project = get_project(session, summary.project)
        for cycle in demo_audits.run_cycles(
            session, actor=Actor.local("demo"), project=project, data=data, seed=summary.seed
        ):
            run = session.get(AuditRun, cycle.run_id)
            assert run is not None and run.report is not None
            stem = reports_dir / f"audit-run-{run.id}"
            stem.with_suffix(".html").write_text(to_html(run.report), encoding="utf-8")
            stem.with_suffix(".md").write_text(to_markdown(run.report), encoding="utf-8")
            overall = run.report["error_rate"]["overall"]
            ci = overall.get("ci") or [None, None]
            rows.append(
                {
                    "run": str(run.id),
                    "window": f"{cycle.window_start:%Y-%m-%d} .. {cycle.window_end:%Y-%m-%d}",
                    "size": f"{cycle.sample} / {cycle.population}",
                    "error_rate": f"{overall['value']:.1%} [{ci[0]:.1%}, {ci[1]:.1%}]"
                    if overall.get("value") is not None
                    else "-",
                    "patterns": str(len(run.report["patterns"])),
                    "versions": _versions(run.report),
                    "report": str(stem.with_suffix(".html").resolve()),
                }
            )
        # as the worker would after the audits: their unsure and disputed reviews open cases
        late = adjudication.detect(session, actor=Actor.local("worker"), project=project).opened
        # the lead's dashboard opens at once instead of computing on its first view
        analytics.refresh_snapshot(session, actor=Actor.local("demo"), project=project)
    return rows, late
