"""Tamper detection: `labelloop trail verify` fails, naming the event, after any manual
edit, deletion or reordering of event rows (raw SQL on a committed database), and after
a rewrite with the public chain functions, which cannot produce the keyed hashes."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from labelloop.projects import service
from labelloop.store import make_session_factory, session_scope

from .conftest import OPERATOR, sql, verify


def test_intact_trail_verifies(db: tuple[str, Engine]) -> None:
    url, _ = db
    result = verify(url)
    assert result.exit_code == 0, result.output
    assert "5 events, chain intact" in result.stdout


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE events SET actor = 'someone-else' WHERE seq = 3", id="actor"),
        pytest.param("UPDATE events SET action = 'item.delete' WHERE seq = 3", id="action"),
        pytest.param("UPDATE events SET entity_id = '999' WHERE seq = 3", id="entity"),
        pytest.param("UPDATE events SET after = NULL WHERE seq = 3", id="after"),
    ],
)
def test_edited_event_is_named(db: tuple[str, Engine], statement: str) -> None:
    url, engine = db
    sql(engine, statement)
    result = verify(url)
    assert result.exit_code == 1
    assert "event 3: content does not match its hash (edited)" in result.stderr


def test_edited_json_value_is_named(db: tuple[str, Engine]) -> None:
    url, engine = db
    if engine.dialect.name == "postgresql":
        sql(engine, "UPDATE events SET after = jsonb_set(after, '{value}', '\"b\"') WHERE seq = 4")
    else:
        sql(engine, "UPDATE events SET after = json_set(after, '$.value', 'b') WHERE seq = 4")
    result = verify(url)
    assert result.exit_code == 1
    assert "event 4: content does not match its hash" in result.stderr


def test_edit_with_recomputed_own_hash_breaks_the_link(db: tuple[str, Engine]) -> None:
    """A forger who somehow rehashes the edited event (here: with the key) still breaks
    the next event's link."""
    url, engine = db
    from labelloop.settings import Settings
    from labelloop.trail.chain import hashed_fields, keyed_hash
    from labelloop.trail.models import Event

    with session_scope(make_session_factory(engine)) as session:
        event = session.query(Event).filter_by(seq=2).one()
        event.actor = "forger"
        event.hash = keyed_hash(
            Settings().trail_key_bytes(),
            event.prev_hash,
            hashed_fields(
                seq=event.seq,
                created_at=event.created_at,
                actor=event.actor,
                action=event.action,
                entity_type=event.entity_type,
                entity_id=event.entity_id,
                project_id=event.project_id,
                before=event.before,
                after=event.after,
            ),
        )
    result = verify(url)
    assert result.exit_code == 1
    assert "event 3: previous-hash link broken" in result.stderr
    assert "event 2:" not in result.stderr


def test_deleted_event_is_named(db: tuple[str, Engine]) -> None:
    url, engine = db
    sql(engine, "DELETE FROM events WHERE seq = 3")
    result = verify(url)
    assert result.exit_code == 1
    assert "event(s) 3 missing before event 4 (deleted)" in result.stderr


def test_deleted_newest_event_is_named(db: tuple[str, Engine]) -> None:
    url, engine = db
    sql(engine, "DELETE FROM events WHERE seq = 5")
    result = verify(url)
    assert result.exit_code == 1
    assert "trail head says the last event is 5, but the last stored event is 4" in result.stderr


def test_reordered_events_are_named(db: tuple[str, Engine]) -> None:
    url, engine = db
    # swap the sequence numbers of events 2 and 3
    sql(engine, "UPDATE events SET seq = -2 WHERE seq = 2")
    sql(engine, "UPDATE events SET seq = 2 WHERE seq = 3")
    sql(engine, "UPDATE events SET seq = 3 WHERE seq = -2")
    result = verify(url)
    assert result.exit_code == 1
    assert "event 2:" in result.stderr and "event 3:" in result.stderr
    assert "previous-hash link broken (events reordered or replaced)" in result.stderr


def test_failed_service_call_leaves_trail_intact(db: tuple[str, Engine]) -> None:
    url, engine = db
    from labelloop.errors import ValidationFailed

    with pytest.raises(ValidationFailed), session_scope(make_session_factory(engine)) as session:
        project = service.get_project(session, "p")
        service.add_item(
            session, actor=OPERATOR, project=project, external_id="i2", payload={"text": "y"}
        )
        service.set_gold(session, actor=OPERATOR, project=project, item_id=1, value="zzz")
    result = verify(url)
    assert result.exit_code == 0, result.output
    assert "5 events" in result.stdout
