"""Appending: the chain stays whole under concurrent writers, and the hash PostgreSQL
computes in the append statement is the hash :mod:`labelloop.trail.chain` defines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from labelloop import trail
from labelloop.store import make_engine, make_session_factory, session_scope
from labelloop.trail.chain import GENESIS, canonical, canonical_up_to_seq, hashed_fields, jsonable
from labelloop.trail.models import Event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


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


def test_stored_hashes_are_the_chain_hashes(fresh_database_url: str) -> None:
    """Unicode, nested JSON and None round-trip through the store (on PostgreSQL the
    database computes the hash) to the hash the Python definition gives."""
    engine = make_engine(fresh_database_url)
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
            # verify recomputes every hash with labelloop.trail.chain and checks each link
            result = trail.service.verify(session)
            assert result.ok and result.checked == 2, result.problems
            rows = session.execute(select(Event.prev_hash, Event.hash).order_by(Event.seq)).all()
            assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].hash
    finally:
        engine.dispose()


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

    with session_scope(factory) as session:  # the head row exists before the race
        trail.service.append(session, actor="setup", action="test.setup", entity_type="t")
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        with session_scope(factory) as session:
            result = trail.service.verify(session)
            assert result.ok, result.problems
            assert result.checked == 1 + 8 * 25
    finally:
        engine.dispose()
