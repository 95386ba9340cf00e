"""Canonical form, keys and hashing of events (pure functions).

An event's hash is ``HMAC-SHA256(key, prev_hash || canonical(event))``, hex: without the
trail key, nobody can recompute a chain that verifies, so editing events and rehashing
them is detected. Events written before the chain was keyed (``key_id`` NULL) keep
their plain ``SHA-256(prev_hash || canonical(event))`` (:func:`legacy_hash`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

GENESIS = "0" * 64
#: Prefix of the key fingerprint (:func:`key_id`), so it is no hash of anything else.
_KEY_ID_PREFIX = b"labelloop trail key id v1\x00"


_PLAIN = frozenset({int, str, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: datetimes as ISO 8601 UTC, sets as sorted lists, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(type(v) in _PLAIN for v in value):  # ids and names: nothing to convert
            return list(value)
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def canonical(fields: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 kept."""
    return json.dumps(jsonable(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_up_to_seq(fields: dict[str, Any]) -> str:
    """The canonical JSON of an event's hashed fields up to its sequence number.

    ``seq`` sorts last among the hashed fields, so for ``fields`` without ``seq``::

        canonical(fields | {"seq": n}) == canonical_up_to_seq(fields) + str(n) + "}"

    which lets an append serialise the event before it locks the head and learns ``n``.
    """
    if any(key >= "seq" for key in fields):
        raise ValueError("fields must not hold 'seq' or keys that sort after it")
    body = canonical(fields)[:-1]
    return body + (',"seq":' if fields else '"seq":')


def key_id(key: bytes) -> str:
    """The key's fingerprint stored with each event (16 hex digits): names which key
    chained an event without revealing the key."""
    return hashlib.sha256(_KEY_ID_PREFIX + key).hexdigest()[:16]


def keyed_hash(key: bytes, prev_hash: str, fields: dict[str, Any]) -> str:
    """HMAC-SHA256 with the trail key over the previous hash and the canonical event."""
    return keyed_hash_of(key, prev_hash, canonical(fields))


def keyed_hash_of(key: bytes, prev_hash: str, canonical_event: str) -> str:
    """:func:`keyed_hash` of an event already in canonical form."""
    mac = hmac.new(key, prev_hash.encode("ascii"), hashlib.sha256)
    mac.update(canonical_event.encode("utf-8"))
    return mac.hexdigest()


def legacy_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """Plain SHA-256 over the previous hash and the canonical event: how events were
    chained before the trail was keyed. Anyone can compute it, so it only checks
    legacy events (``key_id`` NULL)."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical(fields).encode("utf-8"))
    return digest.hexdigest()


def hashed_fields(
    *,
    seq: int,
    created_at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    project_id: int | None,
    before: Any,
    after: Any,
) -> dict[str, Any]:
    """The fields an event's hash covers (everything but its hashes, key id and row id)."""
    return {
        "seq": seq,
        "created_at": jsonable(created_at),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "project_id": project_id,
        "before": before,
        "after": after,
    }
