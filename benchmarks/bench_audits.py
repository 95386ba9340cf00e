"""Audit benchmark: open a run over many annotations, then build the report of its sample.

Generates the same seeded long-form CSV as ``bench_import.py``, imports it into a fresh
SQLite file (not timed), creates a policy stratified by annotator with a 2,000-item
sample, and times

* **open**: population query + strata + stratified sample + freezing units and
  assignments (``audits.service.open_run``), and
* **report**: ``audits.service.close_run`` (the full report) after every unit has a
  review (reviews recorded through the service, not timed).

    .venv/bin/python benchmarks/bench_audits.py                 # 1,000,000 annotations
    .venv/bin/python benchmarks/bench_audits.py --rows 100000   # quick run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import generate

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditUnit
from labelloop.audits.schemas import ReviewInput
from labelloop.projects.importer import import_file
from labelloop.projects.service import get_project
from labelloop.store import make_engine, make_session_factory, session_scope, upgrade


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    actor = Actor.local("bench")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "annotations.csv"
        generate(csv_path, args.rows)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        factory = make_session_factory(engine)
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            import_file(session, actor=actor, path=csv_path, project="bench", create=True)
        print(
            f"imported {args.rows:,} annotations in {time.perf_counter() - t0:.1f} s (not part of the figures)"
        )
        with session_scope(factory) as session:
            project = get_project(session, "bench")
            for name in ("rev-a", "rev-b", "rev-c"):
                accounts.create_user(session, actor=actor, username=name)
                accounts.grant(
                    session, actor=actor, username=name, project_id=project.id, role=Role.AUDITOR
                )
            spec = audits.parse_spec(
                {
                    "strata": ["annotator"],
                    "sample_size": args.sample,
                    "reviewers": ["rev-a", "rev-b", "rev-c"],
                    "min_per_stratum": 1,
                }
            )
            policy = audits.create_policy(
                session, actor=actor, project=project, name="bench", spec=spec
            )
            policy_id = policy.id
        start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            policy = session.get(type(policy), policy_id)
            run = audits.open_run(
                session, actor=actor, policy=policy, window_start=start, window_end=end
            ).run
            run_id = run.id
        t_open = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        with session_scope(factory) as session:
            rows = session.execute(
                __import__("sqlalchemy")
                .select(AuditAssignment.id, AuditUnit.snapshot)
                .join(AuditUnit, AuditUnit.id == AuditAssignment.unit_id)
                .where(AuditAssignment.run_id == run_id)
            ).all()
            for a_id, snap in rows:
                if rng.random() < 0.85:
                    review = ReviewInput(verdict="correct", corrected_value=snap["value"])
                else:
                    review = ReviewInput(
                        verdict="incorrect",
                        corrected_value="other" if snap["value"] != "other" else "billing",
                        error_category="attention slip",
                        severity="low",
                    )
                audits.record_review(session, actor=actor, assignment_id=a_id, review=review)
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            run = audits.get_run(session, run_id)
            audits.close_run(session, actor=actor, run=run)
        t_report = time.perf_counter() - t0
        engine.dispose()
    print(
        f"open run over {args.rows:,} annotations (sample {args.sample}): {t_open:.2f} s  (target < 5 s)"
    )
    print(
        f"report for the {args.sample}-annotation sample:            {t_report:.2f} s  (target < 10 s)"
    )


if __name__ == "__main__":
    main()
