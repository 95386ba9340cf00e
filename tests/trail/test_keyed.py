"""The keyed chain: rewrites with the public chain functions are detected without any
anchor, legacy (unkeyed) events before keyed ones verify, and another key is named."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, column, insert, update
from sqlalchemy import table as sa_table
from typer.testing import CliRunner

from labelloop import trail
from labelloop.cli import app
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope, upgrade
from labelloop.trail.chain import GENESIS, hashed_fields, key_id, keyed_hash, legacy_hash
from labelloop.trail.models import Event, TrailHead

from .conftest import checkpoint, rechain, verify

runner = CliRunner()


def _forge(event: Event) -> None:
    event.actor = "forger"


def test_rewrite_with_the_legacy_hash_is_detected(db: tuple[str, Engine]) -> None:
    """Edit event 2 and recompute it and everything after with the public (plain
    SHA-256) hash: links and head agree again, but no keyed event verifies."""
    url, engine = db
    rechain(engine, start=2, hash_fn=legacy_hash, edit=_forge)
    result = verify(url)
    assert result.exit_code == 1
    for seq in (2, 3, 4, 5):
        assert f"event {seq}: content does not match its hash (edited)" in result.stderr
    assert "event 1:" not in result.stderr and "previous-hash link" not in result.stderr


def test_rewrite_as_legacy_events_is_detected(db: tuple[str, Engine]) -> None:
    """The same rewrite, passing the events off as written before keying (key id
    NULL): an unkeyed event after a keyed one is a rewrite."""
    url, engine = db
    rechain(engine, start=3, hash_fn=legacy_hash, edit=_forge, key_id=None)
    result = verify(url)
    assert result.exit_code == 1
    assert "event 3: unkeyed event after keyed event 2 (rewritten)" in result.stderr
    assert "event 5: unkeyed event after keyed event 2 (rewritten)" in result.stderr


def test_rewrite_with_a_guessed_key_is_detected(db: tuple[str, Engine]) -> None:
    url, engine = db
    guessed = b"labelloop"

    def with_guess(prev: str, fields: dict[str, object]) -> str:
        return keyed_hash(guessed, prev, fields)

    rechain(engine, start=4, hash_fn=with_guess, edit=_forge)
    result = verify(url)
    assert result.exit_code == 1
    assert "event 4: content does not match its hash (edited)" in result.stderr
    # stamping the guessed key's id instead names the key change
    rechain(engine, start=4, hash_fn=with_guess, key_id=key_id(guessed))
    result = verify(url)
    assert result.exit_code == 1
    assert "2 events from 4 to 5 chained with another key" in result.stderr


def test_rewrite_of_the_whole_chain_as_legacy_needs_an_anchor(
    db: tuple[str, Engine], anchor_file: Path
) -> None:
    """Rewriting every event as a legacy event (the public chain code, no key) leaves
    nothing keyed to contradict it, so legacy events no anchor covers fail verify; an
    anchor taken before the rewrite names the rewrite itself."""
    url, engine = db
    assert checkpoint(url, anchor_file).exit_code == 0
    rechain(engine, start=1, hash_fn=legacy_hash, edit=_forge, key_id=None)
    result = verify(url, anchor_file.with_name("none.anchors"))
    assert result.exit_code == 1, result.output
    assert "5 event(s), up to event 5, were chained before the trail was keyed" in result.stderr
    assert "no anchor covers them" in result.stderr
    result = verify(url, anchor_file)
    assert result.exit_code == 1
    assert "anchor line 1: event 5 does not have the anchored hash (rewritten)" in result.stderr


def _legacy_events(engine: Engine, n: int) -> None:
    """``n`` events as a release before the keyed chain wrote them (key id NULL)."""
    prev = GENESIS
    rows = []
    for seq in range(1, n + 1):
        row = {
            "created_at": datetime(2025, 6, 1, 12, seq, tzinfo=UTC),
            "actor": "cli:old",
            "action": "project.create",
            "entity_type": "project",
            "entity_id": str(seq),
            "project_id": None,
            "before": None,
            "after": {"name": f"p{seq}", "ü": "☃"},
        }
        digest = legacy_hash(prev, hashed_fields(seq=seq, **row))
        rows.append(row | {"seq": seq, "prev_hash": prev, "hash": digest, "key_id": None})
        prev = digest
    with engine.begin() as conn:
        conn.execute(insert(Event), rows)
        conn.execute(insert(TrailHead).values(id=1, seq=n, hash=prev))


def test_legacy_events_then_keyed_ones_verify(fresh_database_url: str, anchor_file: Path) -> None:
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    try:
        _legacy_events(engine, 3)
        with session_scope(factory) as session:
            for i in range(2):
                trail.service.append(session, actor="a", action="t.x", entity_type="t", entity_id=i)
        with session_scope(factory) as session:
            result = trail.service.verify(session)
            assert result.ok and result.checked == 5 and result.legacy == 3, result.problems
            assert any("3 event(s), up to event 3" in w for w in result.warnings)
            trail.service.checkpoint(session, anchor_file=anchor_file)
        with session_scope(factory) as session:
            result = trail.service.verify(session, anchor_file=anchor_file)
            assert result.ok and result.warnings == []  # the anchor now vouches for them
            assert result.latest_anchor is not None and result.latest_anchor.seq == 5
        # without an anchor covering them, legacy events fail a check against anchors
        with session_scope(factory) as session:
            bare = trail.service.verify(session, anchor_file=anchor_file.with_name("x.anchors"))
            assert not bare.ok and any("no anchor covers them" in p for p in bare.problems)
        # an edited legacy event is still named
        with engine.begin() as conn:
            conn.execute(update(Event).where(Event.seq == 2).values(actor="x"))
        result = verify(fresh_database_url)
        assert result.exit_code == 1
        assert "event 2: content does not match its hash (edited)" in result.stderr
    finally:
        engine.dispose()


def test_a_wrong_key_fails(db: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = db
    monkeypatch.setenv("LABELLOOP_TRAIL_KEY", "not-the-key")
    result = verify(url)
    assert result.exit_code == 1
    wrong = key_id(b"not-the-key")
    assert f"this key's id is {wrong}): the trail key changed or was lost" in result.stderr
    assert "5 events from 1 to 5 chained with another key" in result.stderr


def test_the_key_fingerprint_is_not_a_plain_hash_of_the_key() -> None:
    key = Settings().trail_key_bytes()
    assert key_id(key) not in (hashlib.sha256(key).hexdigest()[:16], key.hex()[:16])


def test_db_upgrade_anchors_the_events_of_an_unkeyed_release(
    backend: str, _postgres: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of the release before the keyed chain (schema 0001, events without a
    key id): `labelloop db upgrade` migrates it and anchors its events at once, after
    which they verify and a rewrite of them is caught."""
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else _postgres.create()
    anchor_file = tmp_path / "trail.anchors"
    monkeypatch.setenv("LABELLOOP_TRAIL_ANCHOR_FILE", str(anchor_file))
    engine = make_engine(url)
    try:
        upgrade(engine, "0001")
        prev, rows = GENESIS, []
        for seq in range(1, 4):
            row = {
                "created_at": datetime(2025, 6, 1, 12, seq, tzinfo=UTC),
                "actor": "cli:old",
                "action": "project.create",
                "entity_type": "project",
                "entity_id": str(seq),
                "project_id": None,
                "before": None,
                "after": {"name": f"p{seq}"},
            }
            digest = legacy_hash(prev, hashed_fields(seq=seq, **row))
            rows.append({**row, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        events = sa_table("events", *(column(k) for k in rows[0]))
        with engine.begin() as conn:
            conn.execute(insert(events), [{**r, "after": json.dumps(r["after"])} for r in rows])
            conn.execute(insert(TrailHead).values(id=1, seq=3, hash=prev))
    finally:
        engine.dispose()
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "anchored the trail's 3 events written before it was keyed" in result.output
    assert verify(url).exit_code == 0, verify(url).output
    again = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "anchored" not in again.output  # once is enough
    engine = make_engine(url)
    try:
        rechain(engine, start=1, hash_fn=legacy_hash, edit=_forge, key_id=None)
    finally:
        engine.dispose()
    assert verify(url).exit_code == 1


def test_a_missing_trail_key_file_is_an_error_not_another_key(tmp_path: Path) -> None:
    from labelloop.errors import ConfigurationError

    settings = Settings(trail_key=None, trail_key_file=tmp_path / "gone.key")
    with pytest.raises(ConfigurationError, match=r"gone\.key"):
        settings.trail_key_bytes()
    (tmp_path / "empty.key").write_text("\n")
    with pytest.raises(ConfigurationError, match="is empty"):
        Settings(trail_key=None, trail_key_file=tmp_path / "empty.key").trail_key_bytes()
    (tmp_path / "ok.key").write_text("a-key-from-a-secret-store\n")
    ok = Settings(trail_key=None, trail_key_file=tmp_path / "ok.key")
    assert ok.trail_key_bytes() == b"a-key-from-a-secret-store"
