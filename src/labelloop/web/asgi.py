"""The web app configured from ``LABELLOOP_*`` environment variables: what each
``labelloop serve --workers`` process runs, and what any ASGI server can run, e.g.
``uvicorn --factory --no-proxy-headers labelloop.web.asgi:app_from_environment`` (the
app reads forwarded headers itself, from ``LABELLOOP_TRUSTED_PROXIES`` only).

Kept apart from :mod:`labelloop.web.serve` (the CLI command) so that importing it does
not import the CLI.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from labelloop.settings import Settings
from labelloop.web.app import create_app

#: Set to a non-empty value to mark the session cookie ``Secure``.
SECURE_COOKIES_ENV = "LABELLOOP_SERVE_SECURE_COOKIES"


def app_from_environment() -> FastAPI:
    """The app of one server process, configured from ``LABELLOOP_*`` variables."""
    return create_app(
        Settings(), secure_cookies=bool(os.environ.get(SECURE_COOKIES_ENV)), freeze_heap=True
    )
