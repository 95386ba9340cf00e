"""Import benchmark: a generated long-form CSV into SQLite and PostgreSQL.

Generates a seeded CSV of ``--rows`` annotations (items x ~5 annotators each, ~500
annotators, 5 labels, start/submit timestamps, active seconds, two segments and a short
text per item), then imports it with :func:`labelloop.projects.importer.import_file` into
a fresh SQLite file and into a fresh PostgreSQL database (created and dropped for the
run). Each import runs in its own child process, so the peak memory reported is that
import's own: the child's peak resident set size (``resource.getrusage(RUSAGE_SELF)
.ru_maxrss``), which includes the Python interpreter and imported libraries. For a local
PostgreSQL server the CPU time of the importing connection's server process is reported
too (read from ``/proc``), which shows where the time goes on a busy machine.

    .venv/bin/python benchmarks/bench_import.py               # 1,000,000 rows
    .venv/bin/python benchmarks/bench_import.py --rows 50000  # quick run
    .venv/bin/python benchmarks/bench_import.py --record-path # fast path off, for comparison
    .venv/bin/python benchmarks/bench_import.py --fk-triggers # PostgreSQL: FK triggers on
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

LABELS = ["billing", "refund", "technical", "account", "other"]
LANGUAGES = ["en", "de", "fr", "es", "pt"]
CHANNELS = ["email", "chat", "phone"]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def generate(
    path: Path, rows: int, *, seed: int = 20261127, annotators: int = 500, per_item: int = 5
) -> int:
    """Write ``rows`` long-form annotations; returns the number of items."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    n_items = max(1, rows // per_item)
    workers = [f"annotator-{i:03d}" for i in range(annotators)]
    written = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "item_id",
                "annotator",
                "label",
                "started_at",
                "submitted_at",
                "active_seconds",
                "segment_language",
                "segment_channel",
                "text",
            ]
        )
        for item in range(n_items):
            lang, channel = rng.choice(LANGUAGES), rng.choice(CHANNELS)
            text = f"ticket {item}: customer writes about {rng.choice(LABELS)} issue"
            truth = rng.randrange(len(LABELS))
            k = per_item if item < n_items - 1 else rows - written
            for who in rng.sample(workers, k):
                label = LABELS[truth] if rng.random() < 0.8 else rng.choice(LABELS)
                began = start + timedelta(seconds=rng.randrange(0, 180 * 86400))
                active = round(rng.uniform(2, 120), 3)
                ended = began + timedelta(seconds=active)
                out.writerow(
                    [
                        f"item-{item:07d}",
                        who,
                        label,
                        began.isoformat(),
                        ended.isoformat(),
                        active,
                        lang,
                        channel,
                        text,
                    ]
                )
                written += 1
    return n_items


def _process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a local process, or None when it cannot be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(url: str, csv_path: str, queue: Any) -> None:
    """Import into ``url`` (a migrated, empty database) and report timing and peak RSS."""
    from labelloop.accounts.actor import Actor
    from labelloop.projects.importer import import_file
    from labelloop.projects.schemas import LabelSchema
    from labelloop.projects.service import create_project
    from labelloop.store import make_engine, make_session_factory, session_scope

    engine = make_engine(url)
    factory = make_session_factory(engine)
    actor = Actor.local("bench")
    with session_scope(factory) as session:
        create_project(
            session,
            actor=actor,
            name="bench",
            schema=LabelSchema.from_dict({"task_type": "single", "labels": LABELS}),
        )
    server_pid: int | None = None
    t0, cpu0 = time.perf_counter(), time.process_time()
    with session_scope(factory) as session:
        if engine.dialect.name == "postgresql":
            server_pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        server0 = _process_cpu(server_pid)
        summary = import_file(
            session, actor=actor, path=Path(csv_path), project="bench", format="csv"
        )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server1 = _process_cpu(server_pid)  # after the commit, on the same server process
    server_cpu = None if server0 is None or server1 is None else server1 - server0
    engine.dispose()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(
        {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "server_cpu_seconds": server_cpu,
            "annotations": summary.annotations_created,
            "items": summary.items_created,
            "annotators": summary.annotators,
            "peak_rss_mib": peak_kib / 1024,
        }
    )


def run_import(url: str, csv_path: Path) -> dict[str, Any]:
    from labelloop.store import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(url, str(csv_path), queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"import into {url} failed (exit {proc.exitcode})")
    result["per_second"] = result["annotations"] / result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="annotations to generate (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument(
        "--pg-admin-url", default=PG_ADMIN, help="PostgreSQL URL used to create/drop the database"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--record-path",
        action="store_true",
        help="switch the columnar fast path off (LABELLOOP_IMPORT_FASTPATH=0) to measure "
        "the record path",
    )
    parser.add_argument(
        "--fk-triggers",
        action="store_true",
        help="PostgreSQL: keep the per-row foreign-key triggers on "
        "(LABELLOOP_IMPORT_FK_BYPASS=0), for comparison",
    )
    args = parser.parse_args(argv)
    if args.record_path:
        os.environ["LABELLOOP_IMPORT_FASTPATH"] = "0"  # inherited by the import children
    if args.fk_triggers:
        os.environ["LABELLOOP_IMPORT_FK_BYPASS"] = "0"

    results: dict[str, Any] = {
        "rows": args.rows,
        "fast_path": not args.record_path,
        "fk_triggers": args.fk_triggers,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-") as tmp:
        csv_path = Path(tmp) / "annotations.csv"
        t0 = time.perf_counter()
        items = generate(csv_path, args.rows, seed=args.seed)
        results["items"] = items
        results["csv_mib"] = csv_path.stat().st_size / 2**20
        print(
            f"generated {args.rows:,} rows over {items:,} items ({results['csv_mib']:.0f} MiB) "
            f"in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )

        if not args.skip_sqlite:
            results["sqlite"] = run_import(f"sqlite:///{Path(tmp) / 'bench.db'}", csv_path)
            _show("SQLite", results["sqlite"])
        if not args.skip_postgres:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
            name = f"labelloop_bench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = (
                    make_url(args.pg_admin_url)
                    .set(database=name)
                    .render_as_string(hide_password=False)
                )
                results["postgresql"] = run_import(url, csv_path)
                _show("PostgreSQL", results["postgresql"])
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    results["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _show(name: str, r: dict[str, Any]) -> None:
    server = r.get("server_cpu_seconds")
    print(
        f"{name:<10} {r['annotations']:>9,} annotations in {r['seconds']:6.1f} s = "
        f"{r['per_second']:>8,.0f} annotations/s (importer CPU {r['cpu_seconds']:.1f} s"
        + (f", server CPU {server:.1f} s" if server is not None else "")
        + f"); peak RSS {r['peak_rss_mib']:,.0f} MiB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
