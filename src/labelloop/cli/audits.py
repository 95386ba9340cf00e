"""`labelloop audit` and `labelloop worker`: policies, runs, reviews, reports, trends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from labelloop.accounts.actor import Actor
from labelloop.audits.render import RENDERERS
from labelloop.audits.schemas import ReviewInput
from labelloop.cli._common import (
    DatabaseUrl,
    JsonFlag,
    console,
    fail,
    handle_errors,
    open_session,
    settings_for,
)
from labelloop.errors import ValidationFailed

app = typer.Typer(
    help="Periodic audits: policies, runs, blind reviews, reports and trends.", no_args_is_help=True
)
policy_app = typer.Typer(help="Audit policies: what to audit and when.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]


def _project(session: Any, name: str) -> Any:
    from labelloop.projects.service import get_project

    return get_project(session, name)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _spec_from(file: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationFailed(f"{file}: cannot read policy ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationFailed(f"{file}: a policy file is a YAML mapping of settings")
        data = dict(loaded or {})
        data.pop("name", None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return data


@policy_app.command("create")
def policy_create(
    name: str,
    project: ProjectOpt,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Policy YAML (see docs/audits.md).")
    ] = None,
    cadence: Annotated[
        str | None, typer.Option(help="Cron expression in UTC, or 'manual'.")
    ] = None,
    sample_size: Annotated[int | None, typer.Option(help="Annotations per run.")] = None,
    target_half_width: Annotated[
        float | None, typer.Option(help="Size the sample for this CI half-width.")
    ] = None,
    strata: Annotated[
        str | None,
        typer.Option(
            help="Comma list: segment:KEY, annotator, label, tag, new_annotator, model_disagreement."
        ),
    ] = None,
    allocation: Annotated[
        str | None, typer.Option(help="proportional, equal, neyman or risk.")
    ] = None,
    reviewers: Annotated[str | None, typer.Option(help="Comma list of usernames.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an audit policy from a YAML file and/or flags."""
    from labelloop.audits import service

    overrides = {
        "cadence": cadence,
        "sample_size": sample_size,
        "target_half_width": target_half_width,
        "strata": _csv(strata),
        "allocation": allocation,
        "reviewers": _csv(reviewers),
    }
    with open_session(database_url) as session:
        proj = _project(session, project)
        spec = service.parse_spec(_spec_from(file, overrides))
        policy = service.create_policy(
            session, actor=Actor.local(), project=proj, name=name, spec=spec
        )
        console.print(
            f"created audit policy [bold]{policy.name}[/] (id {policy.id}) in {proj.name}, cadence {policy.cadence}"
        )


@policy_app.command("list")
def policy_list(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List audit policies."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        proj = _project(session, project) if project else None
        policies = service.list_policies(session, proj)
        if as_json:
            typer.echo(
                json.dumps(
                    [
                        {
                            "id": p.id,
                            "project_id": p.project_id,
                            "name": p.name,
                            "cadence": p.cadence,
                            "active": p.active,
                        }
                        for p in policies
                    ],
                    indent=2,
                )
            )
            return
        table = Table("id", "project", "name", "cadence", "active")
        for p in policies:
            table.add_row(
                str(p.id), str(p.project_id), p.name, p.cadence, "yes" if p.active else "no"
            )
        console.print(table)


@policy_app.command("show")
def policy_show(name: str, project: ProjectOpt, database_url: DatabaseUrl = None) -> None:
    """Print a policy as YAML, with its runs."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        policy = service.get_policy(session, _project(session, project), name)
        typer.echo(yaml.safe_dump({"name": policy.name, **policy.spec}, sort_keys=False))
        for run in service.runs_of(session, policy):
            console.print(
                f"run {run.id}: {run.window_start:%Y-%m-%d %H:%M} .. {run.window_end:%Y-%m-%d %H:%M} {run.status} (sample {run.sample_size} of {run.population_size})"
            )


@policy_app.command("edit")
def policy_edit(
    name: str,
    project: ProjectOpt,
    file: Annotated[Path, typer.Option("--file", "-f")],
    database_url: DatabaseUrl = None,
) -> None:
    """Replace a policy's settings with a YAML file (past runs keep their own copy)."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        policy = service.get_policy(session, _project(session, project), name)
        service.update_policy(
            session,
            actor=Actor.local(),
            policy=policy,
            spec=service.parse_spec(_spec_from(file, {})),
        )
        console.print(f"updated audit policy {policy.name}")


@app.command("run")
def run_cmd(
    policy: str,
    project: ProjectOpt,
    now: Annotated[
        bool,
        typer.Option("--now", help="Open a run for the window ending now, even if none is due."),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Open the due runs of a policy (or, with --now, one run ending now)."""
    from labelloop.audits import service
    from labelloop.store.base import utcnow

    with open_session(database_url) as session:
        pol = service.get_policy(session, _project(session, project), policy)
        moment = utcnow()
        windows = (
            [service.manual_window(session, pol, moment)]
            if now
            else service.due_windows(session, pol, moment)
        )
        if not windows:
            console.print(
                f"no window of {pol.name} is due (cadence {pol.cadence}); use --now to run one anyway"
            )
            return
        for start, end in windows:
            res = service.open_run(
                session,
                actor=Actor.local(),
                policy=pol,
                window_start=start,
                window_end=end,
                trigger="manual" if now else "schedule",
            )
            state = "opened" if res.created else "exists"
            console.print(
                f"run {res.run.id} {state}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, "
                f"sample {res.run.sample_size} of {res.run.population_size} annotations"
            )
            for note in res.notes:
                console.print(f"  note: {note}")


@app.command("runs")
def runs_cmd(
    project: ProjectOpt,
    policy: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """List audit runs with their progress."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        proj = _project(session, project)
        policies = (
            [service.get_policy(session, proj, policy)]
            if policy
            else list(service.list_policies(session, proj))
        )
        rows: list[dict[str, Any]] = []
        for pol in policies:
            for run in service.runs_of(session, pol):
                prog = service.progress(session, run)
                rows.append(
                    {
                        "run": run.id,
                        "policy": pol.name,
                        "window_start": run.window_start.isoformat(),
                        "window_end": run.window_end.isoformat(),
                        "status": run.status,
                        "population": run.population_size,
                        "sample": run.sample_size,
                        **prog,
                    }
                )
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table("run", "policy", "window", "status", "sample / population", "reviewed")
        for r in rows:
            table.add_row(
                str(r["run"]),
                r["policy"],
                f"{r['window_start'][:16]} .. {r['window_end'][:16]}",
                r["status"],
                f"{r['sample']} / {r['population']}",
                f"{r['reviewed']} / {r['assignments']}",
            )
        console.print(table)


@app.command("queue")
def queue_cmd(
    run: int,
    reviewer: Annotated[str | None, typer.Option(help="Only this reviewer's assignments.")] = None,
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Open review assignments of a run (blind runs hide the label and the annotator)."""
    from labelloop.accounts.service import get_user
    from labelloop.audits import service

    with open_session(database_url) as session:
        r = service.get_run(session, run)
        rid = get_user(session, reviewer).id if reviewer else None
        entries = service.review_queue(session, actor=Actor.local(), run=r, reviewer_id=rid)
        if as_json:
            typer.echo(
                json.dumps([e.__dict__ for e in entries], indent=2, ensure_ascii=False, default=str)
            )
            return
        table = Table("assignment", "item", "text", "label", "annotator")
        for e in entries:
            text = str(e.payload.get("text", e.payload))[:70]
            table.add_row(
                str(e.assignment_id),
                e.item_external_id,
                text,
                "(blind)" if e.label is None else json.dumps(e.label, ensure_ascii=False),
                e.annotator or "(blind)",
            )
        console.print(table)
        console.print(f"{len(entries)} open assignment(s)")


@app.command("review")
def review_cmd(
    assignment: int,
    verdict: Annotated[
        str, typer.Option(help="correct, incorrect or unsure (blind runs derive it from --label).")
    ] = "correct",
    label: Annotated[
        str | None, typer.Option(help="The right label (JSON for non-text values).")
    ] = None,
    category: Annotated[
        str | None, typer.Option(help="Error category from the policy's taxonomy.")
    ] = None,
    severity: Annotated[str | None, typer.Option(help="low, medium, high or critical.")] = None,
    rule: Annotated[str | None, typer.Option(help="Guideline rule reference.")] = None,
    comment: Annotated[
        str | None, typer.Option(help="Actionable comment for the annotator.")
    ] = None,
    active_seconds: Annotated[float | None, typer.Option(help="Time spent reviewing.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record a review for one assignment."""
    from labelloop.audits import service

    value: Any = None
    if label is not None:
        try:
            value = json.loads(label)
        except json.JSONDecodeError:
            value = label
    try:
        review = ReviewInput(
            verdict=verdict,
            corrected_value=value,
            error_category=category,
            severity=severity,
            rule_ref=rule,
            comment=comment,
            active_seconds=active_seconds,
        )
    except Exception as exc:  # pydantic.ValidationError
        raise fail(str(exc)) from None
    with open_session(database_url) as session:
        row = service.record_review(
            session, actor=Actor.local(), assignment_id=assignment, review=review
        )
        console.print(f"review {row.id} recorded: {row.verdict}")


@app.command("close")
def close_cmd(
    run: int,
    allow_unreviewed: Annotated[bool, typer.Option("--allow-unreviewed")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Close a run and compute its report."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        r = service.close_run(
            session,
            actor=Actor.local(),
            run=service.get_run(session, run),
            allow_unreviewed=allow_unreviewed,
        )
        overall = (r.report or {}).get("error_rate", {}).get("overall", {})
        console.print(
            f"run {r.id} closed; error rate {overall.get('value')} CI {overall.get('ci')} (n={overall.get('n')})"
        )


@app.command("report")
def report_cmd(
    run: int,
    format: Annotated[str, typer.Option("--format", "-f", help="md, html or json.")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file instead of stdout.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print (or write) the report of a closed run."""
    from labelloop.audits import service

    if format not in RENDERERS:
        raise typer.BadParameter(
            f"unknown format {format!r}; use md, html or json", param_hint="--format"
        )
    with open_session(database_url) as session:
        r = service.get_run(session, run)
        if r.status != "closed" or not r.report:
            raise fail(
                f"audit run {run} is {r.status}; close it first (`labelloop audit close {run}`)"
            )
        text = RENDERERS[format](r.report)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        typer.echo(text)


@app.command("trend")
def trend_cmd(
    policy: str, project: ProjectOpt, as_json: JsonFlag = False, database_url: DatabaseUrl = None
) -> None:
    """Per-cycle error rate, alpha, coverage and turnaround with CIs; flags significant changes."""
    from labelloop.audits import service

    with open_session(database_url) as session:
        pol = service.get_policy(session, _project(session, project), policy)
        rows = service.trend(session, pol)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from labelloop.audits.render import _num, _pct

    table = Table(
        "run",
        "window end",
        "error rate [CI]",
        "alpha [CI]",
        "reviewed",
        "median h to verdict",
        "change",
    )
    for r in rows:
        change = r.get("change") or {}
        er = change.get("error_rate")
        flag = "" if not er else f"{er['delta']:+.1%}{' *' if er['significant'] else ''}"
        table.add_row(
            str(r["run"]),
            r["window_end"][:10],
            _pct(r["error_rate"]),
            _num(r["krippendorff_alpha"]),
            str(r["coverage"]["reviewed_share"]),
            str((r.get("turnaround") or {}).get("hours_to_verdict", {}).get("median")),
            flag,
        )
    console.print(table)
    console.print("* significant change from the previous cycle (two-sided z-test, 5% level)")


def worker_cmd(
    once: Annotated[bool, typer.Option("--once", help="Run due jobs once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 30.0,
    database_url: DatabaseUrl = None,
) -> None:
    """Open the audit runs that are due, on every policy's cadence; escalate cases past
    their SLA; detect new cases on each project's cadence; send digests of notable
    rulings; anchor the trail every `LABELLOOP_TRAIL_CHECKPOINT_MINUTES`; delete the
    anonymous channel's rate-limit counts of past days (dashboards are refreshed in the
    loop)."""

    import logging

    from labelloop import worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_for(database_url)
    with handle_errors():
        if once:
            moved = worker.escalate(settings)
            for e in moved:
                console.print(f"{e.subject} {e.subject_id} escalated to {e.owner}")
            results = worker.run_due(settings)
            for r in results:
                console.print(
                    f"{r.policy}: {r.window_start:%Y-%m-%d %H:%M} .. {r.window_end:%Y-%m-%d %H:%M} {r.message}"
                    + (f" (run {r.run_id})" if r.run_id else "")
                )
            checkpoint = worker.checkpoint_due(settings)
            if checkpoint is not None:
                console.print(
                    f"trail checkpoint to {checkpoint.anchor_file}: {checkpoint.message}"
                    + (f" (event {checkpoint.seq})" if checkpoint.seq is not None else "")
                )
            jobs = worker.detect_cases(settings) + worker.send_digests(settings)
            worker.purge_anonymous(settings)  # silent: see worker.loop
            for job in jobs:
                console.print(f"{job.project}: {job.message}")
            if not (results or moved or jobs) and checkpoint is None:
                console.print("nothing due")
            return
        worker.loop(settings, interval=interval)
