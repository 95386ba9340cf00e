"""Anchors: the trail's head, copied out of the database (pure: files and keys, no
database).

``labelloop trail checkpoint`` appends one JSON line per checkpoint to an append-only
file kept outside the database::

    {"database": ..., "hash": ..., "key_id": ..., "mac": ..., "seq": ..., "time": ...}

``mac`` is HMAC-SHA256 with the trail key over the canonical JSON of the other five
fields, so a line cannot be forged (or moved to another database) without the key.
Because each event's hash covers the previous one, an anchor pins every event up to
``seq``: verification fails if the chain is shorter (events deleted) or holds another
hash there (rewritten). One file can serve several databases (``database`` tells them
apart; see :func:`database_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from labelloop.errors import ConfigurationError
from labelloop.trail.chain import canonical, jsonable, key_id

_FIELDS = ("database", "seq", "hash", "time", "key_id")
_LINE_KEYS = frozenset((*_FIELDS, "mac"))


@dataclass(frozen=True)
class Anchor:
    """One checkpoint: the head (``seq``, ``hash``) of ``database`` at ``time``."""

    database: str
    seq: int
    hash: str
    time: str
    key_id: str
    mac: str
    #: Its line number in the anchor file (1-based); 0 before it is written.
    line: int = 0

    def signed_fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _FIELDS}

    def to_line(self) -> str:
        return canonical(self.signed_fields() | {"mac": self.mac})

    def at(self) -> datetime:
        """``time`` as an aware datetime."""
        return datetime.fromisoformat(self.time)


@dataclass(frozen=True)
class AnchorCheck:
    """The anchor file read with one key for one database."""

    #: This database's lines whose mac verifies, in file order.
    anchors: list[Anchor]
    #: Forged or corrupted lines, and this database's lines made with another key.
    problems: list[str]
    #: Lines in the file (blank ones not counted).
    lines: int


def database_id(url: str | URL) -> str:
    """What names a database in the anchor file: its URL without password, driver or
    query, with a default PostgreSQL port and SQLite paths made absolute, so that the
    URLs one database is reached by give one name."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = parsed.database or ":memory:"
        if path != ":memory:" and not path.startswith("file:"):
            path = str(Path(path).resolve())
        return f"sqlite:///{path}"
    port = parsed.port
    if port is None and backend == "postgresql" and parsed.host:
        port = 5432
    return URL.create(
        backend,
        username=parsed.username,
        host=parsed.host,
        port=port,
        database=parsed.database,
    ).render_as_string(hide_password=True)


def _mac(key: bytes, fields: dict[str, object]) -> str:
    return hmac.new(key, canonical(fields).encode("utf-8"), hashlib.sha256).hexdigest()


def make_anchor(key: bytes, *, database: str, seq: int, hash: str, time: datetime) -> Anchor:
    """A signed anchor for the head (``seq``, ``hash``) of ``database``."""
    unsigned = Anchor(
        database=database, seq=seq, hash=hash, time=jsonable(time), key_id=key_id(key), mac=""
    )
    return replace(unsigned, mac=_mac(key, unsigned.signed_fields()))


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append ``anchor`` as one line and make it durable (flush and fsync; the
    directory too when the file is new).

    Opened in append mode, so the write lands at the end even if another process
    appends at the same time; a previous line cut short by a crash is ended first so
    it does not swallow this one.
    """
    data = (anchor.to_line() + "\n").encode("utf-8")
    try:
        new = not path.exists()
        with path.open("a+b") as f:
            if not new and f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if new:
            _fsync_dir(path.resolve().parent)
    except OSError as exc:
        raise ConfigurationError(f"cannot append to the anchor file {path}: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (e.g. Windows); the file itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parse(number: int, text: str) -> Anchor | str:
    """The anchor on one line, or why it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return "not JSON"
    if not isinstance(value, dict) or set(value) != _LINE_KEYS:
        return "not an anchor (wrong fields)"
    seq = value["seq"]
    strings = [value[name] for name in _LINE_KEYS if name != "seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return "not an anchor (bad seq)"
    if not all(isinstance(s, str) for s in strings):
        return "not an anchor (fields must be strings)"
    try:
        datetime.fromisoformat(value["time"])
    except ValueError:
        return "not an anchor (bad time)"
    return Anchor(**value, line=number)


def check_anchors(path: Path, *, key: bytes, database: str) -> AnchorCheck:
    """Read the anchor file and check every line that concerns this key or database.

    A line that is not an anchor, or whose mac does not verify although it names this
    key, is "forged or corrupted"; a line for this database made with another key is a
    problem too (the trail key changed or was lost: nothing made with it can be
    checked). Lines of other databases under other keys are skipped. A missing file
    holds no anchors.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return AnchorCheck([], [], 0)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the anchor file {path}: {exc}") from exc
    mine, problems, count = [], [], 0
    this_key = key_id(key)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        count += 1
        try:
            parsed = _parse(number, line.decode("utf-8"))
        except UnicodeDecodeError:
            parsed = "not UTF-8"
        if isinstance(parsed, str):
            problems.append(f"anchor line {number} forged or corrupted ({parsed})")
            continue
        if parsed.key_id == this_key:
            expected = _mac(key, parsed.signed_fields())
            if not hmac.compare_digest(expected, parsed.mac):
                problems.append(
                    f"anchor line {number} forged or corrupted (its mac does not verify)"
                )
            elif parsed.database == database:
                mine.append(parsed)
        elif parsed.database == database:
            problems.append(
                f"anchor line {number} was made with another key (key id {parsed.key_id}, "
                f"this key's id is {this_key}): the trail key changed or was lost"
            )
    return AnchorCheck(mine, problems, count)


def last_time(path: Path, *, key: bytes, database: str) -> datetime | None:
    """When ``database`` was last anchored in ``path`` (lines whose mac verifies only:
    a forged line cannot postpone the next checkpoint); None if never."""
    return max(
        (a.at() for a in check_anchors(path, key=key, database=database).anchors), default=None
    )


def latest(anchors: list[Anchor]) -> Anchor | None:
    """The anchor of the highest sequence number (the later line among equals)."""
    return max(anchors, key=lambda a: (a.seq, a.line), default=None)
