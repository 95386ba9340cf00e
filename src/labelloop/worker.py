"""`labelloop worker`: opens the audit runs that are due, once or in a loop, and (in the
loop) refreshes stale lead dashboards and anchors the audit trail's head every
``trail_checkpoint_minutes``.

Each window is opened in its own transaction. Two workers (or a worker and a manual
trigger) racing for the same window cannot both create it: the run is unique per
(policy, window start) in the database, and the loser simply finds the winner's run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.audits import service as audits
from labelloop.audits.models import AuditPolicy
from labelloop.errors import LabelLoopError
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.base import utcnow
from labelloop.store.engine import trail_key_of
from labelloop.trail import anchors

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


@dataclass(frozen=True)
class CheckpointResult:
    anchor_file: Path
    seq: int | None  # the anchored event; None when it failed
    message: str


def checkpoint_due(settings: Settings, *, now: datetime | None = None) -> CheckpointResult | None:
    """Append a trail checkpoint (:func:`labelloop.trail.service.checkpoint`) when this
    database's newest anchor in ``trail_anchor_file`` is ``trail_checkpoint_minutes``
    old or more, or there is none; None when checkpoints are off (0) or none is due.

    The schedule is read from the anchor file itself, so it survives restarts and two
    workers stay about one interval apart (at worst both append one: harmless). A
    failure (the head does not match the events, the file cannot be written) is logged
    as an error and returned; it does not stop the other jobs.
    """
    if settings.trail_checkpoint_minutes <= 0:
        return None
    now = now or utcnow()
    path = settings.trail_anchor_file
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:  # no transaction: nothing is locked to look
            key = trail_key_of(conn.info)
        last = anchors.last_time(path, key=key, database=anchors.database_id(engine.url))
        if last is not None and now - last < timedelta(minutes=settings.trail_checkpoint_minutes):
            return None
        with session_scope(make_session_factory(engine)) as session:
            anchor = trail.service.checkpoint(session, anchor_file=path, now=now)
        return CheckpointResult(path, anchor.seq, "anchored")
    except (LabelLoopError, OperationalError) as exc:
        log.error("trail checkpoint to %s failed: %s", path, exc)
        return CheckpointResult(path, None, f"failed: {exc}")
    finally:
        engine.dispose()


def loop(settings: Settings, *, interval: float = 60.0, iterations: int | None = None) -> None:
    """Run :func:`run_due`, :func:`refresh_dashboards` and :func:`checkpoint_due` every
    ``interval`` seconds (forever, or ``iterations`` times)."""
    done = 0
    while iterations is None or done < iterations:
        for r in run_due(settings):
            log.info("%s %s..%s: %s", r.policy, r.window_start, r.window_end, r.message)
        for d in refresh_dashboards(settings):
            log.info("dashboard of %s: %s (%s s)", d.project, d.message, d.seconds)
        c = checkpoint_due(settings)
        if c is not None and c.seq is not None:
            log.info("trail anchored at event %s in %s", c.seq, c.anchor_file)
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval)
