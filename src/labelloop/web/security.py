"""CSRF tokens, sign-in throttling, the bound on concurrent password checks, and the
client address behind trusted proxies.

* **Sessions** live on the server (:mod:`labelloop.accounts.sessions`); the signed
  cookie (Starlette's, keyed by ``Settings.ensure_secret_key()``, HttpOnly,
  SameSite=Lax) carries the session's random secret and the CSRF token.
* **CSRF**: every form carries ``csrf_token`` (htmx and scripts send ``X-CSRF-Token``);
  :func:`csrf_protect` runs before every route and refuses (403) any unsafe method
  whose session token does not match. Requests that authenticate with
  ``Authorization: Bearer`` carry no ambient credential and are not checked.
* **Sign-in throttling** (:class:`LoginThrottle`): after ``limit`` failed sign-ins for
  one account name from one client address within ``window`` seconds, or ``4 ×
  limit`` from one address whatever the names, further attempts get 429 until the
  oldest failure ages out. Names are counted in their one normal form
  (:func:`labelloop.identifiers.login_key`: NFKC, trimmed, case-folded), the same one
  the look-up uses. Kept in process memory, per worker.
* **Password checks** (:class:`PasswordGate`): argon2 takes ~64 MiB and tens of
  milliseconds per check; at most ``Settings.login_concurrency`` run at once per
  process, so a burst of sign-ins cannot starve every other request of CPU and memory.
* **Client address** (:class:`ProxyHeaders`): ``X-Forwarded-For`` and
  ``X-Forwarded-Proto`` are believed only from ``Settings.trusted_proxies``.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from labelloop.identifiers import login_key
from labelloop.web.errors import CsrfFailed, TooManyAttempts

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
    if request.url.path.startswith("/api/") and "sid" not in request.session:
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


class LoginThrottle:
    """Failed sign-ins per (account name, client address) and per address, in memory."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 15 * 60,
        max_keys: int = 100_000,
        per_address: int | None = None,
    ) -> None:
        self.limit = limit
        self.per_address = 4 * limit if per_address is None else per_address
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

    def _keys(self, username: str, client: str) -> list[tuple[tuple[str, str], int]]:
        # "\x00" cannot occur in a normalised name: the address-wide key is its own
        return [((login_key(username), client), self.limit), (("\x00", client), self.per_address)]

    def _wait(self, username: str, client: str, now: float) -> int | None:
        wait = 0
        for key, limit in self._keys(username, client):
            times = self._recent(key, now)
            if len(times) >= limit:
                wait = max(wait, int(times[-limit] + self.window - now) + 1)
        return max(1, wait) if wait else None

    def retry_after(self, username: str, client: str, now: float | None = None) -> int | None:
        """Seconds until another attempt is allowed, or ``None`` when it is allowed now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._wait(username, client, now)

    def attempt(self, username: str, client: str, now: float | None = None) -> int | None:
        """Check and count an attempt in one step, before the password is checked:
        ``None`` when it may go on (it is counted as a failure until
        :meth:`succeeded`), else the seconds to wait. Concurrent attempts are counted as
        they start, so a burst cannot slip past the limit while earlier checks run."""
        now = time.monotonic() if now is None else now
        with self._lock:
            wait = self._wait(username, client, now)
            if wait is None:
                self._record(username, client, now)
            return wait

    def failed(self, username: str, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._record(username, client, now)

    def _record(self, username: str, client: str, now: float) -> None:
        for key, _ in self._keys(username, client):
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str) -> None:
        """A sign-in succeeded: forget the name's failures from this address, and take
        the attempt back from the address's count."""
        (name_key, _), (address_key, _) = self._keys(username, client)
        with self._lock:
            self._failures.pop(name_key, None)
            times = self._failures.get(address_key)
            if times:
                times.pop()


class PasswordGate:
    """At most ``slots`` password checks at once, and at most ``queue`` callers waiting
    for one (each waits up to ``wait`` seconds); anyone beyond gets 429 at once. A
    waiting caller holds a server thread, so the queue is kept short: a burst of
    sign-ins cannot take the threads every other request needs."""

    def __init__(self, slots: int, wait: float, queue: int | None = None) -> None:
        self._slots = threading.BoundedSemaphore(slots)
        self.wait = wait
        self.queue = 4 * slots if queue is None else queue
        self._waiting = 0
        self._lock = threading.Lock()

    def _busy(self) -> TooManyAttempts:
        return TooManyAttempts(
            "the server is busy checking other sign-ins; try again in a few seconds",
            headers={"Retry-After": "5"},
        )

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._waiting >= self.queue:
                raise self._busy()
            self._waiting += 1
        try:
            got = self._slots.acquire(timeout=self.wait)
        finally:
            with self._lock:
                self._waiting -= 1
        if not got:
            raise self._busy()
        try:
            yield
        finally:
            self._slots.release()


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a forwarded hop may write it (``1.2.3.4``, ``1.2.3.4:5678``,
    ``[2001:db8::1]:443``, ``2001:db8::1``), or None when it is none (``unknown``, a
    name, garbage)."""
    text = (text or "").strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(host: str | None, networks: list[Network]) -> bool:
    address = _address(host)
    return address is not None and any(address in net for net in networks)


class ProxyHeaders:
    """Takes the client's address and scheme from ``X-Forwarded-For`` and
    ``X-Forwarded-Proto``, but only when the connection comes from a trusted proxy.

    The client is the right-most address in ``X-Forwarded-For`` that is not itself a
    trusted proxy (a client can put anything on the left), with any port removed and
    written in its normal form; when that hop is not an address, the peer stays the
    client. Without trusted proxies the headers are ignored and the connection's peer
    is the client.
    """

    def __init__(self, app: ASGIApp, networks: list[Network]) -> None:
        self.app = app
        self.networks = networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and _trusted(client[0], self.networks):
            headers = Headers(scope=scope)
            hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
            for hop in reversed(hops):
                if _trusted(hop, self.networks):
                    continue
                # the first hop the proxies did not add; one that is not an address
                # (a port-less name, "unknown") leaves the peer as the client
                address = _address(hop)
                if address is not None:
                    scope["client"] = (str(address), 0)
                break
            proto = headers.get("x-forwarded-proto", "").strip().lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto
        await self.app(scope, receive, send)


def client_address(request: Request) -> str:
    """The client's address as the throttle and the session list record it."""
    return request.client.host if request.client else "unknown"
