"""Load the simulated demo into a database through the services.

:func:`build_demo` creates the project ``support-intents-demo`` with the simulated label
schema, one login per role (see :data:`DEMO_ACCOUNTS`), the twelve simulated
annotators, and imports items, annotations, gold labels and predictions with
:func:`labelloop.projects.importer.import_records`, so every row has its trail event.

Idempotent: when the demo project already exists nothing is written and the summary
(``created=False``) describes what is there. To rebuild, point at a new database (the
trail is append-only, so the demo is never deleted in place).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelloop.accounts import service as accounts
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import User
from labelloop.accounts.roles import Role
from labelloop.demo import guideline
from labelloop.demo.adjudication import CourtSummary
from labelloop.demo.simulate import PROJECT_NAME, AnnotatorProfile, DemoData, simulate
from labelloop.projects import service as projects
from labelloop.projects.importer import import_records
from labelloop.projects.models import Project
from labelloop.projects.schemas import LabelSchema

ProgressFn = Callable[[int, int], None]  # (records done, records in total)


@dataclass(frozen=True)
class DemoAccount:
    """A demo login: its role in the demo project (``admin`` is global)."""

    role: str
    username: str
    password: str
    display_name: str
    note: str = ""


#: The password of every demo login (printed by ``labelloop demo``; demo data only).
DEMO_PASSWORD = "labelloop-demo"

#: One login per role. The annotator is the simulated confuser and the mentor a strong
#: simulated annotator, so their pages show real work once those features land.
DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("admin", "demo.admin", DEMO_PASSWORD, "Demo Admin", "global administrator"),
    DemoAccount("lead", "demo.lead", DEMO_PASSWORD, "Olivia Grant"),
    DemoAccount("auditor", "demo.auditor", DEMO_PASSWORD, "Sam Whitfield"),
    DemoAccount("adjudicator", "demo.adjudicator", DEMO_PASSWORD, "Ines Moreau"),
    DemoAccount(
        "mentor", "maria.lopez", DEMO_PASSWORD, "María López", "simulated strong annotator"
    ),
    DemoAccount("annotator", "lucas.martin", DEMO_PASSWORD, "Lucas Martin", "simulated confuser"),
    DemoAccount(
        "model", "intent-clf-bot", DEMO_PASSWORD, "intent-clf service account", "service account"
    ),
)

_SEED_RE = re.compile(r"\(labelloop demo: seed (\d+), (\d+) items\)")
#: Threads hashing the demo passwords (argon2 releases the GIL; each hash holds 64 MiB).
HASH_WORKERS = 2


@dataclass(frozen=True)
class AnnotatorSummary:
    username: str
    display_name: str
    kind: str
    annotations: int
    accuracy: float  # against the simulation's truth


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` built (or found)."""

    project: str
    project_id: int
    created: bool
    seed: int | None
    n_items: int | None
    counts: dict[str, int]
    annotators: tuple[AnnotatorSummary, ...] = ()
    accounts: tuple[DemoAccount, ...] = DEMO_ACCOUNTS
    notices: tuple[str, ...] = field(default=())
    court: CourtSummary | None = None  # the cases opened and ruled


def _description(seed: int, n_items: int) -> str:
    return (
        "Intent of incoming customer-support tickets (billing, refund, shipping, ...), "
        f"labelled by a simulated team of twelve (labelloop demo: seed {seed}, {n_items} items)"
    )


def records_sha256(data: DemoData) -> str:
    """A content hash of the simulated records (stands in for a file's SHA-256)."""
    digest = hashlib.sha256()
    for rec in data.records():
        digest.update(repr(rec).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _annotator_summaries(data: DemoData) -> tuple[AnnotatorSummary, ...]:
    tr = data.trace

    def one(p: AnnotatorProfile) -> AnnotatorSummary:
        mine = tr.annotator == p.index
        n = int(mine.sum())
        acc = float(tr.correct[mine].mean()) if n else 0.0
        return AnnotatorSummary(p.username, p.display_name, p.kind, n, acc)

    return tuple(one(p) for p in data.annotators)


def _ensure_user(
    session: Session,
    *,
    actor: Actor,
    username: str,
    display_name: str,
    is_admin: bool = False,
) -> User | None:
    """The user created when missing (without a password), or ``None`` when the account
    exists already: it is left as it is."""
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        return None
    return accounts.create_user(
        session, actor=actor, username=username, display_name=display_name, is_admin=is_admin
    )


def _existing(session: Session, project: Project, seed: int, n_items: int) -> DemoSummary:
    match = _SEED_RE.search(project.description or "")
    built_seed, built_items = (int(match[1]), int(match[2])) if match else (None, None)
    notices = [f"demo project {project.name!r} already exists; nothing was changed"]
    if built_seed is None:
        notices.append("it was not built by `labelloop demo` (no seed recorded)")
    elif (built_seed, built_items) != (seed, n_items):
        notices.append(
            f"it was built with seed {built_seed} and {built_items} items, not seed {seed} and "
            f"{n_items}; use a new database (--database-url) to build another"
        )
    annotators: tuple[AnnotatorSummary, ...] = ()
    if built_seed is not None and built_items is not None:
        annotators = _annotator_summaries(simulate(built_seed, built_items))
    return DemoSummary(
        project=project.name,
        project_id=project.id,
        created=False,
        seed=built_seed,
        n_items=built_items,
        counts=projects.project_summary(session, project).as_dict(),
        annotators=annotators,
        notices=tuple(notices),
    )


def build_demo(
    session: Session,
    *,
    actor: Actor,
    seed: int = 7,
    n_items: int = 2000,
    progress: ProgressFn | None = None,
) -> DemoSummary:
    """Create the demo project, its accounts and its data in ``session`` (not committed).

    Returns the existing project's summary, writing nothing, when the demo project is
    already there.
    """
    existing = session.scalar(select(Project).where(Project.name == PROJECT_NAME))
    if existing is not None:
        return _existing(session, existing, seed, n_items)

    # One argon2 hash per login, each with its own random salt: a shared hash would show
    # that the accounts share a password, and one cracked would crack them all. A hash
    # takes ~0.3 s, so they are computed on worker threads while the data is simulated
    # and imported, and stored at the end.
    pool = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="demo-argon2")
    try:
        hashes = {
            a.username: pool.submit(accounts.hash_password, a.password) for a in DEMO_ACCOUNTS
        }
        return _build(
            session, actor=actor, seed=seed, n_items=n_items, hashes=hashes, progress=progress
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _build(
    session: Session,
    *,
    actor: Actor,
    seed: int,
    n_items: int,
    hashes: dict[str, Future[str]],
    progress: ProgressFn | None,
) -> DemoSummary:
    data = simulate(seed, n_items)
    schema = LabelSchema.from_dict(data.schema, source="demo schema")
    project = projects.create_project(
        session,
        actor=actor,
        name=PROJECT_NAME,
        schema=schema,
        description=_description(seed, n_items),
    )
    logins: list[tuple[int, Future[str]]] = []  # (new user's id, its password hash)
    for account in DEMO_ACCOUNTS:
        user = _ensure_user(
            session,
            actor=actor,
            username=account.username,
            display_name=account.display_name,
            is_admin=account.role == "admin",
        )
        if user is not None:
            logins.append((user.id, hashes[account.username]))
        if account.role != "admin":
            accounts.grant(
                session,
                actor=actor,
                username=account.username,
                project_id=project.id,
                role=Role(account.role),
            )
    for profile in data.annotators:
        _ensure_user(
            session,
            actor=actor,
            username=profile.username,
            display_name=profile.display_name,
        )
        accounts.grant(
            session,
            actor=actor,
            username=profile.username,
            project_id=project.id,
            role=Role.ANNOTATOR,
        )

    total = len(data)
    result = import_records(
        session,
        actor=actor,
        project=project.name,
        records=data.records(),
        source="demo",
        filename=f"labelloop-demo-seed{seed}-{n_items}-items",
        sha256=records_sha256(data),
        progress=(lambda done: progress(done, total)) if progress is not None else None,
    )
    if progress is not None:
        progress(total, total)
    team = [accounts.get_user(session, p.username) for p in data.annotators]
    lead = accounts.get_user(session, "demo.lead")
    _, court = guideline.publish_versions(
        session, actor=actor, project=project, data=data, annotators=team, lead=lead
    )
    # the user.create events never hold a hash, so setting it afterwards changes no event
    for user_id, password_hash in logins:
        login = session.get(User, user_id)
        assert login is not None
        login.password_hash = password_hash.result()
    session.flush()
    return DemoSummary(
        project=project.name,
        project_id=project.id,
        created=True,
        seed=seed,
        n_items=n_items,
        counts=projects.project_summary(session, project).as_dict(),
        annotators=_annotator_summaries(data),
        notices=result.notices,
        court=court,
    )
