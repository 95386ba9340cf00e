"""Anchors: `labelloop trail checkpoint` copies the head out of the database, and
`labelloop trail verify` then detects deleted events (even all of them, even with the
head moved back) and forged anchor lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from labelloop import trail
from labelloop.errors import TrailBroken
from labelloop.settings import Settings
from labelloop.store import make_session_factory, session_scope
from labelloop.trail.anchors import (
    Anchor,
    append_anchor,
    check_anchors,
    database_id,
    make_anchor,
)
from labelloop.trail.chain import GENESIS, key_id

from .conftest import checkpoint, sql, verify

KEY = b"anchor-test-key"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_database_id_hides_the_password_and_makes_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_id("sqlite:///./x.db") == f"sqlite:///{tmp_path.resolve() / 'x.db'}"
    assert database_id(f"sqlite:///{tmp_path}/x.db") == database_id("sqlite:///x.db")
    pg = database_id("postgresql+psycopg://ann:s3cret@db.example:5432/labels?sslmode=require")
    assert pg == "postgresql://ann@db.example:5432/labels"
    assert database_id("postgresql://ann:other@db.example/labels") == pg
    assert "s3cret" not in pg


def _line(anchor: Anchor) -> str:
    return anchor.to_line() + "\n"


def test_anchor_lines_are_checked_with_the_key(tmp_path: Path) -> None:
    path = tmp_path / "a.anchors"
    good = make_anchor(KEY, database="db1", seq=5, hash="ab" * 32, time=T0)
    append_anchor(path, good)
    append_anchor(path, make_anchor(KEY, database="db2", seq=9, hash="cd" * 32, time=T0))
    append_anchor(path, make_anchor(b"other", database="db3", seq=1, hash="ef" * 32, time=T0))
    forged = json.loads(good.to_line()) | {"seq": 50}  # the mac no longer verifies
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(forged) + "\n\nnot json\n")
    append_anchor(path, make_anchor(b"other", database="db1", seq=1, hash="01" * 32, time=T0))
    found = check_anchors(path, key=KEY, database="db1")
    assert [(a.line, a.seq, a.hash) for a in found.anchors] == [(1, 5, "ab" * 32)]
    assert found.lines == 6  # the blank line is not counted
    assert found.problems == [
        "anchor line 4 forged or corrupted (its mac does not verify)",
        "anchor line 6 forged or corrupted (not JSON)",
        f"anchor line 7 was made with another key (key id {key_id(b'other')}, this key's "
        f"id is {key_id(KEY)}): the trail key changed or was lost",
    ]
    assert check_anchors(tmp_path / "missing", key=KEY, database="db1").anchors == []


def test_a_line_cut_short_does_not_swallow_the_next(tmp_path: Path) -> None:
    path = tmp_path / "a.anchors"
    path.write_text('{"database": "db1", "se', encoding="utf-8")  # a crash mid-write
    append_anchor(path, make_anchor(KEY, database="db1", seq=2, hash="ab" * 32, time=T0))
    found = check_anchors(path, key=KEY, database="db1")
    assert [a.line for a in found.anchors] == [2]
    assert found.problems == ["anchor line 1 forged or corrupted (not JSON)"]


def test_checkpoint_and_verify_end_to_end(db: tuple[str, Engine], anchor_file: Path) -> None:
    url, _ = db
    result = verify(url, anchor_file)
    assert result.exit_code == 0, result.output
    assert "no anchor for this database" in result.stderr
    assert "run `labelloop trail checkpoint`" in result.stderr

    result = checkpoint(url, anchor_file)
    assert result.exit_code == 0, result.output
    assert "anchored event 5" in result.stdout
    (line,) = anchor_file.read_text(encoding="utf-8").splitlines()
    anchor = json.loads(line)
    assert set(anchor) == {"database", "seq", "hash", "time", "key_id", "mac"}
    assert anchor["seq"] == 5 and anchor["database"] == database_id(url)
    assert anchor["key_id"] == key_id(Settings().trail_key_bytes())

    result = verify(url, anchor_file)
    assert result.exit_code == 0, result.output
    assert "5 events, chain intact; latest anchor: event 5" in result.stdout
    assert "0 newer event(s)" in result.stdout and result.stderr == ""

    result = checkpoint(url, anchor_file, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["seq"] == 5
    report = json.loads(verify(url, anchor_file, "--json").stdout)
    assert report["ok"] and report["events"] == 5 and report["anchors_matched"] == 2
    assert report["latest_anchor"]["line"] == 2 and report["problems"] == []


def test_deleting_every_event_and_the_head_is_detected(
    db: tuple[str, Engine], anchor_file: Path
) -> None:
    url, engine = db
    assert checkpoint(url, anchor_file).exit_code == 0
    sql(engine, "DELETE FROM events")
    sql(engine, "DELETE FROM trail_head")
    result = verify(url, anchor_file)
    assert result.exit_code == 1
    assert (
        "anchor line 1: event 5 is anchored, but the chain ends at event 0 (events deleted)"
        in result.stderr
    )
    # without the anchor, an empty trail is all there is to see: it verifies, with a warning
    result = verify(url, anchor_file.with_name("other.anchors"))
    assert result.exit_code == 0 and "ok: 0 events" in result.stdout
    assert "no anchor for this database" in result.stderr


def test_deleting_the_tail_and_fixing_the_head_is_detected(
    db: tuple[str, Engine], anchor_file: Path
) -> None:
    url, engine = db
    assert checkpoint(url, anchor_file).exit_code == 0
    sql(engine, "DELETE FROM events WHERE seq > 3")
    sql(engine, "UPDATE trail_head SET seq = 3, hash = (SELECT hash FROM events WHERE seq = 3)")
    result = verify(url, anchor_file)
    assert result.exit_code == 1
    assert "anchor line 1: event 5 is anchored, but the chain ends at event 3" in result.stderr
    assert "trail head" not in result.stderr  # the head was made consistent


def test_a_forged_anchor_line_fails(db: tuple[str, Engine], anchor_file: Path) -> None:
    url, _ = db
    assert checkpoint(url, anchor_file).exit_code == 0
    line = json.loads(anchor_file.read_text(encoding="utf-8"))
    line |= {"seq": 4, "hash": GENESIS}  # without the key the mac cannot follow
    with anchor_file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    result = verify(url, anchor_file)
    assert result.exit_code == 1
    assert "anchor line 2 forged or corrupted (its mac does not verify)" in result.stderr
    assert "anchor line 1" not in result.stderr


def test_checkpoint_refuses_a_head_that_does_not_match(
    db: tuple[str, Engine], anchor_file: Path
) -> None:
    url, engine = db
    sql(engine, "DELETE FROM events WHERE seq = 5")
    result = checkpoint(url, anchor_file)
    assert result.exit_code == 1
    assert "the trail head (event 5) does not match the stored events (last 4)" in result.stderr
    assert not anchor_file.exists()


def test_one_anchor_file_serves_several_databases(
    db: tuple[str, Engine], anchor_file: Path
) -> None:
    _, engine = db
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        other = trail.service.checkpoint(
            session, anchor_file=anchor_file, database="sqlite:///elsewhere.db", now=T0
        )
        assert other.seq == 5 and other.time == "2026-12-01T12:00:00.000000+00:00"
        result = trail.service.verify(session, anchor_file=anchor_file)
        assert result.ok and result.anchors == []  # not this database's anchor
        assert result.warnings and "no anchor for this database" in result.warnings[0]
        mine = trail.service.checkpoint(session, anchor_file=anchor_file)
        result = trail.service.verify(session, anchor_file=anchor_file)
        assert result.ok and result.latest_anchor is not None
        assert (result.latest_anchor.line, result.latest_anchor.mac) == (2, mine.mac)
    sql(engine, "UPDATE trail_head SET seq = 7")
    with (
        pytest.raises(TrailBroken, match="does not match the stored events"),
        session_scope(factory) as session,
    ):
        trail.service.checkpoint(session, anchor_file=anchor_file)


def test_an_empty_trail_can_be_anchored(fresh_database_url: str, anchor_file: Path) -> None:
    result = checkpoint(fresh_database_url, anchor_file)
    assert result.exit_code == 0, result.output
    assert json.loads(anchor_file.read_text(encoding="utf-8"))["hash"] == GENESIS
    result = verify(fresh_database_url, anchor_file)
    assert result.exit_code == 0 and "latest anchor: event 0" in result.stdout


def test_a_database_rebuilt_in_place_is_named_as_such(
    backend: str, template_url: str, tmp_path: Path, anchor_file: Path
) -> None:
    """A demo database deleted and built again at the same path: its anchors read as
    deleted history (as they must), and verify says the likely cause."""
    if backend != "sqlite":
        pytest.skip("a database file rebuilt at one path (the same holds for any database)")
    import shutil
    import time

    from sqlalchemy.engine import make_url

    from labelloop.store import make_engine

    path = tmp_path / "demo.db"
    url = f"sqlite:///{path}"

    def build(events: int) -> None:
        shutil.copyfile(str(make_url(template_url).database), path)
        engine = make_engine(url)
        try:
            with session_scope(make_session_factory(engine)) as session:
                for i in range(events):
                    trail.service.append(
                        session, actor="demo", action="t.x", entity_type="t", entity_id=i
                    )
        finally:
            engine.dispose()

    build(3)
    assert checkpoint(url, anchor_file).exit_code == 0
    path.unlink()
    time.sleep(0.01)
    build(2)
    result = verify(url, anchor_file)
    assert result.exit_code == 1
    assert "older than this trail's first event" in result.stderr
