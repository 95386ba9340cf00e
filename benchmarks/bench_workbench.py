"""Workbench queue benchmark: serving the next item on a project with 1,000,000
annotations.

Builds a project with 340,000 items, three distinct annotators on each of the first
333,333 (1,000,000 annotations from 40 annotators, written with one INSERT ... SELECT per
pass, not timed) and 2,000 gold items, then times, each in its own transaction:

* **build**: the first ``next_item`` of the project, which builds the open-items index
  (one pass over the annotations);
* **next**: ``next_item`` for an annotator with no annotations, while unlabeled items
  remain, then again once only partly labeled items remain (each served item is
  skipped in the same transaction so the next call searches again);
* **status**: ``queue_status`` for that annotator and for one with 25,000 annotations.

    .venv/bin/python benchmarks/bench_workbench.py --backend sqlite
    .venv/bin/python benchmarks/bench_workbench.py --backend postgresql   # 127.0.0.1:5432

PostgreSQL runs get ``VACUUM ANALYZE`` after loading (autovacuum would do it in service).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.roles import Role
from labelloop.projects import service as projects
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope, upgrade
from labelloop.workbench import service as workbench
from labelloop.workbench.schemas import SettingsIn

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ITEMS, LABELED, ANNOTATORS, GOLD = 340_000, 333_333, 40, 2_000
OPERATOR = Actor.local("bench")


def load(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    pg = engine.dialect.name == "postgresql"
    series = (
        "generate_series(1, :n) AS g(i)"
        if pg
        else "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
        "SELECT i FROM c) AS g"
    )
    obj, arr, val = ("'{}'", "'[]'", "'\"a\"'")
    if pg:
        obj, arr, val = (f"{x}::jsonb" for x in (obj, arr, val))
    with session_scope(make_session_factory(engine)) as s:
        schema = LabelSchema.from_dict({"task_type": "single", "labels": ["a", "b"]})
        p = projects.create_project(s, actor=OPERATOR, name="big", schema=schema)
        users = [
            accounts.create_user(s, actor=OPERATOR, username=f"u{i}") for i in range(ANNOTATORS + 1)
        ]
        for u in users:
            accounts.grant(
                s, actor=OPERATOR, username=u.username, project_id=p.id, role=Role.ANNOTATOR
            )
        change = SettingsIn(overlap=3, gold_rate=0.1)
        workbench.update_settings(s, actor=OPERATOR, project=p, change=change)
        s.execute(
            text(
                "INSERT INTO items (project_id, external_id, payload, metadata, segments, tags, "
                f"created_at) SELECT :p, 'i' || i, {obj}, {obj}, {obj}, {arr}, CURRENT_TIMESTAMP "
                f"FROM {series}"
            ),
            {"p": p.id, "n": ITEMS},
        )
        first = s.scalar(text("SELECT min(id) FROM items WHERE project_id = :p"), {"p": p.id})
        for k in range(3):  # three distinct annotators per item: i, i + 7, i + 14 (mod 40)
            s.execute(
                text(
                    "INSERT INTO annotations (project_id, item_id, annotator_id, external_key, "
                    "value, attributes, source, flags, created_at, updated_at, submitted_at) "
                    f"SELECT :p, :first + i - 1, :u0 + 1 + ((i + :k * 7) % :na), '', {val}, "
                    f"{obj}, 'bench', {arr}, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
                    f"CURRENT_TIMESTAMP FROM {series}"
                ),
                {
                    "p": p.id,
                    "first": first,
                    "u0": users[0].id,
                    "k": k,
                    "na": ANNOTATORS,
                    "n": LABELED + (1 if k == 0 else 0),
                },
            )
        s.execute(
            text(
                "INSERT INTO gold_labels (project_id, item_id, value, source, created_at, "
                f"updated_at) SELECT :p, :first + i - 1, {val}, 'expert', CURRENT_TIMESTAMP, "
                f"CURRENT_TIMESTAMP FROM {series}"
            ),
            {"p": p.id, "first": first, "n": GOLD},
        )
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as c:
            c.exec_driver_sql("ANALYZE")
    engine.dispose()


def timed(url: str, label: str, fn: Callable[[Session], Any], n: int = 7) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with session_scope(factory) as s:
            out = fn(s)
        times.append(time.perf_counter() - t0)
    engine.dispose()
    med = statistics.median(times) * 1000
    print(f"{label:55s} median {med:8.1f} ms  min {min(times) * 1000:8.1f}  -> {out}", flush=True)


def serve(username: str) -> Callable[[Session], Any]:
    def run(s: Session) -> Any:
        project = projects.get_project(s, "big")
        user = accounts.get_user(s, username)
        actor = Actor.for_user(user.id, user.username)
        got = workbench.next_item(s, actor=actor, project=project)
        if got is not None:  # give it back so the next call searches again
            workbench.skip(s, actor=actor, project=project, item_id=got.item_id, reason="bench")
        return None if got is None else got.item_id

    return run


def status(username: str) -> Callable[[Session], Any]:
    def run(s: Session) -> Any:
        project = projects.get_project(s, "big")
        user = accounts.get_user(s, username)
        st = workbench.queue_status(
            s, actor=Actor.for_user(user.id, user.username), project=project
        )
        return {"remaining": st.remaining, "done": st.done_total}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    admin = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            name = f"labelloop_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        try:
            t0 = time.perf_counter()
            load(url)
            print(f"loaded 1,000,000 annotations in {time.perf_counter() - t0:.1f} s")
            timed(url, "build: first next_item (builds the open-items index)", serve("u0"), 1)
            timed(url, "next: next_item + skip, unlabeled items left", serve("u0"))
            timed(url, "status: queue_status, annotator with 0 annotations", status("u0"), 3)
            timed(url, "status: queue_status, annotator with 25,000", status("u1"), 3)
            engine = make_engine(url)
            with engine.begin() as c:  # label the rest: only partly labeled items remain
                c.execute(text("DELETE FROM work_skips"))
                c.execute(
                    text(
                        "INSERT INTO annotations (project_id, item_id, annotator_id, "
                        "external_key, value, attributes, source, flags, created_at, updated_at) "
                        "SELECT project_id, id, (SELECT id FROM users WHERE username = 'u40'), "
                        "'', value, '{}', 'bench', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
                        "FROM items CROSS JOIN (SELECT value FROM gold_labels LIMIT 1) g "
                        "WHERE project_id = (SELECT id FROM projects WHERE name = 'big') "
                        "AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.item_id = items.id)"
                    )
                )
            engine.dispose()
            timed(url, "next: next_item + skip, only partly labeled left", serve("u0"))
        finally:
            if admin is not None:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
