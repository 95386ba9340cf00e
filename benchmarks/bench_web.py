"""Web load benchmark: concurrent annotators labelling through the queue while a lead
loads the dashboard, against ``labelloop serve`` on 127.0.0.1, on SQLite and PostgreSQL.
It doubles as the load check of the hardening work: any 5xx, and any acknowledged
submission not stored exactly once, fails the run (exit 1).

Setup (cached by path, reused by later runs with the same ``--annotations``):
a project with ``--annotations`` annotations generated like ``bench_import.py`` (5 per
item, ~500 annotators, 180 days) and imported with the bulk importer, a lead account and
``--clients`` annotator accounts with API tokens. The cache is a SQLite file and a
PostgreSQL template database (``bench_web_template_<N>``); each run works on a copy (a
copied file; ``bench_web`` created from the template), so every run starts from the same
data. On the copy, the dashboard snapshot is computed first and the labeling queue is
opened (overlap 8, so every item has free slots; its open-items index built), in a
child process that reports its time and peak RSS; then the copy is flushed to disk
(``CHECKPOINT`` on PostgreSQL, ``sync``) so that its write-back does not fall in the
timed window.

Run: ``labelloop serve`` in a subprocess and ``--clients`` closed-loop clients (httpx,
asyncio, one process). Each annotator client does what the workbench does, through the
API with a bearer token: ``POST /api/v1/projects/{id}/work/next`` (the queue serves and
leases an item) and then ``POST /api/v1/projects/{id}/annotations`` with a label for
that item (the server sets the times). First every client labels one item untimed, all
at once: it opens the client's connection and the server's pooled database connections
(reported apart as ``warm_up``); then the client process freezes its heap
(``gc.freeze``) so that its own garbage collections do not stall the requests it is
timing. Then, for ``--seconds``, each client takes and labels items, pausing for an
exponential time with mean ``--think`` seconds (0: none) after each label. One more
client, signed in as the lead with a session cookie (and one untimed view), loads
``GET /projects/{id}`` (the dashboard) at most once per ``--dashboard-every`` seconds
(0: back to back). Latencies are measured by the clients (request sent to response
read), apart for ``next`` and ``submissions``. Any non-2xx answer or transport error is
an error. Afterwards the database is read: every acknowledged (201) submission must be
stored exactly once, and nothing else by the bench annotators. ``--trace DIR`` writes
every timed request to ``DIR/<backend>-requests.csv``.

    .venv/bin/python benchmarks/bench_web.py                          # 1M, 60 s, both
    .venv/bin/python benchmarks/bench_web.py --annotations 100000 --seconds 20 \\
        --backend sqlite --json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import random
import re
import resource
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_import import LABELS, generate

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PROJECT = "bench-web"
#: The queue's overlap for the run: above the 5 annotators each generated item has.
QUEUE_OVERLAP = 8
LEAD = ("bench.lead", "bench-lead-password")
ROOT = Path(__file__).resolve().parents[1]
#: Clients drop idle connections after 2 s, before uvicorn closes them (5 s): reusing a
#: connection the server is closing at that moment fails without a response.
LIMITS = httpx.Limits(keepalive_expiry=2.0)
#: One TLS context for every client: httpx builds a new one per client otherwise (~50 ms
#: of CPU each, blocking the event loop while other clients' requests are being timed).
#: The server is plain HTTP on loopback; the context is never used for a handshake.
_TLS = ssl.create_default_context()


# ----------------------------------------------------------------------------- setup
def _build(url: str, annotations: int, clients: int, info_path: str, queue: Any) -> None:
    """Child process: migrate, import, create accounts and tokens, write ``info_path``."""
    from sqlalchemy import func, select

    from labelloop.accounts import service as accounts
    from labelloop.accounts import tokens
    from labelloop.accounts.actor import Actor
    from labelloop.accounts.roles import Role
    from labelloop.projects.importer import import_file
    from labelloop.projects.models import Item
    from labelloop.projects.schemas import LabelSchema
    from labelloop.projects.service import create_project
    from labelloop.store import make_engine, make_session_factory, session_scope, upgrade

    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    actor = Actor.local("bench")
    with tempfile.TemporaryDirectory(prefix="labelloop-bench-web-") as tmp:
        csv_path = Path(tmp) / "annotations.csv"
        generate(csv_path, annotations)
        with session_scope(factory) as session:
            project = create_project(
                session,
                actor=actor,
                name=PROJECT,
                schema=LabelSchema.from_dict({"task_type": "single", "labels": LABELS}),
            )
            project_id = project.id
        t0 = time.perf_counter()
        with session_scope(factory) as session:
            import_file(session, actor=actor, path=csv_path, project=PROJECT, format="csv")
        import_seconds = time.perf_counter() - t0
    with session_scope(factory) as session:
        accounts.create_user(session, actor=actor, username=LEAD[0], password=LEAD[1])
        accounts.grant(
            session, actor=actor, username=LEAD[0], project_id=project_id, role=Role.LEAD
        )
        plain = []
        for i in range(clients):
            name = f"bench.annotator.{i:03d}"
            accounts.create_user(session, actor=actor, username=name)
            accounts.grant(
                session, actor=actor, username=name, project_id=project_id, role=Role.ANNOTATOR
            )
            plain.append(
                tokens.create_token(
                    session, actor=actor, username=name, project_id=project_id, role=Role.ANNOTATOR
                ).plaintext
            )
        lo, hi = session.execute(
            select(func.min(Item.id), func.max(Item.id)).where(Item.project_id == project_id)
        ).one()
    engine.dispose()
    info = {
        "annotations": annotations,
        "project_id": project_id,
        "item_id_range": [lo, hi],
        "tokens": plain,
        "import_seconds": import_seconds,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    Path(info_path).write_text(json.dumps(info), encoding="utf-8")
    queue.put(info)


def _snapshot(url: str, queue: Any) -> None:
    """Child process: compute and store the dashboard snapshot; report time and peak RSS."""
    from labelloop.accounts.actor import Actor
    from labelloop.analytics import service as analytics
    from labelloop.projects.service import get_project
    from labelloop.store import make_engine, make_session_factory, session_scope
    from labelloop.workbench import service as workbench
    from labelloop.workbench.schemas import SettingsIn

    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        t0 = time.perf_counter()
        snap = analytics.refresh_snapshot(
            session, actor=Actor.local("bench"), project=get_project(session, PROJECT)
        )
        seconds = time.perf_counter() - t0
    with session_scope(make_session_factory(engine)) as session:
        t1 = time.perf_counter()
        project = get_project(session, PROJECT)
        workbench.update_settings(
            session,
            actor=Actor.local("bench"),
            project=project,
            change=SettingsIn(overlap=QUEUE_OVERLAP, gold_rate=0.0),
        )
        workbench.sync_open_items(session, project, QUEUE_OVERLAP)
        queue_seconds = time.perf_counter() - t1
    engine.dispose()
    queue.put(
        {
            "seconds": seconds,
            "compute_seconds": snap.compute_seconds,
            "annotations": snap.annotation_count,
            "queue_seconds": queue_seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed (exit {proc.exitcode})")
    return result


def _pg_url(admin_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _pg_exec(admin_url: str, sql: str) -> Any:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            result = conn.execute(text(sql))
            return result.all() if result.returns_rows else None
    finally:
        admin.dispose()


def prepare(backend: str, args: argparse.Namespace) -> tuple[str, dict[str, Any], Any]:
    """The run's database URL (a fresh copy of the cached data), the setup info, and a
    cleanup function."""
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    info_path = cache / f"{backend}-{args.annotations}.json"
    if backend == "sqlite":
        cached = cache / f"bench-web-{args.annotations}.db"
        if args.rebuild or not (cached.exists() and info_path.exists()):
            for p in (cached, Path(f"{cached}-wal"), Path(f"{cached}-shm")):
                p.unlink(missing_ok=True)
            _log(f"sqlite: building {args.annotations:,} annotations at {cached} ...")
            info = _in_child(
                _build, f"sqlite:///{cached}", args.annotations, args.clients, str(info_path)
            )
        info = json.loads(info_path.read_text(encoding="utf-8"))
        work = cache / "bench-web-run.db"
        for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
            p.unlink(missing_ok=True)
        shutil.copyfile(cached, work)

        def cleanup() -> None:
            for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
                p.unlink(missing_ok=True)

        return f"sqlite:///{work}", info, cleanup
    template = f"bench_web_template_{args.annotations}"
    exists = _pg_exec(args.pg_admin_url, f"select 1 from pg_database where datname = '{template}'")
    if args.rebuild or not exists or not info_path.exists():
        _pg_exec(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        _pg_exec(args.pg_admin_url, f'CREATE DATABASE "{template}"')
        _log(f"postgresql: building {args.annotations:,} annotations in {template} ...")
        url = _pg_url(args.pg_admin_url, template)
        info = _in_child(_build, url, args.annotations, args.clients, str(info_path))
        _vacuum(url)
    info = json.loads(info_path.read_text(encoding="utf-8"))
    _pg_exec(args.pg_admin_url, 'DROP DATABASE IF EXISTS "bench_web" WITH (FORCE)')
    _pg_exec(args.pg_admin_url, f'CREATE DATABASE "bench_web" TEMPLATE "{template}"')

    def drop() -> None:
        _pg_exec(args.pg_admin_url, 'DROP DATABASE IF EXISTS "bench_web" WITH (FORCE)')

    return _pg_url(args.pg_admin_url, "bench_web"), info, drop


def _vacuum(url: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        eng.dispose()


def _settle(backend: str, args: argparse.Namespace) -> None:
    """Put the run's fresh copy on disk before the timed window. The copy leaves
    hundreds of MB of dirty pages (PostgreSQL copies a template through its WAL and
    shared buffers); written back by the kernel and the checkpointer during the window,
    they slowed every WAL flush, so the runs measured the copy, not the service."""
    t0 = time.perf_counter()
    if backend == "postgresql":
        _pg_exec(args.pg_admin_url, "CHECKPOINT")
    os.sync()
    _log(f"{backend}: setup writes flushed to disk in {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, log_path: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    env = dict(os.environ, LABELLOOP_SECRET_KEY=secrets.token_urlsafe(32))
    cmd = [
        str(ROOT / ".venv" / "bin" / "labelloop"),
        "serve",
        "--database-url",
        url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    log = log_path.open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"server did not answer within 60 s; see {log_path}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live descendants (the
    ``--workers`` processes), from Linux ``/proc``."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = int(stat.parent.name)
        parents[child], ticks[child] = int(fields[1]), int(fields[11]) + int(fields[12])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- load
@dataclass
class Recorder:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    #: (sent at, ``time.perf_counter()``; latency in seconds; client index, -1 the lead)
    trace: list[tuple[float, float, int]] = field(default_factory=list)

    def done(self, sent: float, elapsed: float, client: int = -1) -> None:
        self.latencies.append(elapsed)
        self.trace.append((sent, elapsed, client))

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies) * 1000.0
        out: dict[str, Any] = {
            "requests": len(lat),
            "per_second": round(len(lat) / seconds, 1),
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
        }
        if len(lat):
            p50, p95, p99 = np.percentile(lat, [50, 95, 99])
            out |= {
                "p50_ms": round(float(p50), 1),
                "p95_ms": round(float(p95), 1),
                "p99_ms": round(float(p99), 1),
                "max_ms": round(float(lat.max()), 1),
            }
        return out


def _label(rng: random.Random, item_id: int) -> dict[str, Any]:
    """A valid label for the item the queue served, as an annotator's client sends it."""
    return {"item_id": item_id, "value": rng.choice(LABELS), "active_seconds": 30.0}


def _annotator_client(base: str, token: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=LIMITS, verify=_TLS)


@dataclass
class Queue:
    """One annotator's path through the API: take the next item, label it."""

    client: httpx.AsyncClient
    project_id: int
    index: int
    acknowledged: list[int] = field(default_factory=list)

    async def next_item(self) -> httpx.Response:
        return await self.client.post(f"/api/v1/projects/{self.project_id}/work/next")

    async def submit(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"/api/v1/projects/{self.project_id}/annotations", json=body)


async def _warm_up(queue: Queue, rec: Recorder) -> None:
    """One untimed item per client before the timed window: it opens the client's
    connection while the server opens its pooled database connections."""
    t0 = time.perf_counter()
    r = await queue.next_item()
    item = r.json().get("item") if r.status_code == 200 else None
    if item is None:
        raise SystemExit(f"warm-up: the queue answered {r.status_code}: {r.text[:200]}")
    r = await queue.submit(_label(random.Random(-queue.index - 1), item["item_id"]))
    if r.status_code != 201:
        raise SystemExit(f"warm-up submission answered {r.status_code}: {r.text[:200]}")
    queue.acknowledged.append(item["item_id"])
    rec.latencies.append(time.perf_counter() - t0)


async def _timed(call: Any, rec: Recorder, index: int, ok: int) -> httpx.Response | None:
    """Send one request; record its latency, or the error. The answer when ``ok``."""
    t0 = time.perf_counter()
    try:
        r = await call
    except httpx.HTTPError as exc:
        rec.error(type(exc).__name__)
        return None
    if r.status_code != ok:
        rec.error(f"HTTP {r.status_code}")
        return None
    rec.done(t0, time.perf_counter() - t0, index)
    return r


async def _annotator(
    queue: Queue, stop: float, nexts: Recorder, subs: Recorder, think: float
) -> None:
    rng = random.Random(queue.index)
    if think > 0:  # start spread out, as a team does
        await asyncio.sleep(rng.uniform(0, think))
    while time.perf_counter() < stop:
        served = await _timed(queue.next_item(), nexts, queue.index, 200)
        item = None if served is None else served.json().get("item")
        if item is None:
            if served is not None:
                nexts.error("empty queue")
            continue
        done = await _timed(queue.submit(_label(rng, item["item_id"])), subs, queue.index, 201)
        if done is not None:
            queue.acknowledged.append(item["item_id"])
        if think > 0:
            await asyncio.sleep(min(rng.expovariate(1 / think), stop - time.perf_counter()))


async def _sign_in(client: httpx.AsyncClient) -> None:
    """Sign the lead in (setup, not timed; retried on a dropped connection)."""
    for attempt in range(5):
        try:
            page = (await client.get("/login")).text
            csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            r = await client.post(
                "/login",
                data={"username": LEAD[0], "password": LEAD[1], "next": "/", "csrf_token": csrf},
            )
        except httpx.TransportError:
            if attempt == 4:
                raise
            continue
        if r.status_code >= 400:
            raise SystemExit(f"lead sign-in failed: {r.status_code}")
        return


async def _lead_client(base: str, project_id: int) -> httpx.AsyncClient:
    """The lead's client, signed in, after one untimed dashboard view."""
    client = httpx.AsyncClient(base_url=base, timeout=60, limits=LIMITS, verify=_TLS)
    await _sign_in(client)
    warm = await client.get(f"/projects/{project_id}")
    if warm.status_code != 200:
        raise SystemExit(f"dashboard answered {warm.status_code}")
    return client


async def _lead(
    client: httpx.AsyncClient,
    project_id: int,
    stop: float,
    rec: Recorder,
    seen: dict[str, Any],
    every: float,
) -> None:
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        try:
            r = await client.get(f"/projects/{project_id}")
        except httpx.HTTPError as exc:
            rec.error(type(exc).__name__)
            continue
        elapsed = time.perf_counter() - t0
        if r.status_code == 200 and 'id="scorecard"' in r.text:
            rec.done(t0, elapsed)
            seen["last_freshness"] = (
                r.text.split('id="freshness">', 1)[1].split("<button", 1)[0].split()
                if 'id="freshness">' in r.text
                else None
            )
        else:
            rec.error(f"HTTP {r.status_code}")
        if every > elapsed:
            await asyncio.sleep(min(every - elapsed, max(0.0, stop - time.perf_counter())))


async def load(
    base: str,
    info: dict[str, Any],
    seconds: float,
    clients: int,
    think: float,
    dashboard_every: float = 1.0,
    trace: Path | None = None,
) -> dict[str, Any]:
    """Warm up every client (untimed, reported apart), then run the timed window;
    with ``trace``, write every timed request there as CSV. ``acknowledged`` holds,
    per client, the items whose label the server acknowledged (201)."""
    nexts, subs, dash, warm, seen = Recorder(), Recorder(), Recorder(), Recorder(), {}
    tokens = info["tokens"][:clients]
    if len(tokens) < clients:
        raise SystemExit(f"the cached setup has {len(tokens)} tokens; rerun with --rebuild")
    project_id = info["project_id"]
    lead = await _lead_client(base, project_id)
    queues = [Queue(_annotator_client(base, tok), project_id, i) for i, tok in enumerate(tokens)]
    try:
        await asyncio.gather(*(_warm_up(q, warm) for q in queues))
        # the clients' own full garbage collections (~85,000 objects, 55-80 ms on a busy
        # machine) would stall every request in flight and be measured as latency
        gc.collect()
        gc.freeze()
        start = time.perf_counter()
        stop = start + seconds
        await asyncio.gather(
            _lead(lead, project_id, stop, dash, seen, dashboard_every),
            *(_annotator(q, stop, nexts, subs, think) for q in queues),
        )
        wall = time.perf_counter() - start
    finally:
        gc.unfreeze()
        for c in [lead, *(q.client for q in queues)]:
            await c.aclose()
    if trace is not None:
        _write_trace(trace, start, {"next": nexts, "submission": subs, "dashboard": dash})
    freshness = re.sub(r"<[^>]+>", "", " ".join(seen.get("last_freshness") or []))
    return {
        "seconds": round(wall, 1),
        "clients": clients,
        "think_seconds": think,
        "dashboard_every_seconds": dashboard_every,
        "next": nexts.summary(wall),
        "submissions": subs.summary(wall),
        "dashboard": dash.summary(wall),
        "warm_up": {k: v for k, v in warm.summary(wall).items() if k != "per_second"},
        "dashboard_freshness_at_end": freshness,
        "acknowledged": {i: q.acknowledged for i, q in enumerate(queues)},
    }


def verify_stored(url: str, acknowledged: dict[int, list[int]]) -> dict[str, int]:
    """Read the database after the run: each acknowledged (annotator, item) must have
    exactly one annotation, and the bench annotators nothing else."""
    from sqlalchemy import func, select

    from labelloop.accounts.models import User
    from labelloop.projects.models import Annotation
    from labelloop.store import make_engine, make_session_factory, session_scope

    names = {i: f"bench.annotator.{i:03d}" for i in acknowledged}
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            ids = dict(
                session.execute(
                    select(User.username, User.id).where(User.username.in_(list(names.values())))
                ).all()
            )
            stored = session.execute(
                select(Annotation.annotator_id, Annotation.item_id, func.count())
                .where(Annotation.annotator_id.in_(list(ids.values())))
                .group_by(Annotation.annotator_id, Annotation.item_id)
            ).all()
    finally:
        engine.dispose()
    counts = {(a, i): n for a, i, n in stored}
    acked = {(ids[names[c]], item) for c, items in acknowledged.items() for item in items}
    acked_total = sum(len(items) for items in acknowledged.values())
    return {
        "acknowledged": acked_total,
        "acknowledged_twice": acked_total - len(acked),
        "stored": sum(counts.values()),
        "missing": sum(1 for key in acked if counts.get(key, 0) == 0),
        "stored_more_than_once": sum(1 for n in counts.values() if n > 1),
        "stored_not_acknowledged": sum(1 for key in counts if key not in acked),
    }


def _write_trace(path: Path, start: float, recorders: dict[str, Recorder]) -> None:
    """One row per timed request: kind, seconds from the window's start to sending it,
    latency in ms and the annotator client's index (-1 for the lead), in send order."""
    rows = sorted(
        (sent - start, kind, elapsed * 1000.0, client)
        for kind, rec in recorders.items()
        for sent, elapsed, client in rec.trace
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        f.write("kind,sent_s,latency_ms,client\n")
        for sent, kind, ms, client in rows:
            f.write(f"{kind},{sent:.4f},{ms:.2f},{client}\n")
    _log(f"trace of {len(rows):,} requests written to {path}")


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    url, info, cleanup = prepare(backend, args)
    _log(f"{backend}: computing the dashboard snapshot ...")
    snapshot = _in_child(_snapshot, url)
    _settle(backend, args)
    port = _free_port()
    log_path = Path(args.cache_dir) / f"serve-{backend}.log"
    server = start_server(url, port, log_path, args.workers)
    try:
        _log(f"{backend}: {args.clients} clients + 1 dashboard client for {args.seconds} s ...")
        cpu_before, own_before = _cpu_seconds(server.pid), time.process_time()
        result = asyncio.run(
            load(
                f"http://127.0.0.1:{port}",
                info,
                args.seconds,
                args.clients,
                args.think,
                args.dashboard_every,
                Path(args.trace) / f"{backend}-requests.csv" if args.trace else None,
            )
        )
        served = sum(result[k]["requests"] for k in ("next", "submissions", "dashboard"))
        server_cpu = _cpu_seconds(server.pid) - cpu_before
        result["server_workers"] = args.workers
        result["server_cpu_seconds"] = round(server_cpu, 1)
        result["server_cpu_ms_per_request"] = round(1000 * server_cpu / max(served, 1), 1)
        result["client_cpu_seconds"] = round(time.process_time() - own_before, 1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if "result" in locals():
            result["stored"] = verify_stored(url, result.pop("acknowledged"))
        cleanup()
    result["setup"] = {
        "annotations": info["annotations"],
        # the import ran when the cached setup was built, not in this run
        "import_seconds_when_built": round(info["import_seconds"], 1),
        "built_at": info.get("built_at"),
        "snapshot": snapshot,
    }
    return result


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def failures(r: dict[str, Any]) -> list[str]:
    """What makes the run a failed load check: server errors, lost or doubled labels."""
    out = []
    for what in ("next", "submissions", "dashboard"):
        kinds = r[what]["error_kinds"]
        fives = sum(n for k, n in kinds.items() if k.startswith("HTTP 5"))
        if fives:
            out.append(f"{what}: {fives} answers 5xx")
    stored = r.get("stored", {})
    for key in ("acknowledged_twice", "missing", "stored_more_than_once"):
        if stored.get(key):
            out.append(f"{key.replace('_', ' ')}: {stored[key]}")
    return out


def _show(backend: str, r: dict[str, Any]) -> None:
    for what in ("next", "submissions", "dashboard"):
        s = r[what]
        _log(
            f"{backend:<10} {what:<11} {s['requests']:>7,} in {r['seconds']} s = "
            f"{s['per_second']:>7,.1f}/s  p50 {s.get('p50_ms')} ms  p95 {s.get('p95_ms')} ms  "
            f"p99 {s.get('p99_ms')} ms  max {s.get('max_ms')} ms  errors {s['errors']}"
        )
    w = r["warm_up"]
    _log(
        f"{backend:<10} warm-up     {w['requests']:>7,} untimed (all clients at once)  "
        f"p50 {w.get('p50_ms')} ms  max {w.get('max_ms')} ms  errors {w['errors']}"
    )
    _log(
        f"{backend:<10} server CPU {r['server_cpu_seconds']} s "
        f"({r['server_cpu_ms_per_request']} ms per request), client CPU "
        f"{r['client_cpu_seconds']} s"
    )
    st = r.get("stored", {})
    _log(
        f"{backend:<10} stored: {st.get('stored')} labels for {st.get('acknowledged')} "
        f"acknowledged; missing {st.get('missing')}, more than once "
        f"{st.get('stored_more_than_once')}, not acknowledged {st.get('stored_not_acknowledged')}"
    )
    snap = r["setup"].get("snapshot") or {}
    if snap:
        _log(
            f"{backend:<10} snapshot of {snap['annotations']:,} annotations computed in "
            f"{snap['seconds']:.1f} s (peak RSS {snap['peak_rss_mib']:,.0f} MiB); "
            f"page at the end: {r['dashboard_freshness_at_end']}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=["sqlite", "postgresql"],
        help="repeat for both (default: sqlite and postgresql)",
    )
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="mean pause in seconds between an annotator's submissions (exponential; "
        "default 1.0); 0 submits again as soon as the answer arrives (saturation)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="labelloop serve --workers (default 1)"
    )
    parser.add_argument(
        "--dashboard-every",
        type=float,
        default=1.0,
        help="the lead loads the dashboard at most once per this many seconds "
        "(default 1.0); 0 loads it back to back",
    )
    parser.add_argument(
        "--cache-dir", default=str(Path(tempfile.gettempdir()) / "labelloop-bench-web")
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached setup")
    parser.add_argument(
        "--pg-admin-url", default=PG_ADMIN, help="PostgreSQL URL used to create/drop the databases"
    )
    parser.add_argument(
        "--trace",
        metavar="DIR",
        help="write every timed request (kind, sent_s, latency_ms, client) to "
        "DIR/<backend>-requests.csv, to see when slow requests happen",
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args(argv)
    # one trail key for the setup's events and the server's, so the run's copy verifies
    os.environ.setdefault("LABELLOOP_TRAIL_KEY", "bench-web-trail-key-" + "k" * 32)
    backends = args.backend or ["sqlite", "postgresql"]
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_before": os.getloadavg()}
    failed = []
    for backend in backends:
        results[backend] = run_backend(backend, args)
        _show(backend, results[backend])
        failed += [f"{backend}: {f}" for f in failures(results[backend])]
    results["load_after"] = os.getloadavg()
    results["load_check"] = "failed: " + "; ".join(failed) if failed else "passed"
    if args.json:
        print(json.dumps(results, indent=2))
    _log(f"load check {results['load_check']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
