"""Request body limits, enforced while the body streams in and before anything parses it.

Every request body is counted as it arrives; past its limit the request is answered
413 (``payload_too_large``, in the API's error shape) and the rest is never read. A
``Content-Length`` over the limit is refused before the first byte is read. The limit
is ``Settings.max_upload_bytes`` on the upload routes (:data:`UPLOAD_PATHS`),
:data:`SIGN_IN_LIMIT` on the sign-in form (the one body anonymous callers may send) and
``Settings.max_json_bytes`` everywhere else (JSON and forms). Who may send a large body
at all is decided before it is read (see :func:`labelloop.web.deps.authenticate_first`).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Routes that take file uploads.
UPLOAD_PATHS = re.compile(r"^/projects/[^/]+/imports/?$")
#: The sign-in form: a name, a password, a target and a token fit in far less.
SIGN_IN_LIMIT = 16 * 1024


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


class TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {_mib(limit)}")


class BodyLimit:
    """ASGI middleware: at most ``json_limit`` bytes of body, ``upload_limit`` on
    upload routes. The 413 is raised from ``receive`` as an ``HTTPException``, so the
    app's own handler answers it (JSON under ``/api/``, a page elsewhere)."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    def limit_for(self, path: str) -> int:
        if path == "/login":
            return SIGN_IN_LIMIT
        return self.upload_limit if UPLOAD_PATHS.match(path) else self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        too_long = declared is not None and not _within(declared, limit)
        received = 0

        async def counted() -> Message:
            nonlocal received
            if too_long:
                raise TooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _within(declared: str, limit: int) -> bool:
    """Whether a ``Content-Length`` is a plain decimal number no larger than ``limit``
    (anything else, e.g. ``²`` or 5,000 digits, counts as too long)."""
    text = declared.strip()
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= limit
