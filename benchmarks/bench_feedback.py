"""Feedback benchmark: drafting an audit run's feedback, and ``feedback stats`` over a
large project.

* **drafts**: an audit run of 2,000 reviewed units (about 20 % incorrect) is closed;
  timed: ``feedback.lifecycle.after_run_closed`` (the drafts, one per annotator ×
  category × confusion, and the positive notes). Target: under 2 s.
* **stats**: ``feedback.effect.stats`` over 1,000,000 annotations (the CSV of
  ``bench_import.py``, imported as in ``bench_cases.py``) and 10,000 sent notes about
  random confusions; the reference labels need the gold labels and a Dawid–Skene fit.
  Target: under 3 s. Timed twice: the first call in a fresh process (it also loads
  numba's cached machine code, about 0.5 s) and again, as a running server answers it.

The alternative a user would script for the stats: pandas reads the export, crowd-kit's
``DawidSkene`` infers the reference labels, and the before/after counts per note are a
pandas filter per note (timed on 200 notes, extrapolated to 10,000).

    .venv/bin/python benchmarks/bench_feedback.py                 # 1,000,000 annotations
    .venv/bin/python benchmarks/bench_feedback.py --rows 100000   # quick run
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cases import ACTOR, _prepare
from bench_import import LABELS, generate
from sqlalchemy import func, insert, select

from labelloop.accounts import service as accounts
from labelloop.accounts.roles import Role
from labelloop.audits import service as audits
from labelloop.audits.models import AuditAssignment, AuditRun
from labelloop.audits.schemas import ReviewInput
from labelloop.feedback import effect, lifecycle
from labelloop.feedback.models import FeedbackNote
from labelloop.projects.models import Annotation
from labelloop.projects.service import get_project
from labelloop.store import make_engine, make_session_factory, session_scope


def _reviewed_run(factory: object, sample: int) -> int:
    rng = random.Random(5)
    with session_scope(factory) as s:  # type: ignore[arg-type]
        project = get_project(s, "bench")
        for name in ("rev-a", "rev-b", "rev-c"):
            accounts.create_user(s, actor=ACTOR, username=name)
            accounts.grant(s, actor=ACTOR, username=name, project_id=project.id, role=Role.AUDITOR)
        spec = audits.parse_spec(
            {
                "strata": ["annotator"],
                "sample_size": sample,
                "reviewers": ["rev-a", "rev-b", "rev-c"],
                "min_per_stratum": 1,
            }
        )
        policy = audits.create_policy(s, actor=ACTOR, project=project, name="bench", spec=spec)
        run = audits.open_run(
            s,
            actor=ACTOR,
            policy=policy,
            window_start=datetime(2026, 1, 1, tzinfo=UTC),
            window_end=datetime(2026, 7, 1, tzinfo=UTC),
            trigger="manual",
        ).run
        for asg in s.scalars(
            select(AuditAssignment.id).where(AuditAssignment.run_id == run.id)
        ).all():
            wrong = rng.random() < 0.2
            review = ReviewInput(
                verdict="incorrect" if wrong else "correct",
                corrected_value=rng.choice(LABELS),
                error_category=rng.choice(["boundary case", "attention slip", "ambiguous context"])
                if wrong
                else None,
                severity="medium" if wrong else None,
            )
            audits.record_review(s, actor=ACTOR, assignment_id=asg, review=review)
        return run.id


def _notes(factory: object, n: int) -> None:
    rng = np.random.default_rng(9)
    with session_scope(factory) as s:  # type: ignore[arg-type]
        project = get_project(s, "bench")
        annotators = s.scalars(select(Annotation.annotator_id).distinct()).all()
        start = datetime(2026, 2, 1, tzinfo=UTC)
        rows = []
        for i in range(n):
            sent = start + timedelta(days=float(rng.uniform(0, 120)))
            given, expected = rng.choice(LABELS, 2, replace=False)
            rows.append(
                {
                    "project_id": project.id,
                    "recipient_id": int(rng.choice(annotators)),
                    "template": "boundary_case",
                    "severity": "medium",
                    "status": "sent",
                    "message": f"note {i}",
                    "fields": {},
                    "rule_refs": [],
                    "given": str(given),
                    "expected": str(expected),
                    "source": "manual",
                    "created_by": "bench",
                    "found_at": sent - timedelta(hours=5),
                    "created_at": sent,
                    "sent_at": sent,
                    "sent_by": "bench",
                    "acknowledged_at": sent + timedelta(hours=3),
                }
            )
        s.execute(insert(FeedbackNote), rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-") as tmp:
        csv_path = Path(tmp) / "annotations.csv"
        generate(csv_path, args.rows)
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _prepare(url, csv_path)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        run_id = _reviewed_run(factory, args.sample)
        with session_scope(factory) as s:
            run = s.get(AuditRun, run_id)
            t0 = time.perf_counter()
            ids = lifecycle.after_run_closed(s, actor=ACTOR, run=run)
            drafts = time.perf_counter() - t0
        _notes(factory, args.notes)
        with session_scope(factory) as s:
            project = get_project(s, "bench")
            n_notes = s.scalar(select(func.count(FeedbackNote.id)))
            t0 = time.perf_counter()
            out = effect.stats(s, actor=ACTOR, project=project)
            stats_s = time.perf_counter() - t0
            t0 = time.perf_counter()  # again, as a running server answers it
            effect.stats(s, actor=ACTOR, project=project)
            again_s = time.perf_counter() - t0
        engine.dispose()
        alt = _alternative(csv_path, args.notes)
    print("| step | ours | target | alternative | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| drafts of a {args.sample}-unit run ({len(ids)} notes) | {drafts:.2f} s | < 2 s | — | — |"
    )
    print(
        f"| stats: {args.rows:,} annotations, {n_notes:,} notes ({len(out['effect'])} templates) "
        f"| {stats_s:.2f} s | < 3 s | {alt:.1f} s (pandas + crowd-kit, extrapolated) | {alt / stats_s:.1f}× |"
    )
    print(f"| the same stats again in the same process | {again_s:.2f} s | < 3 s | | |")
    return 0


def _alternative(csv_path: Path, n_notes: int) -> float:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    t0 = time.perf_counter()
    frame = pd.read_csv(csv_path, usecols=["item_id", "annotator", "label", "submitted_at"])
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True, format="ISO8601")
    ds = DawidSkene(n_iter=50).fit(frame.rename(columns={"item_id": "task", "annotator": "worker"}))
    frame["reference"] = frame["item_id"].map(ds.labels_)
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    workers = frame["annotator"].unique()
    t1 = time.perf_counter()
    for _ in range(200):
        who, expected = rng.choice(workers), rng.choice(LABELS)
        sent = pd.Timestamp("2026-03-01", tz="UTC")
        mine = frame[(frame["annotator"] == who) & (frame["reference"] == expected)]
        before = mine[
            (mine["submitted_at"] < sent) & (mine["submitted_at"] >= sent - pd.Timedelta(days=28))
        ]
        after = mine[
            (mine["submitted_at"] > sent) & (mine["submitted_at"] <= sent + pd.Timedelta(days=28))
        ]
        _ = (before["label"] != expected).sum(), (after["label"] != expected).sum()
    per_note = (time.perf_counter() - t1) / 200
    return setup + per_note * n_notes


if __name__ == "__main__":
    raise SystemExit(main())
