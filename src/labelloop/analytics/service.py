"""The lead dashboard as stored snapshots: read, refresh, find stale ones.

Computing the dashboard reads every annotation of the project (a few seconds for a
million), so it is stored as a :class:`DashboardSnapshot` and the page shows the newest
one. A snapshot is stale when the project has a trail event newer than the one the
computation saw; the worker (``labelloop worker``) refreshes stale snapshots, a lead can
refresh one from the page, and :func:`project_overview` recomputes in the request only
when there is no snapshot yet or the last computation was quick
(:data:`SYNC_REFRESH_BELOW_SECONDS`), i.e. the project is small.

Storing a snapshot appends no trail event: it is derived data, recomputable at any time
from records whose every change is already in the trail, and an event per refresh would
flood the chain (and mark the project as changed again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelloop.accounts.actor import Actor
from labelloop.accounts.policy import require
from labelloop.accounts.roles import Permission
from labelloop.analytics import dashboard, loop
from labelloop.analytics.models import DashboardSnapshot
from labelloop.analytics.schemas import Freshness, Overview
from labelloop.projects.models import Annotation, Project
from labelloop.store.base import utcnow
from labelloop.trail.models import Event

#: Recompute a stale snapshot inside the page request when the last computation took
#: less than this (seconds); otherwise show it with its age and leave it to the worker.
SYNC_REFRESH_BELOW_SECONDS = 0.5


def trail_seq(session: Session, project_id: int) -> int:
    """The sequence number of the project's newest trail event (0 when none)."""
    seq = session.scalar(select(func.max(Event.seq)).where(Event.project_id == project_id))
    return int(seq or 0)


def latest_snapshot(session: Session, project_id: int) -> DashboardSnapshot | None:
    return session.scalar(
        select(DashboardSnapshot)
        .where(DashboardSnapshot.project_id == project_id)
        .order_by(DashboardSnapshot.id.desc())
        .limit(1)
    )


def build_snapshot(session: Session, *, actor: Actor, project: Project) -> DashboardSnapshot:
    """Compute the project's dashboard, with its feedback section
    (:func:`labelloop.analytics.loop.feedback_section`); reads only: the snapshot is not
    added to the session, see :func:`save_snapshot`."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    started = time.perf_counter()
    # read the marker first: a write racing the computation leaves the snapshot marked
    # stale (and recomputed later), never marked fresh without it
    seq = trail_seq(session, project.id)
    overview, max_id = dashboard.compute(session, project)
    overview.feedback = loop.feedback_section(session, actor=actor, project=project)
    return DashboardSnapshot(
        project_id=project.id,
        computed_at=utcnow(),
        compute_seconds=round(time.perf_counter() - started, 3),
        trail_seq=seq,
        max_annotation_id=max_id,
        annotation_count=overview.totals["annotations"],
        payload=overview.payload(),
    )


def save_snapshot(session: Session, snap: DashboardSnapshot) -> DashboardSnapshot:
    """Store a built snapshot and delete the project's older ones."""
    session.add(snap)
    session.flush()
    session.execute(
        delete(DashboardSnapshot).where(
            DashboardSnapshot.project_id == snap.project_id, DashboardSnapshot.id < snap.id
        )
    )
    return snap


def refresh_snapshot(session: Session, *, actor: Actor, project: Project) -> DashboardSnapshot:
    """Compute the project's dashboard now and store it (replacing older snapshots)."""
    return save_snapshot(session, build_snapshot(session, actor=actor, project=project))


def is_stale(session: Session, snap: DashboardSnapshot) -> bool:
    return trail_seq(session, snap.project_id) > snap.trail_seq


def freshness(session: Session, snap: DashboardSnapshot) -> Freshness:
    """How far the project has moved on since ``snap`` (two index lookups)."""
    changes = int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.project_id == snap.project_id, Event.seq > snap.trail_seq)
        )
        or 0
    )
    new = 0
    if changes:
        a = Annotation.__table__.c
        # "+ 0": walk the primary key from the snapshot's last id, not the project index
        new = int(
            session.scalar(
                select(func.count()).where(
                    a.id > snap.max_annotation_id, (a.project_id + 0) == snap.project_id
                )
            )
            or 0
        )
    return Freshness(
        computed_at=snap.computed_at,
        compute_seconds=snap.compute_seconds,
        stale=changes > 0,
        new_annotations=new,
        changes=changes,
    )


def current_snapshot(
    session: Session, *, actor: Actor, project: Project
) -> tuple[DashboardSnapshot, Freshness]:
    """The project's newest snapshot and its freshness; computed now when there is none,
    or when it is stale and quick to recompute. The payload is read only when used."""
    require(session, actor, Permission.PROJECT_MANAGE, project_id=project.id)
    snap = latest_snapshot(session, project.id)
    if snap is None or (
        snap.compute_seconds < SYNC_REFRESH_BELOW_SECONDS and is_stale(session, snap)
    ):
        snap = refresh_snapshot(session, actor=actor, project=project)
    return snap, freshness(session, snap)


def project_overview(session: Session, *, actor: Actor, project: Project) -> Overview:
    """The dashboard of :func:`current_snapshot`, with its freshness."""
    snap, fresh = current_snapshot(session, actor=actor, project=project)
    overview = Overview.from_payload(project, snap.payload)
    overview.freshness = fresh
    return overview


#: The worker refreshes a stale snapshot once it is at least this old (seconds) ...
MIN_REFRESH_INTERVAL = 60.0
#: ... and at least this many times its own computation time old, so that a project that
#: takes 20 s to compute costs the worker at most a tenth of a CPU while writes go on.
REFRESH_COST_FACTOR = 10.0


@dataclass(frozen=True)
class StaleProject:
    project_id: int
    name: str
    has_snapshot: bool


def stale_projects(session: Session, *, now: datetime | None = None) -> list[StaleProject]:
    """Projects whose dashboard is missing, or older than their newest trail event and due
    for a refresh (see :data:`MIN_REFRESH_INTERVAL`, :data:`REFRESH_COST_FACTOR`);
    projects without annotations and without a snapshot are left out."""
    now = now or utcnow()
    newest = (
        select(DashboardSnapshot.project_id, func.max(DashboardSnapshot.id).label("id"))
        .group_by(DashboardSnapshot.project_id)
        .subquery()
    )
    snaps = {
        pid: (seq, computed_at, cost)
        for pid, seq, computed_at, cost in session.execute(
            select(
                DashboardSnapshot.project_id,
                DashboardSnapshot.trail_seq,
                DashboardSnapshot.computed_at,
                DashboardSnapshot.compute_seconds,
            ).join(newest, newest.c.id == DashboardSnapshot.id)
        ).tuples()
    }
    out = []
    for pid, name in session.execute(select(Project.id, Project.name).order_by(Project.id)):
        if pid in snaps:
            seq, computed_at, cost = snaps[pid]
            wait = max(MIN_REFRESH_INTERVAL, REFRESH_COST_FACTOR * cost)
            if (now - computed_at).total_seconds() >= wait and trail_seq(session, pid) > seq:
                out.append(StaleProject(pid, name, True))
        elif session.scalar(select(Annotation.id).where(Annotation.project_id == pid).limit(1)):
            out.append(StaleProject(pid, name, False))
    return out
