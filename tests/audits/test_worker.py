"""The worker: due runs are opened once, even with two workers at the same time; the
audit trail is anchored every ``trail_checkpoint_minutes``."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from labelloop import trail, worker
from labelloop.audits import service as audits
from labelloop.audits.models import AuditRun, AuditUnit
from labelloop.demo.builder import build_demo
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.anchors import database_id, make_anchor
from labelloop.trail.chain import key_id

from .conftest import OPERATOR, SMALL


def test_two_workers_open_each_window_once(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        summary = build_demo(session, actor=OPERATOR, seed=11, n_items=SMALL)
    with session_scope(factory) as session:
        from labelloop.projects.service import get_project

        project = get_project(session, summary.project)
        spec = audits.parse_spec(
            {
                "cadence": "0 6 * * MON",
                "strata": ["annotator"],
                "sample_size": 60,
                "reviewers": ["demo.auditor", "demo.adjudicator"],
            }
        )
        policy = audits.create_policy(
            session, actor=OPERATOR, project=project, name="weekly", spec=spec
        )
        first = session.scalar(select(func.min(AuditRun.id)))  # none yet
        assert first is None
        from labelloop.projects.models import Annotation

        policy.created_at = session.scalar(select(func.min(Annotation.submitted_at)))
        created_at = policy.created_at
    now = created_at + timedelta(days=21, hours=1)
    settings = Settings(database_url=fresh_database_url)
    results: list[list[worker.JobResult]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(worker.run_due(settings, now=now))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with session_scope(factory) as session:
        runs = session.scalars(select(AuditRun).order_by(AuditRun.window_start)).all()
        assert len(runs) == 3
        assert len({r.window_start for r in runs}) == 3
        per_run = dict(
            session.execute(select(AuditUnit.run_id, func.count()).group_by(AuditUnit.run_id))
            .tuples()
            .all()
        )
        assert all(per_run.get(r.id, 0) == r.sample_size for r in runs)
    opened = [r for batch in results for r in batch if r.created]
    assert len(opened) == 3
    # a later check finds nothing new
    assert [r for r in worker.run_due(settings, now=now) if r.created] == []
    engine.dispose()


def test_worker_anchors_the_trail_on_schedule(fresh_database_url: str, tmp_path: Path) -> None:
    """A checkpoint is due when this database has no anchor yet, or its newest one is
    ``trail_checkpoint_minutes`` old; the schedule is read from the anchor file, so
    anchors of other databases there do not count, and 0 turns checkpoints off."""
    anchors = tmp_path / "trail.anchors"
    settings = Settings(
        database_url=fresh_database_url, trail_anchor_file=anchors, trail_checkpoint_minutes=60
    )
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    try:
        with session_scope(factory) as session:
            trail.service.checkpoint(session, anchor_file=anchors, database="sqlite:///other.db")
            trail.service.append(session, actor="a", action="t.x", entity_type="t")
        # a line that names this key without its mac cannot postpone checkpoints
        forged = make_anchor(
            b"not-the-key",
            database=database_id(fresh_database_url),
            seq=1,
            hash="0" * 64,
            time=t0 + timedelta(days=1),
        )
        forged = replace(forged, key_id=key_id(settings.trail_key_bytes()))
        with anchors.open("a", encoding="utf-8") as f:
            f.write(forged.to_line() + "\n")

        first = worker.checkpoint_due(settings, now=t0)
        assert first is not None and (first.seq, first.message) == (1, "anchored")
        assert worker.checkpoint_due(settings, now=t0 + timedelta(minutes=59)) is None
        with session_scope(factory) as session:
            trail.service.append(session, actor="a", action="t.y", entity_type="t")
        second = worker.checkpoint_due(settings, now=t0 + timedelta(minutes=60))
        assert second is not None and second.seq == 2
        off = settings.model_copy(update={"trail_checkpoint_minutes": 0})
        assert worker.checkpoint_due(off, now=t0 + timedelta(days=1)) is None

        with session_scope(factory) as session:
            result = trail.service.verify(session, anchor_file=anchors)
            assert result.problems == [
                "anchor line 2 forged or corrupted (its mac does not verify)"
            ]
            assert [(a.seq, a.at()) for a in result.anchors] == [
                (1, t0),
                (2, t0 + timedelta(minutes=60)),
            ]
    finally:
        engine.dispose()


def test_worker_loop_anchors_and_survives_a_failing_checkpoint(
    fresh_database_url: str, tmp_path: Path
) -> None:
    anchors = tmp_path / "trail.anchors"
    settings = Settings(database_url=fresh_database_url, trail_anchor_file=anchors)
    worker.loop(settings, interval=0, iterations=1)  # an empty trail: anchored at event 0
    assert '"seq":0' in anchors.read_text(encoding="utf-8")
    blocked = settings.model_copy(update={"trail_anchor_file": tmp_path / "missing" / "a"})
    failed = worker.checkpoint_due(blocked)
    assert failed is not None and failed.seq is None
    assert failed.message.startswith("failed: cannot append to the anchor file")
    worker.loop(blocked, interval=0, iterations=1)  # logged, not raised
