"""Helpers shared by the readers: errors, timestamps, stable ids, safe text decoding."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelloop.formats.records import FormatIssue, JSONValue, Location

READ_CHUNK = 1 << 16


class FormatError(ValueError):
    """A file whose format cannot be determined or used, or an unknown format name."""


def stable_id(*parts: JSONValue) -> str:
    """A short, stable content hash (``h:`` + 20 hex digits) of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "h:" + hashlib.blake2b(blob.encode("utf-8"), digest_size=10).hexdigest()


def pair_id(item: str, annotator: str | None) -> str:
    """A cheap stable id for "this annotator's annotation of this item" (``h:`` + 20 hex)."""
    key = f"{item}\x1f{annotator}" if annotator is not None else f"{item}\x1f\x00"
    return "h:" + hashlib.blake2b(key.encode("utf-8"), digest_size=10).hexdigest()


def parse_datetime(value: object) -> datetime:
    """Parse an ISO 8601 string or a Unix timestamp (seconds) into an aware UTC datetime.

    Naive timestamps are taken to be UTC. Raises ``ValueError`` with a readable reason.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, found {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"expected a timestamp, found {value!r}")
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 timestamp, found {type(value).__name__}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(text), tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass
        raise ValueError(
            f"{value!r} is not an ISO 8601 timestamp (e.g. 2024-05-01T12:30:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_seconds(value: object) -> float:
    """Parse a non-negative duration in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, found {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, found {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a non-negative number of seconds, found {value!r}")
    return seconds


def json_path(*parts: str | int) -> str:
    """Dotted field path: ``json_path("annotations", 0, "result")`` -> ``annotations[0].result``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def describe(value: object) -> str:
    """A short type description for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def decode_error_issue(path: Path, exc: UnicodeDecodeError, offset: int, line: int) -> FormatIssue:
    """The fatal issue for bytes that are not UTF-8, at an absolute byte offset."""
    bad = exc.object[exc.start : exc.start + 4]
    return FormatIssue(
        Location(str(path), line=line),
        f"file is not UTF-8: invalid byte 0x{bad[0]:02x} at byte offset {offset} "
        f"(line {line}); re-save it as UTF-8 (it may be Latin-1 or Windows-1252)",
    )


def read_text(path: Path) -> str | FormatIssue:
    """The whole file as text (UTF-8, BOM allowed), or the fatal issue explaining why not."""
    data = path.read_bytes()
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[start:].decode("utf-8") if start else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + start
        line = data.count(b"\n", 0, offset) + 1
        return decode_error_issue(path, exc, offset, line)
    return text


def iter_lines(path: Path) -> Iterator[tuple[int, str] | FormatIssue]:
    """Decoded lines with their 1-based numbers, streamed; a non-UTF-8 line yields one
    fatal issue (with its byte offset) and stops."""
    offset = 0
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            chunk = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield decode_error_issue(
                    path, exc, offset + (len(raw) - len(chunk)) + exc.start, number
                )
                return
            offset += len(raw)
            yield number, text


def is_empty_file(path: Path) -> bool:
    """True when the file holds nothing but whitespace (and a BOM)."""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(READ_CHUNK)
            if not chunk:
                return True
            if chunk.strip(b" \t\r\n\xef\xbb\xbf"):
                return False


def empty_file_issue(path: Path) -> FormatIssue:
    return FormatIssue(Location(str(path)), "file is empty")


def as_str(value: Any) -> str:
    """A label or id as text (integers without a decimal point)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def iter_json_lines(path: Path) -> Iterator[tuple[int, int, Any] | FormatIssue]:
    """(line, record index, parsed object) per non-blank JSON line, streamed. A line that
    is not JSON yields an issue and reading goes on; bytes that are not UTF-8 yield one
    fatal issue (severity error, ``fatal`` in the reason is implied) and stop."""
    record = 0
    file = str(path)
    for entry in iter_lines(path):
        if isinstance(entry, FormatIssue):
            yield entry
            return
        line, text = entry
        if not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield FormatIssue(
                Location(file, line=line, record=record),
                f"invalid JSON: {exc.msg} at column {exc.colno}",
            )
        else:
            yield line, record, obj
        record += 1
