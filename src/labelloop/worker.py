"""`labelloop worker`: opens the audit runs that are due, once or in a loop, and (in the
loop) refreshes stale lead dashboards.

Each window is opened in its own transaction. Two workers (or a worker and a manual
trigger) racing for the same window cannot both create it: the run is unique per
(policy, window start) in the database, and the loser simply finds the winner's run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labelloop.accounts.actor import Actor
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy
from labelloop.errors import LabelLoopError
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow

log = logging.getLogger("labelloop.worker")


@dataclass(frozen=True)
class JobResult:
    policy: str
    window_start: datetime
    window_end: datetime
    run_id: int | None
    created: bool
    message: str


def run_due(
    settings: Settings, *, now: datetime | None = None, actor: Actor | None = None
) -> list[JobResult]:
    """Open every due window of every active scheduled policy; returns what happened."""
    now = now or utcnow()
    actor = actor or Actor.local("worker")
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    results: list[JobResult] = []
    try:
        with session_scope(factory) as session:
            policy_ids = session.scalars(
                select(AuditPolicy.id).where(
                    AuditPolicy.active.is_(True), AuditPolicy.cadence != "manual"
                )
            ).all()
        for policy_id in policy_ids:
            with session_scope(factory) as session:
                policy = session.get(AuditPolicy, policy_id)
                assert policy is not None
                windows = audits.due_windows(session, policy, now)
                name = policy.name
            for start, end in windows:
                results.append(_open_one(factory, actor, policy_id, name, start, end))
    finally:
        engine.dispose()
    return results


def _open_one(
    factory: sessionmaker[Session],
    actor: Actor,
    policy_id: int,
    name: str,
    start: datetime,
    end: datetime,
) -> JobResult:
    try:
        with session_scope(factory) as session:
            policy = session.get(AuditPolicy, policy_id)
            assert policy is not None
            res = audits.open_run(
                session,
                actor=actor,
                policy=policy,
                window_start=start,
                window_end=end,
                allow_empty=True,
            )
            run_id, created = res.run.id, res.created
        msg = "opened" if created else "already open"
        return JobResult(name, start, end, run_id, created, msg)
    except IntegrityError:
        return JobResult(name, start, end, None, False, "opened by another worker")
    except (LabelLoopError, OperationalError) as exc:
        log.warning("policy %s window %s: %s", name, start, exc)
        return JobResult(name, start, end, None, False, f"failed: {exc}")


@dataclass(frozen=True)
class RefreshResult:
    project: str
    seconds: float | None  # computation time; None when it failed
    message: str


def refresh_dashboards(
    settings: Settings, *, actor: Actor | None = None, now: datetime | None = None
) -> list[RefreshResult]:
    """Recompute every missing lead dashboard and every stale one that is due, each
    project in its own transaction (see :func:`labelloop.analytics.service.stale_projects`)."""
    from labelloop.analytics import service as analytics
    from labelloop.projects.models import Project

    actor = actor or Actor.local("worker")
    engine, reader = make_engine(settings), _read_engine(settings)
    factory, read_factory = make_session_factory(engine), make_session_factory(reader)
    results: list[RefreshResult] = []
    try:
        with session_scope(read_factory) as session:
            stale = analytics.stale_projects(session, now=now)
        for entry in stale:
            try:
                with session_scope(read_factory) as session:
                    project = session.get(Project, entry.project_id)
                    if project is None:
                        continue
                    snap = analytics.build_snapshot(session, actor=actor, project=project)
                with session_scope(factory) as session:
                    analytics.save_snapshot(session, snap)
                    seconds = snap.compute_seconds
                results.append(RefreshResult(entry.name, seconds, "refreshed"))
            except Exception as exc:  # a failing dashboard must not stop the audit jobs
                log.exception("dashboard of %s", entry.name)
                results.append(RefreshResult(entry.name, None, f"failed: {exc}"))
    finally:
        engine.dispose()
        reader.dispose()
    return results


def _read_engine(settings: Settings) -> Engine:
    """An engine for long reads. On SQLite its transactions start with a deferred BEGIN
    (one consistent WAL snapshot, no write lock), so computing a large dashboard does not
    hold up annotators' writes the way the store's BEGIN IMMEDIATE would."""
    return make_engine(settings, read_only=True)


def loop(settings: Settings, *, interval: float = 60.0, iterations: int | None = None) -> None:
    """Run :func:`run_due` and :func:`refresh_dashboards` every ``interval`` seconds
    (forever, or ``iterations`` times)."""
    done = 0
    while iterations is None or done < iterations:
        for r in run_due(settings):
            log.info("%s %s..%s: %s", r.policy, r.window_start, r.window_end, r.message)
        for d in refresh_dashboards(settings):
            log.info("dashboard of %s: %s (%s s)", d.project, d.message, d.seconds)
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval)
