"""``Idempotency-Key`` on API writes, kept in an in-process LRU.

A POST that carries ``Idempotency-Key: <string>`` is remembered, after its transaction
commits, under (principal, method, path, key) with a hash of its body and the response
(status and JSON) for ``ttl`` seconds. A retry with the same key and body gets the
stored response again (header ``Idempotent-Replayed: true``) and writes nothing; the
same key with a different body is a 422; a retry while the first request is still
running is a 409. The caller is authenticated first: a replay needs a credential that
is still valid (a revoked token gets 401, not its earlier answer). Entries live in this process only (a restart forgets them and
several workers do not share them); the writes themselves are idempotent where the
domain allows it (a resubmitted annotation updates, gold and predictions replace), so
a retry that reaches another worker changes nothing either.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from labelloop.errors import Conflict, ValidationFailed
from labelloop.projects.validation import Violation
from labelloop.web.deps import CurrentActor
from labelloop.web.errors import IdempotencyReplay

MAX_KEY_LENGTH = 200


@dataclass
class _Entry:
    fingerprint: str
    expires: float
    done: bool = False
    status: int = 0
    body: Any = None


class IdempotencyStore:
    def __init__(self, ttl: float = 24 * 3600, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, key: tuple[str, ...], fingerprint: str) -> _Entry | None:
        """The finished entry to replay, or ``None`` after reserving the key."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires <= now:
                del self._entries[key]
                entry = None
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    raise ValidationFailed(
                        "Idempotency-Key was already used with a different request body",
                        [
                            Violation(
                                "Idempotency-Key",
                                "reused",
                                "this key was used with another body; use a new key",
                            )
                        ],
                    )
                if not entry.done:
                    raise Conflict("a request with this Idempotency-Key is still in progress")
                return entry
            self._entries[key] = _Entry(fingerprint, now + self.ttl)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return None

    def finish(self, key: tuple[str, ...], fingerprint: str, status: int, body: Any) -> None:
        with self._lock:
            entry = _Entry(fingerprint, time.monotonic() + self.ttl, True, status, body)
            self._entries[key] = entry
            self._entries.move_to_end(key)

    def release(self, key: tuple[str, ...]) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry.done:
                del self._entries[key]


@dataclass
class Idempotency:
    """Handed to a write route: ``remember(status, body)`` stores the response once the
    request's transaction has committed."""

    request: Request
    key: tuple[str, ...] | None
    fingerprint: str = ""
    stored: bool = field(default=False)

    def remember(self, status: int, body: Any) -> None:
        if self.key is None:
            return
        store: IdempotencyStore = self.request.app.state.idempotency
        key, fingerprint = self.key, self.fingerprint

        def _after_commit() -> None:
            store.finish(key, fingerprint, status, body)
            self.stored = True

        self.request.state.after_commit.append(_after_commit)


async def idempotency(
    request: Request,
    actor: CurrentActor,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="Any unique string; a retry with the same key and body is answered "
            "with the first response and writes nothing.",
            max_length=MAX_KEY_LENGTH,
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    if not idempotency_key:
        yield Idempotency(request, None)
        return
    store: IdempotencyStore = request.app.state.idempotency
    principal = request.headers.get("authorization") or f"user:{actor.user_id}:{actor.name}"
    key = (
        hashlib.sha256(principal.encode()).hexdigest(),
        request.method,
        request.url.path,
        idempotency_key,
    )
    fingerprint = hashlib.sha256(await request.body()).hexdigest()
    entry = store.begin(key, fingerprint)
    if entry is not None:
        raise IdempotencyReplay(entry.status, entry.body)
    handle = Idempotency(request, key, fingerprint)
    try:
        yield handle
    finally:
        if not handle.stored:
            store.release(key)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency, scope="function")]
