"""Trail test helpers: a committed five-event database, raw SQL, the CLI, and a forger
who rewrites events with the public chain functions (but without the trail key)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.service import create_user
from labelloop.cli import app
from labelloop.projects import service
from labelloop.projects.schemas import LabelSchema
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.chain import GENESIS, hashed_fields
from labelloop.trail.models import Event, TrailHead

runner = CliRunner()
OPERATOR = Actor.local("test")


def verify(url: str, anchor_file: Path | None = None, *more: str) -> Result:
    """``labelloop trail verify`` (against the process's default anchor file unless given)."""
    anchors = [] if anchor_file is None else ["--anchor-file", str(anchor_file)]
    return runner.invoke(app, ["trail", "verify", *anchors, *more, "--database-url", url])


def checkpoint(url: str, anchor_file: Path, *more: str) -> Result:
    return runner.invoke(
        app,
        ["trail", "checkpoint", "--anchor-file", str(anchor_file), *more, "--database-url", url],
    )


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[tuple[str, Engine]]:
    """A committed database with five events (seq 1..5)."""
    engine = make_engine(fresh_database_url)
    schema = LabelSchema.from_dict({"task_type": "single", "labels": ["a", "b"]})
    with session_scope(make_session_factory(engine)) as session:
        project = service.create_project(session, actor=OPERATOR, name="p", schema=schema)  # 1
        user = create_user(session, actor=OPERATOR, username="ann")  # 2
        item = service.add_item(
            session, actor=OPERATOR, project=project, external_id="i1", payload={"text": "x"}
        )  # 3
        service.submit_annotation(
            session,
            actor=OPERATOR,
            project=project,
            item_id=item.id,
            annotator_id=user.id,
            value="a",
        )  # 4
        service.set_gold(session, actor=OPERATOR, project=project, item_id=item.id, value="a")  # 5
    with session_scope(make_session_factory(engine)) as session:
        result = trail.service.verify(session)
        assert result.ok and result.checked == 5
    try:
        yield fresh_database_url, engine
    finally:
        engine.dispose()


@pytest.fixture
def anchor_file(tmp_path: Path) -> Path:
    return tmp_path / "trail.anchors"


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


_KEEP: Any = object()


def rechain(
    engine: Engine,
    *,
    start: int,
    hash_fn: Callable[[str, dict[str, Any]], str],
    edit: Callable[[Event], None] = lambda e: None,
    key_id: Any = _KEEP,
) -> None:
    """What a forger with database access does: edit event ``start``, then recompute the
    hashes (``hash_fn(prev_hash, fields)``) of it and every later event, relink them and
    move the head, so that every link and the head are consistent again."""
    with session_scope(make_session_factory(engine)) as session:
        events = session.scalars(select(Event).where(Event.seq >= start).order_by(Event.seq)).all()
        before = session.scalar(select(Event.hash).where(Event.seq == start - 1))
        prev = before or GENESIS
        edit(events[0])
        for e in events:
            fields = hashed_fields(
                seq=e.seq,
                created_at=e.created_at,
                actor=e.actor,
                action=e.action,
                entity_type=e.entity_type,
                entity_id=e.entity_id,
                project_id=e.project_id,
                before=e.before,
                after=e.after,
            )
            e.prev_hash, e.hash = prev, hash_fn(prev, fields)
            if key_id is not _KEEP:
                e.key_id = key_id
            prev = e.hash
            session.flush()  # one at a time: the hashes are unique
        head = session.get(TrailHead, 1)
        assert head is not None
        head.hash = prev
