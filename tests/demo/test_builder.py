"""Loading the demo through the services: row counts, logins, trail, idempotency, CLI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.accounts.service import check_password, get_user
from labelloop.analytics import service as analytics
from labelloop.cli import app
from labelloop.demo.builder import DEMO_ACCOUNTS, DEMO_PASSWORD, build_demo
from labelloop.demo.simulate import PROJECT_NAME, TOO_FAST_SECONDS, simulate
from labelloop.projects.models import Annotation, GoldLabel, Item, Prediction, Project
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail import service as trail
from labelloop.trail.models import Event

N = 200


def _count(session: Session, model: Any, project_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(model).where(model.project_id == project_id)
        )
        or 0
    )


def test_build_small_demo(session: Session) -> None:
    data = simulate(7, N)
    summary = build_demo(session, actor=Actor.local("test"), seed=7, n_items=N)
    assert summary.created and summary.project == PROJECT_NAME
    pid = summary.project_id
    assert _count(session, Item, pid) == N
    assert _count(session, Annotation, pid) == len(data.annotations)
    # the adjudicator makes the third refund/billing ruling's item gold
    court = summary.court
    assert court is not None and court.opened > court.ruled > 0
    ruled_gold = int(court.ruled >= 3)
    assert _count(session, GoldLabel, pid) == len(data.gold) + ruled_gold == 10 + ruled_gold
    assert _count(session, Prediction, pid) == N
    too_fast = sum(1 for a in data.annotations if (a.active_seconds or 0) < TOO_FAST_SECONDS)
    assert summary.counts == {
        "items": N,
        "annotations": len(data.annotations),
        "annotators": 12,
        "gold": 10 + ruled_gold,
        "predictions": N,
        "flagged": too_fast,
    }
    assert too_fast > 0
    assert [a.kind for a in summary.annotators].count("confuser") == 1

    # what is stored is what was simulated
    stored = Counter(
        session.execute(
            select(Item.external_id, User.username, Annotation.value)
            .join(Item, Item.id == Annotation.item_id)
            .join(User, User.id == Annotation.annotator_id)
            .where(Annotation.project_id == pid)
        ).tuples()
    )
    assert stored == Counter((a.item_external_id, a.annotator, a.value) for a in data.annotations)
    segments = session.scalar(
        select(Item.segments).where(Item.project_id == pid, Item.external_id == "tkt-00001")
    )
    assert segments == data.items[0].segments

    # one login per role, each with the demo password and its role in the project
    roles = set(
        session.execute(
            select(User.username, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.project_id == pid)
        ).tuples()
    )
    for account in DEMO_ACCOUNTS:
        user = get_user(session, account.username)
        assert user.password_hash  # argon2 checks are slow: one login is verified below
        if account.role == "admin":
            assert user.is_admin
        else:
            assert (account.username, account.role) in roles
    assert {p.username for p in data.annotators} <= {u for u, r in roles if r == "annotator"}
    assert check_password(get_user(session, "lucas.martin"), DEMO_PASSWORD)
    assert not check_password(get_user(session, "kevin.brooks"), DEMO_PASSWORD)  # simulated only
    assert trail.verify(session).ok


def test_rebuild_changes_nothing(session: Session) -> None:
    first = build_demo(session, actor=Actor.local("test"), seed=7, n_items=N)
    events = session.scalar(select(func.count()).select_from(Event))
    again = build_demo(session, actor=Actor.local("test"), seed=7, n_items=N)
    assert not again.created
    assert again.counts == first.counts and again.seed == 7 and again.n_items == N
    assert [a.username for a in again.annotators] == [a.username for a in first.annotators]
    assert "already exists" in again.notices[0]
    other = build_demo(session, actor=Actor.local("test"), seed=8, n_items=N)
    assert not other.created and "seed 7" in " ".join(other.notices)
    assert session.scalar(select(func.count()).select_from(Event)) == events
    assert session.scalar(select(func.count()).select_from(Project)) == 1


def test_cli_demo(fresh_database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    reports = tmp_path / "reports"
    result = runner.invoke(
        app,
        [
            "demo",
            "--items",
            str(N),
            "--reports-dir",
            str(reports),
            "--database-url",
            fresh_database_url,
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"built demo project {PROJECT_NAME}" in out
    for text in (
        "lucas.martin",
        "confuser",
        "speeder",
        "fatigued",
        "demo.lead",
        DEMO_PASSWORD,
        "trail verify",
    ):
        assert text in out
    assert f"--database-url {fresh_database_url}" in out or "--database-url '" in out

    engine = make_engine(fresh_database_url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            project = s.scalar(select(Project).where(Project.name == PROJECT_NAME))
            assert project is not None
            assert _count(s, Item, project.id) == N
            assert _count(s, Annotation, project.id) == len(simulate(7, N).annotations)
            snapshot = analytics.latest_snapshot(s, project.id)  # the dashboard is ready
            assert snapshot is not None and not analytics.is_stale(s, snapshot)
    finally:
        engine.dispose()

    verify = runner.invoke(app, ["trail", "verify", "--database-url", fresh_database_url])
    assert verify.exit_code == 0, verify.output
    again = runner.invoke(app, ["demo", "--items", str(N), "--database-url", fresh_database_url])
    assert again.exit_code == 0, again.output
    assert "already exists" in again.output


def test_cli_demo_help() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert (
        "--seed" in result.output
        and "--items" in result.output
        and "--database-url" in result.output
    )


def test_each_demo_login_has_its_own_salt(session: Session) -> None:
    """The logins share the demo password but not a hash: each has its own argon2 salt,
    so the stored hashes do not reveal the shared password (a small demo: the hashing
    is what is tested)."""
    build_demo(session, actor=Actor.local("test"), seed=7, n_items=24)
    users = {a.username: get_user(session, a.username) for a in DEMO_ACCOUNTS}
    hashes = [u.password_hash or "" for u in users.values()]
    assert all(h.startswith("$argon2id$") for h in hashes)
    # $argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>
    assert len({h.split("$")[4] for h in hashes}) == len(DEMO_ACCOUNTS)
    assert len(set(hashes)) == len(DEMO_ACCOUNTS)
    assert check_password(users["demo.admin"], DEMO_PASSWORD)  # one check: argon2 is slow
    assert not check_password(users["demo.admin"], DEMO_PASSWORD + "x")
    # the hashes are stored after the user.create events, which never hold one
    events = session.scalars(select(Event).where(Event.action == "user.create")).all()
    assert events and not any("argon2" in str(e.after) for e in events)
