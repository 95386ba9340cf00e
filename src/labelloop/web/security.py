"""CSRF tokens, login throttling and the signed-session helpers.

* **Sessions** are Starlette's signed cookies (itsdangerous, keyed by
  ``Settings.ensure_secret_key()``), HttpOnly and SameSite=Lax. A session holds the user
  id, a fingerprint of the password hash (so changing a password signs every other
  session out) and the CSRF token.
* **CSRF**: every form carries ``csrf_token`` (htmx and scripts send ``X-CSRF-Token``);
  :func:`csrf_protect` runs before every route and refuses (403) any unsafe method
  whose session token does not match. Requests that authenticate with
  ``Authorization: Bearer`` carry no ambient credential and are not checked.
* **Login throttling** (:class:`LoginThrottle`): after ``limit`` failed logins for one
  username from one client address within ``window`` seconds, further attempts get
  429 until the oldest failure ages out. It is kept in process memory, per worker: a
  restart forgets it, and several workers each count on their own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque

from fastapi import Request

from labelloop.web.errors import CsrfFailed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def uses_bearer(request: Request) -> bool:
    return request.url.path.startswith("/api/") and "authorization" in request.headers


async def csrf_protect(request: Request) -> None:
    """Refuse an unsafe, cookie-authenticated request without the session's token."""
    if request.method in SAFE_METHODS or uses_bearer(request):
        return
    if request.url.path.startswith("/api/") and "uid" not in request.session:
        return  # no cookie credential at all: authentication answers 401
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    ctype = request.headers.get("content-type", "")
    if not given and (
        ctype.startswith("application/x-www-form-urlencoded")
        or ctype.startswith("multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not expected or not given or not hmac.compare_digest(str(expected), given):
        raise CsrfFailed("the form is missing its CSRF token or it has expired; reload the page")


def password_fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


class LoginThrottle:
    """Failed-login counter per (username, client address), kept in memory."""

    def __init__(self, limit: int = 5, window: float = 15 * 60, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def retry_after(self, username: str, client: str, now: float | None = None) -> int | None:
        """Seconds until another attempt is allowed, or ``None`` when it is allowed now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent((username.lower(), client), now)
            if len(times) < self.limit:
                return None
            return max(1, int(times[0] + self.window - now) + 1)

    def failed(self, username: str, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (username.lower(), client)
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), client), None)
