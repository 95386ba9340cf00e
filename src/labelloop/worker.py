"""`labelloop worker`: opens the audit runs that are due, escalates cases past their
deadline, opens disagreement cases on each project's detection cadence and sends the
digests of notable rulings, once or in a loop; in the loop it also refreshes stale lead
dashboards, anchors the audit trail's head every ``trail_checkpoint_minutes`` and
deletes the anonymous channel's rate-limit counts and salts of past days.
Escalation runs at the start and at the end of every pass, so with the default 30 s
interval a case moves up within a minute of its deadline.

Each window is opened in its own transaction. Two workers (or a worker and a manual
trigger) racing for the same window cannot both create it: the run is unique per
(policy, window start) in the database, and the loser simply finds the winner's run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
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
from labelloop.escalation import service as escalation
from labelloop.escalation.service import Escalated
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


def loop(settings: Settings, *, interval: float = 30.0, iterations: int | None = None) -> None:
    """Run every job (:func:`escalate`, :func:`run_due`, :func:`detect_cases`,
    :func:`send_digests`, :func:`refresh_dashboards`, :func:`checkpoint_due`,
    :func:`purge_anonymous`) every ``interval`` seconds (forever, or ``iterations``
    times)."""
    done = 0
    while iterations is None or done < iterations:
        _log_escalations(escalate(settings))
        for r in run_due(settings):
            log.info("%s %s..%s: %s", r.policy, r.window_start, r.window_end, r.message)
        for d in refresh_dashboards(settings):
            log.info("dashboard of %s: %s (%s s)", d.project, d.message, d.seconds)
        for job in detect_cases(settings) + send_digests(settings):
            log.info("%s: %s", job.project, job.message)
        c = checkpoint_due(settings)
        if c is not None and c.seq is not None:
            log.info("trail anchored at event %s in %s", c.seq, c.anchor_file)
        purge_anonymous(settings)  # logs nothing: not even how many counts went
        _log_escalations(escalate(settings))
        done += 1
        if iterations is None or done < iterations:
            time.sleep(interval)


def purge_anonymous(settings: Settings, *, now: datetime | None = None) -> int:
    """Delete the anonymous channel's per-person daily counts and their salts of every
    day before ``now``'s (UTC), so nothing that could tie a person to a day's posts
    outlives the day (see :mod:`labelloop.feedback.anonymous`); returns how many counts
    went (0 when it failed: logged, and the other jobs go on)."""
    from labelloop.feedback import anonymous

    today = (now or utcnow()).date()
    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return anonymous.purge_expired(session, today=today)
    except Exception:  # the purge must not stop the other jobs; the next pass retries
        log.exception("purging the anonymous channel's past counts")
        return 0
    finally:
        engine.dispose()


# -- cases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectJob:
    project: str
    message: str


def _log_escalations(moved: Sequence[Escalated]) -> None:
    for e in moved:
        log.info("%s %s escalated to %s (due %s)", e.subject, e.subject_id, e.owner, e.due_at)


def escalate(
    settings: Settings, *, now: datetime | None = None, actor: Actor | None = None
) -> list[Escalated]:
    """Move every deadline past due one level up (see :mod:`labelloop.escalation`)."""
    engine = make_engine(settings)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return escalation.escalate_due(
                session, actor=actor or Actor.local("worker"), now=now or utcnow()
            )
    except Exception:  # escalation must not stop the other jobs
        log.exception("escalation")
        return []
    finally:
        engine.dispose()


def detect_cases(
    settings: Settings, *, now: datetime | None = None, actor: Actor | None = None
) -> list[ProjectJob]:
    """Run case detection in every project whose detection is due
    (:func:`labelloop.adjudication.service.detect_apart`: the reading on a read-only
    connection, the opening in a short write transaction)."""
    from labelloop.adjudication import service as adjudication
    from labelloop.projects.models import Project

    now, actor = now or utcnow(), actor or Actor.local("worker")
    engine, reader = make_engine(settings), _read_engine(settings)
    factory, read_factory = make_session_factory(engine), make_session_factory(reader)
    done: list[ProjectJob] = []
    try:
        with session_scope(read_factory) as session:
            due = adjudication.detection_due(session, now)
        for project_id in due:
            try:
                with session_scope(read_factory) as looking, session_scope(factory) as session:
                    project = looking.get(Project, project_id)
                    if project is None:  # deleted since
                        continue
                    name = project.name
                    r = adjudication.detect_apart(
                        reader=looking, session=session, actor=actor, project=project, now=now
                    )
                done.append(ProjectJob(name, f"{r.opened} new cases ({r.seconds} s)"))
            except Exception as exc:  # one project's failure must not stop the others
                log.exception("case detection in project %s", project_id)
                done.append(ProjectJob(str(project_id), f"detection failed: {exc}"))
    finally:
        engine.dispose()
        reader.dispose()
    return done


def send_digests(
    settings: Settings, *, now: datetime | None = None, actor: Actor | None = None
) -> list[ProjectJob]:
    """Send each project's digest of notable rulings when one is due."""
    from labelloop.adjudication import rulings
    from labelloop.projects.models import Project

    now, actor = now or utcnow(), actor or Actor.local("worker")
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    done: list[ProjectJob] = []
    try:
        with session_scope(factory) as session:
            ids = session.scalars(select(Project.id).order_by(Project.id)).all()
        for project_id in ids:  # each project in its own transaction
            try:
                with session_scope(factory) as session:
                    project = session.get(Project, project_id)
                    if project is None or not rulings.digest_due(session, project.id, now):
                        continue
                    n = rulings.send_digest(session, actor=actor, project=project, now=now)
                    done.append(ProjectJob(project.name, f"digest of {n} notable rulings"))
            except Exception as exc:  # one project's failure must not stop the others
                log.exception("digest of project %s", project_id)
                done.append(ProjectJob(str(project_id), f"digest failed: {exc}"))
    finally:
        engine.dispose()
    return done
