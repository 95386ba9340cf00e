"""Case-detection benchmark: ``labelloop cases detect`` over a project of 1,000,000
annotations, against what a user would script instead.

Generates the seeded long-form CSV of ``bench_import.py`` (200,000 items × 5 votes from
500 annotators, 80 % right), imports it into a fresh SQLite file and a fresh PostgreSQL
database (not timed), adds one model prediction per item (the plurality vote 90 % of the time,
confidence 0.5–1) and flags 1 % of the annotations as uncertain (not timed), then times, per
database:

* **detect** (first run): ``adjudication.service.detect`` end to end — the columns read
  from the database, Dawid–Skene over every item, the model, flag and audit signals,
  priorities, and the cases with their deadlines and trail event written;
* **again**: the same call once more (nothing new to open: the idempotent path).

Alternative, same run: the script a user would write on the export — pandas reads the
CSV, crowd-kit's ``DawidSkene`` (100 iterations) infers the posteriors, and the items
below the posterior threshold are listed. It finds one of our six signals and writes
nothing, so the ratio flatters it.

    .venv/bin/python benchmarks/bench_cases.py                   # 1,000,000 annotations
    .venv/bin/python benchmarks/bench_cases.py --rows 100000     # quick run
    .venv/bin/python benchmarks/bench_cases.py --skip-postgres
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import LABELS, PG_ADMIN, generate
from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from labelloop.accounts.actor import Actor
from labelloop.adjudication import service as adjudication
from labelloop.adjudication.models import Case
from labelloop.projects.importer import import_file
from labelloop.projects.models import Annotation, Item, Prediction
from labelloop.projects.service import get_project
from labelloop.store import make_engine, make_session_factory, session_scope, upgrade

ACTOR = Actor.local("bench")
TARGET = 10.0


def _majority(csv_path: Path) -> dict[str, str]:
    """The plurality vote of each item (the model is right when it gives it)."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    with csv_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            votes[row["item_id"]][row["label"]] += 1
    return {item: c.most_common(1)[0][0] for item, c in votes.items()}


def _prepare(url: str, csv_path: Path) -> None:
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    t0 = time.perf_counter()
    with session_scope(factory) as session:
        import_file(session, actor=ACTOR, path=csv_path, project="bench", create=True)
    with session_scope(factory) as session:
        project = get_project(session, "bench")
        rng = random.Random(7)
        majority = _majority(csv_path)
        rows = []
        for item_id, external in session.execute(
            select(Item.id, Item.external_id).where(Item.project_id == project.id)
        ):
            label = majority[external] if rng.random() < 0.9 else rng.choice(LABELS)
            rows.append(
                {
                    "project_id": project.id,
                    "item_id": item_id,
                    "model_name": "bench-model",
                    "model_version": "1",
                    "value": label,
                    "score": round(rng.uniform(0.5, 1.0), 3),
                }
            )
        session.execute(insert(Prediction), rows)
        flagged = [
            i for (i,) in session.execute(select(Annotation.id).where(Annotation.id % 100 == 0))
        ]
        flag = [{"code": "uncertain", "field": "value", "message": "unsure", "source": "annotator"}]
        for start in range(0, len(flagged), 5000):
            session.execute(
                update(Annotation)
                .where(Annotation.id.in_(flagged[start : start + 5000]))
                .values(flags=flag)
            )
    print(f"  prepared in {time.perf_counter() - t0:.1f} s (not timed)", file=sys.stderr)
    engine.dispose()


def _time_detect(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    out: dict[str, Any] = {}
    try:
        for run in ("detect", "again"):
            t0 = time.perf_counter()
            with session_scope(factory) as session:
                project = get_project(session, "bench")
                r = adjudication.detect(session, actor=ACTOR, project=project)
            out[run] = {
                "seconds": round(time.perf_counter() - t0, 3),
                "opened": r.opened,
                "candidates": r.candidates,
                "by_reason": r.by_reason,
            }
        with session_scope(factory) as session:
            out["cases"] = int(session.scalar(select(func.count(Case.id))) or 0)
    finally:
        engine.dispose()
    return out


def _alternative(csv_path: Path, threshold: float) -> dict[str, Any]:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    t0 = time.perf_counter()
    frame = pd.read_csv(csv_path, usecols=["item_id", "annotator", "label"])
    frame = frame.rename(columns={"item_id": "task", "annotator": "worker"})
    probas = DawidSkene(n_iter=100).fit(frame).probas_
    low = probas.max(axis=1) < threshold
    return {"seconds": round(time.perf_counter() - t0, 3), "items_below": int(low.sum())}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"rows": args.rows, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-") as tmp:
        csv_path = Path(tmp) / "annotations.csv"
        results["items"] = generate(csv_path, args.rows)
        results["alternative"] = _alternative(csv_path, 0.7)
        print(f"pandas + crowd-kit: {results['alternative']}", file=sys.stderr)
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _prepare(url, csv_path)
        results["sqlite"] = _time_detect(url)
        print(f"SQLite: {results['sqlite']}", file=sys.stderr)
        if not args.skip_postgres:
            admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
            name = f"labelloop_bench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                pg = make_url(args.pg_admin_url).set(database=name)
                pg_url = pg.render_as_string(hide_password=False)
                _prepare(pg_url, csv_path)
                results["postgresql"] = _time_detect(pg_url)
                print(f"PostgreSQL: {results['postgresql']}", file=sys.stderr)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    _table(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _table(r: dict[str, Any]) -> None:
    alt = r["alternative"]["seconds"]
    print(
        f"| database | detect (first run) | opened | again | pandas + crowd-kit | ratio | < {TARGET:g} s? |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for db in ("sqlite", "postgresql"):
        if db not in r:
            continue
        d = r[db]
        first = d["detect"]["seconds"]
        print(
            f"| {db} | {first:.2f} s | {d['detect']['opened']:,} | {d['again']['seconds']:.2f} s "
            f"| {alt:.2f} s | {alt / first:.1f}× | {'yes' if first < TARGET else 'no'} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
