"""The worker: due runs are opened once, even with two workers at the same time."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from labelloop import worker
from labelloop.audits import service as audits
from labelloop.audits.models import AuditRun, AuditUnit
from labelloop.demo.builder import build_demo
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope

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
