"""Re-check list benchmark: the annotations a guideline change may affect, out of
1,000,000.

Builds a project (single label: billing, refund, technical, account, other) with 200,000
items and ``--rows`` annotations (five per item by 50 annotators, submitted over 173
days; written with one INSERT ... SELECT, not timed) and two guideline versions: 1.0 on
day 0 and 1.1 on day 120, which clarifies R1 (refund or billing) and gives it a boundary
exemplar labelled ``account``. Annotations submitted before day 120 carry 1.0 (69 %),
the others 1.1. Then it times, each call in its own transaction and session (median of
``--repeat`` calls; wall time, and this process's CPU time):

* **service**: ``guidelines.recheck.recheck`` (the default change, 1.0 → 1.1, first 100
  entries), end to end from the database: 483,840 annotations are listed (every 1.0
  annotation labelled refund, billing or account), counted per rule, label and reason,
  and ordered;
* **send**: ``guidelines.recheck.send`` (the same list, a 200-annotation sample: the
  policy, the run, its units and assignments), once;

and, in the same run, what a user would do instead:

* **SQL, counts + first 100**: a count per label and the newest 100 of the list, two
  plain SQL queries (the label read from the JSON value in SQL; no per-rule counts, no
  exemplar items, ordered by time only);
* **SQL, whole list**: the whole list fetched, newest first, with item and annotator
  names (one query);
* **pandas**: the project's annotations read with ``pandas.read_sql`` (as an export
  would hold them), then filtered by version and label, sorted and counted.

The ratios printed are the service's wall time over each alternative's.

    .venv/bin/python benchmarks/bench_recheck.py                          # SQLite and PostgreSQL
    .venv/bin/python benchmarks/bench_recheck.py --backend sqlite --rows 100000   # quick

PostgreSQL runs in a database created on 127.0.0.1:5432 for the run (and dropped after
it), with ``VACUUM ANALYZE`` after loading (autovacuum would do it in service).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.guidelines import recheck, service
from labelloop.guidelines.schemas import ExemplarDoc, GuidelineDoc, RuleDoc
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope, upgrade

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
OPERATOR = Actor.local("bench")
ANNOTATORS = 50
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP_SECONDS_PER_MILLION = 15  # 1,000,000 annotations over 173 days
CUT_DAY = 120
WANTED = ("account", "billing", "refund")  # R1's labels and its exemplars' in either version

#: label by ``(i * 2654435761) % 1000`` (a scrambled index): shares 30/25/20/15/10 %
LABEL_CASE = (
    "CASE WHEN k < 300 THEN 'billing' WHEN k < 550 THEN 'refund' "
    "WHEN k < 750 THEN 'technical' WHEN k < 900 THEN 'account' ELSE 'other' END"
)


def _guideline(boundary: bool) -> GuidelineDoc:
    r1_text = "Choose refund when the customer asks for the money back; else billing."
    exemplars = [
        ExemplarDoc(item="i7", kind="positive", label="refund", why="wants it back"),
        ExemplarDoc(item="i12", kind="boundary", label="billing", why="asks why"),
    ]
    if boundary:
        r1_text += "\n\nA locked account is account, even when a charge is mentioned."
        exemplars.append(ExemplarDoc(item="i3", kind="boundary", label="account", why="login"))
    return GuidelineDoc(
        title="Intent guideline",
        rules=(
            RuleDoc(
                id="R1",
                title="Refund or billing",
                text=r1_text,
                labels=("refund", "billing"),
                exemplars=tuple(exemplars),
            ),
            RuleDoc(id="R2", title="Technical or account", labels=("technical", "account")),
            RuleDoc(id="R3", title="Other", labels=("other",)),
        ),
    )


def _insert_annotations(s: Session, pg: bool, project_id: int, rows: int, u0: int) -> None:
    items = max(1, rows // 5)
    step = max(1, STEP_SECONDS_PER_MILLION * 1_000_000 // rows)
    cut = CUT_DAY * 86400
    if pg:
        series = "generate_series(1, :n) AS g(i)"
        k = "((i::bigint * 2654435761) % 1000)"
        when = "TIMESTAMPTZ '2026-01-01 00:00:00+00' + (i::bigint * :step) * INTERVAL '1 second'"
        value, obj, arr = "to_jsonb(label)", "'{}'::jsonb", "'[]'::jsonb"
    else:
        series = (
            "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
            "SELECT i FROM c) AS g"
        )
        k = "((i * 2654435761) % 1000)"
        when = "datetime('2026-01-01', '+' || (i * :step) || ' seconds')"
        value, obj, arr = "'\"' || label || '\"'", "'{}'", "'[]'"
    s.execute(
        text(
            "INSERT INTO annotations (project_id, item_id, annotator_id, external_key, value, "
            "attributes, source, flags, created_at, updated_at, submitted_at, active_seconds, "
            f"guideline_version) SELECT :p, :first + (i - 1) % :items, "
            f":u0 + ((i - 1) % :items + (i - 1) / :items) % :na, '', {value}, {obj}, 'bench', "
            f"{arr}, submitted, submitted, submitted, 10.0, "
            "CASE WHEN i * :step < :cut THEN '1.0' ELSE '1.1' END "
            f"FROM (SELECT i, {when} AS submitted, {LABEL_CASE} AS label "
            f"FROM (SELECT i, {k} AS k FROM {series}) AS s) AS t"
        ),
        {
            "p": project_id,
            "first": s.scalar(
                text("SELECT min(id) FROM items WHERE project_id = :p"), {"p": project_id}
            ),
            "items": items,
            "u0": u0,
            "na": ANNOTATORS,
            "n": rows,
            "step": step,
            "cut": cut,
        },
    )


def load(url: str, rows: int) -> None:
    """The project, its items, annotators, auditors, versions and annotations."""
    engine = make_engine(url)
    upgrade(engine)
    pg = engine.dialect.name == "postgresql"
    with session_scope(make_session_factory(engine)) as s:
        schema = LabelSchema.from_dict(
            {
                "task_type": "single",
                "labels": ["billing", "refund", "technical", "account", "other"],
            }
        )
        p = projects.create_project(s, actor=OPERATOR, name="recheck", schema=schema)
        users = [
            accounts.create_user(s, actor=OPERATOR, username=f"a{i}") for i in range(ANNOTATORS)
        ]
        for name in ("rev-a", "rev-b", "rev-c"):
            accounts.create_user(s, actor=OPERATOR, username=name)
            accounts.grant(s, actor=OPERATOR, username=name, project_id=p.id, role=Role.AUDITOR)
        series = (
            "generate_series(1, :n) AS g(i)"
            if pg
            else "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
            "SELECT i FROM c) AS g"
        )
        obj, arr = ("'{}'::jsonb", "'[]'::jsonb") if pg else ("'{}'", "'[]'")
        s.execute(
            text(
                "INSERT INTO items (project_id, external_id, payload, metadata, segments, tags, "
                f"created_at) SELECT :p, 'i' || i, {obj}, {obj}, {obj}, {arr}, CURRENT_TIMESTAMP "
                f"FROM {series}"
            ),
            {"p": p.id, "n": max(1, rows // 5)},
        )
        for boundary, day, note in ((False, 0, "first"), (True, CUT_DAY, "R1: locked accounts")):
            service.save_draft(s, actor=OPERATOR, project=p, doc=_guideline(boundary))
            when = START + timedelta(days=day)
            service.publish(s, actor=OPERATOR, project=p, note=note, published_at=when)
        _insert_annotations(s, pg, p.id, rows, users[0].id)
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as c:
            c.exec_driver_sql("ANALYZE")
    engine.dispose()


def _label_sql(pg: bool) -> str:
    return "a.value #>> '{}'" if pg else "json_extract(a.value, '$')"


def sql_counts_and_first(s: Session, pg: bool, project_id: int) -> tuple[int, int]:
    """What a user would write: a count per label, and the newest 100 of the list."""
    label = _label_sql(pg)
    where = (
        f"a.project_id = :p AND (a.guideline_version IS NULL OR a.guideline_version <> '1.1') "
        f"AND {label} IN ('account', 'billing', 'refund')"
    )
    counts = s.execute(
        text(f"SELECT {label}, count(*) FROM annotations a WHERE {where} GROUP BY 1"),
        {"p": project_id},
    ).all()
    first = s.execute(
        text(
            "SELECT a.id, i.external_id, u.username, a.value, a.guideline_version, "
            f"a.submitted_at FROM annotations a JOIN items i ON i.id = a.item_id "
            f"JOIN users u ON u.id = a.annotator_id WHERE {where} "
            "ORDER BY a.submitted_at DESC, a.id DESC LIMIT 100"
        ),
        {"p": project_id},
    ).all()
    return sum(n for _, n in counts), len(first)


def sql_whole_list(s: Session, pg: bool, project_id: int) -> tuple[int, int]:
    """The whole list, newest first, with item and annotator names."""
    rows = s.execute(
        text(
            "SELECT a.id, i.external_id, u.username, a.value, a.guideline_version, "
            "a.submitted_at FROM annotations a JOIN items i ON i.id = a.item_id "
            "JOIN users u ON u.id = a.annotator_id WHERE a.project_id = :p "
            "AND (a.guideline_version IS NULL OR a.guideline_version <> '1.1') "
            f"AND {_label_sql(pg)} IN ('account', 'billing', 'refund') "
            "ORDER BY a.submitted_at DESC, a.id DESC"
        ),
        {"p": project_id},
    ).all()
    return len(rows), min(len(rows), 100)


def pandas_filter(s: Session, pg: bool, project_id: int) -> tuple[int, int]:
    """The project's annotations as a data frame (an export's columns), then a filter."""
    df = pd.read_sql(
        text(
            f"SELECT a.id, a.item_id, a.annotator_id, {_label_sql(pg)} AS label, "
            "a.guideline_version, a.submitted_at FROM annotations a WHERE a.project_id = :p"
        ),
        s.connection(),
        params={"p": project_id},
    )
    older = df["guideline_version"].isna() | (df["guideline_version"] != "1.1")
    listed = df[older & df["label"].isin(WANTED)]
    listed = listed.sort_values(["submitted_at", "id"], ascending=False)
    counts = listed["label"].value_counts()
    return int(counts.sum()), min(len(listed), 100)


def service_recheck(s: Session, pg: bool, project_id: int) -> tuple[int, int]:
    project = projects.get_project(s, project_id)
    found = recheck.recheck(s, actor=OPERATOR, project=project, limit=100)
    return found.total, len(found.entries)


def timed(
    engine: Engine, fn: Callable[[Session, bool, int], Any], repeat: int
) -> tuple[float, float, Any]:
    """The median wall time and this process's median CPU time of ``fn`` over
    ``repeat`` calls, each in its own session, and its answer."""
    factory = make_session_factory(engine)
    pg = engine.dialect.name == "postgresql"
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        with session_scope(factory) as s:
            project_id = projects.get_project(s, "recheck").id
            out = fn(s, pg, project_id)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def bench(url: str, rows: int, repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    load(url, rows)
    print(
        f"loaded {rows:,} annotations in {time.perf_counter() - t0:.1f} s (not timed)", flush=True
    )
    engine = make_engine(url)
    results: dict[str, float] = {}
    try:
        for name, fn in (
            ("service: recheck (counts + first 100)", service_recheck),
            ("SQL: counts + first 100", sql_counts_and_first),
            ("SQL: whole list", sql_whole_list),
            ("pandas: read_sql + filter", pandas_filter),
        ):
            seconds, cpu, (total, shown) = timed(engine, fn, repeat)
            results[name] = seconds
            print(
                f"  {name:40s} {seconds:6.2f} s  CPU {cpu:5.2f} s  (listed {total:,}, shown {shown})",
                flush=True,
            )
        t0 = time.perf_counter()
        with session_scope(make_session_factory(engine)) as s:
            sent = recheck.send(s, actor=OPERATOR, project=projects.get_project(s, "recheck"))
            state = (sent.run.population_size, sent.run.sample_size)
        results["service: send (sample 200)"] = time.perf_counter() - t0
        print(
            f"  {'service: send (sample 200)':40s} {results['service: send (sample 200)']:7.2f} s"
            f"  (population {state[0]:,}, sample {state[1]})",
            flush=True,
        )
    finally:
        engine.dispose()
    base = results["service: recheck (counts + first 100)"]
    verdict = "meets" if base < 5 else "misses"
    print(f"  re-check list {base:.2f} s: {verdict} the < 5 s target")
    for name in ("SQL: counts + first 100", "SQL: whole list", "pandas: read_sql + filter"):
        print(f"  service / {name}: {base / results[name]:.2f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per step (median)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["sqlite", "postgresql"]:
        print(f"{backend}:", flush=True)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.repeat)
            continue
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"labelloop_bench_recheck_{uuid.uuid4().hex[:8]}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
            bench(url, args.rows, args.repeat)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
