"""Appending: the chain stays whole under concurrent writers, hashes are HMACs with the
trail key computed in Python (the key never reaches the database), and engines carry
the key from their settings."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session

from labelloop import trail
from labelloop.errors import ConfigurationError
from labelloop.settings import Settings
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.store.engine import trail_key_of
from labelloop.trail.chain import (
    GENESIS,
    canonical,
    canonical_up_to_seq,
    hashed_fields,
    jsonable,
    key_id,
    keyed_hash,
    legacy_hash,
)
from labelloop.trail.models import Event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    key=st.binary(min_size=1, max_size=64),
    seq=st.integers(min_value=1, max_value=2**62),
    actor=st.text(),
    after=json_values,
)
def test_keyed_hash_is_hmac_over_prev_hash_and_canonical_event(
    key: bytes, seq: int, actor: str, after: object
) -> None:
    fields = hashed_fields(
        seq=seq,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor=actor,
        action="x.y",
        entity_type="thing",
        entity_id="7",
        project_id=None,
        before=None,
        after=jsonable(after),
    )
    message = (GENESIS + canonical(fields)).encode("utf-8")
    assert keyed_hash(key, GENESIS, fields) == hmac.new(key, message, hashlib.sha256).hexdigest()
    assert legacy_hash(GENESIS, fields) == hashlib.sha256(message).hexdigest()
    assert keyed_hash(key + b"x", GENESIS, fields) != keyed_hash(key, GENESIS, fields)


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    actor=st.text(),
    before=json_values,
    after=json_values,
    project_id=st.none() | st.integers(min_value=1),
)
def test_canonical_ends_with_the_sequence_number(
    seq: int, actor: str, before: object, after: object, project_id: int | None
) -> None:
    """What lets an append serialise its event before it locks the head."""
    fields = hashed_fields(
        seq=seq,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor=actor,
        action="x.y",
        entity_type="thing",
        entity_id="7",
        project_id=project_id,
        before=jsonable(before),
        after=jsonable(after),
    )
    without = {k: v for k, v in fields.items() if k != "seq"}
    assert canonical(fields) == canonical_up_to_seq(without) + str(seq) + "}"


def test_canonical_up_to_seq_refuses_keys_after_seq() -> None:
    with pytest.raises(ValueError, match="seq"):
        canonical_up_to_seq({"seq": 1})
    with pytest.raises(ValueError, match="seq"):
        canonical_up_to_seq({"zebra": 1})
    assert canonical_up_to_seq({}) + "3}" == canonical({"seq": 3})


def test_key_id_is_a_fingerprint_not_the_key() -> None:
    key = b"k" * 32
    assert len(key_id(key)) == 16 and key_id(key) == key_id(bytes(key))
    assert key_id(key) != key_id(b"k" * 31) and key.hex()[:16] != key_id(key)


def test_stored_hashes_are_the_chain_hashes(fresh_database_url: str) -> None:
    """Unicode, nested JSON and None round-trip through the store to the HMAC the Python
    definition gives, each event stamped with the key's id."""
    key = b"stored-hashes-key"
    engine = make_engine(fresh_database_url, trail_key=key)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            trail.service.append(
                session, actor="zoë", action="a.b", entity_type="t", after={"ü": ["☃", 1.5]}
            )
            trail.service.append(
                session, actor="x", action="a.c", entity_type="t", entity_id=3, before=None
            )
        with session_scope(factory) as session:
            result = trail.service.verify(session)
            assert result.ok and result.checked == 2 and result.legacy == 0, result.problems
            events = session.scalars(select(Event).order_by(Event.seq)).all()
            assert events[0].prev_hash == GENESIS and events[1].prev_hash == events[0].hash
            for e in events:
                assert e.key_id == key_id(key)
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
                assert e.hash == keyed_hash(key, e.prev_hash, fields)
    finally:
        engine.dispose()


def test_the_key_never_reaches_the_database(fresh_database_url: str, tmp_path: Path) -> None:
    """No statement or parameter sent while appending, verifying or checkpointing holds
    the key, its hex form or its HMAC pads."""
    key = b"never-sent-" + b"s" * 24
    engine = make_engine(fresh_database_url, trail_key=key)
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append(statement + repr(params))

    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as session:
            for i in range(3):
                trail.service.append(session, actor="a", action="t.x", entity_type="t", entity_id=i)
        with session_scope(factory) as session:
            trail.service.checkpoint(session, anchor_file=tmp_path / "a")
            assert trail.service.verify(session, anchor_file=tmp_path / "a").ok
    finally:
        engine.dispose()
    assert len(sent) >= 6
    block = key.ljust(64, b"\0")
    secrets = [key.decode(), key.hex(), repr(key)]
    secrets += [bytes(b ^ pad for b in block).hex() for pad in (0x36, 0x5C)]
    for text in sent:
        assert not any(secret in text for secret in secrets)


def test_engines_carry_the_trail_key(fresh_database_url: str, tmp_path: Path) -> None:
    """An explicit key wins; a bare URL takes the environment's (the tests set
    LABELLOOP_TRAIL_KEY); settings give theirs, derived from the secret key when no
    trail key is set; read-only engines carry it too."""

    def key_of(engine: Any) -> bytes:
        try:
            with engine.connect() as conn:
                return trail_key_of(conn.info)
        finally:
            engine.dispose()

    url = fresh_database_url
    assert key_of(make_engine(url, trail_key=b"explicit")) == b"explicit"
    assert key_of(make_engine(url)) == Settings().trail_key_bytes()
    assert key_of(make_engine(url, read_only=True)) == Settings().trail_key_bytes()
    derived = Settings(
        database_url=url, trail_key=None, secret_key="s" * 40, secret_key_file=tmp_path / "no"
    )
    expected = hmac.new(b"s" * 40, b"labelloop trail key v1", hashlib.sha256).digest()
    assert key_of(make_engine(derived)) == expected
    assert not (tmp_path / "no").exists()
    key_file = tmp_path / "trail.key"
    key_file.write_bytes(b"from-a-file\n")
    assert (
        key_of(make_engine(Settings(database_url=url, trail_key=None, trail_key_file=key_file)))
        == b"from-a-file"
    )


def test_an_engine_without_a_key_cannot_append(fresh_database_url: str) -> None:
    plain = create_engine(fresh_database_url)  # not made by make_engine: no key
    empty = make_engine(fresh_database_url, trail_key=b"")
    try:
        with Session(plain) as session, pytest.raises(ConfigurationError, match="no trail key"):
            trail.service.append(session, actor="a", action="t.x", entity_type="t")
        with empty.connect() as conn, pytest.raises(ConfigurationError, match="empty"):
            trail_key_of(conn.info)
    finally:
        plain.dispose()
        empty.dispose()


def test_concurrent_appends_keep_the_chain_whole(fresh_database_url: str) -> None:
    """Eight threads, each committing 25 single-event transactions at once: every
    event gets its own sequence number, in one unbroken chain."""
    engine = make_engine(fresh_database_url)
    factory = make_session_factory(engine)
    start = threading.Barrier(8)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with session_scope(factory) as session:
                    trail.service.append(
                        session, actor=f"w{n}", action="test.append", entity_type="t", entity_id=i
                    )
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    try:
        for t in threads:  # no head row yet: the first appends race to create it
            t.start()
        for t in threads:
            t.join()
        with session_scope(factory) as session:
            result = trail.service.verify(session)
    finally:
        engine.dispose()
    assert not failures, failures  # a first append that lost the race for the head row
    assert result.ok, result.problems
    assert result.checked == 8 * 25
