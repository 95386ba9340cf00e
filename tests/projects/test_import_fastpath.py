"""The columnar fast path for long-form files gives exactly what the record path gives.

Each case imports the same file twice from the same starting state -- once with the
fast path off (the record path), once with it on -- each inside a SAVEPOINT that is
rolled back afterwards, and compares the database row by row (by natural keys: surrogate
ids and creation times may differ), the import summaries, the trail events and the
errors. A spy on :func:`labelloop.projects._fastpath.run` asserts which path ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

import labelloop.models  # noqa: F401  (registers every table)
from labelloop import trail
from labelloop.accounts.actor import Actor
from labelloop.accounts.models import Membership, User
from labelloop.errors import ImportFailed
from labelloop.formats import TabularOptions
from labelloop.projects import _fastpath, importer
from labelloop.projects.importer import import_file
from labelloop.projects.models import Annotation, ImportBatch, Item, Project
from labelloop.projects.schemas import LabelSchema
from labelloop.projects.service import create_project
from labelloop.trail.models import Event

ACTOR = Actor.local("test")
SCHEMA = {"task_type": "single", "labels": ["billing", "refund", "other", 'naïve "q"']}
HEADER = "item_id,annotator,label,started_at,submitted_at,active_seconds,segment_language,segment.channel,text"
ROWS = [
    "t1,alice,billing,2026-01-01T10:00:00Z,2026-01-01T10:00:30Z,30,en,email,my bill is wrong",
    "t1,bob,refund,2026-01-01T11:00:00+02:00,2026-01-01T11:00:20.5+02:00,20.5,en,email,ignored text",
    ' t2 , carol ,other,2026-01-02 10:00:00,2026-01-02 10:00:01.123456,1,de,,"hallo, ""welt""\nzweite zeile \\ tab\t"',
    "t2,alice,other,,,,de,chat,hallo",
    't3,dave,"naïve ""q""",1767261600,1767261660.25,7,,,',
    "t4,alice,billing,2026-03-01T00:00:00Z,,   ,fr,phone,  ",
    "t5,erin@example.org,refund,2026-03-01T00:00:00.1Z,2026-03-01T00:00:02Z,2,pt,chat,ünïcødé ✓",
]


@pytest.fixture
def project(session: Session) -> Project:
    return create_project(session, actor=ACTOR, name="fast", schema=LabelSchema.from_dict(SCHEMA))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which path each import took: "fast" or "fallback: <reason>"."""
    seen: list[str] = []
    real = _fastpath.run

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            got = real(*args, **kwargs)
        except _fastpath.Fallback as exc:
            seen.append(f"fallback: {exc}")
            raise
        seen.append("fast")
        return got

    monkeypatch.setattr(_fastpath, "run", run)
    return seen


def write(path: Path, rows: list[str], header: str = HEADER, sep: str = "\n") -> Path:
    path.write_bytes((header + sep + sep.join(rows) + sep).encode("utf-8"))
    return path


def snapshot(session: Session, project_id: int, since_seq: int) -> dict[str, Any]:
    """The project's rows by natural key, and the trail events since ``since_seq``."""
    session.expire_all()
    items = {
        r.external_id: (r.payload, r.meta, r.segments, r.tags)
        for r in session.scalars(select(Item).where(Item.project_id == project_id))
    }
    names = dict(session.execute(select(User.id, User.username)).tuples().all())
    ext_of = dict(
        session.execute(select(Item.id, Item.external_id).where(Item.project_id == project_id))
        .tuples()
        .all()
    )
    anns = sorted(
        (
            ext_of[a.item_id],
            names[a.annotator_id],
            a.external_key,
            repr(a.value),
            a.attributes,
            a.started_at,
            a.submitted_at,
            a.active_seconds,
            a.guideline_version,
            a.source,
            a.flags,
        )
        for a in session.scalars(select(Annotation).where(Annotation.project_id == project_id))
    )
    users = sorted(
        (u.username, u.email, u.is_admin, u.is_active, u.password_hash)
        for u in session.scalars(select(User))
    )
    members = sorted(
        (names[m.user_id], m.role)
        for m in session.scalars(select(Membership).where(Membership.project_id == project_id))
    )
    batches = sorted(
        (b.filename, b.sha256, b.format, b.actor, repr(sorted(b.counts.items())))
        for b in session.scalars(select(ImportBatch).where(ImportBatch.project_id == project_id))
    )
    events = [
        (e.action, e.entity_type, e.project_id, e.before, e.after)
        for e in session.scalars(select(Event).where(Event.seq > since_seq).order_by(Event.seq))
    ]
    return {
        "items": items,
        "annotations": anns,
        "users": users,
        "members": members,
        "batches": batches,
        "events": events,
    }


def head_seq(session: Session) -> int:
    return int(session.scalar(select(Event.seq).order_by(Event.seq.desc()).limit(1)) or 0)


Outcome = tuple[str, Any, dict[str, Any]]


def attempt(
    session: Session, project: Project, steps: list[Callable[[], Any]], *, fast: bool
) -> list[Outcome]:
    """Run ``steps`` (imports) in a SAVEPOINT with the fast path on or off; per step,
    ("ok", summary dict) or ("error", (message, issues, total)), and a snapshot."""
    saved = importer.FAST_PATH
    importer.FAST_PATH = fast
    savepoint = session.begin_nested()
    out: list[Outcome] = []
    try:
        for step in steps:
            seq = head_seq(session)
            try:
                summary = step()
            except ImportFailed as exc:
                got: tuple[str, Any] = (
                    "error",
                    (str(exc), [str(i) for i in exc.issues], exc.total),
                )
            else:
                got = ("ok", summary.as_dict())
            out.append((got[0], got[1], snapshot(session, project.id, seq)))
    finally:
        savepoint.rollback()
        importer.FAST_PATH = saved
    return out


def both(session: Session, project: Project, steps: list[Callable[[], Any]]) -> list[Outcome]:
    """Run the steps on each path; assert identical outcomes; return them."""
    slow = attempt(session, project, steps, fast=False)
    fast = attempt(session, project, steps, fast=True)
    for i, (a, b) in enumerate(zip(slow, fast, strict=True)):
        assert a[0] == b[0], f"step {i}"
        assert a[1] == b[1], f"step {i}"
        for key in a[2]:
            assert a[2][key] == b[2][key], f"step {i}: {key}"
    return fast


def importing(session: Session, path: Path, **kwargs: Any) -> Callable[[], Any]:
    return lambda: import_file(session, actor=ACTOR, path=path, project="fast", **kwargs)


def test_same_rows_as_record_path(
    session: Session, project: Project, tmp_path: Path, spy: list[str]
) -> None:
    path = write(tmp_path / "a.csv", ROWS)
    out = both(session, project, [importing(session, path)])
    assert spy == ["fast"]
    status, summary, snap = out[0]
    assert status == "ok"
    assert summary["annotations_created"] == 7 and summary["items_created"] == 5
    assert len(snap["annotations"]) == 7
    assert snap["items"]["t2"][0] == {"text": 'hallo, "welt"\nzweite zeile \\ tab\t'}
    assert snap["items"]["t4"][0] == {} and snap["items"]["t3"][2] == {}
    assert [e[0] for e in snap["events"]].count("user.create") == 5
    assert snap["events"][-1][0] == "import.file"


def test_a_formula_escape_gives_the_record_paths_rows(
    session: Session, project: Project, tmp_path: Path, spy: list[str]
) -> None:
    """LabelLoop's CSV exports write ``'=x`` for ``=x``; the record path reads it back,
    and the fast path leaves such a file to it."""
    path = write(tmp_path / "a.csv", [*ROWS, "t8,'=alice,billing,,,,,,"])
    out = both(session, project, [importing(session, path)])
    assert spy == ["fallback: a cell that may hold the spreadsheet-formula escape"]
    assert any(a[1] == "=alice" for a in out[0][2]["annotations"])


def test_tsv_and_crlf(session: Session, project: Project, tmp_path: Path, spy: list[str]) -> None:
    rows = [r.replace(",", "\t") for r in ROWS if '"' not in r]
    path = write(tmp_path / "a.tsv", rows, HEADER.replace(",", "\t"), sep="\r\n")
    both(session, project, [importing(session, path, format="csv")])
    assert spy == ["fast"]


def test_reimport_and_update(
    session: Session, project: Project, tmp_path: Path, spy: list[str]
) -> None:
    first = write(tmp_path / "first.csv", ROWS)
    changed = write(
        tmp_path / "changed.csv",
        [ROWS[0].replace(",billing,", ",refund,"), *ROWS[1:]],
    )
    more = write(
        tmp_path / "more.csv",
        [*ROWS, "t1,zoe,other,,,,en,email,my bill is wrong", "t9,zoe,other,,,,,,new item"],
    )
    steps = [
        importing(session, first),
        importing(session, first),  # identical: a no-op
        importing(session, more),  # new annotations on existing items, a new item
        importing(session, changed),  # a changed annotation: the record path's update
    ]
    out = both(session, project, steps)
    assert spy == ["fast", "fast", "fast", "fallback: an existing annotation changed"]
    assert out[1][1]["annotations_unchanged"] == 7 and out[1][2]["batches"] == out[0][2]["batches"]
    assert out[1][2]["events"][0][4]["noop"] is True
    assert out[2][1]["annotations_created"] == 2 and out[2][1]["items_created"] == 1
    assert [e[0] for e in out[3][2]["events"]] == ["annotation.update", "import.file"]


def test_changed_item_falls_back(
    session: Session, project: Project, tmp_path: Path, spy: list[str]
) -> None:
    first = write(tmp_path / "first.csv", ROWS)
    other = write(tmp_path / "other.csv", [ROWS[0].replace("my bill is wrong", "new text")])
    both(session, project, [importing(session, first), importing(session, other)])
    assert spy[-1] == "fallback: an existing item changed"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("t8,alice,unknown-label,,,,,,", "a label the record path reads or rejects"),
        ("t1,alice,refund,,,,,,", "a duplicate annotation"),
        ("t8,alice,billing,yesterday,,,,,", "a timestamp the record path rejects"),
        ("t8,alice,billing,,,-3,,,", "active seconds the record path rejects"),
        ("t8,alice,,,,,,,", "a row without a label"),
        ("t8,,billing,,,,,,", "a row without an annotator"),
        (",alice,billing,,,,,,", "an empty item id"),
        ("t8,alice,billing,2026-02-30T00:00:00Z,,,,,", "a timestamp the record path rejects"),
        ("t8,alice,billing,0000-01-01T00:00:00,,,,,", "a timestamp the record path rejects"),
        ("t8,alice,billing,2026-01-02T00:00:00Z,2026-01-01T00:00:00Z,,,,", "clock"),
        ("t8,alice,billing,,,,,", "pyarrow"),
    ],
)
def test_problems_fall_back_with_the_same_outcome(
    session: Session, project: Project, tmp_path: Path, spy: list[str], row: str, reason: str
) -> None:
    path = write(tmp_path / "bad.csv", [*ROWS, row])
    both(session, project, [importing(session, path)])
    assert len(spy) == 1 and reason in spy[0]


def test_many_batches_duplicate_across_batches(
    session: Session,
    project: Project,
    tmp_path: Path,
    spy: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_fastpath, "CSV_BLOCK_BYTES", 4096)
    rows = [
        f"i{n // 3},a{n % 7},billing,2026-01-01T00:00:00Z,,1.5,en,x,t{n // 3}" for n in range(600)
    ]
    path = write(tmp_path / "many.csv", rows)
    calls: list[int] = []
    out = both(
        session,
        project,
        [
            lambda: import_file(
                session, actor=ACTOR, path=path, project="fast", progress=calls.append
            )
        ],
    )
    assert spy == ["fast"]
    # the record path reports once (800 records < one batch), the fast path per batch
    slow, fast = calls[0], calls[1:]
    assert slow == out[0][1]["records"] == fast[-1]
    assert len(fast) > 4 and fast == sorted(fast)
    dup = write(tmp_path / "dup.csv", [*rows, rows[0]])
    spy.clear()
    both(session, project, [importing(session, dup)])
    assert spy == ["fallback: a duplicate annotation"]


def test_index_rebuild(
    session: Session,
    project: Project,
    tmp_path: Path,
    spy: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_fastpath, "REBUILD_INDEXES_MIN_ROWS", 1)
    path = write(tmp_path / "a.csv", ROWS)

    def indexes() -> list[Any]:
        if session.get_bind().dialect.name != "sqlite":
            return []
        return list(
            session.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'annotations' ORDER BY name"
                )
            )
        )

    before = indexes()
    both(session, project, [importing(session, path)])
    assert spy == ["fast"]
    # both() rolls its SAVEPOINTs back (which would undo a drop too): import for real
    dropped: list[list[str]] = []
    real_drop = _fastpath._drop_indexes

    def drop(*args: Any, **kwargs: Any) -> list[str]:
        sql = real_drop(*args, **kwargs)
        dropped.append(sql)
        return sql

    monkeypatch.setattr(_fastpath, "_drop_indexes", drop)
    import_file(session, actor=ACTOR, path=path, project="fast")
    if session.get_bind().dialect.name == "sqlite":
        assert dropped and dropped[0], "the import did not drop and rebuild the indexes"
    assert indexes() == before


def test_parquet(session: Session, project: Project, tmp_path: Path, spy: list[str]) -> None:
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    src = write(tmp_path / "a.csv", ROWS)
    with src.open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh))
    columns = {name: [row[i] or None for row in table[1:]] for i, name in enumerate(table[0])}
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table(columns), path)
    both(session, project, [importing(session, path)])
    assert spy == ["fast"]


def test_mapped_columns(session: Session, project: Project, tmp_path: Path, spy: list[str]) -> None:
    header = "id;who;answer;language;body;notes"
    rows = ["x1;ann;billing;en;hello;n", "x1;ben;refund;en;hello;", "x2;ann;other;fr;;zz"]
    path = write(tmp_path / "m.csv", rows, header)
    options = TabularOptions(
        item="id", annotator="who", label="answer", text="body", segment_columns=["language"]
    )
    both(session, project, [importing(session, path, options=options)])
    assert spy == ["fast"]


def test_ineligible_mappings_use_the_record_path(
    session: Session, project: Project, tmp_path: Path, spy: list[str]
) -> None:
    path = write(tmp_path / "g.csv", [r + ",billing" for r in ROWS[:2]], HEADER + ",gold")
    both(session, project, [importing(session, path)])
    assert spy == ["fallback: column 'gold' (gold) needs the record path"]


def test_trail_verifies(session: Session, project: Project, tmp_path: Path, spy: list[str]) -> None:
    path = write(tmp_path / "a.csv", ROWS)
    import_file(session, actor=ACTOR, path=path, project="fast")
    assert spy == ["fast"]
    assert trail.service.verify(session).ok


@pytest.mark.parametrize("escape", [False, True])
def test_item_json_matches_canon(escape: bool) -> None:
    import pyarrow as pa

    from labelloop.projects.importer import _canon

    values = ["", " ", "\x1c", "\u3000", "\u200b", "a,", "é ✓", " x ", "\t", "1", "a\u2028"]
    if escape:
        values.append('quote " and \\ and \n')
    other = list(reversed(values))
    got = _fastpath._json_objects([('"a":', pa.array(values)), ('"b":', pa.array(other))])
    want = [
        _canon({k: v for k, v in (("a", x), ("b", y)) if v and not v.isspace()})
        for x, y in zip(values, other, strict=True)
    ]
    assert got == want


# -- PostgreSQL: foreign keys checked per batch, the triggers off ----------------------------


def pg_only(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")


@pytest.fixture
def result_spy(monkeypatch: pytest.MonkeyPatch) -> list[_fastpath.FastResult]:
    """The fast path's results, with how foreign keys were checked (``extra``)."""
    seen: list[_fastpath.FastResult] = []
    real = _fastpath.run

    def run(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        seen.append(got)
        return got

    monkeypatch.setattr(_fastpath, "run", run)
    return seen


def replication_role(session: Session) -> str:
    return str(session.scalar(text("SELECT current_setting('session_replication_role')")))


def test_fk_bypass_refused_on_sqlite(session: Session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("SQLite only")
    assert _fastpath.fk_bypass_refusal(session) == "not PostgreSQL"


def test_fk_bypass_as_superuser_gives_the_record_path_rows(
    session: Session,
    project: Project,
    tmp_path: Path,
    result_spy: list[_fastpath.FastResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_only(session)
    assert _fastpath.fk_bypass_refusal(session) is None  # the tests connect as a superuser
    assert replication_role(session) == "origin"  # the probe left it as it was
    monkeypatch.setattr(_fastpath, "CSV_BLOCK_BYTES", 4096)
    rows = [f"i{n // 3},a{n % 7},billing,,,1.5,en,x,t{n // 3}" for n in range(400)]
    # the second file adds annotations to an item of the first (locked, not created)
    more = [*rows, *ROWS, "i0,zoe,refund,,,,en,x,t0"]
    first, second = write(tmp_path / "a.csv", rows), write(tmp_path / "b.csv", more)
    out = both(session, project, [importing(session, first), importing(session, second)])
    assert [r.extra["foreign_keys"] for r in result_spy] == ["checked per batch"] * 2
    assert result_spy[0].batches > 1  # several COPYs, each in the background
    assert out[1][1]["annotations_unchanged"] == 400 and out[1][1]["annotations_created"] == 8
    assert replication_role(session) == "origin"


def test_fk_bypass_switched_off(
    session: Session,
    project: Project,
    tmp_path: Path,
    result_spy: list[_fastpath.FastResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg_only(session)
    monkeypatch.setattr(_fastpath, "FK_BYPASS", False)
    both(session, project, [importing(session, write(tmp_path / "a.csv", ROWS))])
    assert result_spy[0].extra["foreign_keys"] == "switched off (LABELLOOP_IMPORT_FK_BYPASS)"


def test_without_the_privilege_the_triggers_check(
    session: Session, project: Project, tmp_path: Path, result_spy: list[_fastpath.FastResult]
) -> None:
    """A role that may not set session_replication_role: the fast path still runs, with
    PostgreSQL's own foreign-key triggers (the role is created inside the test's
    transaction, so it disappears with it)."""
    pg_only(session)
    import uuid

    role = f"labelloop_importer_{uuid.uuid4().hex[:8]}"
    session.execute(text(f'CREATE ROLE "{role}" NOLOGIN NOSUPERUSER'))
    session.execute(text(f'GRANT ALL ON ALL TABLES IN SCHEMA public TO "{role}"'))
    session.execute(text(f'GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    session.execute(text(f'SET LOCAL ROLE "{role}"'))
    refusal = _fastpath.fk_bypass_refusal(session)
    assert refusal is not None and refusal.startswith("may not set session_replication_role")
    out = both(session, project, [importing(session, write(tmp_path / "a.csv", ROWS))])
    assert out[0][0] == "ok" and out[0][1]["annotations_created"] == 7
    assert [r.extra["foreign_keys"] for r in result_spy] == [refusal]
    assert replication_role(session) == "origin"


def test_other_triggers_keep_the_triggers_on(session: Session) -> None:
    """A trigger the import would silence (or a foreign key it does not check itself)
    means no bypass."""
    pg_only(session)
    session.execute(
        text(
            "CREATE FUNCTION labelloop_test_noop() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NEW; END $$"
        )
    )
    savepoint = session.begin_nested()
    session.execute(
        text(
            "CREATE TRIGGER labelloop_test_noop BEFORE INSERT ON annotations "
            "FOR EACH ROW EXECUTE FUNCTION labelloop_test_noop()"
        )
    )
    assert _fastpath.fk_bypass_refusal(session) == (
        "items or annotations has triggers or rules besides foreign keys"
    )
    savepoint.rollback()
    assert _fastpath.fk_bypass_refusal(session) is None
    session.execute(
        text(
            "ALTER TABLE items ADD CONSTRAINT labelloop_test_fk "
            "FOREIGN KEY (project_id) REFERENCES users (id) NOT VALID"
        )
    )
    assert _fastpath.fk_bypass_refusal(session) == (
        "the tables' foreign keys are not the ones this import checks"
    )


def test_reference_checks_refuse_unknown_rows(session: Session, project: Project) -> None:
    import numpy as np

    pg_only(session)
    other = create_project(session, actor=ACTOR, name="other", schema=LabelSchema.from_dict(SCHEMA))
    foreign = Item(project_id=other.id, external_id="x", payload={}, meta={}, segments={}, tags=[])
    session.add(foreign)
    session.flush()
    from labelloop.accounts.service import ensure_users

    uid = ensure_users(session, actor=ACTOR, usernames={"zed"}, project_id=project.id)["zed"]
    fast = _fastpath._Fast(
        session,
        actor=ACTOR,
        project=project,
        schema=LabelSchema.from_dict(SCHEMA),
        plan=_fastpath._Plan("item", "annotator", "label", None, None, None, None, ()),
        source="csv",
        progress=None,
    )
    assert fast.fk_off
    raw = session.connection().connection.dbapi_connection
    with pytest.raises(_fastpath.Fallback, match="does not resolve"):
        fast._check_references(raw, np.array([foreign.id]), np.array([uid]), [])
    with pytest.raises(_fastpath.Fallback, match="does not resolve"):
        fast._check_references(raw, np.array([], dtype=np.int64), np.array([-1]), [])
    with pytest.raises(_fastpath.Fallback, match="item of the batch is gone"):
        fast._check_references(raw, np.array([foreign.id]), np.array([uid]), [-1])
    with pytest.raises(_fastpath.Fallback, match="account is gone"):
        fast._lock_users([uid, -1])
    fast._lock_users([uid])
    mine = Item(project_id=project.id, external_id="y", payload={}, meta={}, segments={}, tags=[])
    session.add(mine)
    session.flush()
    fast._check_references(raw, np.array([mine.id, mine.id]), np.array([uid]), [mine.id])
    fast.close()
    with pytest.raises(_fastpath.Fallback, match="project is gone"):
        _fastpath._Fast(
            session,
            actor=ACTOR,
            project=Project(id=-1, name="gone"),
            schema=LabelSchema.from_dict(SCHEMA),
            plan=_fastpath._Plan("item", "annotator", "label", None, None, None, None, ()),
            source="csv",
            progress=None,
        )


def test_a_failing_copy_leaves_nothing_and_the_record_path_imports(
    session: Session,
    project: Project,
    tmp_path: Path,
    spy: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error in the background COPY reaches the importer, which rolls the fast path
    back and uses the record path: same rows as the record path alone."""
    pg_only(session)

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(_fastpath._Fast, "_copy_payload", broken)
    out = both(session, project, [importing(session, write(tmp_path / "a.csv", ROWS))])
    assert out[0][0] == "ok" and out[0][1]["annotations_created"] == 7
    assert spy == []  # neither "fast" nor a Fallback: the fast path failed
    assert replication_role(session) == "origin"
